//! The reference for the load benchmark: an axum handler that reads the body and answers a
//! fixed JSON, with no store, classification or delivery (see BENCHMARKS.md).

use axum::routing::post;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/v1/reports",
        post(|body: axum::body::Bytes| async move { format!("{{\"len\":{}}}", body.len()) }),
    );
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18081".into());
    axum::serve(tokio::net::TcpListener::bind(addr).await?, app).await
}
