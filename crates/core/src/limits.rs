//! The instants and durations accepted from outside (HTTP parameters, report bodies, CLI
//! flags), checked once so that no time arithmetic downstream can leave jiff's range.
//!
//! jiff supports years -9999..=9999; window arithmetic widens instants by days and
//! durations, so an instant near either end would fail (or, with unchecked operators,
//! panic) deep inside a calculation. Values outside [`EARLIEST`]..[`LATEST`] are refused at
//! the door, with the name of the parameter.

use jiff::{SignedDuration, Timestamp};

/// The earliest instant accepted anywhere: 1900-01-01T00:00:00Z.
pub const EARLIEST: Timestamp = Timestamp::constant(-2_208_988_800, 0);
/// The first instant no longer accepted: 2500-01-01T00:00:00Z.
pub const LATEST: Timestamp = Timestamp::constant(16_725_225_600, 0);
/// The longest duration accepted from outside (a listing range, an ad-hoc window before
/// its own cap applies): 400 days.
pub const MAX_SPAN: SignedDuration = SignedDuration::from_hours(400 * 24);

/// A value outside the accepted range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// An instant before 1900 or from 2500 on.
    #[error("`{field}` `{value}` is outside the supported years 1900 to 2499")]
    Instant {
        /// The parameter or field.
        field: String,
        /// The instant given.
        value: Timestamp,
    },
    /// A duration that is zero, negative, or longer than allowed.
    #[error("`{field}` must be longer than zero and at most {max:#}, not {value:#}")]
    Duration {
        /// The parameter or field.
        field: String,
        /// The duration given.
        value: SignedDuration,
        /// The largest accepted.
        max: SignedDuration,
    },
}

/// `t` when it lies in [`EARLIEST`]..[`LATEST`].
///
/// # Errors
/// [`LimitError::Instant`] naming `field` otherwise.
pub fn instant(field: &str, t: Timestamp) -> Result<Timestamp, LimitError> {
    if (EARLIEST..LATEST).contains(&t) {
        Ok(t)
    } else {
        Err(LimitError::Instant {
            field: field.to_owned(),
            value: t,
        })
    }
}

/// `d` when it is positive and at most `max`.
///
/// # Errors
/// [`LimitError::Duration`] naming `field` otherwise.
pub fn duration(
    field: &str,
    d: SignedDuration,
    max: SignedDuration,
) -> Result<SignedDuration, LimitError> {
    if d.is_positive() && d <= max {
        Ok(d)
    } else {
        Err(LimitError::Duration {
            field: field.to_owned(),
            value: d,
            max,
        })
    }
}

/// Parses a duration written like `2h`, `90m`, `1d 2h` or ISO 8601 `PT2H` (days are 24
/// hours), or `None` when it is not one or overflows.
pub fn parse_duration(s: &str) -> Option<SignedDuration> {
    if let Ok(d) = s.parse::<SignedDuration>() {
        return Some(d);
    }
    let span: jiff::Span = s.parse().ok()?;
    span.to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_are_refused_with_the_field() {
        assert!(instant("from", EARLIEST).is_ok());
        assert!(instant("from", LATEST).is_err());
        insta::assert_snapshot!(instant("from", Timestamp::MIN).expect_err("refused"), @"`from` `-009999-01-02T01:59:59Z` is outside the supported years 1900 to 2499");
        insta::assert_snapshot!(instant("to", Timestamp::MAX).expect_err("refused"), @"`to` `9999-12-30T22:00:00.999999999Z` is outside the supported years 1900 to 2499");
        let week = SignedDuration::from_hours(7 * 24);
        insta::assert_snapshot!(duration("duration", SignedDuration::from_hours(175_307_616), week).expect_err("refused"), @"`duration` must be longer than zero and at most 168h, not 175307616h");
        insta::assert_snapshot!(duration("duration", SignedDuration::ZERO, week).expect_err("refused"), @"`duration` must be longer than zero and at most 168h, not 0s");
    }

    #[test]
    fn durations_parse_in_both_spellings() {
        assert_eq!(parse_duration("2h"), Some(SignedDuration::from_hours(2)));
        assert_eq!(
            parse_duration("1d 2h"),
            Some(SignedDuration::from_hours(26))
        );
        assert_eq!(parse_duration("PT90M"), Some(SignedDuration::from_mins(90)));
        assert_eq!(
            parse_duration("175307616h"),
            SignedDuration::from_hours(175_307_616).into()
        );
        assert_eq!(parse_duration("99999999999999999999h"), None);
        assert_eq!(parse_duration(""), None);
    }
}
