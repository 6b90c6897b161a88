//! The API's OpenAPI 3.1 document, derived from the handlers' annotations and the typed
//! request and answer structs; served at `GET /v1/openapi.json` and committed as
//! `docs/openapi.json` (a test fails when the two differ).
//!
//! The answers every operation may give whatever it is (a missing or wrong key, a throttled
//! address, a bad request, the connection guard's 408 and 413, a database that cannot be
//! reached) are added here once, each as the one error shape, [`ErrorBody`].

use axum::Json;
use axum::response::IntoResponse;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::api::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "failover-notify",
        description = "Failover reports from cluster nodes, classified against maintenance windows, stored and delivered.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0")
    ),
    paths(
        crate::reports::post,
        crate::query::events,
        crate::query::event,
        crate::query::windows,
        crate::query::windows_ics,
        crate::query::add_maintenance,
        crate::query::list_maintenance,
        crate::query::end_maintenance,
        crate::query::healthz,
        crate::query::metrics,
        openapi,
    ),
    components(schemas(ErrorBody)),
    security(("api_key" = [])),
    modifiers(&Shared)
)]
struct Doc;

/// The key scheme, the original's `POST /`, and the answers every operation shares.
struct Shared;

impl Modify for Shared {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "api_key",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))),
            );
        // The original's path takes the same report.
        if let Some(item) = doc.paths.paths.get("/v1/reports").cloned() {
            let mut root = item;
            if let Some(op) = root.post.as_mut() {
                op.operation_id = Some("postReportAtRoot".into());
                op.responses.responses.values_mut().for_each(|r| {
                    if let RefOr::T(r) = r {
                        r.links.clear();
                    }
                });
            }
            doc.paths.paths.insert("/".into(), root);
        }
        for item in doc.paths.paths.values_mut() {
            for op in [&mut item.get, &mut item.post, &mut item.delete]
                .into_iter()
                .flatten()
            {
                op.tags = None;
                shared_errors(op);
            }
        }
    }
}

fn error(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "ErrorBody",
                    ))))
                    .build(),
            )
            .build(),
    )
}

fn shared_errors(op: &mut Operation) {
    let open = op.security.as_ref().is_some_and(|s| {
        s.iter()
            .any(|r| serde_json::to_value(r).is_ok_and(|v| v == serde_json::json!({})))
    });
    let mut shared = vec![
        (
            "400",
            "a bad query, path or body (named in `field`), or not exactly one `Host`",
        ),
        ("408", "the body did not arrive in time"),
        ("413", "a body over 16 KiB"),
    ];
    if !open {
        shared.extend([
            ("401", "a missing or wrong API key"),
            ("403", "a viewer key, for a change"),
            ("429", "too many wrong keys from this address"),
            (
                "503",
                "the database cannot be reached: nothing was recorded, try again",
            ),
        ]);
    }
    for (status, description) in shared {
        op.responses
            .responses
            .entry(status.into())
            .or_insert_with(|| error(description));
    }
}

/// The document, as JSON.
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(Doc::openapi()).unwrap_or_default();
    // utoipa 5 writes a Link's members in snake case; OpenAPI spells them in camel case.
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        let links = paths
            .values_mut()
            .filter_map(|item| item.as_object_mut())
            .flat_map(|item| item.values_mut())
            .filter_map(|op| op.get_mut("responses").and_then(|r| r.as_object_mut()))
            .flat_map(|responses| responses.values_mut())
            .filter_map(|r| r.get_mut("links").and_then(|l| l.as_object_mut()))
            .flat_map(|links| links.values_mut())
            .filter_map(|link| link.as_object_mut());
        for link in links {
            for (snake, camel) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(v) = link.remove(snake) {
                    link.insert(camel.into(), v);
                }
            }
        }
    }
    doc
}

/// `GET /v1/openapi.json`: this document.
#[utoipa::path(get, path = "/v1/openapi.json", operation_id = "openapi", security(()),
    responses((status = 200, description = "this OpenAPI 3.1 document", body = Object)))]
pub async fn openapi() -> impl IntoResponse {
    Json(document())
}
