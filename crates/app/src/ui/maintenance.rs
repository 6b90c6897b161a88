//! The Maintenance page: the open ad-hoc windows with "end now", and a form that adds one
//! on a node, cluster or customer, for a preset length or until an end time, after a
//! preview of the clusters it covers. The form is checked by the same code as
//! `POST /v1/maintenance`.

use axum::extract::rejection::{FormRejection, PathRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use failover_core::inventory::Inventory;
use failover_store::{NewMaintenance, Store, TargetKind};
use jiff::civil::DateTime;
use serde::Deserialize;
use serde_json::{Value, json};

use super::session::{CsrfForm, Signed};
use super::text::{local, utc, zone};
use super::{PageError, page};
use crate::auth::Caller;
use crate::clock;
use crate::error::ApiError;
use crate::query::{WindowRequest, add_window, end_window, new_window, query};
use crate::state::AppState;

/// The preset lengths offered.
const PRESETS: [&str; 5] = ["15m", "30m", "1h", "2h", "4h"];

/// The form's fields.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct WindowForm {
    target: Option<String>,
    preset: Option<String>,
    end: Option<String>,
    end_zone: Option<String>,
    reason: Option<String>,
    csrf: Option<String>,
    action: Option<String>,
}

/// The targets the caller may put into maintenance: `(kind:name, label)` by kind.
fn targets(caller: &Caller) -> Vec<Value> {
    let inv = caller.inventory();
    let mine = caller.key().customer;
    let clusters: Vec<_> = inv
        .clusters
        .iter()
        .filter(|c| mine.is_none() || c.customer == mine)
        .collect();
    let customers: Vec<Value> = inv
        .customers
        .iter()
        .enumerate()
        .filter(|(i, _)| mine.is_none_or(|m| m.index() == *i))
        .map(|(_, c)| json!({"value": format!("customer:{}", c.name), "label": format!("customer {} (all its clusters)", c.name)}))
        .collect();
    json!([
        {"group": "Clusters", "options": clusters.iter().map(|c| json!({"value": format!("cluster:{}", c.name), "label": c.name})).collect::<Vec<_>>()},
        {"group": "Nodes", "options": clusters.iter().flat_map(|c| c.nodes.iter().map(|&n| {
            let node = &inv.node(n).name;
            json!({"value": format!("node:{node}"), "label": format!("{node} ({})", c.name)})
        })).collect::<Vec<_>>()},
        {"group": "Customers", "options": customers},
    ])
    .as_array()
    .cloned()
    .unwrap_or_default()
}

/// The window the form asks for, checked as the API checks it.
fn asked(caller: &Caller, f: &WindowForm) -> Result<NewMaintenance, ApiError> {
    let mut req = WindowRequest::default();
    let target = f.target.as_deref().unwrap_or_default();
    let Some((kind, name)) = target.split_once(':') else {
        return Err(ApiError::field(
            "target",
            "choose what to put into maintenance",
        ));
    };
    let name = Some(name.to_owned());
    match TargetKind::from_name(kind) {
        Some(TargetKind::Node) => req.node = name,
        Some(TargetKind::Cluster) => req.cluster = name,
        Some(TargetKind::Customer) => req.customer = name,
        None => {
            return Err(ApiError::field(
                "target",
                format!("unknown target `{target}`"),
            ));
        }
    }
    let preset = f.preset.as_deref().filter(|p| !p.is_empty());
    let end = f.end.as_deref().filter(|e| !e.is_empty());
    match (preset, end) {
        (Some(p), None) => req.duration = Some(p.to_owned()),
        (None, Some(e)) => {
            let zone_name = f
                .end_zone
                .as_deref()
                .filter(|z| !z.is_empty())
                .unwrap_or("UTC");
            let tz = zone(zone_name).ok_or_else(|| {
                ApiError::field("end_zone", format!("unknown time zone `{zone_name}`"))
            })?;
            // A time in a DST gap moves forward, one in a fold takes the earlier instant.
            let dt = e.parse::<DateTime>().map_err(|_| {
                ApiError::field(
                    "end",
                    format!("`end` must be a date and time such as `2026-12-09T22:30`, not `{e}`"),
                )
            })?;
            let t = Some(dt)
                .filter(|dt| (1900..=2499).contains(&dt.year()))
                .and_then(|dt| dt.to_zoned_datetime(tz).ok())
                .ok_or_else(|| {
                    ApiError::field("end", format!("`end` must be from 1900 to 2499, not `{e}`"))
                })?;
            req.end = Some(t.timestamp().to_string());
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::field(
                "end",
                "choose a length or an end time, not both",
            ));
        }
        (None, None) => return Err(ApiError::field("preset", "choose a length or an end time")),
    }
    req.reason = f.reason.clone();
    new_window(caller, req, clock::now())
}

/// The clusters `w` covers, with its times in each one's zone.
fn covers(inv: &Inventory, w: &NewMaintenance) -> Vec<Value> {
    let Some(owner) = w.target_kind.owner(inv, &w.target) else {
        return Vec::new();
    };
    inv.clusters_of(owner)
        .into_iter()
        .map(|c| {
            let c = inv.cluster(c);
            json!({
                "cluster": c.name,
                "start": local(w.start, &c.time_zone),
                "end": local(w.end, &c.time_zone),
            })
        })
        .collect()
}

async fn render<S: Store>(
    state: &AppState<S>,
    signed: &Signed,
    status: StatusCode,
    form: &WindowForm,
    error: Option<ApiError>,
    preview: Option<Vec<Value>>,
    notice: Option<String>,
) -> Result<Response, PageError> {
    let caller = &signed.caller;
    let now = clock::now();
    let mine = caller.customer_name();
    let open: Vec<Value> = state
        .store
        .maintenance(now)
        .await?
        .into_iter()
        .filter(|m| mine.is_none() || m.window.customer.as_deref() == mine)
        .map(|m| {
            let w = &m.window;
            json!({
                "id": m.id,
                "target": format!("{} {}", w.target_kind, w.target),
                "start": utc(w.start),
                "end": utc(w.end),
                "started": w.start <= now,
                "reason": w.reason,
                "by": w.created_by,
            })
        })
        .collect();
    let error = error.map(|e| match e {
        ApiError::Client { message, field, .. } => json!({"message": message, "field": field}),
        other => json!({"message": other.to_string(), "field": null}),
    });
    let inv = caller.inventory();
    Ok(page(
        status,
        "maintenance.html",
        json!({
            "title": "Maintenance",
            "tab": "maintenance",
            "me": signed.context(),
            "open": open,
            "targets": targets(caller),
            "presets": PRESETS,
            "zones": super::calendar::zones(inv),
            "form": form,
            "form_error": error,
            "preview": preview,
            "notice": notice,
        }),
    ))
}

/// Query of the Maintenance page: what was just done.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Done {
    added: Option<i64>,
    ended: Option<i64>,
}

/// `GET /ui/maintenance`.
///
/// # Errors
/// [`PageError`] 400 for a bad query, 503 when the store fails.
pub async fn show<S: Store>(
    signed: Signed,
    State(state): State<AppState<S>>,
    done: Result<Query<Done>, QueryRejection>,
) -> Result<Response, PageError> {
    let done = query(done)?;
    let form = WindowForm {
        preset: Some("1h".to_owned()),
        ..WindowForm::default()
    };
    let notice = match (done.added, done.ended) {
        (Some(id), _) => Some(format!("maintenance window #{id} added: it counts at once")),
        (None, Some(id)) => Some(format!("maintenance window #{id} ended")),
        (None, None) => None,
    };
    render(&state, &signed, StatusCode::OK, &form, None, None, notice).await
}

/// `POST /ui/maintenance`: `action=preview` shows the clusters the window covers;
/// `action=add` stores it.
///
/// # Errors
/// [`PageError`] 403 without the CSRF token or for a viewer key, 503 when the store fails.
pub async fn submit<S: Store>(
    signed: Signed,
    State(state): State<AppState<S>>,
    form: Result<Form<WindowForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = super::form(form)?;
    signed.check_csrf(form.csrf.as_deref())?;
    signed.caller.may_change()?;
    let window = match asked(&signed.caller, &form) {
        Ok(w) => w,
        Err(e @ ApiError::Client { status, .. }) => {
            return render(&state, &signed, status, &form, Some(e), None, None).await;
        }
        Err(e) => return Err(e.into()),
    };
    match form.action.as_deref() {
        Some("add") => {
            let added = add_window(&state, &signed.caller, window).await?;
            Ok(Redirect::to(&format!("/ui/maintenance?added={}", added.window.id)).into_response())
        }
        _ => {
            let covered = covers(signed.caller.inventory(), &window);
            render(
                &state,
                &signed,
                StatusCode::OK,
                &form,
                None,
                Some(covered),
                None,
            )
            .await
        }
    }
}

/// `POST /ui/maintenance/{id}/end`: ends an open window now.
///
/// # Errors
/// [`PageError`] 403 without the CSRF token, for a viewer key or another customer's
/// window, 404 when it is not open.
pub async fn end<S: Store>(
    signed: Signed,
    State(state): State<AppState<S>>,
    id: Result<Path<i64>, PathRejection>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, PageError> {
    let (id, form) = (super::path(id)?, super::form(form)?);
    signed.check_csrf(form.csrf())?;
    end_window(&state, &signed.caller, id).await?;
    Ok(Redirect::to(&format!("/ui/maintenance?ended={id}")).into_response())
}
