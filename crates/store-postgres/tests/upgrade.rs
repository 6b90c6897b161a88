//! Rows the release before typed message contexts wrote read: the event, the context the
//! dashboard and the senders use, and its `not-back` reminder, claimed as one.

use failover_store::{DeliveryKind, EventQuery, Lease, Store};
use failover_store_postgres::Postgres;
use failover_store_postgres::throwaway::Cluster;
use jiff::{SignedDuration, Timestamp};

/// A planned failover's message context as that release stored it (`serde_json::Value`
/// text: members sorted, no `version`).
const CONTEXT_BEFORE_VERSIONS: &str = r#"{"at":"2026-12-09 22:00:00 CET","at_utc":"2026-12-09T21:00:00Z","back_by":"2026-12-09 23:30:00 CET","cluster":"db","customer":"acme","failback":false,"failback_of":"","failback_of_event":"","fault":false,"fenced":false,"flapping":false,"flapping_count":3,"flapping_within":"30m","host":"db2","nodes":["db1","db2"],"previous":"db1","time_zone":"Europe/Berlin","usual":"db1","verdict":"planned","window":{"end":"23:00","name":"patch","owner":"ops","start":"22:00","time_zone":"Europe/Berlin"}}"#;

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

    let events = store.events(EventQuery::default()).await.expect("lists");
    let c = &events[0].event.context;
    assert_eq!(
        (
            c.verdict.as_str(),
            c.host.as_str(),
            c.usual.as_str(),
            c.back_by.as_str(),
            c.version
        ),
        ("planned", "db2", "db1", "2026-12-09 23:30:00 CET", 0)
    );
    assert_eq!(c.window.as_ref().map(|w| w.owner.as_str()), Some("ops"));
    let back_by = Timestamp::from_millisecond(1_765_319_400_000).expect("instant");
    let lease = Lease {
        owner: "new".into(),
        until: back_by + SignedDuration::from_mins(5),
    };
    let due = store.claim_due(&lease, back_by, 10).await.expect("claims");
    let kinds: Vec<_> = due
        .iter()
        .map(|d| (d.channel.as_str(), d.kind, d.context.usual.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("pager", DeliveryKind::Message, "db1"),
            ("mail", DeliveryKind::Reminder, "db1")
        ]
    );
}
