//! Read and admin endpoints: events, windows, ad-hoc maintenance, health, metrics.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use failover_core::body;
use failover_core::inventory::Verdict;
use failover_core::limits;
use failover_core::listing::{self, Filter};
use failover_core::window::Owner;
use failover_store::{
    EventDetail, EventId, EventQuery, Maintenance, NewMaintenance, Store, TargetKind,
};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{AddedMaintenance, ErrorBody, ErrorCode, EventsPage, MaintenanceList};
use crate::auth::Caller;
use crate::clock;
use crate::error::ApiError;
use crate::state::AppState;

/// The parsed query string, or a 400 that says what is wrong with it and names the
/// parameter.
pub(crate) fn query<T>(params: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    params.map(|Query(p)| p).map_err(|e| {
        let message = e.body_text();
        let detail = message
            .strip_prefix("Failed to deserialize query string: ")
            .unwrap_or(&message);
        ApiError::Client {
            status: StatusCode::BAD_REQUEST,
            code: ErrorCode::InvalidQuery,
            field: query_field(detail),
            message: format!("the query string: {detail}"),
        }
    })
}

/// The parameter a query-string error is about: `limit: invalid digit`, ``unknown field
/// `bogus` ``, ``duplicate field `limit` ``.
fn query_field(detail: &str) -> Option<String> {
    let quoted = ["unknown field `", "duplicate field `"]
        .iter()
        .find_map(|p| detail.split_once(p))
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(name, _)| name);
    let prefixed = detail
        .split_once(": ")
        .map(|(name, _)| name)
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    quoted.or(prefixed).map(str::to_owned)
}

/// An RFC 3339 instant within the supported years, or a 400 naming `field`.
fn time(field: &str, s: &str) -> Result<Timestamp, ApiError> {
    let t = s.parse().map_err(|_| {
        ApiError::field(
            field,
            format!("`{field}` is not an RFC 3339 time such as `2026-12-09T21:14:03Z`: `{s}`"),
        )
    })?;
    limits::instant(field, t).map_err(|e| ApiError::field(field, e.to_string()))
}

/// `a + d`, or a 400 naming `field` when it leaves the supported years.
fn later(field: &str, a: Timestamp, d: SignedDuration) -> Result<Timestamp, ApiError> {
    let t = a
        .checked_add(d)
        .map_err(|_| ApiError::field(field, format!("`{field}` is out of range")))?;
    limits::instant(field, t).map_err(|e| ApiError::field(field, e.to_string()))
}

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsParams {
    /// Only this cluster's events.
    cluster: Option<String>,
    /// Only events with this verdict.
    #[param(value_type = Option<Verdict>)]
    verdict: Option<String>,
    /// Only events since this instant (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only events older than this id: the `next` of the previous page.
    before: Option<i64>,
    /// At most this many (1 to 1000; default 100).
    limit: Option<u32>,
}

/// `GET /v1/events`: newest first, `next` holds the query for the following page.
///
/// # Errors
/// 400 for a bad filter, 401 without a key.
#[utoipa::path(get, path = "/v1/events", operation_id = "listEvents", params(EventsParams),
    responses((status = 200, description = "newest first", body = EventsPage)))]
pub async fn events<S: Store>(
    caller: Caller,
    State(state): State<AppState<S>>,
    params: Result<Query<EventsParams>, QueryRejection>,
) -> Result<Json<EventsPage>, ApiError> {
    let p = query(params)?;
    let verdict = p
        .verdict
        .as_deref()
        .map(|v| {
            Verdict::from_name(v).ok_or_else(|| {
                let names: Vec<&str> = Verdict::ALL.iter().map(|v| v.as_str()).collect();
                ApiError::field(
                    "verdict",
                    format!("`verdict` must be one of {}, not `{v}`", names.join(", ")),
                )
            })
        })
        .transpose()?;
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let events = state
        .store
        .events(EventQuery {
            cluster: p.cluster.clone(),
            verdict,
            since: p.since.as_deref().map(|s| time("since", s)).transpose()?,
            customers: caller.customer_name().map(|c| vec![c.to_owned()]),
            before: p.before,
            limit,
        })
        .await?;
    let next = (events.len() == limit as usize)
        .then(|| events.last().map(|e| format!("before={}", e.id)))
        .flatten();
    Ok(Json(EventsPage { events, next }))
}

/// `GET /v1/events/{id}`: one event with its reports, in the order received, and its
/// deliveries. A customer's key sees only its customer's events; any other id is a 404.
///
/// # Errors
/// 404 when there is no such event for this key, 401 without a key.
#[utoipa::path(get, path = "/v1/events/{id}", operation_id = "getEvent",
    params(("id" = String, Path, description = "the event's id, as a report's answer gives it")),
    responses((status = 200, description = "the event with its reports and deliveries", body = EventDetail),
        (status = 404, description = "no such event for this key", body = ErrorBody)))]
pub async fn event<S: Store>(
    caller: Caller,
    State(state): State<AppState<S>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<EventDetail>, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::field("id", e.body_text()))?;
    let found = state.store.event(&EventId(id.clone())).await?.filter(|d| {
        caller
            .customer_name()
            .is_none_or(|mine| d.event.event.customer.as_deref() == Some(mine))
    });
    found.map(Json).ok_or_else(|| {
        ApiError::client(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("no event `{id}`"),
        )
    })
}

/// Query of `GET /v1/windows`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WindowsParams {
    /// Start of the span (RFC 3339; default now).
    #[param(format = DateTime)]
    from: Option<String>,
    /// End of the span (RFC 3339; default 31 days after `from`, at most 400 days after).
    #[param(format = DateTime)]
    to: Option<String>,
    /// Only this cluster's windows.
    cluster: Option<String>,
}

/// The occurrences asked for, limited to the key's customer for a customer's key.
fn listed(
    caller: &Caller,
    params: Result<Query<WindowsParams>, QueryRejection>,
) -> Result<Vec<listing::Listed>, ApiError> {
    let (inv, key) = (caller.inventory(), caller.key());
    let p = query(params)?;
    let from = p
        .from
        .as_deref()
        .map_or(Ok(clock::now()), |s| time("from", s))?;
    let to = match &p.to {
        Some(s) => time("to", s)?,
        None => from
            .checked_add(SignedDuration::from_hours(31 * 24))
            .map_or(limits::LATEST, |t| t.min(limits::LATEST)),
    };
    if to <= from || to.duration_since(from) > limits::MAX_SPAN {
        return Err(ApiError::field(
            "to",
            "`to` must be after `from` and at most 400 days later",
        ));
    }
    // Another customer's cluster is answered exactly like one that does not exist.
    let filter = match &p.cluster {
        Some(c) => Filter::Cluster(
            inv.find_cluster(c)
                .filter(|&id| key.customer.is_none() || inv.cluster(id).customer == key.customer)
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
#[utoipa::path(get, path = "/v1/windows", operation_id = "listWindows", params(WindowsParams),
    responses((status = 200, description = "the window occurrences in the span, as `windows --format json` prints them", body = Vec<Object>)))]
pub async fn windows(
    caller: Caller,
    params: Result<Query<WindowsParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let rows = listed(&caller, params)?;
    let inv = caller.inventory();
    Ok(Json(json!(
        rows.iter().map(|r| r.view(inv)).collect::<Vec<_>>()
    )))
}

/// `GET /v1/windows.ics`: the same as an iCalendar feed.
///
/// # Errors
/// 401 without a key, 400 for bad times or an unknown cluster.
#[utoipa::path(get, path = "/v1/windows.ics", operation_id = "windowsCalendar", params(WindowsParams),
    responses((status = 200, description = "the same occurrences as an RFC 5545 calendar", content_type = "text/calendar", body = String)))]
pub async fn windows_ics(
    caller: Caller,
    params: Result<Query<WindowsParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let rows = listed(&caller, params)?;
    let body = failover_core::ics::calendar(caller.inventory(), &rows, clock::now());
    Ok((
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

/// The fields of `POST /v1/maintenance`: exactly one target, an end or a duration, a reason.
const MAINTENANCE_FIELDS: [&str; 7] = [
    "node", "cluster", "customer", "start", "end", "duration", "reason",
];
/// Longest accepted `reason`, in bytes.
const MAX_REASON: usize = 1024;
/// How far back an ad-hoc window may start.
const MAX_START_PAST: SignedDuration = SignedDuration::from_hours(24);
/// How far ahead an ad-hoc window may start.
const MAX_START_AHEAD: SignedDuration = SignedDuration::from_hours(365 * 24);

/// `POST /v1/maintenance`: an ad-hoc window that counts in classification at once. It must
/// start between a day ago and a year ahead, end after its start and in the future, and
/// last at most `[maintenance] max_duration`.
///
/// # Errors
/// 400 naming the field (another customer's target is unknown).
#[utoipa::path(post, path = "/v1/maintenance", operation_id = "addMaintenance", request_body = WindowRequest,
    responses((status = 201, description = "the window, and the unplanned failovers it now covers", body = AddedMaintenance,
        links(("EndMaintenance" = (operation_id = "endMaintenance", parameters(("id" = "$response.body#/id"))))))))]
pub async fn add_maintenance<S: Store>(
    caller: Caller,
    State(state): State<AppState<S>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<AddedMaintenance>), ApiError> {
    caller.may_change()?;
    let body =
        body.map_err(|e| ApiError::client(e.status(), ErrorCode::InvalidBody, e.body_text()))?;
    let [node, cluster, customer, start, end, duration, reason] =
        body::strings(&body, &MAINTENANCE_FIELDS).map_err(|e| match e.field() {
            Some(f) => ApiError::field(f, e.to_string()),
            None => ApiError::client(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidJson,
                e.to_string(),
            ),
        })?;
    let asked = WindowRequest {
        node,
        cluster,
        customer,
        start,
        end,
        duration,
        reason,
    };
    let window = new_window(&caller, asked, clock::now())?;
    let added = add_window(&state, &caller, window).await?;
    Ok((StatusCode::CREATED, Json(added)))
}

/// An ad-hoc window as asked for (the JSON body, or the dashboard's form): exactly one of
/// `node`, `cluster` or `customer`; exactly one of `end` or `duration`.
#[derive(Debug, Default, utoipa::ToSchema)]
#[schema(example = json!({"cluster": "db", "duration": "2h", "reason": "kernel update"}))]
pub struct WindowRequest {
    /// A node's inventory name.
    pub(crate) node: Option<String>,
    /// A cluster's name.
    pub(crate) cluster: Option<String>,
    /// A customer's name.
    pub(crate) customer: Option<String>,
    /// RFC 3339, from a day ago to a year ahead (default: now).
    #[schema(format = DateTime)]
    pub(crate) start: Option<String>,
    /// RFC 3339, after the start and in the future.
    #[schema(format = DateTime)]
    pub(crate) end: Option<String>,
    /// Such as `2h` or `90m`, at most `[maintenance] max_duration`.
    pub(crate) duration: Option<String>,
    /// Why (required; at most 1024 bytes, no control or bidirectional characters).
    #[schema(required = true, min_length = 1, max_length = 1024)]
    pub(crate) reason: Option<String>,
}

/// The window `asked` describes, checked against the caller's key and the limits, or a 400
/// naming the field (another customer's target is unknown, as one that does not exist).
pub(crate) fn new_window(
    caller: &Caller,
    asked: WindowRequest,
    now: Timestamp,
) -> Result<NewMaintenance, ApiError> {
    let (inv, key) = (caller.inventory(), caller.key());
    let WindowRequest {
        node,
        cluster,
        customer,
        start,
        end,
        duration,
        reason,
    } = asked;
    let (kind, target) = match (node, cluster, customer) {
        (Some(n), None, None) => (TargetKind::Node, n),
        (None, Some(c), None) => (TargetKind::Cluster, c),
        (None, None, Some(c)) => (TargetKind::Customer, c),
        _ => {
            return Err(ApiError::field(
                "cluster",
                "give exactly one of `node`, `cluster` or `customer`",
            ));
        }
    };
    // Another customer's target is answered exactly like one that does not exist.
    let customer = kind
        .owner(inv, &target)
        .map(|owner| match owner {
            Owner::Node(n) => inv.cluster(inv.node(n).cluster).customer,
            Owner::Cluster(c) => inv.cluster(c).customer,
            Owner::Customer(c) => Some(c),
        })
        .filter(|&customer| key.customer.is_none() || key.customer == customer)
        .ok_or_else(|| ApiError::field(kind.as_str(), format!("unknown {kind} `{target}`")))?;
    let start = match start.as_deref() {
        None => now,
        Some(s) => {
            let t = time("start", s)?;
            if now.duration_since(t) > MAX_START_PAST {
                return Err(ApiError::field(
                    "start",
                    "`start` must not be more than a day in the past",
                ));
            }
            if t.duration_since(now) > MAX_START_AHEAD {
                return Err(ApiError::field(
                    "start",
                    "`start` must not be more than a year ahead",
                ));
            }
            t
        }
    };
    let max = inv.maintenance.max_duration;
    let (field, end) = match (end, duration) {
        (Some(e), None) => ("end", time("end", &e)?),
        (None, Some(d)) => {
            let d = limits::parse_duration(&d).ok_or_else(|| {
                ApiError::field(
                    "duration",
                    format!("`duration` is not a duration such as `2h` or `90m`: `{d}`"),
                )
            })?;
            let d = limits::duration("duration", d, max)
                .map_err(|e| ApiError::field("duration", e.to_string()))?;
            ("duration", later("duration", start, d)?)
        }
        _ => {
            return Err(ApiError::field(
                "end",
                "give exactly one of `end` or `duration`",
            ));
        }
    };
    // However the end was given, an end that comes too early is `end`'s fault.
    if end <= start || end <= now {
        return Err(ApiError::field(
            "end",
            "the window must end after its start and in the future",
        ));
    }
    if end.duration_since(start) > max {
        return Err(ApiError::field(
            field,
            format!("the window may last at most {max:#} (`[maintenance] max_duration`)"),
        ));
    }
    let reason = reason
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| ApiError::field("reason", "`reason` is missing"))?;
    if reason.len() > MAX_REASON {
        return Err(ApiError::field(
            "reason",
            format!(
                "`reason` is {} bytes long; at most {MAX_REASON} are allowed",
                reason.len()
            ),
        ));
    }
    failover_core::text::check("reason", &reason)
        .map_err(|e| ApiError::field("reason", e.to_string()))?;
    Ok(NewMaintenance {
        target_kind: kind,
        target,
        customer: customer.map(|c| inv.customers[c.index()].name.clone()),
        start,
        end,
        reason,
        created_by: key.name.clone(),
    })
}

/// Stores `window`, puts it in force, and resolves the alerts of the unplanned failovers it
/// covers.
///
/// # Errors
/// [`ApiError`] when the store fails.
pub(crate) async fn add_window<S: Store>(
    state: &AppState<S>,
    caller: &Caller,
    window: NewMaintenance,
) -> Result<AddedMaintenance, ApiError> {
    let m = state.store.add_maintenance(window).await?;
    state.refresh_ad_hoc().await?;
    tracing::info!(id = m.id, target = %m.window.target, by = %caller.key().name, "ad-hoc maintenance window added");
    let resolves = crate::resolving::resolve_covered(state, &m).await;
    Ok(AddedMaintenance {
        window: m,
        resolves,
    })
}

/// `GET /v1/maintenance`: ad-hoc windows not yet ended.
///
/// # Errors
/// 401 without a key.
#[utoipa::path(get, path = "/v1/maintenance", operation_id = "listMaintenance",
    responses((status = 200, description = "ad-hoc windows not yet ended", body = MaintenanceList)))]
pub async fn list_maintenance<S: Store>(
    caller: Caller,
    State(state): State<AppState<S>>,
) -> Result<Json<MaintenanceList>, ApiError> {
    let mine = caller.customer_name().map(str::to_owned);
    let rows: Vec<Maintenance> = state
        .store
        .maintenance(clock::now())
        .await?
        .into_iter()
        .filter(|m| mine.is_none() || m.window.customer == mine)
        .collect();
    Ok(Json(MaintenanceList { maintenance: rows }))
}

/// `DELETE /v1/maintenance/{id}`: ends an ad-hoc window now.
///
/// # Errors
/// 404 when no such window is active for the caller's customer.
#[utoipa::path(delete, path = "/v1/maintenance/{id}", operation_id = "endMaintenance",
    params(("id" = i64, Path, description = "the window's id, as `GET /v1/maintenance` lists it")),
    responses((status = 204, description = "ended (or removed, had it not started)"),
        (status = 404, description = "no such active window for this key", body = ErrorBody)))]
pub async fn end_maintenance<S: Store>(
    caller: Caller,
    State(state): State<AppState<S>>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    caller.may_change()?;
    let Path(id) = id.map_err(|_| {
        ApiError::field(
            "id",
            "the window id in the path must be a number, as `GET /v1/maintenance` lists it",
        )
    })?;
    end_window(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends the caller's active ad-hoc window `id` now.
///
/// # Errors
/// 404 when no such window is active for the caller's customer.
pub(crate) async fn end_window<S: Store>(
    state: &AppState<S>,
    caller: &Caller,
    id: i64,
) -> Result<(), ApiError> {
    caller.may_change()?;
    let now = clock::now();
    let active = state.store.maintenance(now).await?;
    // Another customer's window is answered exactly like one that does not exist.
    let mine = active.iter().any(|m| {
        m.id == id
            && caller
                .customer_name()
                .is_none_or(|c| m.window.customer.as_deref() == Some(c))
    });
    if !mine {
        return Err(ApiError::client(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("no active maintenance window #{id}"),
        ));
    }
    state.store.end_maintenance(id, now).await?;
    state.refresh_ad_hoc().await?;
    tracing::info!(id, by = %caller.key().name, "ad-hoc maintenance window ended");
    Ok(())
}

/// `GET /healthz`: the store answers.
#[utoipa::path(get, path = "/healthz", operation_id = "health", security(()),
    responses((status = 200, description = "the store answers", body = Object),
        (status = 503, description = "the store does not answer", body = Object)))]
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
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", security(()),
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)))]
pub async fn metrics<S: Store>(State(state): State<AppState<S>>) -> Response {
    let queue = state.store.delivery_counts().await.unwrap_or_default();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&queue),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::query_field;

    #[test]
    fn a_query_string_error_names_its_parameter() {
        let field = |d: &str| query_field(d);
        assert_eq!(
            field("limit: invalid digit found in string").as_deref(),
            Some("limit")
        );
        assert_eq!(
            field("unknown field `days`, expected one of `from`, `to`").as_deref(),
            Some("days")
        );
        assert_eq!(field("duplicate field `limit`").as_deref(), Some("limit"));
        assert_eq!(field("something else: entirely"), None);
    }
}
