//! failover-notify's service: the HTTP API, classification with the stored history, and the
//! outbox worker that delivers messages. `serve` and the tests start it the same way, through
//! [`launch_with_listener`]; the Lambda entry (`failover-notify lambda`) serves the same
//! [`router`] with [`AppState::with_modes`] ([`state::Delivery::InRequest`],
//! [`state::AdHoc::PerReport`]).
//!
//! # Layout
//! - [`api`]: the answers' bodies, typed, shared with the CLI
//! - [`auth`]: the API key check every handler starts with, and the slow-down of wrong keys
//! - [`client`]: the client's address and scheme, from the peer or a trusted proxy
//! - [`state`]: shared state, live inventory reload, ad-hoc windows, API keys
//! - [`tls`]: `serve`'s HTTPS, its certificate re-read when renewed
//! - [`reports`]: `POST /` and `POST /v1/reports`
//! - [`query`]: events, windows, maintenance, health, metrics
//! - [`server`]: the HTTP/1 accept loop with connection limits and timeouts
//! - [`ui`]: the dashboard at `/ui/`
//! - [`worker`]: the delivery worker
//! - [`retention`]: old history deleted in small batches (`[events] keep`)
//! - [`error`]: `ApiError`, one JSON error shape
//! - [`metrics`]: Prometheus counters
//! - [`openapi`]: the API's OpenAPI 3.1 document
//! - [`clock`]: the only clock read

pub mod api;
pub mod auth;
pub mod client;
pub mod clock;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod query;
pub mod reports;
mod resolving;
pub mod retention;
pub mod server;
pub mod state;
pub mod tls;
pub mod ui;
pub mod worker;

use std::future::Future;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use failover_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::ErrorCode;
use crate::error::ApiError;
pub use crate::state::AppState;

/// Every route of the API.
pub fn router<S: Store>(state: AppState<S>) -> Router {
    Router::new()
        .route("/", post(reports::post::<S>))
        .route("/v1/reports", post(reports::post::<S>))
        .route("/v1/events", get(query::events::<S>))
        .route("/v1/events/{id}", get(query::event::<S>))
        .route("/v1/windows", get(query::windows))
        .route("/v1/windows.ics", get(query::windows_ics))
        .route(
            "/v1/maintenance",
            post(query::add_maintenance::<S>).get(query::list_maintenance::<S>),
        )
        .route("/v1/maintenance/{id}", delete(query::end_maintenance::<S>))
        .route("/v1/openapi.json", get(openapi::openapi))
        .route("/healthz", get(query::healthz::<S>))
        .route("/metrics", get(query::metrics::<S>))
        .nest("/ui", ui::routes::<S>())
        .route(
            "/ui/",
            get(|| async { axum::response::Redirect::to("/ui/now") }),
        )
        // Without a valid key these are the same 401 as every other request: no path or
        // method is told apart before the key.
        .method_not_allowed_fallback(|_: auth::Caller| async {
            ApiError::client(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                "this method is not allowed here",
            )
        })
        .fallback(|_: auth::Caller| async {
            ApiError::client(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "no such endpoint",
            )
        })
        .layer(DefaultBodyLimit::max(reports::MAX_BODY))
        .with_state(state)
}

/// Serves the API on `listener` and runs the delivery worker until `shutdown` resolves;
/// then stops accepting, finishes requests in flight and lets sends in flight end.
/// Undelivered rows stay in the store for the next start. Connection limits come from the
/// inventory's `[server]` at start; with `tls`, connections are HTTPS.
///
/// # Errors
/// The I/O error if serving fails.
pub async fn launch_with_listener<S: Store>(
    state: AppState<S>,
    listener: TcpListener,
    tls: Option<tls::Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    ui::session::end_sessions_of_gone_keys(&state).await;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = std::sync::Arc::new(stop_tx);
    let worker = tokio::spawn(worker::run(state.clone(), stop_rx.clone()));
    let retention = tokio::spawn(retention::run(state.clone(), stop_rx.clone()));
    let limits = server::Limits::from(state.live().inventory.server);
    let stop = std::sync::Arc::clone(&stop_tx);
    let signal = tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let metrics = std::sync::Arc::clone(&state.metrics);
    let result = server::serve(listener, router(state), limits, metrics, tls, stop_rx).await;
    signal.abort();
    let _ = stop_tx.send(true);
    let _ = worker.await;
    let _ = retention.await;
    result
}
