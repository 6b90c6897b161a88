//! When to try a failed delivery again, and when to give up.

use jiff::{SignedDuration, Timestamp};

/// Exponential backoff with jitter and a maximum age (`[delivery]` in the inventory).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait before the first retry; doubled after each further failure.
    pub first_retry: SignedDuration,
    /// Longest wait between two attempts.
    pub max_backoff: SignedDuration,
    /// A delivery still failing this long after its event was recorded is given up.
    pub give_up_after: SignedDuration,
    /// Longest time one attempt may take.
    pub timeout: SignedDuration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_retry: SignedDuration::from_secs(5),
            max_backoff: SignedDuration::from_mins(10),
            give_up_after: SignedDuration::from_hours(24),
            timeout: SignedDuration::from_secs(15),
        }
    }
}

impl RetryPolicy {
    /// When to try again after `attempts` failed attempts of a delivery created at `created`,
    /// or `None` when it is time to give up. `jitter` in `[0, 1)` spreads retries: the wait
    /// is between half and all of the backoff, so a burst of failures does not retry in step.
    pub fn next_attempt(
        &self,
        attempts: u32,
        created: Timestamp,
        now: Timestamp,
        jitter: f64,
    ) -> Option<Timestamp> {
        let doublings = attempts.saturating_sub(1).min(30);
        let backoff = self
            .first_retry
            .checked_mul(1 << doublings)
            .map_or(self.max_backoff, |b| b.min(self.max_backoff));
        let wait = backoff.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0);
        let next = now.checked_add(wait).ok()?;
        (next.duration_since(created) <= self.give_up_after).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().expect("test instant")
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum_then_gives_up() {
        let p = RetryPolicy {
            first_retry: SignedDuration::from_secs(10),
            max_backoff: SignedDuration::from_secs(60),
            give_up_after: SignedDuration::from_mins(5),
            ..RetryPolicy::default()
        };
        let created = t("2026-12-09T21:00:00Z");
        let wait = |attempts, now: &str, jitter| {
            p.next_attempt(attempts, created, t(now), jitter)
                .map(|n| n.duration_since(t(now)).as_secs())
        };
        // Full jitter range: half to all of the backoff.
        assert_eq!(wait(1, "2026-12-09T21:00:00Z", 0.0), Some(5));
        assert_eq!(wait(1, "2026-12-09T21:00:00Z", 0.999_999), Some(9));
        assert_eq!(wait(2, "2026-12-09T21:00:10Z", 0.999_999), Some(19));
        assert_eq!(wait(3, "2026-12-09T21:00:30Z", 0.999_999), Some(39));
        assert_eq!(wait(9, "2026-12-09T21:02:00Z", 0.999_999), Some(59));
        // The next attempt would be more than 5 minutes after the event: give up.
        assert_eq!(wait(9, "2026-12-09T21:04:30Z", 0.5), None);
        assert_eq!(wait(40, "2026-12-09T21:01:00Z", 0.0), Some(30));
    }
}
