//! The Windows page: the inventory's window occurrences as a week or a month, in a zone the
//! viewer picks (each window's own zone shown too), and the same as an iCalendar file.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use failover_core::inventory::Inventory;
use failover_core::limits;
use failover_core::listing::{self, Filter, Listed};
use failover_store::Store;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde::Deserialize;
use serde_json::{Value, json};

use super::pages::{customer_filter, customer_names};
use super::session::Signed;
use super::text::{clock_on, zone};
use super::{PageError, page};
use crate::api::ErrorCode;
use crate::auth::Caller;
use crate::clock;
use crate::error::ApiError;
use crate::query::query;
use crate::state::AppState;

/// How far ahead the iCalendar file reaches.
const ICS_AHEAD: SignedDuration = SignedDuration::from_hours(180 * 24);

/// Query of the Windows page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowsParams {
    view: Option<String>,
    date: Option<String>,
    zone: Option<String>,
    customer: Option<String>,
    cluster: Option<String>,
}

/// Which windows the page shows: a cluster's, or all of a customer's (or everyone's).
fn filter(caller: &Caller, cluster: Option<&str>) -> Result<Filter, ApiError> {
    match cluster.filter(|c| !c.is_empty()) {
        None => Ok(Filter::All),
        Some(c) => caller
            .inventory()
            .find_cluster(c)
            .map(Filter::Cluster)
            .ok_or_else(|| ApiError::field("cluster", format!("unknown cluster `{c}`"))),
    }
}

/// The rows of `[from, to)` the caller may see.
fn rows(
    caller: &Caller,
    customer: Option<&str>,
    filter: Filter,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<Listed>, ApiError> {
    let inv = caller.inventory();
    let mut rows = listing::occurrences(inv, from, to, filter)
        .map_err(|e| ApiError::field("date", e.to_string()))?;
    rows.retain(|r| {
        let owner = inv.cluster(r.cluster).customer;
        customer.is_none_or(|mine| owner.is_some_and(|c| inv.customers[c.index()].name == mine))
    });
    Ok(rows)
}

/// Every zone the inventory names, UTC first.
pub(crate) fn zones(inv: &Inventory) -> Vec<String> {
    let mut set: BTreeSet<String> = BTreeSet::new();
    let names = inv
        .clusters
        .iter()
        .map(|c| &c.time_zone)
        .chain(inv.windows.iter().map(|w| &w.time_zone))
        .chain(inv.customers.iter().map(|c| &c.time_zone));
    for tz in names {
        if let Some(n) = tz.iana_name().filter(|n| *n != "UTC") {
            set.insert(n.to_owned());
        }
    }
    std::iter::once("UTC".to_owned()).chain(set).collect()
}

/// `GET /ui/windows?view=week|month&date=YYYY-MM-DD&zone=&customer=&cluster=`.
///
/// # Errors
/// [`PageError`] 400 naming a bad parameter.
pub async fn windows<S: Store>(
    signed: Signed,
    State(_state): State<AppState<S>>,
    params: Result<Query<WindowsParams>, QueryRejection>,
) -> Result<Response, PageError> {
    let p = query(params)?;
    let caller = &signed.caller;
    let inv = caller.inventory();
    let month = match p.view.as_deref() {
        None | Some("week") => false,
        Some("month") => true,
        Some(v) => {
            return Err(ApiError::field(
                "view",
                format!("`view` must be `week` or `month`, not `{v}`"),
            )
            .into());
        }
    };
    let zone_name = p
        .zone
        .clone()
        .filter(|z| !z.is_empty())
        .unwrap_or_else(|| "UTC".to_owned());
    let tz: TimeZone = zone(&zone_name)
        .ok_or_else(|| ApiError::field("zone", format!("unknown time zone `{zone_name}`")))?;
    let now = clock::now();
    let today = now.to_zoned_datetime(tz.clone()).date();
    let date = match p.date.as_deref().filter(|d| !d.is_empty()) {
        None => today,
        Some(d) => d
            .parse::<Date>()
            .ok()
            .filter(|d| (1900..=2499).contains(&d.year()))
            .ok_or_else(|| {
                ApiError::field(
                    "date",
                    format!(
                        "`date` must be a date such as `2026-12-09` from 1900 to 2499, not `{d}`"
                    ),
                )
            })?,
    };
    let customer = customer_filter(caller, p.customer.as_deref())?;
    let filter = filter(caller, p.cluster.as_deref())?;
    let (first, days, prev, next) = if month {
        let first = date.first_of_month();
        let start = monday_on_or_before(first);
        let last = date.last_of_month();
        let days = (last - start).get_days() + 1;
        let days = (days + 6) / 7 * 7;
        (start, days, first - 1.month(), first + 1.month())
    } else {
        let start = monday_on_or_before(date);
        (start, 7, start - 7.days(), start + 7.days())
    };
    // The grid's first and last days may reach past the supported years (a month view of
    // January 1900 or December 2499): only the supported part is listed.
    let start_of = |d: Date| -> Timestamp {
        d.to_zoned_datetime(tz.clone())
            .map_or(limits::LATEST, |z| z.timestamp())
            .clamp(limits::EARLIEST, limits::LATEST)
    };
    let end_day = first + i64::from(days).days();
    let (from, to) = (start_of(first), start_of(end_day));
    let listed = rows(caller, customer.as_deref(), filter, from, to)?;
    // One entry per window occurrence and day, listing the clusters it covers (a
    // customer's window covers all of its clusters).
    let mut by_day: BTreeMap<(Date, Timestamp, usize), Vec<&Listed>> = BTreeMap::new();
    for r in &listed {
        let start = r.occurrence.start.timestamp();
        let d = start.to_zoned_datetime(tz.clone()).date().max(first);
        by_day
            .entry((d, start, r.window.index()))
            .or_default()
            .push(r);
    }
    let mut grid: Vec<Value> = Vec::new();
    for i in 0..days {
        let day = first + i64::from(i).days();
        let entries: Vec<Value> = by_day
            .range((day, Timestamp::MIN, 0)..(day + 1.days(), Timestamp::MIN, 0))
            .map(|(_, rows)| entry(inv, rows, &tz, day))
            .collect();
        grid.push(json!({
            "iso": day.to_string(),
            "label": day.strftime("%a %-d %b").to_string(),
            "today": day == today,
            "other_month": month && day.month() != date.month(),
            "entries": entries,
        }));
    }
    let weeks: Vec<Value> = grid.chunks(7).map(|w| Value::from(w.to_vec())).collect();
    let link = |view: &str, d: Date| {
        let mut q = format!(
            "view={view}&date={d}&zone={}",
            super::session::encode(&zone_name)
        );
        if let Some(c) = customer
            .as_deref()
            .filter(|_| caller.customer_name().is_none())
        {
            q.push_str(&format!("&customer={}", super::session::encode(c)));
        }
        if let Some(c) = p.cluster.as_deref().filter(|c| !c.is_empty()) {
            q.push_str(&format!("&cluster={}", super::session::encode(c)));
        }
        format!("/ui/windows?{q}")
    };
    let view = if month { "month" } else { "week" };
    let ics = match feed_filter(caller, customer.as_deref(), p.cluster.as_deref()) {
        Some(f) => format!("/ui/windows.ics?{f}"),
        None => "/ui/windows.ics".to_owned(),
    };
    let clusters: Vec<&str> = inv
        .clusters
        .iter()
        .filter(|c| {
            customer.as_deref().is_none_or(|mine| {
                c.customer
                    .is_some_and(|x| inv.customers[x.index()].name == mine)
            })
        })
        .map(|c| c.name.as_str())
        .collect();
    Ok(page(
        StatusCode::OK,
        "windows.html",
        json!({
            "title": "Windows",
            "tab": "windows",
            "me": signed.context(),
            "view": view,
            "month": month,
            "heading": if month { date.strftime("%B %Y").to_string() } else {
                format!("week of {}", first.strftime("%a %-d %b %Y"))
            },
            "zone": zone_name,
            "zones": zones(inv),
            "date": date.to_string(),
            "customer": customer,
            "customers": customer_names(caller),
            "cluster": p.cluster,
            "clusters": clusters,
            "weeks": weeks,
            "count": listed.len(),
            "prev": link(view, prev),
            "next": link(view, next),
            "today": link(view, today),
            "other_view": link(if month { "week" } else { "month" }, date),
            "ics": ics,
        }),
    ))
}

/// The query of a feed of the page's windows: its cluster, else an admin's chosen customer
/// (a customer's key is limited to its own anyway).
fn feed_filter(caller: &Caller, customer: Option<&str>, cluster: Option<&str>) -> Option<String> {
    let encode = super::session::encode;
    match (cluster.filter(|c| !c.is_empty()), customer) {
        (Some(c), _) => Some(format!("cluster={}", encode(c))),
        (None, Some(c)) if caller.customer_name().is_none() => {
            Some(format!("customer={}", encode(c)))
        }
        _ => None,
    }
}

fn monday_on_or_before(d: Date) -> Date {
    d - i64::from(d.weekday().since(Weekday::Monday)).days()
}

/// One occurrence on `day` of the grid: times in the viewer's zone, and in the window's
/// own zone when that differs.
fn entry(inv: &Inventory, rows: &[&Listed], tz: &TimeZone, day: Date) -> Value {
    let r = rows[0];
    let w = inv.window(r.window);
    let (start, end) = (r.occurrence.start.timestamp(), r.occurrence.end.timestamp());
    let (s, e) = (
        start.to_zoned_datetime(tz.clone()),
        end.to_zoned_datetime(tz.clone()),
    );
    let own = w.time_zone.iana_name().unwrap_or("UTC");
    let viewer = tz.iana_name().unwrap_or("UTC");
    let own_times = (own != viewer).then(|| {
        format!(
            "{}–{} {own}",
            r.occurrence.start.strftime("%H:%M %Z"),
            r.occurrence.end.strftime("%H:%M %Z")
        )
    });
    let names: Vec<&str> = rows
        .iter()
        .map(|r| inv.cluster(r.cluster).name.as_str())
        .collect();
    let clusters = if names.len() <= 3 {
        names.join(", ")
    } else {
        format!("{} clusters ({}, …)", names.len(), names[..2].join(", "))
    };
    json!({
        "cluster": clusters,
        "window": w.name,
        "owner": inv.owner_name(w.owner),
        "times": format!("{}–{}", clock_on(&s, day), clock_on(&e, day)),
        "own": own_times,
    })
}

/// Query of the iCalendar file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcsParams {
    customer: Option<String>,
    cluster: Option<String>,
}

/// `GET /ui/windows.ics`: the next 180 days of the page's windows as an iCalendar file.
///
/// # Errors
/// [`PageError`] 400 naming a bad parameter.
pub async fn ics<S: Store>(
    signed: Signed,
    State(_state): State<AppState<S>>,
    params: Result<Query<IcsParams>, QueryRejection>,
) -> Result<Response, PageError> {
    let p = query(params)?;
    let caller = &signed.caller;
    let customer = customer_filter(caller, p.customer.as_deref())?;
    let filter = filter(caller, p.cluster.as_deref())?;
    let now = clock::now();
    let listed = rows(caller, customer.as_deref(), filter, now, now + ICS_AHEAD)?;
    let body = failover_core::ics::calendar(caller.inventory(), &listed, now);
    Ok((
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"maintenance-windows.ics\"",
            ),
        ],
        body,
    )
        .into_response())
}

/// The subscribe form's fields: the Windows page's filters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeForm {
    csrf: Option<String>,
    customer: Option<String>,
    cluster: Option<String>,
}

/// `POST /ui/windows/subscribe`: a link a calendar app can subscribe to (it cannot sign in):
/// the feed of the page's filters, with a token that only reads this feed, for a year.
///
/// # Errors
/// [`PageError`] 403 without the CSRF token, 400 for a bad filter.
pub async fn subscribe<S: Store>(
    signed: Signed,
    State(state): State<AppState<S>>,
    form: Result<axum::extract::Form<SubscribeForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let form = super::form(form)?;
    signed.check_csrf(form.csrf.as_deref())?;
    let caller = &signed.caller;
    let customer = customer_filter(caller, form.customer.as_deref())?;
    filter(caller, form.cluster.as_deref())?;
    let token = super::session::new_feed(&state, &signed).await?;
    let mut path = format!("/ui/feed.ics?token={token}");
    if let Some(f) = feed_filter(caller, customer.as_deref(), form.cluster.as_deref()) {
        path.push_str(&format!("&{f}"));
    }
    // Never from the request's `Host`: a forged one would hand out a link to another site
    // carrying a valid token.
    let base = caller.inventory().public_url.clone();
    let url = format!("{}{path}", base.as_deref().unwrap_or_default());
    Ok(page(
        StatusCode::OK,
        "feed.html",
        json!({
            "title": "Subscribe",
            "tab": "windows",
            "me": signed.context(),
            "url": url,
            "full": base.is_some(),
            "days": ICS_AHEAD.as_hours() / 24,
        }),
    ))
}

/// Query of the subscription feed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedParams {
    token: Option<String>,
    customer: Option<String>,
    cluster: Option<String>,
}

/// `GET /ui/feed.ics?token=...`: the iCalendar feed for calendar apps, authorised by its
/// token instead of a session.
///
/// # Errors
/// [`PageError`] 401 for a missing, ended or wrong token, 400 for a bad filter.
pub async fn feed<S: Store>(
    State(state): State<AppState<S>>,
    params: Result<Query<FeedParams>, QueryRejection>,
) -> Result<Response, PageError> {
    let p = query(params)?;
    let token = p.token.as_deref().unwrap_or_default();
    let Some(caller) = super::session::feed_caller(&state, token).await? else {
        return Err(ApiError::client(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "this calendar link is not valid (any more): make a new one on the Windows page",
        )
        .into());
    };
    let customer = customer_filter(&caller, p.customer.as_deref())?;
    let filter = filter(&caller, p.cluster.as_deref())?;
    let now = clock::now();
    let listed = rows(&caller, customer.as_deref(), filter, now, now + ICS_AHEAD)?;
    let body = failover_core::ics::calendar(caller.inventory(), &listed, now);
    Ok((
        [(header::CONTENT_TYPE, "text/calendar; charset=utf-8")],
        body,
    )
        .into_response())
}
