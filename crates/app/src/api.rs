//! The bodies the API answers with, typed, and shared with the CLI's client (`events`,
//! `maintenance`), so both sides agree on them at compile time. Errors are one shape for
//! every endpoint, `{"error", "code", "field"}` ([`ApiError`](crate::error::ApiError)).

use failover_store::{EventId, Maintenance, StoredEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The answer to a report (`POST /`, `POST /v1/reports`): 200, and also the body of a 422
/// for an unknown host and of a 503 while a channel has not taken the message (then
/// `error`, `code` and, for the 503, `failed` are set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportAnswer {
    /// The event the report belongs to.
    pub event_id: EventId,
    /// The classification: verdict, cluster, node, the window that explains it.
    #[schema(value_type = Object)]
    pub verdict: Value,
    /// It joined an event recorded earlier.
    pub merged: bool,
    /// A retry of a report already recorded (same id): nothing was written.
    pub duplicate: bool,
    /// The cluster is flapping.
    pub flapping: bool,
    /// The event this failover undoes.
    pub failback_of: Option<EventId>,
    /// The channels the event is delivered to.
    pub deliveries: Vec<String>,
    /// What is wrong, for a 422 or 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A stable code for `error` ([`ErrorCode`]): `unknown_host` (422), `delivery_pending`
    /// (503).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ErrorCode>)]
    pub code: Option<String>,
    /// The channels that have not taken the message yet (503).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<FailedChannel>,
}

/// A channel that has not taken a message yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FailedChannel {
    /// Its name.
    pub channel: String,
    /// Why (redacted: no URL, no secret).
    pub error: String,
}

/// `GET /v1/events`: a page of events, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventsPage {
    /// The events.
    pub events: Vec<StoredEvent>,
    /// The query string of the next page (`before=ID`), when this page is full.
    pub next: Option<String>,
}

/// `POST /v1/maintenance`: the window added, and the unplanned failovers whose alerts it
/// resolves (it covers them, see the README's "Resolved after the fact").
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AddedMaintenance {
    /// The window.
    #[serde(flatten)]
    pub window: Maintenance,
    /// The events it resolves the alerts of (none: left out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolves: Vec<EventId>,
}

/// `GET /v1/maintenance`: the ad-hoc windows not yet ended.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MaintenanceList {
    /// The windows, by start.
    pub maintenance: Vec<Maintenance>,
}

/// The stable code of every error the API answers (`ErrorBody::code`, and a report's 422 or
/// 503 in `ReportAnswer::code`): the one list of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No API key, or not a valid one (401).
    Unauthorized,
    /// The key's customer may not do this (403).
    Forbidden,
    /// A JSON member, query parameter or path segment is wrong (400, `field` names it).
    InvalidRequest,
    /// The query string cannot be read (400).
    InvalidQuery,
    /// The body is not JSON (400).
    InvalidJson,
    /// The body cannot be read, or is of the wrong type (400, 415).
    InvalidBody,
    /// A dashboard form cannot be read (400).
    InvalidForm,
    /// HTTP/1.1 without exactly one `Host` (400).
    BadHost,
    /// The dashboard's sign-in form did not come from its own page (403).
    Csrf,
    /// No such endpoint, event, window or page (404).
    NotFound,
    /// The path exists, the method does not (405).
    MethodNotAllowed,
    /// The body did not arrive in time (408).
    RequestTimeout,
    /// A delivery sent again that has not failed (409).
    NotFailed,
    /// The body is larger than allowed (413).
    BodyTooLarge,
    /// Too many wrong API keys from this address (429).
    TooManyRequests,
    /// The store failed; nothing was recorded (500, 503).
    Internal,
    /// The system's random source failed (503).
    NoRandomness,
    /// A report from a host in no cluster: recorded and told, but nothing classified (422).
    UnknownHost,
    /// A report recorded whose messages some channel has not taken yet (503).
    DeliveryPending,
}

impl ErrorCode {
    /// Its spelling in an answer.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidQuery => "invalid_query",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidBody => "invalid_body",
            ErrorCode::InvalidForm => "invalid_form",
            ErrorCode::BadHost => "bad_host",
            ErrorCode::Csrf => "csrf",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::NotFailed => "not_failed",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::Internal => "internal",
            ErrorCode::NoRandomness => "no_randomness",
            ErrorCode::UnknownHost => "unknown_host",
            ErrorCode::DeliveryPending => "delivery_pending",
        }
    }
}

/// Every error of the API, whatever the endpoint and whoever answers (a handler, the router
/// for an unknown path or method, the connection guard for 400/408/413).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What is wrong, for a person.
    pub error: String,
    /// A stable code ([`ErrorCode`]); a client reads it as text, so that a code a newer
    /// server adds is no error.
    #[schema(value_type = ErrorCode)]
    pub code: String,
    /// The body member, query parameter or path segment at fault, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}
