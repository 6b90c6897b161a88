//! Cron schedules: AWS Systems Manager `cron(min hour dom month dow year)` and plain 5-field
//! cron, parsed and evaluated by `croner`.
//!
//! croner 4 speaks jiff 0.2 while the rest of the crate uses jiff 1; this file is the only
//! place that touches jiff 0.2, converting instants as nanoseconds and zones by IANA name.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::{SignedDuration, Timestamp};

/// A parsed cron expression evaluated in one time zone.
///
/// croner searches second by second in the worst case, far too slow for classifying
/// reports; so each UTC year's instants are computed once and kept (at most a few thousand:
/// validation keeps occurrences 2h apart). Clones share the memo.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    /// The expression as written.
    pub source: String,
    cron: Cron,
    tz: jiff02::tz::TimeZone,
    years: Arc<RwLock<BTreeMap<i16, Arc<[Timestamp]>>>>,
}

/// Why a cron expression was rejected.
#[derive(Debug, thiserror::Error)]
pub enum CronError {
    /// croner rejected the expression.
    #[error("invalid cron expression `{expr}`")]
    Syntax {
        /// The expression.
        expr: String,
        /// croner's explanation.
        #[source]
        source: croner::errors::CronError,
    },
    /// `cron(...)` must hold exactly six fields.
    #[error(
        "AWS cron expression `{expr}` must have 6 fields (minute hour day-of-month month day-of-week year), found {found}"
    )]
    AwsFieldCount {
        /// The expression.
        expr: String,
        /// How many fields it had.
        found: usize,
    },
    /// A plain cron expression must hold exactly five fields.
    #[error(
        "cron expression `{expr}` must have 5 fields (minute hour day-of-month month day-of-week) or be written `cron(...)` in the AWS form, found {found}"
    )]
    PlainFieldCount {
        /// The expression.
        expr: String,
        /// How many fields it had.
        found: usize,
    },
    /// The zone is not known to the jiff 0.2 database croner uses.
    #[error("time zone `{name}` is not available for cron evaluation")]
    TimeZone {
        /// The zone's name.
        name: String,
    },
    /// The expression never matches (a year long past, the 30th of February).
    #[error("cron expression `{expr}` never matches")]
    NeverMatches {
        /// The expression.
        expr: String,
    },
}

impl CronSchedule {
    /// Parses `cron(0 2 ? * TUE#2 *)` (AWS: 1 = Sunday, `?`, `L`, `W`, `#`, a year field) or
    /// `0 2 * * 2` (5 fields, 0 = Sunday), to be evaluated in `time_zone` (an IANA name).
    ///
    /// # Errors
    /// A [`CronError`] saying what is wrong with the expression.
    pub fn parse(expr: &str, time_zone: &str) -> Result<CronSchedule, CronError> {
        let trimmed = expr.trim();
        let aws = trimmed
            .strip_prefix("cron(")
            .and_then(|rest| rest.strip_suffix(')'));
        let (pattern, parser) = match aws {
            Some(inner) => {
                let found = inner.split_whitespace().count();
                if found != 6 {
                    return Err(CronError::AwsFieldCount {
                        expr: expr.to_owned(),
                        found,
                    });
                }
                let parser = CronParser::builder()
                    .seconds(Seconds::Required)
                    .year(Year::Required)
                    .alternative_weekdays(true)
                    .build();
                (format!("0 {inner}"), parser)
            }
            None => {
                let found = trimmed.split_whitespace().count();
                if found != 5 {
                    return Err(CronError::PlainFieldCount {
                        expr: expr.to_owned(),
                        found,
                    });
                }
                let parser = CronParser::builder()
                    .seconds(Seconds::Disallowed)
                    .year(Year::Disallowed)
                    .build();
                (trimmed.to_owned(), parser)
            }
        };
        let cron = parser.parse(&pattern).map_err(|source| CronError::Syntax {
            expr: expr.to_owned(),
            source,
        })?;
        let tz = jiff02::tz::TimeZone::get(time_zone).map_err(|_| CronError::TimeZone {
            name: time_zone.to_owned(),
        })?;
        Ok(CronSchedule {
            source: expr.to_owned(),
            cron,
            tz,
            years: Arc::default(),
        })
    }

    fn to02(&self, t: Timestamp) -> Option<jiff02::Zoned> {
        let ts = jiff02::Timestamp::from_nanosecond(t.as_nanosecond()).ok()?;
        Some(ts.to_zoned(self.tz.clone()))
    }

    /// Instants in `[from, to]` the expression names, ascending. When a fold repeats a
    /// local time, only its first (earlier) instant counts, as for every other window.
    pub fn instants_between(&self, from: Timestamp, to: Timestamp) -> Vec<Timestamp> {
        let mut out = Vec::new();
        let year = |t: Timestamp| t.to_zoned_datetime(jiff::tz::TimeZone::UTC).year();
        for y in year(from)..=year(to) {
            let all = self.year(y);
            let lo = all.partition_point(|t| *t < from);
            let hi = all.partition_point(|t| *t <= to);
            out.extend_from_slice(&all[lo..hi]);
        }
        out
    }

    /// Every instant in UTC year `y`, memoized.
    fn year(&self, y: i16) -> Arc<[Timestamp]> {
        if let Some(found) = self.years.read().ok().and_then(|m| m.get(&y).cloned()) {
            return found;
        }
        let utc = |year: i16| {
            jiff::civil::Date::new(year, 1, 1).and_then(|d| {
                jiff::tz::TimeZone::UTC.to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
            })
        };
        let (Ok(start), Ok(end)) = (utc(y), y.checked_add(1).map_or(Ok(Timestamp::MAX), utc))
        else {
            return Arc::from([]);
        };
        let computed: Arc<[Timestamp]> = self.search(start, end).into();
        if let Ok(mut m) = self.years.write() {
            m.insert(y, computed.clone());
        }
        computed
    }

    /// Asks croner for every instant in `[from, to)`.
    fn search(&self, from: Timestamp, to: Timestamp) -> Vec<Timestamp> {
        let mut out = Vec::new();
        let Some(mut cursor) = self.to02(from) else {
            return out;
        };
        let mut inclusive = true;
        let mut last_civil = None;
        while let Ok(next) = self.cron.find_next_occurrence(&cursor, inclusive) {
            inclusive = false;
            let Ok(instant) = Timestamp::from_nanosecond(next.timestamp().as_nanosecond()) else {
                break;
            };
            if instant >= to {
                break;
            }
            if last_civil != Some(next.datetime()) {
                out.push(instant);
            }
            last_civil = Some(next.datetime());
            cursor = next;
        }
        out
    }

    /// The shortest time between consecutive instants over the next 60 from 2026-01-01
    /// (local clock time, so DST does not shorten it), or `None` if it matches at most once.
    pub fn shortest_gap(&self) -> Option<SignedDuration> {
        let mut cursor = self.to02(Timestamp::constant(1_767_225_600, 0))?;
        let mut prev: Option<jiff02::civil::DateTime> = None;
        let mut best: Option<SignedDuration> = None;
        for _ in 0..60 {
            let Ok(next) = self.cron.find_next_occurrence(&cursor, false) else {
                break;
            };
            if let Some(p) = prev {
                let secs = next.datetime().duration_since(p).as_secs();
                let gap = SignedDuration::from_secs(secs);
                if gap.is_positive() {
                    best = Some(best.map_or(gap, |b| b.min(gap)));
                }
            }
            prev = Some(next.datetime());
            cursor = next;
        }
        best
    }

    /// Whether the expression matches at least once from 1970 on.
    pub fn ever_matches(&self) -> bool {
        self.to02(Timestamp::UNIX_EPOCH)
            .is_some_and(|start| self.cron.find_next_occurrence(&start, true).is_ok())
    }
}
