//! How the pages write times: UTC and local with the zone's name, and ages.

use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};

/// `2026-12-09 21:14 UTC`.
pub fn utc(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

/// `2026-12-09 22:14 CET (Europe/Berlin)`.
pub fn local(t: Timestamp, tz: &TimeZone) -> String {
    let z = t.to_zoned_datetime(tz.clone());
    format!(
        "{} ({})",
        z.strftime("%Y-%m-%d %H:%M %Z"),
        tz.iana_name().unwrap_or("UTC")
    )
}

/// `22:14` in `tz`, with `+1d` when it falls on a later day than `day` there.
pub fn clock_on(z: &ZonedDateTime, day: jiff::civil::Date) -> String {
    let later = (z.date() - day).get_days();
    match later {
        0 => z.strftime("%H:%M").to_string(),
        n if n > 0 => format!("{} (+{n}d)", z.strftime("%H:%M")),
        n => format!("{} ({n}d)", z.strftime("%H:%M")),
    }
}

/// How long ago `t` was: `just now`, `5 min ago`, `3 h 12 min ago`, `4 d 2 h ago` (and `in
/// ...` for a time ahead).
pub fn age(now: Timestamp, t: Timestamp) -> String {
    let secs = now.duration_since(t).as_secs();
    let (ahead, secs) = (secs < 0, secs.unsigned_abs());
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    let span = if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min")
    } else {
        return "just now".to_owned();
    };
    if ahead {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// A zone by IANA name, or `None` when the database has none of that name.
pub fn zone(name: &str) -> Option<TimeZone> {
    if name.len() > 64 || name.is_empty() {
        return None;
    }
    jiff::tz::db().get(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().expect("instant")
    }

    #[test]
    fn ages_read_like_a_person_says_them() {
        let now = t("2026-12-09T21:14:00Z");
        assert_eq!(age(now, t("2026-12-09T21:13:40Z")), "just now");
        assert_eq!(age(now, t("2026-12-09T21:09:00Z")), "5 min ago");
        assert_eq!(age(now, t("2026-12-09T18:02:00Z")), "3 h 12 min ago");
        assert_eq!(age(now, t("2026-12-05T19:00:00Z")), "4 d 2 h ago");
        assert_eq!(age(now, t("2026-12-09T22:14:00Z")), "in 1 h 0 min");
        assert_eq!(age(Timestamp::MAX, Timestamp::MIN), "7304481 d 20 h ago");
    }

    #[test]
    fn local_times_name_their_zone_across_a_dst_change() {
        let berlin = zone("Europe/Berlin").expect("zone");
        assert_eq!(
            local(t("2026-03-29T00:59:00Z"), &berlin),
            "2026-03-29 01:59 CET (Europe/Berlin)"
        );
        assert_eq!(
            local(t("2026-03-29T01:00:00Z"), &berlin),
            "2026-03-29 03:00 CEST (Europe/Berlin)"
        );
        assert_eq!(zone("Europe/Pariss"), None);
        assert_eq!(zone(&"A".repeat(1000)), None);
        assert_eq!(zone(""), None);
    }
}
