//! Instants given on the command line.

use anyhow::bail;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ZonedDateTime};

/// Parses `2026-12-09T22:15:00Z`, `2026-12-09T22:15:00+01:00`,
/// `2026-12-09T22:15[Europe/Berlin]`, or a date `2026-12-09` (midnight UTC).
///
/// # Errors
/// When the text is none of these, or outside the supported years (1900 to 2499); a local
/// time without an offset or zone is refused rather than guessed.
pub fn parse(flag: &str, s: &str) -> anyhow::Result<Timestamp> {
    Ok(failover_core::limits::instant(flag, instant(flag, s)?)?)
}

/// A duration flag (`2h`, `90m`, `1d 2h`, `PT2H`).
///
/// # Errors
/// When the text is not a duration, or it is not positive.
pub fn duration(flag: &str, s: &str) -> anyhow::Result<SignedDuration> {
    match failover_core::limits::parse_duration(s) {
        Some(d) if d.is_positive() => Ok(d),
        Some(_) => bail!("{flag} `{s}` must be longer than zero"),
        None => bail!("{flag} `{s}` is not a duration such as `2h`, `90m` or `1d 2h`"),
    }
}

fn instant(flag: &str, s: &str) -> anyhow::Result<Timestamp> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    if let Ok(z) = s.parse::<ZonedDateTime>() {
        return Ok(z.timestamp());
    }
    if let Ok(d) = s.parse::<Date>()
        && let Ok(t) = TimeZone::UTC.to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
    {
        return Ok(t);
    }
    bail!(
        "{flag} `{s}` is not an instant: write RFC 3339 with an offset (`2026-12-09T22:15:00+01:00`, \
         `...Z`), a zone annotation (`2026-12-09T22:15[Europe/Berlin]`) or a date (`2026-12-09`, midnight UTC)"
    )
}

/// The current instant: the one place the CLI reads the clock.
#[allow(clippy::disallowed_methods)]
pub fn now() -> Timestamp {
    // Whole seconds: sub-second digits only clutter output.
    Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH)
}
