//! Retention in process: with `[events] keep = "1d"`, an event of two days ago goes with its
//! reports, a recent one stays, and `/metrics` counts what was deleted.

// Reports are placed around the real current time.
#![allow(clippy::disallowed_methods)]

use axum::body::Body;
use axum::http::Request;
use failover_app::AppState;
use failover_core::keys::KeyHash;
use failover_store_sqlite::Sqlite;
use tower::ServiceExt as _;

const KEY: &str = "retention-test-key";

async fn call(router: &axum::Router, request: Request<Body>) -> String {
    let response = router.clone().oneshot(request).await.expect("answered");
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    String::from_utf8_lossy(&bytes).into_owned()
}

fn report(host: &str, at: jiff::Timestamp) -> Request<Body> {
    Request::post("/v1/reports")
        .header("x-api-key", KEY)
        .header("content-type", "application/json")
        .body(Body::from(format!(
            r#"{{"hostname":"{host}","occurred_at":"{at}"}}"#
        )))
        .expect("request")
}

#[tokio::test]
async fn history_older_than_keep_is_deleted_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = format!(
        "[events]\nkeep = \"1d\"\n\n[[customers]]\nname = \"acme\"\ntime_zone = \"UTC\"\n\n\
         [[clusters]]\nname = \"db\"\ncustomer = \"acme\"\nnodes = [\"db1\", \"db2\"]\n\n\
         [[clusters]]\nname = \"web\"\ncustomer = \"acme\"\nnodes = [\"web1\", \"web2\"]\n\n\
         [[keys]]\nname = \"admin\"\nadmin = true\nhash = \"{}\"\n",
        KeyHash::of(KEY)
    );
    let inventory = failover_core::config::parse(&inventory).expect("valid inventory");
    let store = Sqlite::open(dir.path().join("db.sqlite")).expect("opens");
    let state = AppState::new(store, inventory).await.expect("state");
    let router = failover_app::router(state.clone());
    let now = jiff::Timestamp::now();
    let old = now - jiff::SignedDuration::from_hours(48);
    call(&router, report("db1", old)).await;
    call(&router, report("web1", now)).await;
    let pruned = failover_app::retention::prune_now(&state)
        .await
        .expect("prunes");
    assert_eq!(pruned.events, 1, "{pruned:?}");
    let listed: serde_json::Value = serde_json::from_str(
        &call(
            &router,
            Request::get("/v1/events")
                .header("x-api-key", KEY)
                .body(Body::empty())
                .expect("request"),
        )
        .await,
    )
    .expect("JSON");
    let clusters: Vec<&str> = listed["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["cluster"].as_str())
        .collect();
    assert_eq!(clusters, ["web"], "{listed}");
    let metrics = call(
        &router,
        Request::get("/metrics")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert!(
        metrics.contains("failover_pruned_total{kind=\"events\"} 1"),
        "{metrics}"
    );
    // Nothing more is old: a second run deletes nothing.
    assert_eq!(
        failover_app::retention::prune_now(&state)
            .await
            .expect("prunes")
            .total(),
        0
    );
}
