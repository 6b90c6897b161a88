//! Rows the release before typed message contexts wrote read: the event, the context the
//! dashboard and the senders use, and its `not-back` reminder, claimed as one.

use failover_store::conformance::{CONTEXT_BEFORE_VERSIONS, reads_the_previous_release};
use failover_store_postgres::Postgres;
use failover_store_postgres::throwaway::Cluster;
use jiff::Timestamp;

#[tokio::test]
async fn contexts_stored_before_they_were_typed_read() {
    let pg = Cluster::start();
    let url = pg.create("previous");
    let store = Postgres::connect(&url, 2)
        .await
        .expect("the current schema");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("a plain client");
    tokio::spawn(connection);
    let event: i64 = client
        .query_one(
            "INSERT INTO events (cluster, customer, active, previous, verdict, at_ms, received_ms,
                flapping, classification, context, channels, reports, back_by_ms, reminders)
             VALUES ('db', 'acme', 'db2', 'db1', 'planned', 1765314000000, 1765314000000, false,
                '{\"verdict\":\"planned\"}', $1, '[\"pager\"]', 1, 1765319400000, '[\"mail\"]')
             RETURNING id",
            &[&CONTEXT_BEFORE_VERSIONS],
        )
        .await
        .expect("the event")
        .get(0);
    client
        .execute(
            "INSERT INTO deliveries (event_id, channel, created_ms, next_ms, reminder)
             VALUES ($1, 'pager', 1765314000000, 1765314000000, false),
                    ($1, 'mail', 1765319400000, 1765319400000, true)",
            &[&event],
        )
        .await
        .expect("its deliveries");

    let back_by = Timestamp::from_millisecond(1_765_319_400_000).expect("instant");
    reads_the_previous_release(&store, back_by).await;
}
