//! The window engine against an independent, brute-force reference, around every DST change
//! of 2026 (and Pacific/Apia's skipped day, 2011-12-30) in zones with odd rules: every form
//! (weekly, n-th weekday with positive and negative offsets, day of month from the start and
//! the end, AWS and 5-field cron with offsets, whole days) at local times in and around the
//! gaps and folds.
//!
//! The reference walks every local date, decides by the calendar alone whether the schedule
//! starts that day, and turns the local start into an instant with the one documented rule
//! (a time in a gap moves forward by the gap, a time in a fold takes the earlier instant).
//! Two starts that land on the same instant are one occurrence. The engine must list the
//! same occurrences and find the same one containing each instant near their edges.

use failover_core::config;
use failover_core::cron::CronSchedule;
use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};

const ZONES: [&str; 9] = [
    "Europe/Berlin",
    "America/New_York",
    "America/St_Johns",
    "America/Santiago",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Tehran",
    "America/Havana",
    "Pacific/Apia",
];

/// Local start times: midnight (Santiago's and Havana's gaps are at midnight), in and
/// around the usual 02:00 gap, and Lord Howe's half hour.
const TIMES: [(i8, i8); 6] = [(0, 0), (0, 30), (1, 30), (2, 0), (2, 50), (3, 30)];

/// What starts when, as the reference understands it.
#[derive(Debug, Clone)]
enum Form {
    Weekly(Weekday),
    Nth { week: i8, day: Weekday, offset: i64 },
    MonthDay(i8),
    Cron { expr: String, offset: i64 },
}

#[derive(Debug, Clone)]
struct Spec {
    form: Form,
    /// `None`: a whole day.
    start: Option<(i8, i8)>,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day_name(d: Weekday) -> &'static str {
    DAY_NAMES[d.to_monday_zero_offset() as usize]
}

impl Spec {
    fn toml(&self, i: usize) -> String {
        let mut s = format!("[[windows]]\nname = \"w{i}\"\ncluster = \"c\"\n");
        match &self.form {
            Form::Weekly(d) => s += &format!("days = [\"{}\"]\n", day_name(*d)),
            Form::Nth { week, day, offset } => {
                s += &format!("week = {week}\nday = \"{}\"\n", day_name(*day));
                if *offset != 0 {
                    s += &format!("offset_days = {offset}\n");
                }
            }
            Form::MonthDay(d) => s += &format!("day_of_month = {d}\n"),
            Form::Cron { expr, offset } => {
                s += &format!("cron = \"{expr}\"\nduration = \"1h\"\n");
                if *offset != 0 {
                    s += &format!("offset_days = {offset}\n");
                }
                return s;
            }
        }
        if let Some((h, m)) = self.start {
            s += &format!("start = \"{h:02}:{m:02}\"\nduration = \"1h\"\n");
        }
        s
    }

    /// The local civil start on `date`, if the schedule starts that day.
    fn start_on(&self, date: Date, cron: Option<&CronSchedule>) -> Option<DateTime> {
        match &self.form {
            Form::Weekly(d) => (date.weekday() == *d).then(|| self.civil(date)),
            Form::Nth { week, day, offset } => {
                let anchor = date.checked_sub(offset.days()).ok()?;
                let nth = if *week > 0 {
                    (anchor.day() - 1) / 7 + 1 == *week
                } else {
                    anchor.day() + 7 > anchor.days_in_month()
                };
                (anchor.weekday() == *day && nth).then(|| self.civil(date))
            }
            Form::MonthDay(d) => {
                let want = if *d > 0 {
                    *d
                } else {
                    date.days_in_month() + d + 1
                };
                (date.day() == want).then(|| self.civil(date))
            }
            Form::Cron { offset, .. } => {
                // The cron names a civil time on the anchor day; the start is days later.
                let anchor = date.checked_sub(offset.days()).ok()?;
                let cron = cron.expect("cron");
                TIMES
                    .iter()
                    .map(|&(h, m)| anchor.to_datetime(Time::new(h, m, 0, 0).expect("time")))
                    .find(|d| cron.matches(*d))
                    .map(|d| d.checked_add(offset.days()).expect("in range"))
            }
        }
    }

    fn civil(&self, date: Date) -> DateTime {
        let (h, m) = self.start.unwrap_or((0, 0));
        date.to_datetime(Time::new(h, m, 0, 0).expect("time"))
    }
}

/// The reference occurrences whose local start date lies in `[d0, d1]`, as instants.
fn reference(spec: &Spec, tz: &TimeZone, d0: Date, d1: Date) -> Vec<(Timestamp, Timestamp)> {
    let cron = match &spec.form {
        Form::Cron { expr, .. } => Some(CronSchedule::parse(expr).expect("valid cron")),
        _ => None,
    };
    let mut out: Vec<(Timestamp, Timestamp)> = Vec::new();
    let mut d = d0;
    while d <= d1 {
        if let Some(civil) = spec.start_on(d, cron.as_ref()) {
            let start = tz
                .to_ambiguous_zoned_datetime(civil)
                .compatible()
                .expect("in range");
            let end = match (&spec.form, spec.start) {
                (Form::Cron { .. }, _) | (_, Some(_)) => {
                    start.timestamp() + SignedDuration::from_hours(1)
                }
                (_, None) => tz
                    .to_ambiguous_zoned_datetime(civil.checked_add(1.days()).expect("in range"))
                    .compatible()
                    .expect("in range")
                    .timestamp(),
            };
            if out.last().is_none_or(|l| start.timestamp() > l.0) {
                out.push((start.timestamp(), end));
            }
        }
        d = d.tomorrow().expect("in range");
    }
    out.sort();
    out
}

fn specs(on: Date) -> Vec<Spec> {
    let wd = on.weekday();
    let week = (on.day() - 1) / 7 + 1;
    let mut out = Vec::new();
    let starts: Vec<Option<(i8, i8)>> = TIMES.iter().map(|t| Some(*t)).chain([None]).collect();
    for &start in &starts {
        out.push(Spec {
            form: Form::Weekly(wd),
            start,
        });
        out.push(Spec {
            form: Form::Nth {
                week,
                day: wd,
                offset: 0,
            },
            start,
        });
        out.push(Spec {
            form: Form::MonthDay(on.day()),
            start,
        });
        out.push(Spec {
            form: Form::MonthDay(on.day() - on.days_in_month() - 1),
            start,
        });
        // The anchor three days later, started three days earlier: the change's day.
        let anchor = on.checked_add(3.days()).expect("in range");
        let aweek = if anchor.day() + 7 > anchor.days_in_month() {
            -1
        } else {
            (anchor.day() - 1) / 7 + 1
        };
        out.push(Spec {
            form: Form::Nth {
                week: aweek,
                day: anchor.weekday(),
                offset: -3,
            },
            start,
        });
        let anchor = on.checked_sub(4.days()).expect("in range");
        out.push(Spec {
            form: Form::Nth {
                week: (anchor.day() - 1) / 7 + 1,
                day: anchor.weekday(),
                offset: 4,
            },
            start,
        });
    }
    for &(h, m) in &TIMES {
        let aws_month = [
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ][on.month() as usize - 1];
        out.push(Spec {
            form: Form::Cron {
                expr: format!("cron({m} {h} {} {aws_month} ? *)", on.day()),
                offset: 0,
            },
            start: None,
        });
        out.push(Spec {
            form: Form::Cron {
                expr: format!("{m} {h} * * *"),
                offset: 0,
            },
            start: None,
        });
        let anchor = on.checked_add(3.days()).expect("in range");
        out.push(Spec {
            form: Form::Cron {
                expr: format!("{m} {h} {} * *", anchor.day()),
                offset: -3,
            },
            start: None,
        });
        let anchor = on.checked_sub(2.days()).expect("in range");
        out.push(Spec {
            form: Form::Cron {
                expr: format!("cron({m} {h} {}W * ? *)", anchor.day()),
                offset: 2,
            },
            start: None,
        });
    }
    out
}

/// The local dates of the zone's offset changes in `year`.
fn changes(tz: &TimeZone, year: i16) -> Vec<Date> {
    let from = Date::new(year, 1, 1)
        .expect("date")
        .to_zoned_datetime(tz.clone())
        .expect("zoned")
        .timestamp();
    let to = Date::new(year + 1, 1, 1)
        .expect("date")
        .to_zoned_datetime(tz.clone())
        .expect("zoned")
        .timestamp();
    tz.following(from)
        .take_while(|t| t.timestamp() < to)
        .map(|t| tz.to_datetime(t.timestamp()).date())
        .collect()
}

#[test]
fn every_form_agrees_with_the_reference_around_every_offset_change() {
    let mut checked = 0usize;
    for zone in ZONES {
        let tz = TimeZone::get(zone).expect("zone");
        let years: &[i16] = if zone == "Pacific/Apia" {
            &[2011, 2026]
        } else {
            &[2026]
        };
        for &year in years {
            for on in changes(&tz, year) {
                let specs = specs(on);
                let src = format!(
                    "[defaults]\ntime_zone = \"{zone}\"\ngrace = {{ before = \"5m\", after = \"30m\" }}\n\
                     [[clusters]]\nname = \"c\"\nnodes = [\"a\", \"b\"]\n{}",
                    specs
                        .iter()
                        .enumerate()
                        .map(|(i, s)| s.toml(i))
                        .collect::<String>()
                );
                let inv = config::parse(&src)
                    .unwrap_or_else(|e| panic!("{}", config::render_errors("t.toml", &src, &e)));
                let from = on
                    .checked_sub(4.days())
                    .expect("date")
                    .to_zoned_datetime(tz.clone())
                    .expect("zoned")
                    .timestamp();
                let to = on
                    .checked_add(4.days())
                    .expect("date")
                    .to_zoned_datetime(tz.clone())
                    .expect("zoned")
                    .timestamp();
                for (spec, w) in specs.iter().zip(&inv.windows) {
                    let d0 = on.checked_sub(12.days()).expect("date");
                    let d1 = on.checked_add(12.days()).expect("date");
                    let all = reference(spec, &tz, d0, d1);
                    let want: Vec<_> = all
                        .iter()
                        .copied()
                        .filter(|(s, e)| *e > from && *s < to)
                        .collect();
                    let got: Vec<_> = w
                        .occurrences_between(from, to)
                        .expect("in range")
                        .iter()
                        .map(|o| (o.start.timestamp(), o.end.timestamp()))
                        .collect();
                    assert_eq!(got, want, "{zone} around {on}: {spec:?}");
                    // Containment near every edge, with grace.
                    let (before, after) =
                        (SignedDuration::from_mins(5), SignedDuration::from_mins(30));
                    for &(s, e) in &want {
                        for t in [
                            s - before - SignedDuration::from_nanos(1),
                            s - before,
                            s,
                            e - SignedDuration::from_nanos(1),
                            e,
                            e + after - SignedDuration::from_nanos(1),
                            e + after,
                        ] {
                            let expect = all
                                .iter()
                                .rev()
                                .find(|(s, e)| *s - before <= t && t < *e + after)
                                .map(|o| o.0);
                            let found = w
                                .occurrence_containing(t)
                                .expect("in range")
                                .map(|o| o.start.timestamp());
                            assert_eq!(found, expect, "{zone} at {t}: {spec:?}");
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 5_000, "only {checked} instants checked");
}

#[test]
fn the_cron_case_from_the_issue_starts_at_03_50() {
    // cron(50 2 29 MAR,6,SEP ? *) in Europe/Berlin: 2026-03-29 02:50 does not exist.
    let src = "[defaults]\ntime_zone = \"Europe/Berlin\"\n[[clusters]]\nname = \"c\"\nnodes = [\"a\", \"b\"]\n\
               [[windows]]\nname = \"w\"\ncluster = \"c\"\ncron = \"cron(50 2 29 MAR,6,SEP ? *)\"\nduration = \"1h\"\n";
    let inv = config::parse(src).expect("valid");
    let got: Vec<String> = inv.windows[0]
        .occurrences_between(
            "2026-01-01T00:00:00Z".parse().expect("t"),
            "2027-01-01T00:00:00Z".parse().expect("t"),
        )
        .expect("in range")
        .iter()
        .map(|o| o.start.to_string())
        .collect();
    assert_eq!(
        got,
        [
            "2026-03-29T03:50:00+02:00[Europe/Berlin]",
            "2026-06-29T02:50:00+02:00[Europe/Berlin]",
            "2026-09-29T02:50:00+02:00[Europe/Berlin]",
        ]
    );
}
