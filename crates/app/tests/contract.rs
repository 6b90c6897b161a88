//! The HTTP API's contract, in process: the router answers without a socket or the binary,
//! so these run in milliseconds and fail on the handler, not on a start-up.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use failover_app::AppState;
use failover_core::keys::KeyHash;
use failover_store_sqlite::Sqlite;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const KEY: &str = "contract-key";
const VIEWER: &str = "wall-screen-key";

async fn router(dir: &std::path::Path) -> Router {
    let inventory = format!(
        r#"
[[customers]]
name = "acme"

[[clusters]]
name = "db"
customer = "acme"
nodes = ["db1", "db2"]

[[keys]]
name = "acme-nodes"
customer = "acme"
hash = "{}"

[[keys]]
name = "wall"
customer = "acme"
role = "viewer"
hash = "{}"
"#,
        KeyHash::of(KEY),
        KeyHash::of(VIEWER)
    );
    let inventory = failover_core::config::parse(&inventory).expect("valid inventory");
    let store = Sqlite::open(dir.join("db.sqlite")).expect("opens");
    let state = AppState::new(store, inventory).await.expect("state");
    failover_app::router(state)
}

/// One request; the status and the JSON answer (`null` when the body is not JSON).
async fn call(
    router: &Router,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body.to_owned())).expect("request"))
        .await
        .expect("answered");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_api_answers_in_json_after_the_key_and_names_what_is_wrong() {
    let dir = tempfile::tempdir().expect("tempdir");
    let router = router(dir.path()).await;

    // Without a key, whatever else is wrong: the same JSON 401.
    for (method, path, body) in [
        ("GET", "/v1/events", ""),
        ("GET", "/v1/events?limit=-1", ""),
        ("DELETE", "/v1/maintenance/abc", ""),
        ("POST", "/v1/reports", "{not json"),
    ] {
        let (status, answer) = call(&router, method, path, None, body).await;
        assert_eq!(
            (status, &answer["code"]),
            (StatusCode::UNAUTHORIZED, &json!("unauthorized")),
            "{method} {path}: {answer}"
        );
    }
    // With one, a 400 naming the field.
    for (method, path, body, field) in [
        ("DELETE", "/v1/maintenance/abc", "", "id"),
        ("GET", "/v1/events?limit=-1", "", "limit"),
        ("GET", "/v1/events?verdict=maybe", "", "verdict"),
        (
            "POST",
            "/v1/reports",
            r#"{"hostname":"db1","hostname":"db2"}"#,
            "hostname",
        ),
        (
            "POST",
            "/v1/reports",
            r#"{"hostname":"db1","occurred_at":"9999-12-31T00:00:00Z"}"#,
            "occurred_at",
        ),
    ] {
        let (status, answer) = call(&router, method, path, Some(KEY), body).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{method} {path} {body}: {answer}"
        );
        assert_eq!(answer["field"], field, "{method} {path} {body}: {answer}");
    }
    let (status, _) = call(&router, "PUT", "/v1/reports", Some(KEY), "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    // The cluster's first report is its start; the other node's, a failover from db1.
    let (status, start) = call(&router, "POST", "/", Some(KEY), r#"{"hostname":"db1"}"#).await;
    assert_eq!(status, StatusCode::OK, "{start}");
    assert_eq!(start["verdict"]["verdict"], "cluster-start", "{start}");
    let (status, failover) = call(
        &router,
        "POST",
        "/v1/reports",
        Some(KEY),
        r#"{"hostname":"db2","id":"r-2"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{failover}");
    assert_eq!(failover["verdict"]["verdict"], "unplanned", "{failover}");
    // A retry with the same id: the same event, marked a duplicate.
    let (_, retry) = call(
        &router,
        "POST",
        "/v1/reports",
        Some(KEY),
        r#"{"hostname":"db2","id":"r-2"}"#,
    )
    .await;
    assert_eq!(
        (&retry["event_id"], &retry["duplicate"]),
        (&failover["event_id"], &json!(true)),
        "{retry}"
    );
    let (status, events) = call(&router, "GET", "/v1/events", Some(KEY), "").await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let listed: Vec<(&Value, &Value, &Value)> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| (&e["active"], &e["previous"], &e["verdict"]))
        .collect();
    assert_eq!(
        listed,
        [
            (&json!("db2"), &json!("db1"), &json!("unplanned")),
            (&json!("db1"), &Value::Null, &json!("cluster-start"))
        ],
        "{events}"
    );

    // A host in no cluster: recorded and told, answered 422.
    let (status, unknown) = call(&router, "POST", "/", Some(KEY), r#"{"hostname":"ghost"}"#).await;
    assert_eq!(
        (status, &unknown["code"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("unknown_host")),
        "{unknown}"
    );
    // The answers are the typed bodies the CLI reads.
    let typed: failover_app::api::ReportAnswer =
        serde_json::from_value(failover.clone()).expect("a ReportAnswer");
    assert_eq!(
        typed.deliveries,
        Vec::<String>::new(),
        "no route: {failover}"
    );
    let page: failover_app::api::EventsPage =
        serde_json::from_value(events.clone()).expect("an EventsPage");
    assert_eq!(page.events.len(), 2);

    // One event: its reports as received (the retry counted once), its deliveries.
    let path = format!("/v1/events/{}", typed.event_id);
    let (status, event) = call(&router, "GET", &path, Some(KEY), "").await;
    assert_eq!(status, StatusCode::OK, "{event}");
    let reports: Vec<(&Value, &Value, &Value)> = event["received"]
        .as_array()
        .expect("reports")
        .iter()
        .map(|r| (&r["host"], &r["action"], &r["client_id"]))
        .collect();
    assert_eq!(
        reports,
        [(&json!("db2"), &json!("takeover"), &json!("r-2"))],
        "{event}"
    );
    assert_eq!(event["id"], typed.event_id.0, "{event}");
    // Another customer's event (the unknown host's is the operators'), an id that is not
    // one, a path that is not an id: 404, and the same 404 for each.
    for id in [
        unknown["event_id"].as_str().expect("id"),
        "424242",
        "%2e%2e",
        "x%20y",
        "-1",
    ] {
        let (status, answer) =
            call(&router, "GET", &format!("/v1/events/{id}"), Some(KEY), "").await;
        assert_eq!(
            (status, &answer["code"]),
            (StatusCode::NOT_FOUND, &json!("not_found")),
            "{id}: {answer}"
        );
    }
    let (status, _) = call(&router, "GET", &path, None, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, health) = call(&router, "GET", "/healthz", None, "").await;
    assert_eq!((status, &health["status"]), (StatusCode::OK, &json!("ok")));
}

#[tokio::test]
async fn a_viewer_key_reads_but_may_not_report_or_change_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let router = router(dir.path()).await;
    let (status, _) = call(&router, "POST", "/", Some(KEY), r#"{"hostname":"db1"}"#).await;
    assert_eq!(status, StatusCode::OK);
    let (status, added) = call(
        &router,
        "POST",
        "/v1/maintenance",
        Some(KEY),
        r#"{"cluster":"db","duration":"1h","reason":"patching"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");

    for (method, path, body) in [
        ("POST", "/", r#"{"hostname":"db2"}"#),
        ("POST", "/v1/reports", r#"{"hostname":"db2"}"#),
        (
            "POST",
            "/v1/maintenance",
            r#"{"cluster":"db","duration":"1h","reason":"x"}"#,
        ),
        ("DELETE", &format!("/v1/maintenance/{}", added["id"]), ""),
    ] {
        let (status, answer) = call(&router, method, path, Some(VIEWER), body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert_eq!(
            answer["error"],
            "key `wall` is a viewer key: it may read, not report or change anything"
        );
    }
    let (status, events) = call(&router, "GET", "/v1/events", Some(VIEWER), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        events["events"].as_array().map(Vec::len),
        Some(1),
        "the refused report was not recorded: {events}"
    );
    let (status, open) = call(&router, "GET", "/v1/maintenance", Some(VIEWER), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        open["maintenance"].as_array().map(Vec::len),
        Some(1),
        "the window is still open: {open}"
    );
}

/// `GET /v1/openapi.json` is the committed `docs/openapi.json`. After changing the API,
/// write it again with `FAILOVER_UPDATE_OPENAPI=1 cargo test -p failover-app --test contract`.
#[tokio::test]
async fn the_served_openapi_document_is_the_committed_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let router = router(dir.path()).await;
    let (status, served) = call(&router, "GET", "/v1/openapi.json", None, "").await;
    assert_eq!(status, StatusCode::OK, "served without a key");
    assert_eq!(served["openapi"], "3.1.0");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let text = serde_json::to_string_pretty(&served).expect("JSON") + "\n";
    if std::env::var_os("FAILOVER_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &text).expect("writes docs/openapi.json");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "docs/openapi.json differs from what the service serves; run \
         FAILOVER_UPDATE_OPENAPI=1 cargo test -p failover-app --test contract"
    );
    // Every operation documents the one error shape for what any of them may answer.
    for (path, item) in served["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operation") {
            for status in ["400", "408", "413"] {
                assert_eq!(
                    op["responses"][status]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
            }
        }
    }
}
