//! A database written by an earlier version opens and migrates: its rows stay, and a delivery
//! it held claimed (a flag then) is claimable at once; the message contexts the release
//! before typed contexts stored read.

use failover_store::conformance::{CONTEXT_BEFORE_VERSIONS, reads_the_previous_release};
use failover_store::{EventQuery, Lease, Store};
use failover_store_sqlite::Sqlite;
use jiff::{SignedDuration, Timestamp};

#[tokio::test]
async fn a_first_schema_database_migrates_with_its_rows_and_claims() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.sqlite");
    {
        let conn = rusqlite::Connection::open(&path).expect("opens");
        conn.execute_batch(include_str!(
            "../migrations/0001_events_reports_deliveries_maintenance.sql"
        ))
        .expect("the first schema");
        conn.execute_batch(
            r#"PRAGMA user_version = 1;
            INSERT INTO events (cluster, customer, active, previous, verdict, at_ms, received_ms,
                flapping, classification, context, channels, reports)
            VALUES ('db', 'acme', 'db2', 'db1', 'unplanned', 1765314000000, 1765314000000, 0,
                '{"verdict":"unplanned"}', '{"host":"db2"}', '["log"]', 1);
            INSERT INTO reports (event_id, scope, client_id, merged, host, action, occurred_ms,
                received_ms)
            VALUES (1, 'acme', 'r-1', 0, 'db2', 'takeover', 1765314000000, 1765314000000);
            INSERT INTO deliveries (event_id, channel, created_ms, next_ms, claimed)
            VALUES (1, 'log', 1765314000000, 1765314000000, 1);"#,
        )
        .expect("rows of the old version");
    }
    let store = Sqlite::open(&path).expect("opens and migrates");
    let events = store
        .events(EventQuery {
            limit: 10,
            ..EventQuery::default()
        })
        .await
        .expect("lists");
    assert_eq!(events.len(), 1);
    let detail = store
        .event(&events[0].id)
        .await
        .expect("reads")
        .expect("the event");
    assert_eq!(detail.received[0].client_id.as_deref(), Some("r-1"));
    let now = Timestamp::from_millisecond(1_765_314_060_000).expect("instant");
    let lease = Lease {
        owner: "new".into(),
        until: now + SignedDuration::from_mins(5),
    };
    let due = store.claim_due(&lease, now, 10).await.expect("claims");
    assert_eq!(due.len(), 1, "the old claim flag is gone");
    // Opening again applies nothing twice.
    drop(store);
    Sqlite::open(&path).expect("opens again");
}

/// The rows of a planned failover with a `not-back` reminder, as the release before typed
/// contexts wrote them: the event, the context the dashboard and the senders read, and the
/// reminder, which is claimed as one.
#[tokio::test]
async fn contexts_stored_before_they_were_typed_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("previous.sqlite");
    drop(Sqlite::open(&path).expect("the current schema"));
    {
        let conn = rusqlite::Connection::open(&path).expect("opens");
        conn.execute(
            "INSERT INTO events (cluster, customer, active, previous, verdict, at_ms, received_ms,
                flapping, classification, context, channels, reports, back_by_ms, reminders)
             VALUES ('db', 'acme', 'db2', 'db1', 'planned', 1765314000000, 1765314000000, 0,
                '{\"verdict\":\"planned\"}', ?1, '[\"pager\"]', 1, 1765319400000, '[\"mail\"]')",
            [CONTEXT_BEFORE_VERSIONS],
        )
        .expect("the event");
        conn.execute_batch(
            "INSERT INTO deliveries (event_id, channel, created_ms, next_ms, reminder)
             VALUES (1, 'pager', 1765314000000, 1765314000000, 0),
                    (1, 'mail', 1765319400000, 1765319400000, 1);",
        )
        .expect("its deliveries");
    }
    let store = Sqlite::open(&path).expect("opens");
    let back_by = Timestamp::from_millisecond(1_765_319_400_000).expect("instant");
    reads_the_previous_release(&store, back_by).await;
}
