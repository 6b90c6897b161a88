//! Events: how a new report relates to a cluster's recent history.
//!
//! Several reports (both nodes, client retries) can be one failover; many failovers in a
//! short time are flapping; a failover back to the node that was active before the previous
//! one is a failback. [`assess`] decides all three from the history it is given (the store
//! supplies it in the service; tests pass a slice).

use jiff::Timestamp;

use crate::inventory::{ClusterId, EventPolicy, NodeId};

/// A failover already recorded for a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastEvent {
    /// Event id, as the store knows it.
    pub id: String,
    /// Its cluster.
    pub cluster: ClusterId,
    /// The node that became active.
    pub active: NodeId,
    /// The node that was active before, when known.
    pub previous: Option<NodeId>,
    /// When it happened.
    pub at: Timestamp,
    /// Whether it was flagged as flapping.
    pub flapping: bool,
}

/// What a new report is, relative to the history.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assessment {
    /// Another report of this recorded failover: attach to it, send nothing new.
    pub merge_into: Option<String>,
    /// More than the allowed number of failovers within the flapping interval.
    pub flapping: bool,
    /// This report is the one that starts the flapping (say it once).
    pub flapping_started: bool,
    /// The failover this one undoes.
    pub failback_of: Option<String>,
}

/// Of `events` within `within` of `at`, the one in force at `at`: the latest at or before
/// it, else (a report sent a little before the event it belongs to was recorded) the
/// earliest after it. Decided by the report's own instant, never by arrival order.
pub fn event_at<T>(
    events: impl IntoIterator<Item = T>,
    at: Timestamp,
    within: jiff::SignedDuration,
    when: impl Fn(&T) -> Timestamp,
) -> Option<T> {
    let mut before: Option<(Timestamp, T)> = None;
    let mut after: Option<(Timestamp, T)> = None;
    for e in events {
        let t = when(&e);
        if at.duration_since(t).abs() > within {
            continue;
        }
        if t <= at {
            if before.as_ref().is_none_or(|(b, _)| t >= *b) {
                before = Some((t, e));
            }
        } else if after.as_ref().is_none_or(|(a, _)| t < *a) {
            after = Some((t, e));
        }
    }
    before.or(after).map(|(_, e)| e)
}

/// Relates a report (`cluster` now active on `active`, at `at`) to the cluster's earlier
/// events. `history` may hold other clusters' events and be unsorted. A retry of a report
/// already recorded (the same client id) is the store's to answer, before this is asked.
pub fn assess(
    policy: &EventPolicy,
    history: &[PastEvent],
    cluster: ClusterId,
    active: NodeId,
    at: Timestamp,
) -> Assessment {
    let mine: Vec<&PastEvent> = history.iter().filter(|e| e.cluster == cluster).collect();
    // The event in force at this report's own instant; it must be the same takeover. An
    // event in between with another active node (n1, n2, n1 again within seconds) is a new
    // failover, not a repeat of the first; a later event (a failback that reached the service
    // before this spooled report) does not hide the one the report belongs to.
    let merge = event_at(mine.iter().copied(), at, policy.merge_within, |e| e.at)
        .filter(|e| e.active == active);
    if let Some(e) = merge {
        return Assessment {
            merge_into: Some(e.id.clone()),
            ..Assessment::default()
        };
    }

    let earlier: Vec<&&PastEvent> = mine.iter().filter(|e| e.at <= at).collect();
    let recent = earlier
        .iter()
        .filter(|e| at.duration_since(e.at) <= policy.flapping_within)
        .count();
    // This event plus the recent ones.
    let flapping = recent + 1 > policy.flapping_count as usize;
    let last = earlier.iter().max_by_key(|e| e.at);
    let already_flapping = last.is_some_and(|e| e.flapping);
    let failback_of = last
        .filter(|e| e.previous == Some(active) && at.duration_since(e.at) <= policy.failback_within)
        .map(|e| e.id.clone());
    Assessment {
        merge_into: None,
        flapping,
        flapping_started: flapping && !already_flapping,
        failback_of,
    }
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;

    fn ev(id: &str, active: u32, previous: u32, at: &str) -> PastEvent {
        PastEvent {
            id: id.into(),
            cluster: ClusterId(0),
            active: NodeId(active),
            previous: Some(NodeId(previous)),
            at: at.parse().expect("test instant"),
            flapping: false,
        }
    }

    fn t(s: &str) -> Timestamp {
        s.parse().expect("test instant")
    }

    #[test]
    fn a_late_report_merges_into_the_failover_of_its_own_instant() {
        // db2 took over at 21:00:00 (its "lost" report), db1 failed back at 21:01:00; db2's
        // spooled "resource started" report of 21:00:05 arrives only now.
        let h = [
            ev("takeover", 2, 1, "2026-12-09T21:00:00Z"),
            ev("failback", 1, 2, "2026-12-09T21:01:00Z"),
        ];
        let a = assess(
            &EventPolicy::default(),
            &h,
            ClusterId(0),
            NodeId(2),
            t("2026-12-09T21:00:05Z"),
        );
        assert_eq!(a.merge_into.as_deref(), Some("takeover"));
        // Sent a moment before the event it belongs to was recorded: still that event.
        let a = assess(
            &EventPolicy::default(),
            &h[..1],
            ClusterId(0),
            NodeId(2),
            t("2026-12-09T20:59:58Z"),
        );
        assert_eq!(a.merge_into.as_deref(), Some("takeover"));
    }

    #[test]
    fn failover_back_within_the_merge_interval_is_a_new_event() {
        // n1 took over, then n2, then n1 again, seconds apart: three failovers.
        let h = [
            ev("e1", 1, 0, "2026-12-09T21:00:00Z"),
            ev("e2", 0, 1, "2026-12-09T21:00:10Z"),
        ];
        let a = assess(
            &EventPolicy::default(),
            &h,
            ClusterId(0),
            NodeId(1),
            t("2026-12-09T21:00:20Z"),
        );
        assert_eq!(a.merge_into, None);
        assert_eq!(a.failback_of.as_deref(), Some("e2"));
    }

    #[test]
    fn second_node_reporting_the_same_failover_merges() {
        let h = [ev("e1", 1, 0, "2026-12-09T21:00:00Z")];
        let p = EventPolicy::default();
        let a = assess(&p, &h, ClusterId(0), NodeId(1), t("2026-12-09T21:01:30Z"));
        assert_eq!(a.merge_into.as_deref(), Some("e1"));
        // Outside the merge interval it is a new event.
        let a = assess(&p, &h, ClusterId(0), NodeId(1), t("2026-12-09T21:02:01Z"));
        assert_eq!(a.merge_into, None);
        // Another cluster never merges.
        let a = assess(&p, &h, ClusterId(1), NodeId(1), t("2026-12-09T21:00:10Z"));
        assert_eq!(a, Assessment::default());
    }

    #[test]
    fn failback_names_the_failover_it_undoes() {
        let h = [ev("e1", 1, 0, "2026-12-09T21:00:00Z")];
        let p = EventPolicy::default();
        let a = assess(&p, &h, ClusterId(0), NodeId(0), t("2026-12-09T21:30:00Z"));
        assert_eq!(a.failback_of.as_deref(), Some("e1"));
        let late = t("2026-12-10T21:00:01Z");
        assert_eq!(
            assess(&p, &h, ClusterId(0), NodeId(0), late).failback_of,
            None
        );
    }

    #[test]
    fn flapping_is_said_once() {
        let p = EventPolicy {
            flapping_count: 2,
            flapping_within: SignedDuration::from_mins(10),
            ..EventPolicy::default()
        };
        let mut h = vec![
            ev("e1", 1, 0, "2026-12-09T21:00:00Z"),
            ev("e2", 0, 1, "2026-12-09T21:03:00Z"),
        ];
        let a = assess(&p, &h, ClusterId(0), NodeId(1), t("2026-12-09T21:06:00Z"));
        assert!(a.flapping && a.flapping_started);
        h.push(PastEvent {
            flapping: true,
            ..ev("e3", 1, 0, "2026-12-09T21:06:00Z")
        });
        let a = assess(&p, &h, ClusterId(0), NodeId(0), t("2026-12-09T21:09:00Z"));
        assert!(a.flapping && !a.flapping_started);
        // Quiet for longer than the interval: no longer flapping.
        let a = assess(&p, &h, ClusterId(0), NodeId(1), t("2026-12-09T22:00:00Z"));
        assert!(!a.flapping);
    }
}
