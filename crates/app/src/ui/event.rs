//! One event's page: its reports as a timeline, why the verdict, each delivery, and "send
//! again" for a failed one.

use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use failover_core::inventory::{Inventory, Verdict};
use failover_store::{EventDetail, EventId, Store, StoredEvent};
use jiff::SignedDuration;
use jiff::tz::TimeZone;
use serde::Deserialize;
use serde_json::{Value, json};

use super::pages::{event_row, zone_of};
use super::session::{CsrfForm, Signed};
use super::text::{local, utc};
use super::{PageError, page};
use crate::api::ErrorCode;
use crate::auth::Caller;
use crate::clock;
use crate::error::ApiError;
use crate::query::query;
use crate::state::AppState;

/// Query of the Event page.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    resent: Option<i64>,
}

/// The event `id` if the caller may see it, else a 404 that says nothing of other customers.
async fn visible_event<S: Store>(
    state: &AppState<S>,
    caller: &Caller,
    id: &str,
) -> Result<EventDetail, PageError> {
    let found = if id.len() <= 64 {
        state.store.event(&EventId(id.to_owned())).await?
    } else {
        None
    };
    found
        .filter(|d| {
            caller
                .customer_name()
                .is_none_or(|mine| d.event.event.customer.as_deref() == Some(mine))
        })
        .ok_or_else(|| {
            ApiError::client(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                format!("no event `{id}`"),
            )
            .into()
        })
}

/// Why the verdict was reached, in words.
fn explanation(inv: &Inventory, e: &StoredEvent, tz: &TimeZone) -> String {
    let at = local(e.event.at, tz);
    let c = &e.event.classification;
    let host = c.get("host").and_then(Value::as_str).unwrap_or("?");
    let cluster = e.event.cluster.as_deref().unwrap_or("?");
    let known = |s: &str| if s.is_empty() { "?" } else { s }.to_owned();
    let (usual, back_by) = (
        known(&e.event.context.usual),
        known(&e.event.context.back_by),
    );
    match e.event.verdict {
        Verdict::Planned => {
            let w = &c["window"];
            let s = |k: &str| w.get(k).and_then(Value::as_str).unwrap_or("?").to_owned();
            let back = match e.event.back_by {
                Some(_) => format!(
                    " Expected back on {} by {}; a reminder goes out if it is not.",
                    usual, back_by
                ),
                None => String::new(),
            };
            format!(
                "Planned: {host} reported at {at}, inside window “{}” of {} ({} to {}, {}).{back}",
                s("name"),
                s("owner"),
                s("start"),
                s("end"),
                s("time_zone")
            )
        }
        Verdict::Back => format!(
            "Back: {cluster} failed back to {host} at {at}, after the window of the planned failover it undoes: it was expected back by {back_by}."
        ),
        Verdict::Unplanned => format!(
            "Unplanned: no maintenance window of {cluster} was open at {at}, when {host} reported."
        ),
        Verdict::UnknownHost => format!(
            "Unknown host: {host} is not a node (or alias) of any cluster in the inventory ({} clusters).",
            inv.clusters.len()
        ),
        Verdict::ClusterStart => format!(
            "Cluster start: the first report recorded from {cluster} ({host} at {at}) is taken as the cluster starting, not as a failover."
        ),
    }
}

/// `GET /ui/events/{id}`: the event's reports as a timeline, why the verdict, and each
/// delivery with "send again" when it failed.
///
/// # Errors
/// [`PageError`] 404 when the caller may not see such an event, 503 when the store fails.
pub async fn show<S: Store>(
    signed: Signed,
    State(state): State<AppState<S>>,
    Path(id): Path<String>,
    params: Result<Query<EventParams>, QueryRejection>,
) -> Result<Response, PageError> {
    let p = query(params)?;
    let caller = &signed.caller;
    let inv = caller.inventory();
    let detail = visible_event(&state, caller, &id).await?;
    let e = &detail.event;
    let tz = zone_of(inv, e.event.cluster.as_deref());
    let now = clock::now();
    let reports: Vec<Value> = detail
        .received
        .iter()
        .map(|r| {
            json!({
                "host": r.host,
                "action": r.action,
                "previous": r.previous,
                "resource": r.resource,
                "source": r.source,
                "occurred": local(r.occurred_at, &tz),
                "received": utc(r.received_at),
                "late": r.received_at.duration_since(r.occurred_at) > SignedDuration::from_secs(60),
            })
        })
        .collect();
    let deliveries: Vec<Value> = e
        .deliveries
        .iter()
        .map(|d| {
            json!({
                "id": d.id,
                "channel": d.channel,
                "status": d.status.as_str(),
                "attempts": d.attempts,
                "error": d.last_error,
                "finished": d.finished_at.map(utc),
                "resent": p.resent == Some(d.id),
                "reminder": d.reminder,
                "resolve": d.resolve,
            })
        })
        .collect();
    Ok(page(
        StatusCode::OK,
        "event.html",
        json!({
            "title": format!("Event {}", e.id),
            "tab": "now",
            "me": signed.context(),
            "event": event_row(inv, now, e),
            "failback_of": e.event.failback_of.as_ref().map(|f| &f.0),
            "why": explanation(inv, e, &tz),
            "zone": tz.iana_name().unwrap_or("UTC"),
            "reports": reports,
            "deliveries": deliveries,
            "back_by": e.event.context.back_by,
        }),
    ))
}

/// `POST /ui/events/{id}/deliveries/{delivery}/resend`: sends a failed delivery again.
///
/// # Errors
/// [`PageError`] 403 without the CSRF token or for a viewer key, 404 for an event the
/// caller may not see, 409 when the delivery has not failed.
pub async fn resend<S: Store>(
    signed: Signed,
    State(state): State<AppState<S>>,
    ids: Result<Path<(String, i64)>, PathRejection>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, PageError> {
    let ((id, delivery), form) = (super::path(ids)?, super::form(form)?);
    signed.check_csrf(form.csrf())?;
    let caller = &signed.caller;
    caller.may_change()?;
    let detail = visible_event(&state, caller, &id).await?;
    if !state
        .store
        .resend(&detail.event.id, delivery, clock::now())
        .await?
    {
        return Err(ApiError::client(
            StatusCode::CONFLICT,
            ErrorCode::NotFailed,
            format!("delivery {delivery} of event {id} has not failed: nothing to send again"),
        )
        .into());
    }
    state.wake.notify_one();
    tracing::info!(event = %id, delivery, by = %caller.key().name, "failed delivery sent again");
    Ok(Redirect::to(&format!("/ui/events/{id}?resent={delivery}")).into_response())
}
