//! Cron schedules: AWS Systems Manager `cron(min hour dom month dow year)` and plain 5-field
//! cron, parsed and evaluated by `croner`.
//!
//! A cron expression names **local civil times** ("02:50 on the 29th"), and the window turns
//! each into an instant with the rule every other window form uses: a time in a DST gap
//! moves forward by the gap, a time in a fold takes the earlier instant. So croner is asked
//! in UTC, where every civil time exists exactly once, and never skips or shifts a time the
//! zone lacks (croner in the zone itself jumps to the next whole hour in a gap, and can miss
//! an occurrence there).
//!
//! croner 4 speaks jiff 0.2 while the rest of the crate uses jiff 1; this file is the only
//! place that touches jiff 0.2, converting civil times field by field.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::SignedDuration;
use jiff::civil::DateTime;

/// A parsed cron expression, naming local civil times.
///
/// croner searches second by second in the worst case, far too slow for classifying
/// reports; so each year's civil times are computed once and kept (at most a few thousand:
/// validation keeps occurrences 2h apart). Clones share the memo.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    /// The expression as written.
    pub source: String,
    cron: Cron,
    years: Arc<RwLock<BTreeMap<i16, Arc<[DateTime]>>>>,
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
    /// The expression never matches (a year long past, the 30th of February).
    #[error("cron expression `{expr}` never matches")]
    NeverMatches {
        /// The expression.
        expr: String,
    },
}

impl CronSchedule {
    /// Parses `cron(0 2 ? * TUE#2 *)` (AWS: 1 = Sunday, `?`, `L`, `W`, `#`, a year field) or
    /// `0 2 * * 2` (5 fields, 0 = Sunday).
    ///
    /// # Errors
    /// A [`CronError`] saying what is wrong with the expression.
    pub fn parse(expr: &str) -> Result<CronSchedule, CronError> {
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
        Ok(CronSchedule {
            source: expr.to_owned(),
            cron,
            years: Arc::default(),
        })
    }

    /// Civil times in `[from, to]` the expression names, ascending.
    pub fn civil_between(&self, from: DateTime, to: DateTime) -> Vec<DateTime> {
        let mut out = Vec::new();
        for y in from.year()..=to.year() {
            let all = self.year(y);
            let lo = all.partition_point(|t| *t < from);
            let hi = all.partition_point(|t| *t <= to);
            out.extend_from_slice(&all[lo..hi]);
        }
        out
    }

    /// Every civil time in year `y`, memoized.
    fn year(&self, y: i16) -> Arc<[DateTime]> {
        if let Some(found) = self.years.read().ok().and_then(|m| m.get(&y).cloned()) {
            return found;
        }
        let computed: Arc<[DateTime]> = self.search(y).into();
        if let Ok(mut m) = self.years.write() {
            m.insert(y, computed.clone());
        }
        computed
    }

    /// Asks croner for every civil time of year `y` (UTC stands in for civil time).
    fn search(&self, y: i16) -> Vec<DateTime> {
        let mut out = Vec::new();
        let Ok(start) = jiff02::civil::date(y, 1, 1)
            .at(0, 0, 0, 0)
            .to_zoned(jiff02::tz::TimeZone::UTC)
        else {
            return out;
        };
        let mut cursor = start;
        let mut inclusive = true;
        while let Ok(next) = self.cron.find_next_occurrence(&cursor, inclusive) {
            inclusive = false;
            let dt = next.datetime();
            if dt.year() != y {
                break;
            }
            if let Some(civil) = from02(dt) {
                out.push(civil);
            }
            cursor = next;
        }
        out
    }

    /// Whether the expression names this civil time (to the second).
    pub fn matches(&self, dt: DateTime) -> bool {
        to02(dt)
            .and_then(|d| d.to_zoned(jiff02::tz::TimeZone::UTC).ok())
            .is_some_and(|z| self.cron.is_time_matching(&z).unwrap_or(false))
    }

    /// The shortest time between consecutive civil times over the next 60 from 2026-01-01
    /// (local clock time, so DST does not shorten it), or `None` if it matches at most once.
    pub fn shortest_gap(&self) -> Option<SignedDuration> {
        let mut cursor = jiff02::Timestamp::from_second(1_767_225_600)
            .ok()?
            .to_zoned(jiff02::tz::TimeZone::UTC);
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
        let start = jiff02::Timestamp::UNIX_EPOCH.to_zoned(jiff02::tz::TimeZone::UTC);
        self.cron.find_next_occurrence(&start, true).is_ok()
    }
}

fn from02(dt: jiff02::civil::DateTime) -> Option<DateTime> {
    DateTime::new(
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        0,
    )
    .ok()
}

fn to02(dt: DateTime) -> Option<jiff02::civil::DateTime> {
    jiff02::civil::DateTime::new(
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        0,
    )
    .ok()
}
