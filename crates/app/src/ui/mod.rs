//! The dashboard at `/ui/`: server-rendered HTML pages (minijinja templates and one
//! stylesheet and script, all embedded in the binary) over the same store and inventory as
//! the API, for the people on call.
//!
//! Sign-in takes an API key in a form and answers with a session cookie that holds a random
//! token, never the key; the store keeps only the token's hash ([`session`]). Every form
//! carries a CSRF token derived from the session (the sign-in form one from its own cookie),
//! and every page is sent with a strict content security policy: no inline script, no
//! framing, forms only to this site.
//!
//! # Layout
//! - this file: routes, rendering, the error page, the assets
//! - [`session`]: sign-in, sign-out, the [`session::Signed`] extractor, CSRF
//! - [`pages`]: Now and Clusters
//! - [`event`]: one event, and "send again" for a failed delivery
//! - [`calendar`]: the windows as a week or a month
//! - [`maintenance`]: ad-hoc windows: the open ones, preview and add, end now
//! - [`text`]: how times, ages and zones are written on the pages

pub mod calendar;
pub mod event;
pub mod maintenance;
pub mod pages;
pub mod session;
pub mod text;

use std::sync::OnceLock;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use failover_store::Store;
use minijinja::Environment;
use serde::Serialize;

use crate::api::ErrorCode;
use crate::error::ApiError;
use crate::state::AppState;

/// The templates, by name.
const TEMPLATES: [(&str, &str); 9] = [
    ("feed.html", include_str!("templates/feed.html")),
    ("base.html", include_str!("templates/base.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("signin.html", include_str!("templates/signin.html")),
    ("now.html", include_str!("templates/now.html")),
    ("clusters.html", include_str!("templates/clusters.html")),
    ("event.html", include_str!("templates/event.html")),
    ("windows.html", include_str!("templates/windows.html")),
    (
        "maintenance.html",
        include_str!("templates/maintenance.html"),
    ),
];
const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");

/// What every page is sent with: scripts and styles from this site only, no framing, forms
/// only back here, nothing cached.
const SECURITY_HEADERS: [(header::HeaderName, &str); 5] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "same-origin"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::CACHE_CONTROL, "no-store"),
];

/// The dashboard's routes, to be nested under `/ui`.
pub fn routes<S: Store>() -> Router<AppState<S>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/now") }))
        .route(
            "/signin",
            get(session::signin_form::<S>).post(session::signin::<S>),
        )
        .route("/signout", post(session::signout::<S>))
        .route("/now", get(pages::now::<S>))
        .route("/clusters", get(pages::clusters::<S>))
        .route("/events/{id}", get(event::show::<S>))
        .route(
            "/events/{id}/deliveries/{delivery}/resend",
            post(event::resend::<S>),
        )
        .route("/windows", get(calendar::windows::<S>))
        .route("/windows.ics", get(calendar::ics::<S>))
        .route("/windows/subscribe", post(calendar::subscribe::<S>))
        .route("/feed.ics", get(calendar::feed::<S>))
        .route(
            "/maintenance",
            get(maintenance::show::<S>).post(maintenance::submit::<S>),
        )
        .route("/maintenance/{id}/end", post(maintenance::end::<S>))
        .route("/assets/style.css", get(|| asset("text/css", STYLE)))
        .route(
            "/assets/app.js",
            get(|| asset("text/javascript; charset=utf-8", SCRIPT)),
        )
        .layer(axum::middleware::map_response(with_headers))
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::SemiStrict);
        for (name, source) in TEMPLATES {
            // The templates are part of the binary and checked by the tests; a broken one
            // shows as an error page naming it.
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "a dashboard template does not parse");
            }
        }
        env
    })
}

/// A page: `template` rendered with `context`, with the security headers.
pub(crate) fn page(status: StatusCode, template: &str, context: impl Serialize) -> Response {
    let rendered = environment()
        .get_template(template)
        .and_then(|t| t.render(context));
    match rendered {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(template, error = %format!("{e:#}"), "cannot render a dashboard page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>error</title><p>This page could not be shown; the server log says why.</p>"),
            )
                .into_response()
        }
    }
}

/// Every answer under `/ui` (pages, files, redirects, errors, extractors' own refusals) gets
/// the security headers it does not set itself.
async fn with_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

/// A form's fields, or a 400 page saying what is wrong with it.
pub(crate) fn form<T>(
    form: Result<axum::extract::Form<T>, axum::extract::rejection::FormRejection>,
) -> Result<T, PageError> {
    form.map(|f| f.0).map_err(|e| {
        ApiError::client(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidForm,
            e.body_text(),
        )
        .into()
    })
}

/// The ids in a page's path, or a 404 page: a path that names nothing (`/ui/maintenance/x/end`)
/// is a page that does not exist.
pub(crate) fn path<T>(
    path: Result<axum::extract::Path<T>, axum::extract::rejection::PathRejection>,
) -> Result<T, PageError> {
    path.map(|p| p.0).map_err(|_| {
        ApiError::client(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "there is no such page",
        )
        .into()
    })
}

/// An error as a page: its status, its message, and a way back.
#[derive(Debug)]
pub struct PageError(pub(crate) ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> PageError {
        PageError(e)
    }
}

impl From<failover_store::StoreError> for PageError {
    fn from(e: failover_store::StoreError) -> PageError {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, message) = match self.0 {
            ApiError::Client {
                status, message, ..
            } => (status, message),
            ApiError::Throttled { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many wrong keys from this address: try again in {retry_after} s"),
            ),
            other => {
                let status = other.into_response().status();
                (
                    status,
                    if status == StatusCode::SERVICE_UNAVAILABLE {
                        "the database cannot be reached just now: try again in a moment".to_owned()
                    } else {
                        "something went wrong on the server; its log says what".to_owned()
                    },
                )
            }
        };
        page(
            status,
            "base.html",
            minijinja::context! { title => status.canonical_reason().unwrap_or("error"), error => message },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        for (name, _) in TEMPLATES {
            if let Err(e) = environment().get_template(name) {
                panic!("{name}: {e:#}");
            }
        }
    }
}
