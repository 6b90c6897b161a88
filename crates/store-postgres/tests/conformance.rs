//! The store contract (`failover_store::conformance`) on PostgreSQL: a throwaway cluster,
//! a fresh database per scenario.

use std::sync::atomic::{AtomicUsize, Ordering};

use failover_store_postgres::Postgres;
use failover_store_postgres::throwaway::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_the_store_contract() {
    let cluster = Cluster::start();
    let opened = AtomicUsize::new(0);
    failover_store::conformance::run(async || {
        let i = opened.fetch_add(1, Ordering::Relaxed);
        let url = cluster.create(&format!("conformance_{i}"));
        Postgres::connect(&url, 4).await.expect("connects")
    })
    .await;
    let url = cluster.create("conformance_pruning");
    let store = Postgres::connect(&url, 4).await.expect("connects");
    failover_store::conformance::pruning(&store).await;
}
