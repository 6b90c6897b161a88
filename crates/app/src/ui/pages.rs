//! The Now and Clusters pages.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use failover_core::inventory::{ClusterId, Inventory, Verdict};
use failover_core::listing::{self, Filter};
use failover_store::{EventQuery, Store, StoredEvent};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};

use super::session::{Signed, encode};
use super::text::{age, local, utc};
use super::{PageError, page};
use crate::auth::Caller;
use crate::clock;
use crate::error::ApiError;
use crate::query::query;
use crate::state::AppState;

/// Most events the Now page shows.
const NOW_LIMIT: u32 = 500;

/// Query of the Now page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NowParams {
    hours: Option<u32>,
    customer: Option<String>,
    cluster: Option<String>,
}

/// The customer the page is limited to: the key's own, or the one an admin asked for.
pub(crate) fn customer_filter(
    caller: &Caller,
    asked: Option<&str>,
) -> Result<Option<String>, ApiError> {
    if let Some(mine) = caller.customer_name() {
        return Ok(Some(mine.to_owned()));
    }
    match asked.filter(|c| !c.is_empty()) {
        None => Ok(None),
        Some(c) if caller.inventory().customers.iter().any(|x| x.name == c) => {
            Ok(Some(c.to_owned()))
        }
        Some(c) => Err(ApiError::field(
            "customer",
            format!("unknown customer `{c}`"),
        )),
    }
}

/// The zone of cluster `name` (UTC when it is no longer in the inventory).
pub(crate) fn zone_of(inv: &Inventory, name: Option<&str>) -> TimeZone {
    name.and_then(|n| inv.find_cluster(n))
        .map_or(TimeZone::UTC, |c| inv.cluster(c).time_zone.clone())
}

/// One event as a row of the Now page or a cluster's last failover.
pub(crate) fn event_row(inv: &Inventory, now: Timestamp, e: &StoredEvent) -> Value {
    let tz = zone_of(inv, e.event.cluster.as_deref());
    json!({
        "id": e.id.0,
        "verdict": e.event.verdict.as_str(),
        "flapping": e.event.flapping,
        "failback": e.event.failback_of.is_some(),
        // A node out of service without a takeover (keepalived FAULT, a fencing).
        "fault": e.event.context.fault,
        "fenced": e.event.context.fenced,
        "cluster": e.event.cluster,
        "customer": e.event.customer,
        "active": e.event.active,
        "previous": e.event.previous,
        "host": e.event.classification.get("host"),
        "age": age(now, e.event.at),
        "utc": utc(e.event.at),
        "local": local(e.event.at, &tz),
        "deliveries": e.deliveries.iter().map(|d| json!({
            "channel": d.channel, "status": d.status.as_str(),
        })).collect::<Vec<_>>(),
    })
}

/// Windows open at `now` that the caller may see: the inventory's occurrences and the
/// ad-hoc windows.
async fn open_now<S: Store>(
    state: &AppState<S>,
    caller: &Caller,
    customer: Option<&str>,
    now: Timestamp,
) -> Result<Vec<Value>, PageError> {
    let inv = caller.inventory();
    let visible = |c: Option<&str>| customer.is_none_or(|mine| c == Some(mine));
    let mut open = Vec::new();
    let rows = listing::occurrences(inv, now, now + SignedDuration::from_secs(1), Filter::All)
        .unwrap_or_default();
    for r in rows {
        let cluster = inv.cluster(r.cluster);
        let cust = cluster
            .customer
            .map(|c| inv.customers[c.index()].name.as_str());
        if !visible(cust) {
            continue;
        }
        let w = inv.window(r.window);
        open.push(json!({
            "what": format!("window “{}” of {}", w.name, inv.owner_name(w.owner)),
            "cluster": cluster.name,
            "until": local(r.occurrence.end.timestamp(), &w.time_zone),
        }));
    }
    for m in state.store.maintenance(now).await? {
        let w = &m.window;
        if w.start > now || !visible(w.customer.as_deref()) {
            continue;
        }
        open.push(json!({
            "what": format!("maintenance #{} on {} {}: {}", m.id, w.target_kind, w.target, w.reason),
            "cluster": Value::Null,
            "until": utc(w.end),
        }));
    }
    Ok(open)
}

/// `GET /ui/now`: the failovers of the last hours, unplanned first, counts per verdict, and
/// the windows open now.
///
/// # Errors
/// [`PageError`] 400 for a bad filter, 503 when the store fails.
pub async fn now<S: Store>(
    signed: Signed,
    State(state): State<AppState<S>>,
    params: Result<Query<NowParams>, QueryRejection>,
) -> Result<Response, PageError> {
    let p = query(params)?;
    let caller = &signed.caller;
    let inv = caller.inventory();
    let hours = p.hours.unwrap_or(24).clamp(1, 24 * 31);
    let customer = customer_filter(caller, p.customer.as_deref())?;
    let cluster = p.cluster.filter(|c| !c.is_empty());
    let now = clock::now();
    let events = state
        .store
        .events(EventQuery {
            cluster: cluster.clone(),
            since: Some(now - SignedDuration::from_hours(i64::from(hours))),
            customers: customer.clone().map(|c| vec![c]),
            limit: NOW_LIMIT,
            ..EventQuery::default()
        })
        .await?;
    let counts: Vec<Value> = Verdict::ALL
        .iter()
        .map(|v| json!({"verdict": v.as_str(), "count": events.iter().filter(|e| e.event.verdict == *v).count()}))
        .collect();
    // Unplanned first, then the rest; newest first within each.
    let (mut rows, rest): (Vec<&StoredEvent>, Vec<&StoredEvent>) = events
        .iter()
        .partition(|e| e.event.verdict == Verdict::Unplanned);
    rows.extend(rest);
    let open = open_now(&state, caller, customer.as_deref(), now).await?;
    Ok(page(
        StatusCode::OK,
        "now.html",
        json!({
            "title": "Now",
            "tab": "now",
            "me": signed.context(),
            "hours": hours,
            "customer": customer,
            "cluster": cluster,
            "customers": customer_names(caller),
            "counts": counts,
            "events": rows.iter().map(|e| event_row(inv, now, e)).collect::<Vec<_>>(),
            "truncated": events.len() == NOW_LIMIT as usize,
            "open": open,
            "now": utc(now),
        }),
    ))
}

/// The customers an admin may filter by (none for a customer's key).
pub(crate) fn customer_names(caller: &Caller) -> Vec<&str> {
    if caller.customer_name().is_some() {
        return Vec::new();
    }
    caller
        .inventory()
        .customers
        .iter()
        .map(|c| c.name.as_str())
        .collect()
}

/// Query of the Clusters page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClustersParams {
    customer: Option<String>,
    q: Option<String>,
    page: Option<u32>,
}

/// Clusters on one page of the Clusters view (each reads its last event).
const CLUSTERS_PER_PAGE: usize = 100;

/// `GET /ui/clusters`: each cluster with its nodes, the node active now, its last failover
/// and its next window; a cluster away from its usual node (its first) for longer than the
/// failback interval is flagged.
///
/// # Errors
/// [`PageError`] 400 for a bad filter, 503 when the store fails.
pub async fn clusters<S: Store>(
    signed: Signed,
    State(state): State<AppState<S>>,
    params: Result<Query<ClustersParams>, QueryRejection>,
) -> Result<Response, PageError> {
    let p = query(params)?;
    let caller = &signed.caller;
    let inv = caller.inventory();
    let customer = customer_filter(caller, p.customer.as_deref())?;
    let q = p.q.filter(|q| !q.is_empty());
    let now = clock::now();
    let matching: Vec<usize> = (0..inv.clusters.len())
        .filter(|&i| {
            let c = &inv.clusters[i];
            let cust = c.customer.map(|x| inv.customers[x.index()].name.as_str());
            customer.as_deref().is_none_or(|mine| cust == Some(mine))
                && q.as_deref().is_none_or(|q| c.name.contains(q))
        })
        .collect();
    let pages = matching.len().div_ceil(CLUSTERS_PER_PAGE).max(1);
    let shown = (p.page.unwrap_or(1).max(1) as usize).min(pages);
    let page_link = |n: usize| {
        let mut link = format!("/ui/clusters?page={n}");
        if let Some(c) = customer
            .as_deref()
            .filter(|_| caller.customer_name().is_none())
        {
            link.push_str(&format!("&customer={}", encode(c)));
        }
        if let Some(q) = q.as_deref() {
            link.push_str(&format!("&q={}", encode(q)));
        }
        link
    };
    let mut rows = Vec::new();
    for &i in matching
        .iter()
        .skip((shown - 1) * CLUSTERS_PER_PAGE)
        .take(CLUSTERS_PER_PAGE)
    {
        let c = &inv.clusters[i];
        let cust = c.customer.map(|x| inv.customers[x.index()].name.as_str());
        // The newest event, and the newest that made a node active (a release, a fault or a
        // fencing makes none).
        let recent = state
            .store
            .events(EventQuery {
                cluster: Some(c.name.clone()),
                limit: 10,
                ..EventQuery::default()
            })
            .await?;
        let last = recent.first();
        let took_over = recent.iter().find(|e| e.event.active.is_some());
        let first = c.nodes.first().map(|n| inv.node(*n).name.as_str());
        let usual = inv.usual_node(ClusterId(i as u32), first);
        let active = took_over.and_then(|e| e.event.active.clone());
        let away = match (took_over, active.as_deref(), usual) {
            (Some(e), Some(a), Some(u)) => {
                a != u && now.duration_since(e.event.at) > inv.events.failback_within
            }
            _ => false,
        };
        let upcoming = listing::occurrences(
            inv,
            now,
            now + SignedDuration::from_hours(62 * 24),
            Filter::Cluster(ClusterId(i as u32)),
        )
        .unwrap_or_default();
        let next = upcoming.first().map(|r| {
            let w = inv.window(r.window);
            json!({
                "name": w.name,
                "owner": inv.owner_name(w.owner),
                "open": r.occurrence.start.timestamp() <= now,
                "start": local(r.occurrence.start.timestamp(), &w.time_zone),
                "in": age(now, r.occurrence.start.timestamp()),
            })
        });
        rows.push(json!({
            "name": c.name,
            "customer": cust,
            "nodes": c.nodes.iter().map(|&n| inv.node(n).name.as_str()).collect::<Vec<_>>(),
            "usual": usual,
            "active": active,
            "away": away,
            "last": last.map(|e| event_row(inv, now, e)),
            "next": next,
        }));
    }
    Ok(page(
        StatusCode::OK,
        "clusters.html",
        json!({
            "title": "Clusters",
            "tab": "clusters",
            "me": signed.context(),
            "customer": customer,
            "customers": customer_names(caller),
            "clusters": rows,
            "page": shown,
            "pages": pages,
            "prev": (shown > 1).then(|| page_link(shown - 1)),
            "next": (shown < pages).then(|| page_link(shown + 1)),
            "q": q,
            "matching": matching.len(),
            "failback": format!("{:#}", inv.events.failback_within),
        }),
    ))
}
