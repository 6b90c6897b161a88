//! The store contract (`failover_store::conformance`) on SQLite, a fresh file per scenario.

use std::sync::atomic::{AtomicUsize, Ordering};

use failover_store_sqlite::Sqlite;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_the_store_contract() {
    let dir = tempfile::tempdir().expect("temp dir");
    let opened = AtomicUsize::new(0);
    failover_store::conformance::run(async || {
        let i = opened.fetch_add(1, Ordering::Relaxed);
        Sqlite::open(dir.path().join(format!("{i}.db"))).expect("opens")
    })
    .await;
    let store = Sqlite::open(dir.path().join("pruning.db")).expect("opens");
    failover_store::conformance::pruning(&store).await;
}
