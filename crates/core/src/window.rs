//! Maintenance windows: recurring or one-off periods, in real time zones.
//!
//! A window is a [`Schedule`] (which days, or which cron civil times), a local start time (or
//! none for a whole day), a [`Length`], a time zone and a [`Grace`]. All arithmetic goes
//! through `jiff`:
//! - a local start that falls in a DST gap moves forward by the gap's length; an ambiguous
//!   local start (a fold) takes the earlier instant (jiff's "compatible" rule);
//! - a timed window lasts real time: "22:00 for 4h" is 4 elapsed hours even across a DST
//!   change; a whole-day window lasts from local midnight to the next local midnight.
//!
//! Two questions are answered: [`MaintenanceWindow::occurrences_between`] and
//! [`MaintenanceWindow::occurrence_containing`].
//!
//! # Example
//! ```
//! use failover_core::window::{Grace, Length, MaintenanceWindow, Owner, Schedule};
//! use failover_core::inventory::ClusterId;
//! use jiff::{civil::{time, Weekday}, tz::TimeZone, SignedDuration, Timestamp};
//!
//! // Sundays 02:30 for 2h, America/New_York. 2026-03-08 02:30 does not exist (the clocks
//! // jump from 02:00 to 03:00), so that occurrence starts at 03:30 EDT.
//! let w = MaintenanceWindow::new(
//!     "sunday",
//!     Owner::Cluster(ClusterId(0)),
//!     TimeZone::get("America/New_York")?,
//!     Schedule::weekly(&[Weekday::Sunday]),
//!     Some(time(2, 30, 0, 0)),
//!     Length::Exact(SignedDuration::from_hours(2)),
//!     Grace::default(),
//! )?;
//! let from: Timestamp = "2026-03-07T00:00:00Z".parse()?;
//! let to: Timestamp = "2026-03-09T00:00:00Z".parse()?;
//! let occ = &w.occurrences_between(from, to)?[0];
//! assert_eq!(occ.start.to_string(), "2026-03-08T03:30:00-04:00[America/New_York]");
//! assert_eq!(occ.end.to_string(), "2026-03-08T05:30:00-04:00[America/New_York]");
//!
//! // In the fall the 01:30 of 2026-11-01 happens twice; the window starts at the first.
//! let w = MaintenanceWindow::new(
//!     "fold", Owner::Cluster(ClusterId(0)), TimeZone::get("America/New_York")?,
//!     Schedule::weekly(&[Weekday::Sunday]), Some(time(1, 30, 0, 0)),
//!     Length::Exact(SignedDuration::from_hours(1)), Grace::default(),
//! )?;
//! let from: Timestamp = "2026-10-31T12:00:00Z".parse()?;
//! let to: Timestamp = "2026-11-02T00:00:00Z".parse()?;
//! let occ = &w.occurrences_between(from, to)?[0];
//! assert_eq!(occ.start.to_string(), "2026-11-01T01:30:00-04:00[America/New_York]");
//! // One real hour later the clock says 01:30 again, now in standard time.
//! assert_eq!(occ.end.to_string(), "2026-11-01T01:30:00-05:00[America/New_York]");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan, ZonedDateTime};

use crate::cron::CronSchedule;
use crate::inventory::{ClusterId, CustomerId, NodeId};

/// Weekday names, Monday first (index = the original handler's day number).
pub const WEEKDAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// What a window belongs to; a failover is planned when a window of its cluster, of any of
/// the cluster's nodes, or of the cluster's customer contains the instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    /// One node.
    Node(NodeId),
    /// A whole cluster.
    Cluster(ClusterId),
    /// Every cluster of a customer.
    Customer(CustomerId),
}

/// How a recurring window's anchor days are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calendar {
    /// `week = 2, day = wed` is the second Wednesday of the month (the common meaning).
    NthWeekday,
    /// The original handler's arithmetic: week 1 starts on the month's first Monday and the
    /// days before it are week 0, so `week = 2, day = wed` is the Wednesday after the second
    /// Monday (which is sometimes the first Wednesday of the month).
    MondayWeeks,
}

/// Which days (or cron civil times) a window starts on.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// The `week`-th `weekday` of each month (`-1` = last), shifted by `offset_days`.
    NthWeekday {
        /// 1..=5, or -1 for the last.
        week: i8,
        /// The anchor weekday.
        weekday: Weekday,
        /// How weeks are counted.
        calendar: Calendar,
        /// Days added to the anchor (Patch Tuesday + 4 = the Saturday after).
        offset_days: i16,
    },
    /// Every week on these weekdays; bit `n` = `n` days after Monday.
    Weekly {
        /// Weekday bit set, Monday = bit 0.
        days: u8,
    },
    /// Each month on this day of the month; negative counts from the end (-1 = last day).
    /// Months without that day (the 31st of April) have no occurrence.
    MonthlyDay {
        /// 1..=31 or -31..=-1.
        day: i8,
    },
    /// The local civil times a cron expression names, shifted by `offset_days`.
    Cron {
        /// The parsed expression.
        cron: Box<CronSchedule>,
        /// Days added to each cron instant (SSM's ScheduleOffset).
        offset_days: i16,
    },
    /// Once, on this local date.
    Once {
        /// The local date of the start.
        date: Date,
    },
}

impl Schedule {
    /// A weekly schedule on the given weekdays.
    pub fn weekly(days: &[Weekday]) -> Schedule {
        let days = days
            .iter()
            .fold(0u8, |acc, d| acc | (1 << d.to_monday_zero_offset()));
        Schedule::Weekly { days }
    }

    /// The anchor dates of a month-based schedule in the given month, before the offset.
    fn anchor_in_month(&self, first: Date) -> Option<Date> {
        match *self {
            Schedule::NthWeekday {
                week,
                weekday,
                calendar: Calendar::NthWeekday,
                ..
            } => first.nth_weekday_of_month(week, weekday).ok(),
            Schedule::NthWeekday {
                week,
                weekday,
                calendar: Calendar::MondayWeeks,
                ..
            } => {
                let monday = first.nth_weekday_of_month(week, Weekday::Monday).ok()?;
                let date = monday
                    .checked_add(i64::from(weekday.to_monday_zero_offset()).days())
                    .ok()?;
                (date.month() == first.month()).then_some(date)
            }
            Schedule::MonthlyDay { day } => {
                let len = first.days_in_month();
                let dom = if day > 0 { day } else { len + day + 1 };
                (1..=len)
                    .contains(&dom)
                    .then(|| first.with().day(dom).build().ok())?
            }
            _ => None,
        }
    }

    fn offset_days(&self) -> i16 {
        match *self {
            Schedule::NthWeekday { offset_days, .. } | Schedule::Cron { offset_days, .. } => {
                offset_days
            }
            _ => 0,
        }
    }

    /// Start dates (for day-based schedules) within `[d0, d1]`, ascending.
    fn dates_between(&self, d0: Date, d1: Date, out: &mut Vec<Date>) {
        match self {
            Schedule::Weekly { days } => {
                let mut d = d0;
                while d <= d1 {
                    if days & (1 << d.weekday().to_monday_zero_offset()) != 0 {
                        out.push(d);
                    }
                    match d.tomorrow() {
                        Ok(next) => d = next,
                        Err(_) => break,
                    }
                }
            }
            Schedule::Once { date, .. } => {
                if (d0..=d1).contains(date) {
                    out.push(*date);
                }
            }
            Schedule::Cron { .. } => {}
            Schedule::NthWeekday {
                weekday,
                offset_days,
                ..
            } => {
                // Every start falls on one weekday; most short ranges hold none.
                let start_day = (i64::from(weekday.to_monday_zero_offset())
                    + i64::from(*offset_days))
                .rem_euclid(7);
                let first_day = i64::from(d0.weekday().to_monday_zero_offset());
                let span = d0.duration_until(d1).as_hours() / 24;
                if span < 6 && (0..=span).all(|i| (first_day + i) % 7 != start_day) {
                    return;
                }
                self.month_dates(d0, d1, out);
            }
            Schedule::MonthlyDay { .. } => self.month_dates(d0, d1, out),
        }
    }

    /// Start dates of a month-based schedule in `[d0, d1]`: one anchor per month, shifted.
    fn month_dates(&self, d0: Date, d1: Date, out: &mut Vec<Date>) {
        let offset = SignedDuration::from_hours(i64::from(self.offset_days()) * 24);
        let (Ok(a0), Ok(a1)) = (d0.checked_sub(offset), d1.checked_sub(offset)) else {
            return;
        };
        let (mut year, mut month) = (a0.year(), a0.month());
        while let Ok(first) = Date::new(year, month, 1)
            && first <= a1
        {
            if let Some(date) = self.anchor_in_month(first)
                && (a0..=a1).contains(&date)
                && let Ok(date) = date.checked_add(offset)
            {
                out.push(date);
            }
            (year, month) = if month == 12 {
                (year + 1, 1)
            } else {
                (year, month + 1)
            };
        }
    }
}

/// How long each occurrence lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    /// Elapsed time, whatever the clocks do.
    Exact(SignedDuration),
    /// Whole local days, midnight to midnight (a DST day is 23 or 25 hours).
    Days(i16),
}

impl Length {
    /// An upper bound of the elapsed time, for search ranges.
    fn upper_bound(self) -> SignedDuration {
        match self {
            Length::Exact(d) => d,
            Length::Days(n) => SignedDuration::from_hours(i64::from(n) * 24 + 2),
        }
    }
}

/// Time before a window opens and after it closes that still counts as inside it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grace {
    /// Counts as inside this long before the start.
    pub before: SignedDuration,
    /// Counts as inside this long after the end (late reboots, failback).
    pub after: SignedDuration,
}

/// One occurrence of a window: `[start, end)` in the window's time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    /// First instant inside.
    pub start: ZonedDateTime,
    /// First instant after.
    pub end: ZonedDateTime,
}

/// A window could not be built or evaluated.
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    /// The arithmetic left jiff's supported range (years -9999..=9999).
    #[error("window `{window}` leaves the supported range of dates")]
    OutOfRange {
        /// The window's name.
        window: String,
        /// jiff's explanation.
        #[source]
        source: jiff::Error,
    },
    /// A window must last a positive time.
    #[error("window `{window}` must last longer than zero")]
    EmptyLength {
        /// The window's name.
        window: String,
    },
}

/// A recurring or one-off maintenance window. Build it with [`MaintenanceWindow::new`].
#[derive(Debug, Clone)]
pub struct MaintenanceWindow {
    /// Name, unique per owner.
    pub name: String,
    /// What it belongs to.
    pub owner: Owner,
    /// The zone its local times are in.
    pub time_zone: TimeZone,
    /// Which days or instants.
    pub schedule: Schedule,
    /// Local start time; `None` for a whole-day window.
    pub start: Option<Time>,
    /// How long each occurrence lasts.
    pub length: Length,
    /// Widening of each occurrence for classification.
    pub grace: Grace,
    /// Longest elapsed time from a start date's midnight to an occurrence's end: how far
    /// back a containing occurrence can start.
    reach: SignedDuration,
}

impl MaintenanceWindow {
    /// Builds a window.
    ///
    /// # Errors
    /// [`WindowError::EmptyLength`] when the length is zero or negative.
    pub fn new(
        name: impl Into<String>,
        owner: Owner,
        time_zone: TimeZone,
        schedule: Schedule,
        start: Option<Time>,
        length: Length,
        grace: Grace,
    ) -> Result<MaintenanceWindow, WindowError> {
        let name = name.into();
        let positive = match length {
            Length::Exact(d) => d.is_positive(),
            Length::Days(n) => n > 0,
        };
        if !positive {
            return Err(WindowError::EmptyLength { window: name });
        }
        // A start date's occurrence begins at most a day later (local time plus a DST gap)
        // and, with an offset, can sit `offset_days` away from its anchor.
        let reach = length.upper_bound() + SignedDuration::from_hours(26);
        Ok(MaintenanceWindow {
            name,
            owner,
            time_zone,
            schedule,
            start,
            length,
            grace,
            reach,
        })
    }

    fn err(&self, source: jiff::Error) -> WindowError {
        WindowError::OutOfRange {
            window: self.name.clone(),
            source,
        }
    }

    /// The occurrence starting on local `date`.
    fn occurrence_on(&self, date: Date) -> Result<Occurrence, WindowError> {
        self.occurrence_starting(date.to_datetime(self.start.unwrap_or(Time::midnight())))
    }

    /// The occurrence starting at local civil time `start_dt` (gap forward, fold earlier).
    fn occurrence_starting(&self, start_dt: DateTime) -> Result<Occurrence, WindowError> {
        let date = start_dt.date();
        let start = self.zoned(start_dt)?;
        let end = match self.length {
            Length::Exact(d) => start.checked_add(d).map_err(|e| self.err(e))?,
            Length::Days(n) => {
                let end_date = date
                    .checked_add(i64::from(n).days())
                    .map_err(|e| self.err(e))?;
                self.zoned(end_date.to_datetime(start_dt.time()))?
            }
        };
        Ok(Occurrence { start, end })
    }

    /// Local civil datetime → instant, gap forward, fold earlier.
    fn zoned(&self, dt: DateTime) -> Result<ZonedDateTime, WindowError> {
        self.time_zone
            .to_ambiguous_zoned_datetime(dt)
            .compatible()
            .map_err(|e| self.err(e))
    }

    /// Every occurrence that overlaps `[from, to)`, sorted by start. Grace is not applied:
    /// these are the windows as published.
    ///
    /// # Errors
    /// [`WindowError::OutOfRange`] when the range reaches past the years jiff supports.
    pub fn occurrences_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Occurrence>, WindowError> {
        let mut out = Vec::new();
        self.for_each_start(from, to, |occ| {
            if occ.end.timestamp() > from && occ.start.timestamp() < to {
                out.push(occ);
            }
        })?;
        Ok(out)
    }

    /// Calls `f` for every occurrence starting between `from - reach` and `to` (a superset of
    /// those overlapping `[from, to)`), in ascending order, each once: two local starts that
    /// a gap moves onto the same instant (a day a zone skipped) are one occurrence.
    fn for_each_start(
        &self,
        from: Timestamp,
        to: Timestamp,
        mut f: impl FnMut(Occurrence),
    ) -> Result<(), WindowError> {
        let mut last: Option<Timestamp> = None;
        let mut once = |occ: Occurrence| {
            let start = occ.start.timestamp();
            if last.is_none_or(|l| start > l) {
                last = Some(start);
                f(occ);
            }
        };
        let earliest = from.checked_sub(self.reach).map_err(|e| self.err(e))?;
        if let Schedule::Cron { cron, offset_days } = &self.schedule {
            // Civil times around the range: a day of slack on each side covers any offset
            // change or skipped day, and the offset moves the cron times by whole days.
            let offset = i64::from(*offset_days);
            let civil = |t: Timestamp, days: i64| {
                self.time_zone
                    .to_datetime(t)
                    .checked_add(days.days())
                    .map_err(|e| self.err(e))
            };
            let lo = civil(earliest, -offset.max(0) - 1)?;
            let hi = civil(to, (-offset).max(0) + 1)?;
            let mut starts = Vec::new();
            for dt in cron.civil_between(lo, hi) {
                starts.push(self.occurrence_starting(
                    dt.checked_add(offset.days()).map_err(|e| self.err(e))?,
                )?);
            }
            // A gap can move a start past a later one of the same day.
            starts.sort_by_key(|o| o.start.timestamp());
            starts.into_iter().for_each(once);
            return Ok(());
        }
        // Every local date is within a day of the UTC date (offsets stay within ±14h), so the
        // dates in the widened UTC range include every local one. When there are none, the
        // zone lookup is skipped (the common case when classifying).
        let utc =
            |t: Timestamp, days: i64| TimeZone::UTC.to_datetime(t).date().checked_add(days.days());
        let mut dates = Vec::new();
        let widened = utc(earliest, -1).and_then(|lo| Ok((lo, utc(to, 1)?)));
        if let Ok((lo, hi)) = widened {
            self.schedule.dates_between(lo, hi, &mut dates);
            if dates.is_empty() {
                return Ok(());
            }
        }
        let d0 = self.time_zone.to_datetime(earliest).date();
        // The local date at `to` comes from the zone, not from civil arithmetic: a zone can
        // skip a whole day (Pacific/Apia, 2011-12-30). Gaps only move starts later, so no
        // later date can start before `to`.
        let d1 = self.time_zone.to_datetime(to).date();
        if widened.is_err() {
            // At the edge of the supported years: list the local range directly.
            self.schedule.dates_between(d0, d1, &mut dates);
        }
        for date in dates.into_iter().filter(|d| (d0..=d1).contains(d)) {
            once(self.occurrence_on(date)?);
        }
        Ok(())
    }

    /// The occurrence that contains `at` once widened by the grace, if any. When grace makes
    /// two occurrences overlap, the one that started last is returned.
    ///
    /// # Errors
    /// [`WindowError::OutOfRange`] when `at` is near the end of the years jiff supports.
    pub fn occurrence_containing(&self, at: Timestamp) -> Result<Option<Occurrence>, WindowError> {
        let latest_start = at.checked_add(self.grace.before).map_err(|e| self.err(e))?;
        let earliest_end = at.checked_sub(self.grace.after).map_err(|e| self.err(e))?;
        let mut found = None;
        let to = latest_start
            .checked_add(SignedDuration::from_nanos(1))
            .map_err(|e| self.err(e))?;
        self.for_each_start(earliest_end, to, |occ| {
            if occ.start.timestamp() <= latest_start && occ.end.timestamp() > earliest_end {
                found = Some(occ);
            }
        })?;
        Ok(found)
    }

    /// The shortest time between two consecutive starts over a sample of occurrences, in
    /// local clock time, or `None` for a window that happens at most once in the sample.
    /// Validation uses it to reject lengths that would make occurrences overlap.
    pub fn shortest_period(&self) -> Option<SignedDuration> {
        let starts: Vec<DateTime> = match &self.schedule {
            Schedule::Once { .. } => return None,
            Schedule::Cron { cron, .. } => return cron.shortest_gap(),
            Schedule::Weekly { .. } => self.sample_dates(Date::constant(2026, 1, 5), 21),
            _ => self.sample_dates(Date::constant(2026, 1, 1), 6 * 366),
        };
        starts.windows(2).map(|w| w[0].duration_until(w[1])).min()
    }

    fn sample_dates(&self, from: Date, days: i64) -> Vec<DateTime> {
        let mut dates = Vec::new();
        let to = from.checked_add(days.days()).unwrap_or(from);
        self.schedule.dates_between(from, to, &mut dates);
        let time = self.start.unwrap_or(Time::midnight());
        dates.into_iter().map(|d| d.to_datetime(time)).collect()
    }
}
