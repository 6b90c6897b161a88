//! iCalendar (RFC 5545) output: one `VEVENT` per window occurrence.
//!
//! Times are written in UTC (`DTSTART:20261209T210000Z`), which every calendar accepts
//! without a `VTIMEZONE`; the window's own zone and local times are in the description.
//! Lines end in CRLF and are folded at 75 octets; text values are escaped.

use std::fmt::Write as _;

use jiff::Timestamp;

use crate::inventory::Inventory;
use crate::listing::Listed;

/// A calendar of `rows`. `now` is the `DTSTAMP` of every event.
pub fn calendar(inventory: &Inventory, rows: &[Listed], now: Timestamp) -> String {
    let mut out = String::new();
    line(&mut out, "BEGIN:VCALENDAR");
    line(&mut out, "VERSION:2.0");
    line(
        &mut out,
        "PRODID:-//failover-notify//maintenance windows//EN",
    );
    line(&mut out, "CALSCALE:GREGORIAN");
    line(&mut out, "X-WR-CALNAME:Maintenance windows");
    let stamp = utc(now);
    for row in rows {
        let w = inventory.window(row.window);
        let cluster = &inventory.cluster(row.cluster).name;
        let owner = inventory.owner_name(w.owner);
        let start = &row.occurrence.start;
        let end = &row.occurrence.end;
        let tz = w.time_zone.iana_name().unwrap_or("UTC");
        line(&mut out, "BEGIN:VEVENT");
        line(
            &mut out,
            &format!(
                "UID:{}-{}-{}@failover-notify",
                slug(cluster),
                slug(&w.name),
                utc(start.timestamp())
            ),
        );
        line(&mut out, &format!("DTSTAMP:{stamp}"));
        line(&mut out, &format!("DTSTART:{}", utc(start.timestamp())));
        line(&mut out, &format!("DTEND:{}", utc(end.timestamp())));
        line(
            &mut out,
            &format!(
                "SUMMARY:{}",
                escape(&format!("Maintenance {cluster}: {} ({owner})", w.name))
            ),
        );
        let desc = format!(
            "Window \"{}\" of {owner}, cluster {cluster}.\nLocal: {} to {} ({tz}).\nFailovers of {cluster} in this window are classified as planned.",
            w.name,
            start.strftime("%Y-%m-%d %H:%M %Z"),
            end.strftime("%Y-%m-%d %H:%M %Z"),
        );
        line(&mut out, &format!("DESCRIPTION:{}", escape(&desc)));
        line(&mut out, "CATEGORIES:MAINTENANCE");
        line(&mut out, "TRANSP:TRANSPARENT");
        line(&mut out, "END:VEVENT");
    }
    line(&mut out, "END:VCALENDAR");
    out
}

fn utc(t: Timestamp) -> String {
    t.strftime("%Y%m%dT%H%M%SZ").to_string()
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// RFC 5545 §3.3.11 TEXT escaping.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends a content line folded at 75 octets (never inside a UTF-8 sequence), with CRLF.
fn line(out: &mut String, content: &str) {
    let mut width = 0;
    for c in content.chars() {
        let len = c.len_utf8();
        if width + len > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += len;
    }
    let _ = write!(out, "\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_long_lines_at_75_octets_without_splitting_characters() {
        let mut out = String::new();
        let text = format!("DESCRIPTION:{}", "é".repeat(60));
        line(&mut out, &text);
        for l in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(l.len() <= 75, "{} octets: {l}", l.len());
        }
        assert_eq!(out.replace("\r\n ", ""), format!("{text}\r\n"));
    }

    #[test]
    fn escapes_text() {
        assert_eq!(escape("a,b;c\\d\ne"), "a\\,b\\;c\\\\d\\ne");
    }
}
