//! The store contract (`failover_store::conformance`) on SQLite: one test per scenario, each
//! on a fresh file.

use failover_store_sqlite::Sqlite;

failover_store::conformance_tests!(
    async {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Sqlite::open(dir.path().join("events.db")).expect("opens");
        (dir, store)
    },
    pruning
);
