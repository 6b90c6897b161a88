//! The window engine, one table per form, dates checked by hand against a calendar.

use failover_core::config;
use failover_core::inventory::Inventory;
use failover_core::window::Occurrence;
use jiff::Timestamp;
use rstest::rstest;

/// An inventory with cluster `c` (nodes `a`, `b`) and the given `[[windows]]` body, owned
/// by the cluster, with no grace.
fn inventory(window: &str) -> Inventory {
    let src = format!(
        "[defaults]\ngrace = {{ before = \"0m\", after = \"0m\" }}\n\
         [[clusters]]\nname = \"c\"\nnodes = [\"a\", \"b\"]\n\
         [[windows]]\nname = \"w\"\ncluster = \"c\"\n{window}\n"
    );
    match config::parse(&src) {
        Ok(inv) => inv,
        Err(e) => panic!("{}", config::render_errors("test.toml", &src, &e)),
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse()
        .unwrap_or_else(|e| panic!("bad test instant {s}: {e}"))
}

fn occurrences(window: &str, from: &str, to: &str) -> Vec<Occurrence> {
    let inv = inventory(window);
    inv.windows[0]
        .occurrences_between(ts(from), ts(to))
        .expect("in range")
}

/// Local start dates, `YYYY-MM-DD`.
fn start_dates(window: &str, from: &str, to: &str) -> Vec<String> {
    occurrences(window, from, to)
        .iter()
        .map(|o| o.start.date().to_string())
        .collect()
}

/// `start/end` as RFC 3339 with offsets.
fn spans(window: &str, from: &str, to: &str) -> Vec<String> {
    occurrences(window, from, to)
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                o.start.timestamp().display_with_offset(o.start.offset()),
                o.end.timestamp().display_with_offset(o.end.offset())
            )
        })
        .collect()
}

#[test]
fn second_wednesday_2026_and_2027() {
    let got = start_dates(
        "week = 2\nday = \"wednesday\"",
        "2026-01-01T00:00:00Z",
        "2028-01-01T00:00:00Z",
    );
    let want = [
        "2026-01-14",
        "2026-02-11",
        "2026-03-11",
        "2026-04-08",
        "2026-05-13",
        "2026-06-10",
        "2026-07-08",
        "2026-08-12",
        "2026-09-09",
        "2026-10-14",
        "2026-11-11",
        "2026-12-09",
        "2027-01-13",
        "2027-02-10",
        "2027-03-10",
        "2027-04-14",
        "2027-05-12",
        "2027-06-09",
        "2027-07-14",
        "2027-08-11",
        "2027-09-08",
        "2027-10-13",
        "2027-11-10",
        "2027-12-08",
    ];
    assert_eq!(got, want);
}

#[rstest]
// The original's numbers: Monday = 0, so 2 = Wednesday; the same dates as the name.
#[case::original_day_number("week = 2\nday = 2")]
#[case::abbreviation("week = 2\nday = \"Wed\"")]
fn day_spellings_agree(#[case] window: &str) {
    let got = start_dates(window, "2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z");
    assert_eq!(got, ["2026-01-14", "2026-02-11", "2026-03-11"]);
}

#[test]
fn monday_weeks_keep_the_original_dates() {
    // Week 1 starts on the first Monday. April 2026 starts on a Wednesday: its first Monday
    // is the 6th, so "week 2, Wednesday" is the 15th, not the 8th (the second Wednesday).
    // June 2026 starts on a Monday: both calendars agree on the 10th.
    // December 2026 starts on a Tuesday: the 16th (the third Wednesday).
    let got = start_dates(
        "week = 2\nday = 2\ncalendar = \"monday-weeks\"",
        "2026-04-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    );
    assert_eq!(
        got,
        [
            "2026-04-15",
            "2026-05-13",
            "2026-06-10",
            "2026-07-15",
            "2026-08-12",
            "2026-09-16",
            "2026-10-14",
            "2026-11-11",
            "2026-12-16"
        ]
    );
    // Week 4, Sunday: the 4th Monday + 6 days can fall into the next month; then the
    // original never matched that month (that Sunday belongs to the next month's week 0).
    let got = start_dates(
        "week = 4\nday = \"sunday\"\ncalendar = \"monday-weeks\"",
        "2026-01-01T00:00:00Z",
        "2026-07-01T00:00:00Z",
    );
    // Mondays #4: Jan 26 (+6 = Feb 1, next month: none), Feb 23 (+6 = Mar 1: none),
    // Mar 23 → Mar 29, Apr 27 (+6 = May 3: none), May 25 → May 31, Jun 22 → Jun 28.
    assert_eq!(got, ["2026-03-29", "2026-05-31", "2026-06-28"]);
}

#[test]
fn saturday_after_patch_tuesday() {
    let window =
        "week = 2\nday = \"tuesday\"\nthen = \"saturday\"\nstart = \"06:00\"\nduration = \"3h\"";
    let got = start_dates(window, "2026-01-01T00:00:00Z", "2026-07-01T00:00:00Z");
    // Patch Tuesdays 2026: Jan 13, Feb 10, Mar 10, Apr 14, May 12, Jun 9.
    assert_eq!(
        got,
        [
            "2026-01-17",
            "2026-02-14",
            "2026-03-14",
            "2026-04-18",
            "2026-05-16",
            "2026-06-13"
        ]
    );
    // The same as "second Tuesday + 4 days".
    let offset =
        "week = 2\nday = \"tuesday\"\noffset_days = 4\nstart = \"06:00\"\nduration = \"3h\"";
    assert_eq!(
        start_dates(offset, "2026-01-01T00:00:00Z", "2026-07-01T00:00:00Z"),
        got
    );
}

#[test]
fn last_friday() {
    let got = start_dates(
        "week = -1\nday = \"fri\"",
        "2026-01-01T00:00:00Z",
        "2026-06-01T00:00:00Z",
    );
    assert_eq!(
        got,
        [
            "2026-01-30",
            "2026-02-27",
            "2026-03-27",
            "2026-04-24",
            "2026-05-29"
        ]
    );
}

#[test]
fn fifth_weekday_skips_months_without_one() {
    // Fifth Thursdays in 2026: Jan 29, Apr 30, Jul 30, Oct 29, Dec 31.
    let got = start_dates(
        "week = 5\nday = \"thu\"",
        "2026-01-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    );
    assert_eq!(
        got,
        [
            "2026-01-29",
            "2026-04-30",
            "2026-07-30",
            "2026-10-29",
            "2026-12-31"
        ]
    );
}

#[test]
fn aws_cron_second_tuesday_plus_three_days() {
    let window = "cron = \"cron(0 2 ? * TUE#2 *)\"\noffset_days = 3\nduration = \"4h\"\ntime_zone = \"America/New_York\"";
    let got = spans(window, "2026-02-01T00:00:00Z", "2026-04-01T00:00:00Z");
    // Feb 10 + 3 = Fri Feb 13 (EST); Mar 10 + 3 = Fri Mar 13, after the Mar 8 DST change (EDT).
    assert_eq!(
        got,
        [
            "2026-02-13T02:00:00-05:00 2026-02-13T06:00:00-05:00",
            "2026-03-13T02:00:00-04:00 2026-03-13T06:00:00-04:00"
        ]
    );
}

#[rstest]
// AWS counts weekdays 1 = Sunday; `6L` = the last Friday.
#[case::last_friday("cron(30 23 ? * 6L *)", &["2026-01-30", "2026-02-27", "2026-03-27"])]
// `15W`: the weekday nearest the 15th. Feb 15 2026 is a Sunday → Mon 16; Mar 15 is a Sunday → 16.
#[case::nearest_weekday("cron(0 3 15W * ? *)", &["2026-01-15", "2026-02-16", "2026-03-16"])]
// `L` in day-of-month: the last day.
#[case::last_day("cron(0 1 L * ? *)", &["2026-01-31", "2026-02-28", "2026-03-31"])]
// Plain 5-field cron, 0 = Sunday: first Sunday... every Sunday at 04:00 in January.
#[case::plain("0 4 1-7 * *", &[])]
fn aws_cron_forms(#[case] expr: &str, #[case] want: &[&str]) {
    let window = format!("cron = \"{expr}\"\nduration = \"1h\"");
    let got = start_dates(&window, "2026-01-01T00:00:00Z", "2026-04-01T00:00:00Z");
    if want.is_empty() {
        // 1st-7th of each month at 04:00: 21 occurrences in three months.
        assert_eq!(got.len(), 21, "{got:?}");
    } else {
        assert_eq!(got, want);
    }
}

#[test]
fn weekly_and_monthly() {
    let got = start_dates(
        "days = [\"tue\", \"thu\"]\nstart = \"01:00\"\nduration = \"1h\"",
        "2026-12-01T00:00:00Z",
        "2026-12-11T00:00:00Z",
    );
    assert_eq!(
        got,
        ["2026-12-01", "2026-12-03", "2026-12-08", "2026-12-10"]
    );
    // -1 = last day; 31 skips the months without a 31st.
    let got = start_dates(
        "day_of_month = -1",
        "2026-01-01T00:00:00Z",
        "2026-05-01T00:00:00Z",
    );
    assert_eq!(
        got,
        ["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"]
    );
    let got = start_dates(
        "day_of_month = 31",
        "2026-01-01T00:00:00Z",
        "2026-06-01T00:00:00Z",
    );
    assert_eq!(got, ["2026-01-31", "2026-03-31", "2026-05-31"]);
}

#[test]
fn across_midnight_and_one_off() {
    let got = spans(
        "week = -1\nday = \"friday\"\nstart = \"23:30\"\nduration = \"2h\"\ntime_zone = \"Europe/Berlin\"",
        "2026-12-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    );
    assert_eq!(got, ["2026-12-25T23:30:00+01:00 2026-12-26T01:30:00+01:00"]);
    let got = spans(
        "date = \"2026-12-05\"\nstart = \"20:00\"\nend = \"2026-12-06 08:00\"\ntime_zone = \"America/Chicago\"",
        "2026-01-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    );
    assert_eq!(got, ["2026-12-05T20:00:00-06:00 2026-12-06T08:00:00-06:00"]);
}

// --- DST ---------------------------------------------------------------------------------

#[rstest]
// America/New_York springs forward 2026-03-08 02:00 → 03:00: 02:30 does not exist and moves
// forward to 03:30 EDT. A 4h window from Saturday 22:00 EST lasts 4 real hours: 03:00 EDT.
#[case::ny_gap(
    "days = [\"sun\"]\nstart = \"02:30\"\nduration = \"2h\"\ntime_zone = \"America/New_York\"",
    "2026-03-07T00:00:00Z",
    "2026-03-09T00:00:00Z",
    "2026-03-08T03:30:00-04:00 2026-03-08T05:30:00-04:00"
)]
#[case::ny_real_hours(
    "days = [\"sat\"]\nstart = \"22:00\"\nduration = \"4h\"\ntime_zone = \"America/New_York\"",
    "2026-03-07T00:00:00Z",
    "2026-03-09T00:00:00Z",
    "2026-03-07T22:00:00-05:00 2026-03-08T03:00:00-04:00"
)]
// Falls back 2026-11-01 02:00 → 01:00: 01:30 happens twice; the window takes the first.
#[case::ny_fold(
    "days = [\"sun\"]\nstart = \"01:30\"\nduration = \"1h\"\ntime_zone = \"America/New_York\"",
    "2026-10-31T12:00:00Z",
    "2026-11-02T00:00:00Z",
    "2026-11-01T01:30:00-04:00 2026-11-01T01:30:00-05:00"
)]
// Europe/Berlin: 2026-03-29 02:00 → 03:00 and 2026-10-25 03:00 → 02:00.
#[case::berlin_gap(
    "days = [\"sun\"]\nstart = \"02:30\"\nduration = \"1h\"\ntime_zone = \"Europe/Berlin\"",
    "2026-03-28T00:00:00Z",
    "2026-03-30T00:00:00Z",
    "2026-03-29T03:30:00+02:00 2026-03-29T04:30:00+02:00"
)]
#[case::berlin_fold(
    "days = [\"sun\"]\nstart = \"02:30\"\nduration = \"1h\"\ntime_zone = \"Europe/Berlin\"",
    "2026-10-24T00:00:00Z",
    "2026-10-26T00:00:00Z",
    "2026-10-25T02:30:00+02:00 2026-10-25T02:30:00+01:00"
)]
// Whole days last from local midnight to local midnight: 23 hours in spring, 25 in autumn.
#[case::berlin_short_day(
    "date = \"2026-03-29\"\ntime_zone = \"Europe/Berlin\"",
    "2026-03-01T00:00:00Z",
    "2026-04-01T00:00:00Z",
    "2026-03-29T00:00:00+01:00 2026-03-30T00:00:00+02:00"
)]
#[case::berlin_long_day(
    "date = \"2026-10-25\"\ntime_zone = \"Europe/Berlin\"",
    "2026-10-01T00:00:00Z",
    "2026-11-01T00:00:00Z",
    "2026-10-25T00:00:00+02:00 2026-10-26T00:00:00+01:00"
)]
// Australia/Lord_Howe shifts by 30 minutes: 2026-10-04 02:00 → 02:30 (+10:30 → +11:00), so
// 02:15 moves forward to 02:45; 2026-04-05 02:00 → 01:30, so 01:45 happens twice (first).
#[case::lord_howe_gap(
    "date = \"2026-10-04\"\nstart = \"02:15\"\nduration = \"1h\"\ntime_zone = \"Australia/Lord_Howe\"",
    "2026-10-01T00:00:00Z",
    "2026-10-10T00:00:00Z",
    "2026-10-04T02:45:00+11:00 2026-10-04T03:45:00+11:00"
)]
#[case::lord_howe_fold(
    "date = \"2026-04-05\"\nstart = \"01:45\"\nduration = \"1h\"\ntime_zone = \"Australia/Lord_Howe\"",
    "2026-04-01T00:00:00Z",
    "2026-04-10T00:00:00Z",
    "2026-04-05T01:45:00+11:00 2026-04-05T02:15:00+10:30"
)]
fn dst(#[case] window: &str, #[case] from: &str, #[case] to: &str, #[case] want: &str) {
    assert_eq!(spans(window, from, to), [want]);
}

#[test]
fn cron_in_a_fold_takes_the_earlier_instant_once() {
    // A daily 01:30 cron in New York meets 01:30 twice on 2026-11-01: one occurrence only.
    let got = spans(
        "cron = \"30 1 * * *\"\nduration = \"30m\"\ntime_zone = \"America/New_York\"",
        "2026-11-01T04:00:00Z",
        "2026-11-01T12:00:00Z",
    );
    // 30 real minutes after 01:30 EDT the clocks show 01:00 EST.
    assert_eq!(got, ["2026-11-01T01:30:00-04:00 2026-11-01T01:00:00-05:00"]);
}

// --- Grace and containment -------------------------------------------------------------------

#[rstest]
// Wed 2026-12-09 22:00–02:00 Europe/Berlin (21:00Z–01:00Z), grace 15m before, 1h after.
#[case::before_grace("2026-12-09T20:44:59Z", false)]
#[case::in_before_grace("2026-12-09T20:45:00Z", true)]
#[case::inside("2026-12-09T23:00:00Z", true)]
#[case::in_after_grace("2026-12-10T01:59:59Z", true)]
#[case::after_grace("2026-12-10T02:00:00Z", false)]
fn grace_widens_the_window(#[case] at: &str, #[case] inside: bool) {
    let inv = inventory(
        "week = 2\nday = \"wed\"\nstart = \"22:00\"\nduration = \"4h\"\ntime_zone = \"Europe/Berlin\"\ngrace = { before = \"15m\", after = \"1h\" }",
    );
    let found = inv.windows[0]
        .occurrence_containing(ts(at))
        .expect("in range");
    assert_eq!(found.is_some(), inside, "{at}");
}

mod properties {
    use failover_core::window::Occurrence;
    use jiff::{SignedDuration, Timestamp};
    use proptest::prelude::*;

    use super::inventory;

    const ZONES: [&str; 5] = [
        "UTC",
        "America/New_York",
        "Europe/Berlin",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
    ];
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

    /// A random window body of any recurring form whose length fits its period.
    fn window() -> impl Strategy<Value = String> {
        let zone = prop::sample::select(&ZONES[..]);
        let day = prop::sample::select(&DAYS[..]);
        let time = (0u8..24, prop::sample::select(&[0u8, 15, 30, 45][..]));
        let form = prop_oneof![
            (
                prop::sample::select(&[1i8, 2, 3, 4, 5, -1][..]),
                day.clone(),
                1u32..(20 * 24)
            )
                .prop_map(|(w, d, h)| format!("week = {w}\nday = \"{d}\"\nduration = \"{h}h\"")),
            (day.clone(), 1u32..(7 * 24 - 2))
                .prop_map(|(d, h)| format!("days = [\"{d}\"]\nduration = \"{h}h\"")),
            (1i8..=28, 1u32..(27 * 24))
                .prop_map(|(d, h)| format!("day_of_month = {d}\nduration = \"{h}h\"")),
            (day.clone(), 1i8..=4, 0i8..=10, 1u32..(15 * 24)).prop_map(|(d, w, o, h)| format!(
                "week = {w}\nday = \"{d}\"\noffset_days = {o}\nduration = \"{h}h\""
            )),
        ];
        let timed = (form, time).prop_map(|(f, (h, m))| format!("{f}\nstart = \"{h:02}:{m:02}\""));
        // Cron holds its own time of day.
        let cron = (0u8..24, 1u32..(23 * 60))
            .prop_map(|(h, m)| format!("cron = \"0 {h} * * 1,4\"\nduration = \"{m}m\""));
        (prop_oneof![4 => timed, 1 => cron], zone)
            .prop_map(|(f, z)| format!("{f}\ntime_zone = \"{z}\""))
    }

    fn instant() -> impl Strategy<Value = Timestamp> {
        // 2000-01-01 .. 2040-01-01
        (946_684_800i64..2_208_988_800).prop_map(|s| Timestamp::from_second(s).expect("in range"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn occurrences_are_sorted_and_disjoint(w in window(), from in instant(), days in 1i64..400) {
            let inv = inventory(&w);
            let to = from + SignedDuration::from_hours(days * 24);
            let occ = inv.windows[0].occurrences_between(from, to).expect("in range");
            for o in &occ {
                prop_assert!(o.start < o.end, "{w}: empty occurrence {o:?}");
                prop_assert!(o.end.timestamp() > from && o.start.timestamp() < to, "{w}: outside the range");
            }
            for pair in occ.windows(2) {
                prop_assert!(pair[0].end.timestamp() <= pair[1].start.timestamp(), "{w}: overlap {pair:?}");
            }
        }

        #[test]
        fn containing_agrees_with_listing(w in window(), at in instant(), before in 0i64..120, after in 0i64..240) {
            let w = format!("{w}\ngrace = {{ before = \"{before}m\", after = \"{after}m\" }}");
            let inv = inventory(&w);
            let window = &inv.windows[0];
            let around = |d: i64| at + SignedDuration::from_hours(d);
            let listed: Vec<Occurrence> = window.occurrences_between(around(-24 * 40), around(24 * 40)).expect("in range");
            let grace = window.grace;
            let inside = listed.iter().any(|o| {
                o.start.timestamp() - grace.before <= at && at < o.end.timestamp() + grace.after
            });
            let found = window.occurrence_containing(at).expect("in range");
            prop_assert_eq!(found.is_some(), inside, "{} at {}", w, at);
            if let Some(o) = found {
                prop_assert!(listed.contains(&o), "{w}: {o:?} is not a listed occurrence");
            }
        }
    }
}
