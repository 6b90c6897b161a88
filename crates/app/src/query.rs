//! Read and admin endpoints: events, windows, ad-hoc maintenance, health, metrics.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use failover_core::inventory::{ApiKey, Inventory};
use failover_core::listing::{self, Filter};
use failover_core::window::Owner;
use failover_store::{EventQuery, Maintenance, NewMaintenance, Store};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::clock;
use crate::error::ApiError;
use crate::state::{AppState, authorize, target_owner};

/// The parsed query string, or a 400 that says what is wrong with it.
fn query<T>(params: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    params
        .map(|Query(p)| p)
        .map_err(|e| ApiError::client(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))
}

fn customer_name(inv: &Inventory, key: &ApiKey) -> Option<String> {
    key.customer.map(|c| inv.customers[c.index()].name.clone())
}

fn time(field: &str, s: &str) -> Result<Timestamp, ApiError> {
    s.parse().map_err(|_| {
        ApiError::field(
            field,
            format!("`{field}` is not an RFC 3339 time such as `2026-12-09T21:14:03Z`: `{s}`"),
        )
    })
}

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsParams {
    cluster: Option<String>,
    verdict: Option<String>,
    since: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

/// `GET /v1/events`: newest first, `next` holds the query for the following page.
///
/// # Errors
/// 400 for a bad filter, 401 without a key.
pub async fn events<S: Store>(
    State(state): State<AppState<S>>,
    headers: HeaderMap,
    params: Result<Query<EventsParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let live = state.live();
    let key = authorize(&live.inventory, &headers)?;
    let p = query(params)?;
    if let Some(v) = &p.verdict
        && !["planned", "unplanned", "unknown-host"].contains(&v.as_str())
    {
        return Err(ApiError::field(
            "verdict",
            format!("`verdict` must be planned, unplanned or unknown-host, not `{v}`"),
        ));
    }
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let events = state
        .store
        .events(EventQuery {
            cluster: p.cluster.clone(),
            verdict: p.verdict.clone(),
            since: p.since.as_deref().map(|s| time("since", s)).transpose()?,
            customers: customer_name(&live.inventory, key).map(|c| vec![c]),
            before: p.before,
            limit,
        })
        .await?;
    let next = (events.len() == limit as usize)
        .then(|| events.last().map(|e| format!("before={}", e.id)))
        .flatten();
    Ok(Json(json!({ "events": events, "next": next })))
}

/// Query of `GET /v1/windows`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowsParams {
    from: Option<String>,
    to: Option<String>,
    cluster: Option<String>,
}

/// The occurrences asked for, limited to the key's customer for a customer's key.
fn listed(
    inv: &Inventory,
    headers: &HeaderMap,
    params: Result<Query<WindowsParams>, QueryRejection>,
) -> Result<Vec<listing::Listed>, ApiError> {
    let key = authorize(inv, headers)?;
    let p = query(params)?;
    let from = p
        .from
        .as_deref()
        .map_or(Ok(clock::now()), |s| time("from", s))?;
    let to = match &p.to {
        Some(s) => time("to", s)?,
        None => from + SignedDuration::from_hours(31 * 24),
    };
    if to <= from || to.duration_since(from) > SignedDuration::from_hours(400 * 24) {
        return Err(ApiError::field(
            "to",
            "`to` must be after `from` and at most 400 days later",
        ));
    }
    let filter = match &p.cluster {
        Some(c) => Filter::Cluster(
            inv.find_cluster(c)
                .ok_or_else(|| ApiError::field("cluster", format!("unknown cluster `{c}`")))?,
        ),
        None => Filter::All,
    };
    let mut rows = listing::occurrences(inv, from, to, filter)
        .map_err(|e| ApiError::field("from", e.to_string()))?;
    if key.customer.is_some() {
        rows.retain(|r| inv.cluster(r.cluster).customer == key.customer);
    }
    Ok(rows)
}

/// `GET /v1/windows`: occurrences as JSON (the `windows --format json` rows).
///
/// # Errors
/// 401 without a key, 400 for bad times or an unknown cluster.
pub async fn windows<S: Store>(
    State(state): State<AppState<S>>,
    headers: HeaderMap,
    params: Result<Query<WindowsParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let inv = Arc::clone(&state.live().inventory);
    let rows = listed(&inv, &headers, params)?;
    Ok(Json(json!(
        rows.iter().map(|r| r.view(&inv)).collect::<Vec<_>>()
    )))
}

/// `GET /v1/windows.ics`: the same as an iCalendar feed.
///
/// # Errors
/// 401 without a key, 400 for bad times or an unknown cluster.
pub async fn windows_ics<S: Store>(
    State(state): State<AppState<S>>,
    headers: HeaderMap,
    params: Result<Query<WindowsParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let inv = Arc::clone(&state.live().inventory);
    let rows = listed(&inv, &headers, params)?;
    let body = failover_core::ics::calendar(&inv, &rows, clock::now());
    Ok((
        [(header::CONTENT_TYPE, "text/calendar; charset=utf-8")],
        body,
    )
        .into_response())
}

/// Body of `POST /v1/maintenance`: exactly one target, an end or a duration, a reason.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceBody {
    node: Option<String>,
    cluster: Option<String>,
    customer: Option<String>,
    start: Option<String>,
    end: Option<String>,
    duration: Option<String>,
    reason: Option<String>,
}

/// `POST /v1/maintenance`: an ad-hoc window that counts in classification at once.
///
/// # Errors
/// 400 naming the field, 403 for another customer's target.
pub async fn add_maintenance<S: Store>(
    State(state): State<AppState<S>>,
    headers: HeaderMap,
    body: Result<Json<MaintenanceBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Maintenance>), ApiError> {
    let live = state.live();
    let inv = &live.inventory;
    let key = authorize(inv, &headers)?;
    let Json(b) =
        body.map_err(|e| ApiError::client(StatusCode::BAD_REQUEST, "invalid_json", e.body_text()))?;
    let (kind, target) = match (&b.node, &b.cluster, &b.customer) {
        (Some(n), None, None) => ("node", n),
        (None, Some(c), None) => ("cluster", c),
        (None, None, Some(c)) => ("customer", c),
        _ => {
            return Err(ApiError::field(
                "cluster",
                "give exactly one of `node`, `cluster` or `customer`",
            ));
        }
    };
    let owner = target_owner(inv, kind, target)
        .ok_or_else(|| ApiError::field(kind, format!("unknown {kind} `{target}`")))?;
    let customer = match owner {
        Owner::Node(n) => inv.cluster(inv.node(n).cluster).customer,
        Owner::Cluster(c) => inv.cluster(c).customer,
        Owner::Customer(c) => Some(c),
    };
    if key.customer.is_some() && key.customer != customer {
        return Err(ApiError::forbidden(format!(
            "{kind} `{target}` belongs to another customer than key `{}`",
            key.name
        )));
    }
    let now = clock::now();
    let start = b.start.as_deref().map_or(Ok(now), |s| time("start", s))?;
    let end = match (&b.end, &b.duration) {
        (Some(e), None) => time("end", e)?,
        (None, Some(d)) => {
            let span: jiff::Span = d.parse().map_err(|_| {
                ApiError::field(
                    "duration",
                    format!("`duration` is not a duration such as `2h` or `90m`: `{d}`"),
                )
            })?;
            let d = span
                .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
                .map_err(|_| ApiError::field("duration", "`duration` is out of range"))?;
            start + d
        }
        _ => {
            return Err(ApiError::field(
                "end",
                "give exactly one of `end` or `duration`",
            ));
        }
    };
    if end <= start || end <= now {
        return Err(ApiError::field(
            "end",
            "the window must end after its start and in the future",
        ));
    }
    let reason = b
        .reason
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| ApiError::field("reason", "`reason` is missing"))?;
    let m = state
        .store
        .add_maintenance(NewMaintenance {
            target_kind: kind.to_owned(),
            target: target.clone(),
            customer: customer.map(|c| inv.customers[c.index()].name.clone()),
            start,
            end,
            reason,
            created_by: key.name.clone(),
        })
        .await?;
    state.refresh_ad_hoc().await?;
    tracing::info!(id = m.id, target = %m.window.target, by = %key.name, "ad-hoc maintenance window added");
    Ok((StatusCode::CREATED, Json(m)))
}

/// `GET /v1/maintenance`: ad-hoc windows not yet ended.
///
/// # Errors
/// 401 without a key.
pub async fn list_maintenance<S: Store>(
    State(state): State<AppState<S>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let live = state.live();
    let key = authorize(&live.inventory, &headers)?;
    let mine = customer_name(&live.inventory, key);
    let rows: Vec<Maintenance> = state
        .store
        .maintenance(clock::now())
        .await?
        .into_iter()
        .filter(|m| mine.is_none() || m.window.customer == mine)
        .collect();
    Ok(Json(json!({ "maintenance": rows })))
}

/// `DELETE /v1/maintenance/{id}`: ends an ad-hoc window now.
///
/// # Errors
/// 404 when no such window is active, 403 for another customer's.
pub async fn end_maintenance<S: Store>(
    State(state): State<AppState<S>>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let live = state.live();
    let key = authorize(&live.inventory, &headers)?;
    let now = clock::now();
    let active = state.store.maintenance(now).await?;
    let Some(m) = active.iter().find(|m| m.id == id) else {
        return Err(ApiError::client(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no active maintenance window #{id}"),
        ));
    };
    if let Some(mine) = customer_name(&live.inventory, key)
        && m.window.customer.as_deref() != Some(mine.as_str())
    {
        return Err(ApiError::forbidden(format!(
            "maintenance window #{id} belongs to another customer"
        )));
    }
    state.store.end_maintenance(id, now).await?;
    state.refresh_ad_hoc().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /healthz`: the store answers.
pub async fn healthz<S: Store>(State(state): State<AppState<S>>) -> Response {
    match state.store.delivery_counts().await {
        Ok(_) => Json(json!({ "status": "ok" })).into_response(),
        Err(e) => {
            tracing::error!(error = ?e, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "store unavailable" })),
            )
                .into_response()
        }
    }
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics<S: Store>(State(state): State<AppState<S>>) -> Response {
    let queue = state.store.delivery_counts().await.unwrap_or_default();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&queue),
    )
        .into_response()
}
