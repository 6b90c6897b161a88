//! `POST /` and `POST /v1/reports`: classify a report, relate it to the cluster's history,
//! and store it with its deliveries before answering.

use std::sync::Arc;
use std::time::Instant;

use crate::api::{ErrorCode, FailedChannel, ReportAnswer};
use crate::auth::Caller;
use crate::clock;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::state::{AD_HOC_LOOKBACK, AdHoc, AppState, Delivery};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use failover_core::classify::{Classification, classify};
use failover_core::decide::{decide, lookback_start};
use failover_core::inventory::{ApiKey, CustomerId, Inventory, Verdict};
use failover_core::report::{self, FailoverReport};
use failover_core::window::MaintenanceWindow;
use failover_store::{
    Decide, DeliveryState, History, Maintenance, NewReport, Outcome, Recorded, Scope, Store,
};
use jiff::Timestamp;

/// Largest accepted body.
pub const MAX_BODY: usize = 16 * 1024;

/// Handles one report.
///
/// # Errors
/// 401/403 for keys, 400 naming the field, 413 for a large body, 422 for an unknown host
/// (recorded and routed all the same), 5xx when the store fails.
#[utoipa::path(post, path = "/v1/reports", operation_id = "postReport",
    request_body(content = failover_core::report::RawReport, description = "the report; read as JSON whatever its Content-Type"),
    responses((status = 200, description = "recorded (or a retry of a recorded one)", body = ReportAnswer,
            links(("GetEvent" = (operation_id = "getEvent", parameters(("id" = "$response.body#/event_id")))))),
        (status = 422, description = "an unknown host: recorded and routed all the same", body = ReportAnswer)))]
pub async fn post<S: Store>(
    State(state): State<AppState<S>>,
    caller: Result<Caller, ApiError>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ReportAnswer>), ApiError> {
    let started = Instant::now();
    let result = match caller {
        Ok(caller) => handle(&state, &caller, body).await,
        Err(e) => Err(e),
    };
    match &result {
        Ok((_, _, verdict)) => state
            .metrics
            .report(*verdict, started.elapsed().as_secs_f64()),
        Err(ApiError::Client { .. }) => state.metrics.rejected(),
        Err(_) => {}
    }
    result.map(|(status, body, _)| (status, Json(body)))
}

async fn handle<S: Store>(
    state: &AppState<S>,
    caller: &Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, ReportAnswer, Verdict), ApiError> {
    caller.may_change()?;
    let live = caller.live();
    let inv = Arc::clone(&live.inventory);
    let key = caller.key();
    let now = clock::now();
    let report = read_report(body, now)?;
    // Read per report, the ad-hoc windows come with the cluster's history, in the same
    // store call, and the report is classified again with them in `decide`.
    let ad_hoc = (state.ad_hoc == AdHoc::Cached).then(|| Arc::clone(&live.ad_hoc));
    let c = classify(
        &inv,
        ad_hoc.as_deref().map_or(&[], Vec::as_slice),
        &report.hostname,
        key.customer,
        report.occurred_at,
    );
    note_skipped(
        &state.metrics,
        &inv,
        ad_hoc.as_deref().map_or(&[], Vec::as_slice),
        &c,
    );

    let key_customer = key.customer;
    let in_request = state.delivery == Delivery::InRequest;
    let new = NewReport {
        claim: in_request.then(|| state.lease(now)),
        maintenance_after: ad_hoc.is_none().then(|| now - AD_HOC_LOOKBACK),
        ..new_report(&inv, key, &report, &c, now)
    };
    let unknown = (c.verdict == Verdict::UnknownHost).then(|| report.hostname.clone());
    let decide = decider(
        Arc::clone(&inv),
        Arc::clone(&state.metrics),
        ad_hoc,
        report,
        c,
        key_customer,
    );
    let recorded = state.store.record(new, decide).await?;
    let verdict = recorded.event.event.verdict;
    // A new event's deliveries, or those of the release this report completed.
    if !recorded.duplicate
        && recorded
            .event
            .deliveries
            .iter()
            .any(|d| d.status == DeliveryState::Pending)
    {
        state.wake.notify_one();
    }
    let failed = if in_request {
        deliver_in_request(state, &recorded).await?
    } else {
        Vec::new()
    };
    let (status, answer) = answer(&recorded, failed, unknown);
    Ok((status, answer, verdict))
}

/// The report in `body`: a body too large or unreadable, or JSON that is not a report, is a
/// 4xx naming what is wrong.
fn read_report(
    body: Result<Bytes, BytesRejection>,
    now: Timestamp,
) -> Result<FailoverReport, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::client(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::BodyTooLarge,
                format!("the body is larger than {MAX_BODY} bytes"),
            )
        } else {
            ApiError::client(e.status(), ErrorCode::InvalidBody, e.body_text())
        }
    })?;
    report::parse(&body, now).map_err(|e| match e.field() {
        Some(f) => ApiError::field(f, e.to_string()),
        None => ApiError::client(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidJson,
            e.to_string(),
        ),
    })
}

/// What `record` runs inside its transaction: `report` decided on the cluster's history,
/// classified again with the ad-hoc windows the store read when `ad_hoc` is not cached.
fn decider(
    inv: Arc<Inventory>,
    metrics: Arc<Metrics>,
    ad_hoc: Option<Arc<Vec<MaintenanceWindow>>>,
    report: FailoverReport,
    c: Classification,
    key_customer: Option<CustomerId>,
) -> Decide {
    Box::new(
        move |history: &History, maintenance: &[Maintenance]| match &ad_hoc {
            Some(windows) => decide(&inv, windows, &report, &c, history),
            // `c` was classified with no ad-hoc windows.
            None if maintenance.is_empty() => decide(&inv, &[], &report, &c, history),
            None => {
                let windows: Vec<MaintenanceWindow> = maintenance
                    .iter()
                    .filter_map(|m| m.to_window(&inv))
                    .collect();
                let again = classify(
                    &inv,
                    &windows,
                    &report.hostname,
                    key_customer,
                    report.occurred_at,
                );
                note_skipped(&metrics, &inv, &windows, &again);
                decide(&inv, &windows, &report, &again, history)
            }
        },
    )
}

/// Sends a recorded report's messages within the request: the channels that have not taken
/// theirs (to retry later, or held by another request).
async fn deliver_in_request<S: Store>(
    state: &AppState<S>,
    recorded: &Recorded,
) -> Result<Vec<FailedChannel>, ApiError> {
    let mut failed = Vec::new();
    let (sent, elsewhere) = crate::worker::deliver_recorded(state, recorded).await?;
    for (channel, outcome) in sent {
        if let Outcome::Retry { error, .. } = outcome {
            failed.push(FailedChannel { channel, error });
        }
    }
    for channel in elsewhere {
        failed.push(FailedChannel {
            channel,
            error: "another request is sending it".into(),
        });
    }
    Ok(failed)
}

/// The answer to a recorded report: 200, 503 when a channel has not taken its message (the
/// reporter sends it again with the same id), 422 for an unknown host.
fn answer(
    recorded: &Recorded,
    failed: Vec<FailedChannel>,
    unknown: Option<String>,
) -> (StatusCode, ReportAnswer) {
    let event = &recorded.event;
    let mut answer = ReportAnswer {
        event_id: event.id.clone(),
        verdict: event.event.classification.clone(),
        merged: recorded.merged,
        duplicate: recorded.duplicate,
        flapping: event.event.flapping,
        failback_of: event.event.failback_of.clone(),
        // Reminders wait for their time; the event's page lists them.
        deliveries: event
            .deliveries
            .iter()
            .filter(|d| !d.reminder)
            .map(|d| d.channel.clone())
            .collect(),
        error: None,
        code: None,
        failed: Vec::new(),
    };
    let status = if !failed.is_empty() {
        answer.error = Some(
            "recorded, but a channel has not taken the message yet; send the report again with the same id"
                .into(),
        );
        answer.code = Some(ErrorCode::DeliveryPending.as_str().into());
        answer.failed = failed;
        StatusCode::SERVICE_UNAVAILABLE
    } else if let Some(host) = unknown {
        answer.error = Some(format!(
            "unknown host `{host}`: it is in no cluster of the inventory; the operators were told"
        ));
        answer.code = Some(ErrorCode::UnknownHost.as_str().into());
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    (status, answer)
}

/// Logs and counts the windows a classification had to leave out: a stored window whose
/// arithmetic fails must never stop a report from being recorded and routed.
fn note_skipped(
    metrics: &Metrics,
    inv: &Inventory,
    ad_hoc: &[MaintenanceWindow],
    c: &Classification,
) {
    if c.skipped.is_empty() {
        return;
    }
    metrics.windows_skipped(c.skipped.len());
    for w in &c.skipped {
        tracing::error!(
            window = %w.resolve(inv, ad_hoc).name,
            "a maintenance window cannot be evaluated at this report's instant; classified without it"
        );
    }
}

/// The report as the store records it; no claim, no ad-hoc windows asked for.
fn new_report(
    inv: &Inventory,
    key: &ApiKey,
    r: &FailoverReport,
    c: &Classification,
    now: Timestamp,
) -> NewReport {
    NewReport {
        client_id: r.id.clone(),
        scope: key.customer.map_or(Scope::All, |c| {
            Scope::Customer(inv.customers[c.index()].name.clone())
        }),
        host: r.hostname.clone(),
        action: r.action,
        previous: r.previous.clone(),
        resource: r.resource.clone(),
        source: r.source.clone(),
        occurred_at: r.occurred_at,
        received_at: now,
        history: c.cluster.map(|id| {
            (
                inv.cluster(id).name.clone(),
                lookback_start(inv, r.occurred_at),
            )
        }),
        claim: None,
        maintenance_after: None,
    }
}
