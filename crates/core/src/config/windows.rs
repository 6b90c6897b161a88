//! `[[windows]]` → [`MaintenanceWindow`].

use jiff::SignedDuration;
use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;

use super::ConfigErrorKind as K;
use super::schema::{DayEntry, S, WindowSection};
use super::validate::{Ctx, Names};
use crate::cron::{CronError, CronSchedule};
use crate::inventory::{Cluster, ClusterId, Customer, CustomerId, Node, NodeId};
use crate::window::{Calendar, Grace, Length, MaintenanceWindow, Owner, Schedule, WEEKDAY_NAMES};

/// What windows can belong to, with the values they inherit.
pub(super) struct Owners<'a> {
    pub customers: &'a Names<'a>,
    pub clusters: &'a Names<'a>,
    pub nodes: &'a Names<'a>,
    pub customer_list: &'a [Customer],
    pub cluster_list: &'a [Cluster],
    pub node_list: &'a [Node],
    pub customer_grace: &'a [Grace],
    pub cluster_grace: &'a [Grace],
    pub default_tz: &'a TimeZone,
    pub default_grace: Grace,
    pub lines: &'a [usize],
}

impl Owners<'_> {
    fn resolve(&self, ctx: &mut Ctx, w: &WindowSection) -> Option<Owner> {
        let given = [&w.node, &w.cluster, &w.customer]
            .iter()
            .filter(|o| o.is_some())
            .count();
        if given != 1 {
            ctx.err(
                w.name.span(),
                K::Owner {
                    window: w.name.get_ref().clone(),
                },
            );
            return None;
        }
        if let Some(n) = &w.node {
            return self.nodes.resolve(ctx, n).map(|i| Owner::Node(NodeId(i)));
        }
        if let Some(c) = &w.cluster {
            return self
                .clusters
                .resolve(ctx, c)
                .map(|i| Owner::Cluster(ClusterId(i)));
        }
        let c = w.customer.as_ref()?;
        self.customers
            .resolve(ctx, c)
            .map(|i| Owner::Customer(CustomerId(i)))
    }

    /// Zone and grace a window inherits from its owner (a node's come from its cluster).
    /// Owners come from `resolve`, so their indexes are valid.
    fn inherited(&self, owner: Owner) -> (TimeZone, Grace) {
        let cluster = match owner {
            Owner::Node(n) => self.node_list[n.index()].cluster,
            Owner::Cluster(c) => c,
            Owner::Customer(cu) => {
                let i = cu.index();
                return (
                    self.customer_list[i].time_zone.clone(),
                    self.customer_grace[i],
                );
            }
        };
        let i = cluster.index();
        (
            self.cluster_list[i].time_zone.clone(),
            self.cluster_grace[i],
        )
    }
}

/// Parses a weekday: a name (`wednesday`, `wed`) or the original's 0-6, Monday = 0.
pub(super) fn weekday(ctx: &mut Ctx, d: &S<DayEntry>) -> Option<Weekday> {
    match d.get_ref() {
        DayEntry::Number(n) => match i8::try_from(*n)
            .ok()
            .and_then(|n| Weekday::from_monday_zero_offset(n).ok())
        {
            Some(w) => Some(w),
            None => {
                ctx.err(d.span(), K::DayNumber { value: *n });
                None
            }
        },
        DayEntry::Name(name) => {
            let lower = name.trim().to_ascii_lowercase();
            let found = WEEKDAY_NAMES
                .iter()
                .position(|full| lower.len() >= 3 && full.starts_with(lower.as_str()));
            match found.and_then(|i| Weekday::from_monday_zero_offset(i as i8).ok()) {
                Some(w) => Some(w),
                None => {
                    ctx.err(
                        d.span(),
                        K::DayName {
                            value: name.clone(),
                        },
                    );
                    None
                }
            }
        }
    }
}

fn civil<T: std::str::FromStr<Err = jiff::Error>>(
    ctx: &mut Ctx,
    s: &S<String>,
    kind: fn(String, jiff::Error) -> K,
) -> Option<T> {
    match s.get_ref().trim().parse::<T>() {
        Ok(v) => Some(v),
        Err(e) => {
            ctx.err(s.span(), kind(s.get_ref().clone(), e));
            None
        }
    }
}

pub(super) fn build(
    ctx: &mut Ctx,
    sections: &[S<WindowSection>],
    owners: &Owners,
) -> Vec<MaintenanceWindow> {
    let mut names = Names::new("window", owners.lines);
    let mut out = Vec::new();
    for section in sections {
        let w = section.get_ref();
        let owner = owners.resolve(ctx, w);
        if let Some(owner) = owner {
            let key = format!("{owner:?}/{}", w.name.get_ref());
            let unique = names.add(ctx, &S::new(w.name.span(), key), 0);
            if !unique {
                continue;
            }
        }
        let (inherited_tz, inherited_grace) = owner
            .map_or((owners.default_tz.clone(), owners.default_grace), |o| {
                owners.inherited(o)
            });
        let tz = match &w.time_zone {
            Some(s) => ctx.time_zone(s),
            None => Some(inherited_tz),
        };
        let grace = ctx.grace(w.grace.as_ref(), inherited_grace);
        let start = w
            .start
            .as_ref()
            .and_then(|s| civil::<Time>(ctx, s, |value, source| K::TimeOfDay { value, source }));
        let schedule = schedule(ctx, w);
        let end = w
            .end
            .as_ref()
            .map(|e| civil::<DateTime>(ctx, e, |value, source| K::DateTime { value, source }));
        let length = match (&schedule, end) {
            (_, Some(None)) => None,
            (Some(Schedule::Once { date }), Some(Some(end))) => {
                let begin = date.to_datetime(start.unwrap_or(Time::midnight()));
                let real = |dt| tz.as_ref().and_then(|tz| tz.to_timestamp(dt).ok());
                match (real(begin), real(end)) {
                    (Some(b), Some(e)) if e > b => Some(Length::Exact(e.duration_since(b))),
                    _ => {
                        ctx.err(
                            w.end.as_ref().map_or(w.name.span(), |e| e.span()),
                            K::EndBeforeStart,
                        );
                        None
                    }
                }
            }
            _ => length(ctx, w, start.is_some() || w.cron.is_some()),
        };
        let (Some(owner), Some(tz), Some(schedule), Some(length)) = (owner, tz, schedule, length)
        else {
            continue;
        };
        if w.start.is_some() && start.is_none() {
            continue;
        }
        let window = match MaintenanceWindow::new(
            w.name.get_ref().clone(),
            owner,
            tz,
            schedule,
            start,
            length,
            grace,
        ) {
            Ok(window) => window,
            Err(_) => continue, // lengths were checked positive above
        };
        if let Some(period) = window.shortest_period() {
            // Exact lengths keep 2h clear of the next start: a DST change can shorten the
            // real gap by that much (Antarctica/Troll shifts 2h), and occurrences must not overlap.
            let too_long = match length {
                Length::Exact(d) => d > period - SignedDuration::from_hours(2),
                Length::Days(n) => SignedDuration::from_hours(i64::from(n) * 24) > period,
            };
            if too_long {
                let span = w.duration.as_ref().map_or(w.name.span(), |d| d.span());
                ctx.err(
                    span,
                    K::LongerThanPeriod {
                        window: w.name.get_ref().clone(),
                        length: w
                            .duration
                            .as_ref()
                            .map_or_else(|| "1d".to_owned(), |d| d.get_ref().clone()),
                        period: friendly(period),
                    },
                );
                continue;
            }
        }
        out.push(window);
    }
    out
}

/// `SignedDuration` → `7d`, `1d 12h`, `90m` for messages.
pub fn friendly(d: SignedDuration) -> String {
    let secs = d.as_secs();
    let (days, hours, mins) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    let mut parts = Vec::new();
    if days > 0 {
        parts.push(format!("{days}d"));
    }
    if hours > 0 {
        parts.push(format!("{hours}h"));
    }
    if mins > 0 || parts.is_empty() {
        parts.push(format!("{mins}m"));
    }
    parts.join(" ")
}

fn schedule(ctx: &mut Ctx, w: &WindowSection) -> Option<Schedule> {
    if !one_schedule(ctx, w) {
        return None;
    }
    let nth = w.week.is_some() || w.day.is_some();
    misplaced(ctx, w, nth);
    let offset = offset_days(ctx, w);
    if nth {
        nth_weekday(ctx, w, offset)
    } else if let Some(days) = &w.days {
        weekly(ctx, days)
    } else if let Some(dom) = &w.day_of_month {
        match *dom.get_ref() {
            v @ (1..=31 | -31..=-1) => Some(Schedule::MonthlyDay { day: v as i8 }),
            v => {
                ctx.err(dom.span(), K::DayOfMonth { value: v });
                None
            }
        }
    } else if let Some(expr) = &w.cron {
        cron(ctx, w, expr, offset)
    } else {
        once(ctx, w)
    }
}

/// Exactly one kind of schedule is given (an error naming the window when none or several).
fn one_schedule(ctx: &mut Ctx, w: &WindowSection) -> bool {
    let present: Vec<&'static str> = [
        ("`week` + `day`", w.week.is_some() || w.day.is_some()),
        ("`days`", w.days.is_some()),
        ("`day_of_month`", w.day_of_month.is_some()),
        ("`cron`", w.cron.is_some()),
        ("`date`", w.date.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect();
    match present.len() {
        0 => {
            ctx.err(
                w.name.span(),
                K::NoSchedule {
                    window: w.name.get_ref().clone(),
                },
            );
            false
        }
        1 => true,
        _ => {
            ctx.err(
                w.name.span(),
                K::ManySchedules {
                    window: w.name.get_ref().clone(),
                    fields: present.join(", "),
                },
            );
            false
        }
    }
}

/// Fields that belong to another kind of schedule than the window's.
fn misplaced(ctx: &mut Ctx, w: &WindowSection, nth: bool) {
    let not_with = |ctx: &mut Ctx,
                    span: Option<std::ops::Range<usize>>,
                    field: &'static str,
                    with: &'static str,
                    hint: &'static str| {
        if let Some(span) = span {
            ctx.err(span, K::NotWith { field, with, hint });
        }
    };
    if !nth {
        not_with(
            ctx,
            w.calendar.as_ref().map(S::span),
            "calendar",
            "anything but `week` + `day`",
            "",
        );
        not_with(
            ctx,
            w.then.as_ref().map(S::span),
            "then",
            "anything but `week` + `day`",
            "",
        );
    }
    if w.cron.is_none() && !nth {
        not_with(
            ctx,
            w.offset_days.as_ref().map(S::span),
            "offset_days",
            "this schedule",
            " (it shifts `week` + `day` or `cron`)",
        );
    }
    if w.date.is_none() {
        not_with(
            ctx,
            w.end.as_ref().map(S::span),
            "end",
            "a recurring window",
            " (use `duration`)",
        );
    }
}

/// `offset_days`, within four weeks either way.
fn offset_days(ctx: &mut Ctx, w: &WindowSection) -> Option<i16> {
    w.offset_days
        .as_ref()
        .and_then(|o| match i16::try_from(*o.get_ref()) {
            Ok(v) if v.abs() <= 27 => Some(v),
            _ => {
                ctx.err(
                    o.span(),
                    K::OffsetDays {
                        value: *o.get_ref(),
                    },
                );
                None
            }
        })
}

/// `week` + `day` (the nth weekday of a month), with `calendar` and `then` or `offset_days`.
fn nth_weekday(ctx: &mut Ctx, w: &WindowSection, offset: Option<i16>) -> Option<Schedule> {
    let Some(week_s) = &w.week else {
        ctx.err(
            w.day.as_ref().map_or(w.name.span(), |d| d.span()),
            K::Requires {
                field: "day",
                needs: "week",
                hint: " (for every week use `days = [...]`)",
            },
        );
        return None;
    };
    let Some(day_s) = &w.day else {
        ctx.err(
            week_s.span(),
            K::Requires {
                field: "week",
                needs: "day",
                hint: "",
            },
        );
        return None;
    };
    let week = match *week_s.get_ref() {
        v @ (1..=5 | -1) => Some(v as i8),
        v => {
            ctx.err(week_s.span(), K::Week { value: v });
            None
        }
    };
    let anchor = weekday(ctx, day_s);
    let calendar = match w.calendar.as_ref().map(|c| (c, c.get_ref().as_str())) {
        None | Some((_, "nth-weekday")) => Some(Calendar::NthWeekday),
        Some((_, "monday-weeks")) => Some(Calendar::MondayWeeks),
        Some((c, other)) => {
            ctx.err(
                c.span(),
                K::Calendar {
                    value: other.to_owned(),
                },
            );
            None
        }
    };
    if calendar == Some(Calendar::MondayWeeks) && week == Some(-1) {
        ctx.err(week_s.span(), K::LastWithMondayWeeks);
        return None;
    }
    let then = w.then.as_ref().and_then(|t| weekday(ctx, t));
    if let (Some(_), Some(o)) = (&w.then, &w.offset_days) {
        ctx.err(
            o.span(),
            K::NotWith {
                field: "offset_days",
                with: "then",
                hint: " (keep one)",
            },
        );
    }
    let (week, anchor, calendar) = (week?, anchor?, calendar?);
    let offset_days = match then {
        // The first `then` weekday strictly after the anchor: 1..=7 days later.
        Some(t) => match t.since(anchor) {
            0 => 7,
            n => i16::from(n),
        },
        None if w.offset_days.is_some() => offset?,
        None => 0,
    };
    Some(Schedule::NthWeekday {
        week,
        weekday: anchor,
        calendar,
        offset_days,
    })
}

/// `days = [...]`: every week on those days.
fn weekly(ctx: &mut Ctx, days: &S<Vec<S<DayEntry>>>) -> Option<Schedule> {
    let list: Vec<Weekday> = days
        .get_ref()
        .iter()
        .filter_map(|d| weekday(ctx, d))
        .collect();
    if list.len() != days.get_ref().len() {
        return None;
    }
    if list.is_empty() {
        ctx.err(
            days.span(),
            K::DayName {
                value: String::new(),
            },
        );
        return None;
    }
    Some(Schedule::weekly(&list))
}

/// `cron`, which holds the start time, optionally shifted by `offset_days`.
fn cron(
    ctx: &mut Ctx,
    w: &WindowSection,
    expr: &S<String>,
    offset: Option<i16>,
) -> Option<Schedule> {
    if let Some(s) = &w.start {
        ctx.err(
            s.span(),
            K::NotWith {
                field: "start",
                with: "cron",
                hint: " (the cron expression holds the start time)",
            },
        );
    }
    let cron = match CronSchedule::parse(expr.get_ref()) {
        Ok(c) if c.ever_matches() => c,
        Ok(_) => {
            ctx.err(
                expr.span(),
                CronError::NeverMatches {
                    expr: expr.get_ref().clone(),
                }
                .into(),
            );
            return None;
        }
        Err(e) => {
            ctx.err(expr.span(), e.into());
            return None;
        }
    };
    let offset_days = if w.offset_days.is_some() { offset? } else { 0 };
    Some(Schedule::Cron {
        cron: Box::new(cron),
        offset_days,
    })
}

/// `date`: once, with `end` or `duration`.
fn once(ctx: &mut Ctx, w: &WindowSection) -> Option<Schedule> {
    let date_s = w.date.as_ref()?;
    let date = civil::<Date>(ctx, date_s, |value, source| K::Date { value, source });
    if let (Some(e), Some(_)) = (&w.end, &w.duration) {
        ctx.err(
            e.span(),
            K::NotWith {
                field: "end",
                with: "duration",
                hint: " (keep one)",
            },
        );
        return None;
    }
    Some(Schedule::Once { date: date? })
}

fn length(ctx: &mut Ctx, w: &WindowSection, timed: bool) -> Option<Length> {
    let Some(d) = &w.duration else {
        return if timed {
            let hint = if w.date.is_some() { " (or `end`)" } else { "" };
            ctx.err(
                w.name.span(),
                K::MissingDuration {
                    window: w.name.get_ref().clone(),
                    hint,
                },
            );
            None
        } else {
            Some(Length::Days(1))
        };
    };
    let value = ctx.positive_duration(d)?;
    if timed {
        return Some(Length::Exact(value));
    }
    let secs = value.as_secs();
    if secs % 86_400 != 0 || value.subsec_nanos() != 0 {
        ctx.err(
            d.span(),
            K::WholeDays {
                value: d.get_ref().clone(),
            },
        );
        return None;
    }
    match i16::try_from(secs / 86_400) {
        Ok(n) => Some(Length::Days(n)),
        Err(_) => {
            ctx.err(
                d.span(),
                K::WholeDays {
                    value: d.get_ref().clone(),
                },
            );
            None
        }
    }
}
