//! The store contract (`failover_store::conformance`) on PostgreSQL: one test per scenario,
//! each on a throwaway cluster of its own.

use failover_store_postgres::Postgres;
use failover_store_postgres::throwaway::Cluster;

failover_store::conformance_tests!(
    async {
        let cluster = Cluster::start();
        let url = cluster.create("conformance");
        let store = Postgres::connect(&url, 4).await.expect("connects");
        (cluster, store)
    },
    pruning
);
