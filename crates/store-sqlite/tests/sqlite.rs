//! What only SQLite shows: group commit under 200 concurrent reports and the release of
//! claims at a restart, in one story over every `Store` method; the shared contract is in
//! `conformance.rs`.

use failover_store::{
    Action, Decision, DeliveryState, EventQuery, Lease, NewEvent, NewMaintenance, NewReport,
    Outcome, Scope, Store, TargetKind, Verdict,
};
use failover_store_sqlite::Sqlite;
use jiff::{SignedDuration, Timestamp};

const OWNER: &str = "test";

fn lease(now: Timestamp) -> Lease {
    Lease {
        owner: OWNER.into(),
        until: now + SignedDuration::from_mins(5),
    }
}

fn t(s: &str) -> Timestamp {
    s.parse().expect("test instant")
}

fn report(id: &str, host: &str, at: &str) -> NewReport {
    NewReport {
        client_id: Some(id.into()),
        scope: Scope::Customer("acme".into()),
        host: host.into(),
        action: Action::Takeover,
        previous: None,
        resource: None,
        source: Some("test".into()),
        occurred_at: t(at),
        received_at: t(at),
        history: Some(("db".into(), t(at) - SignedDuration::from_hours(1))),
        claim: None,
        maintenance_after: None,
    }
}

fn new_event(active: &str, at: &str, channels: &[&str]) -> NewEvent {
    NewEvent {
        cluster: Some("db".into()),
        customer: Some("acme".into()),
        active: Some(active.into()),
        previous: None,
        verdict: Verdict::Unplanned,
        at: t(at),
        flapping: false,
        failback_of: None,
        classification: serde_json::json!({"verdict": "unplanned"}),
        context: failover_store::MessageContext {
            host: active.into(),
            ..Default::default()
        },
        channels: channels.iter().map(|c| (*c).to_owned()).collect(),
        back_by: None,
        reminders: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_story() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("events.db");
    let store = Sqlite::open(&path).expect("opens");

    // A new event with two deliveries.
    let first = store
        .record(
            report("r1", "db1", "2026-12-09T21:00:00Z"),
            Box::new(|h, m| {
                assert!(h.events.is_empty() && !h.older && m.is_empty());
                Decision::New(Box::new(new_event(
                    "db1",
                    "2026-12-09T21:00:00Z",
                    &["log", "mail"],
                )))
            }),
        )
        .await
        .expect("recorded");
    assert!(!first.merged && !first.duplicate);
    assert_eq!(first.event.deliveries.len(), 2);
    assert!(
        first
            .event
            .deliveries
            .iter()
            .all(|d| d.status == DeliveryState::Pending)
    );

    // The same client id again: same event, nothing decided or written.
    let again = store
        .record(
            report("r1", "db1", "2026-12-09T21:00:30Z"),
            Box::new(|_, _| panic!("a duplicate is not decided again")),
        )
        .await
        .expect("recorded");
    assert!(again.duplicate);
    assert_eq!(again.event.id, first.event.id);
    assert_eq!(again.event.reports, 1);

    // The other node's report: the decision sees the history and merges.
    let id = first.event.id.clone();
    let merged = store
        .record(
            report("r2", "db2", "2026-12-09T21:00:40Z"),
            Box::new(move |h, _| {
                assert_eq!(h.events.len(), 1);
                assert_eq!(h.events[0].active.as_deref(), Some("db1"));
                Decision::Merge(h.events[0].id.clone())
            }),
        )
        .await
        .expect("recorded");
    assert!(merged.merged);
    assert_eq!((merged.event.id.clone(), merged.event.reports), (id, 2));

    // Concurrent reports share commits and all land.
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let at = "2026-12-10T00:00:00Z";
            store
                .record(
                    report(&format!("c{i}"), "db1", at),
                    Box::new(move |_, _| Decision::New(Box::new(new_event("db1", at, &["log"])))),
                )
                .await
        }));
    }
    for task in tasks {
        task.await.expect("joins").expect("recorded");
    }
    let all = store
        .events(EventQuery {
            limit: 1000,
            ..EventQuery::default()
        })
        .await
        .expect("lists");
    assert_eq!(all.len(), 201);
    let newest: i64 = all[0].id.0.parse().expect("numeric id");
    let page = store
        .events(EventQuery {
            cluster: Some("db".into()),
            since: Some(t("2026-12-09T00:00:00Z")),
            before: Some(newest),
            customers: Some(vec!["acme".into()]),
            limit: 10,
            ..EventQuery::default()
        })
        .await
        .expect("lists");
    assert_eq!(page.len(), 10);
    assert_eq!(page[0].id.0, (newest - 1).to_string());

    // The outbox: claim, fail once, deliver.
    let now = t("2026-12-10T00:00:01Z");
    let due = store.claim_due(&lease(now), now, 5).await.expect("claims");
    assert_eq!(due.len(), 5);
    let more = store.claim_due(&lease(now), now, 5).await.expect("claims");
    assert!(more.iter().all(|d| due.iter().all(|e| e.id != d.id)));
    let retry_at = now + SignedDuration::from_secs(10);
    store
        .finish(
            OWNER,
            vec![
                (due[0].id, Outcome::Delivered),
                (
                    due[1].id,
                    Outcome::Retry {
                        at: retry_at,
                        error: "timed out".into(),
                    },
                ),
                (
                    due[2].id,
                    Outcome::Failed {
                        error: "400 Bad Request".into(),
                    },
                ),
            ],
            now,
        )
        .await
        .expect("finishes");
    let counts = store.delivery_counts().await.expect("counts");
    assert!(counts.contains(&(DeliveryState::Delivered, 1)));
    assert!(counts.contains(&(DeliveryState::Failed, 1)));
    assert_eq!(store.pending_of("mail").await.expect("lists").len(), 1);
    let shown = store
        .events(EventQuery {
            limit: 1000,
            ..EventQuery::default()
        })
        .await
        .expect("lists");
    let failed = shown
        .iter()
        .flat_map(|e| &e.deliveries)
        .find(|d| d.status == DeliveryState::Failed)
        .expect("the failed delivery is shown");
    assert_eq!(failed.last_error.as_deref(), Some("400 Bad Request"));
    drop(store);

    // After a restart the claims of the previous process are released.
    let store = Sqlite::open(&path).expect("reopens");
    let due = store
        .claim_due(
            &lease(now + SignedDuration::from_secs(11)),
            now + SignedDuration::from_secs(11),
            1000,
        )
        .await
        .expect("claims");
    assert_eq!(due.len(), 202 - 2);
    // Everything is claimed: due again only when the lease ends.
    assert_eq!(
        store.next_due().await.expect("next"),
        Some(lease(now + SignedDuration::from_secs(11)).until)
    );

    // Ad-hoc windows.
    let w = store
        .add_maintenance(NewMaintenance {
            target_kind: TargetKind::Cluster,
            target: "db".into(),
            customer: Some("acme".into()),
            start: t("2026-12-10T00:00:00Z"),
            end: t("2026-12-10T02:00:00Z"),
            reason: "kernel update".into(),
            created_by: "ops-admin".into(),
        })
        .await
        .expect("adds");
    assert_eq!(
        store.maintenance(now).await.expect("lists"),
        vec![w.clone()]
    );
    // A report that asks for the ad-hoc windows gets them with its history.
    let mut r = report("r-window", "db1", "2026-12-10T00:30:00Z");
    r.maintenance_after = Some(now);
    let seen = w.clone();
    store
        .record(
            r,
            Box::new(move |_, m| {
                assert_eq!(m, std::slice::from_ref(&seen));
                Decision::New(Box::new(new_event("db1", "2026-12-10T00:30:00Z", &[])))
            }),
        )
        .await
        .expect("recorded");
    assert!(store.end_maintenance(w.id, now).await.expect("ends"));
    assert!(!store.end_maintenance(w.id, now).await.expect("ends"));
    assert!(store.maintenance(now).await.expect("lists").is_empty());
}
