//! One error type for every handler: a status, a stable code and a message for the caller.

use crate::api::{ErrorBody, ErrorCode};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use failover_store::StoreError;

/// What a handler answers when it cannot do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 4xx: the caller's request is wrong; the message says how.
    #[error("{message}")]
    Client {
        /// HTTP status.
        status: StatusCode,
        /// Stable machine-readable code.
        code: ErrorCode,
        /// What is wrong.
        message: String,
        /// The JSON field at fault.
        field: Option<String>,
    },
    /// 429: this address sent too many wrong API keys.
    #[error("too many wrong API keys from this address")]
    Throttled {
        /// Seconds until the address may try again.
        retry_after: u64,
    },
    /// 5xx: logged with its cause, answered generically.
    #[error("storage failed")]
    Store(#[from] StoreError),
}

impl ApiError {
    /// A 4xx error.
    pub fn client(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError::Client {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// 400 naming the field at fault.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::Client {
            status: StatusCode::BAD_REQUEST,
            code: ErrorCode::InvalidRequest,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// 401 without saying whether the key was missing or wrong.
    pub fn unauthorized() -> ApiError {
        ApiError::client(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "missing or invalid API key",
        )
    }

    /// 403 for a key of another customer.
    pub fn forbidden(what: impl Into<String>) -> ApiError {
        ApiError::client(StatusCode::FORBIDDEN, ErrorCode::Forbidden, what)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Client {
                status,
                code,
                message,
                field,
            } => {
                let body = ErrorBody {
                    error: message,
                    code: code.as_str().into(),
                    field,
                };
                (status, Json(body)).into_response()
            }
            ApiError::Throttled { retry_after } => {
                let body = ErrorBody {
                    error: format!(
                        "too many wrong API keys from this address; retry in {retry_after} s"
                    ),
                    code: ErrorCode::TooManyRequests.as_str().into(),
                    field: None,
                };
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(axum::http::header::RETRY_AFTER, retry_after.to_string())],
                    Json(body),
                )
                    .into_response()
            }
            ApiError::Store(err) => {
                tracing::error!(error = ?err, "request failed");
                // The database is unreachable or stopping: nothing was acknowledged, and the
                // sender's retry (the node-side `report` spools) will be taken.
                let status = match err {
                    StoreError::Closed | StoreError::Backend(_) => StatusCode::SERVICE_UNAVAILABLE,
                    StoreError::Corrupt { .. } | StoreError::NotFound(_) => {
                        StatusCode::INTERNAL_SERVER_ERROR
                    }
                };
                let body = ErrorBody {
                    error: "the server could not store the request; retry".into(),
                    code: ErrorCode::Internal.as_str().into(),
                    field: None,
                };
                (status, Json(body)).into_response()
            }
        }
    }
}
