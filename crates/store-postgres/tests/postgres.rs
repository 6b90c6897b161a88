//! What only a shared PostgreSQL shows: two stores (two replicas' pools) on one database
//! racing on one cluster, on one client id, and on the outbox.

use failover_store::conformance::all;
use failover_store::{
    Action, Decide, Decision, DeliveryState, Lease, NewEvent, NewReport, Outcome, Scope, Store,
    Verdict,
};
use failover_store_postgres::Postgres;
use failover_store_postgres::throwaway::Cluster;
use jiff::{SignedDuration, Timestamp};

fn at() -> Timestamp {
    "2026-12-03T10:00:00Z".parse().expect("instant")
}

fn report(id: Option<String>, cluster: &str) -> NewReport {
    NewReport {
        client_id: id,
        scope: Scope::Customer("acme".into()),
        host: format!("{cluster}-b"),
        action: Action::Takeover,
        previous: None,
        resource: None,
        source: None,
        occurred_at: at(),
        received_at: at(),
        history: Some((cluster.into(), at() - SignedDuration::from_hours(1))),
        claim: None,
        maintenance_after: None,
    }
}

/// Merges into the newest event of the history, else a new event with one delivery.
fn merge_or_new(cluster: &str) -> Decide {
    let cluster = cluster.to_owned();
    Box::new(move |h, _| match h.events.last() {
        Some(last) => Decision::Merge(last.id.clone()),
        None => Decision::New(Box::new(NewEvent {
            cluster: Some(cluster.clone()),
            customer: Some("acme".into()),
            active: Some(format!("{cluster}-b")),
            previous: None,
            verdict: Verdict::Unplanned,
            at: at(),
            flapping: false,
            failback_of: None,
            classification: serde_json::json!({}),
            context: failover_store::MessageContext::default(),
            channels: vec!["log".into()],
            back_by: None,
            reminders: Vec::new(),
        })),
    })
}

async fn pair(cluster: &Cluster) -> (Postgres, Postgres) {
    let url = cluster.create("race");
    let a = Postgres::connect(&url, 8).await.expect("a connects");
    let b = Postgres::connect(&url, 8).await.expect("b connects");
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reports_of_one_cluster_on_two_stores_are_decided_one_after_the_other() {
    let pg = Cluster::start();
    let (a, b) = pair(&pg).await;
    let mut tasks = Vec::new();
    for i in 0..60 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            store
                .record(report(Some(format!("r{i}")), "db"), merge_or_new("db"))
                .await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        ids.insert(t.await.expect("task").expect("recorded").event.id);
    }
    assert_eq!(ids.len(), 1, "every report saw the one before: {ids:?}");
    let events = all(&a).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reports, 60);
    assert_eq!(events[0].deliveries.len(), 1, "one message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_client_id_sent_to_both_stores_at_once_is_one_report() {
    let pg = Cluster::start();
    let (a, b) = pair(&pg).await;
    // Unknown hosts (no cluster, so no head row serialises them): only the unique index.
    for round in 0..20 {
        let unknown = |store: &Postgres| {
            let store = store.clone();
            let mut r = report(Some(format!("same-{round}")), "x");
            r.history = None;
            tokio::spawn(async move { store.record(r, merge_or_new("x")).await })
        };
        let (x, y) = (unknown(&a), unknown(&b));
        let x = x.await.expect("task").expect("recorded");
        let y = y.await.expect("task").expect("recorded");
        assert_eq!(x.event.id, y.event.id, "round {round}");
        assert!(
            x.duplicate != y.duplicate,
            "one of the two is the retry: round {round}"
        );
    }
    let events = all(&a).await;
    assert_eq!(events.len(), 20, "no event of a lost race is left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_claiming_at_once_never_take_one_delivery_twice() {
    let pg = Cluster::start();
    let (a, b) = pair(&pg).await;
    for i in 0..500 {
        let cluster = format!("c{i}");
        a.record(report(None, &cluster), merge_or_new(&cluster))
            .await
            .expect("recorded");
    }
    let now = at() + SignedDuration::from_secs(1);
    let claim = |store: &Postgres, owner: &'static str| {
        let store = store.clone();
        tokio::spawn(async move {
            let lease = Lease {
                owner: owner.into(),
                until: now + SignedDuration::from_mins(5),
            };
            let mut mine = Vec::new();
            loop {
                let due = store.claim_due(&lease, now, 16).await.expect("claims");
                if due.is_empty() {
                    return mine;
                }
                let done = due.iter().map(|d| (d.id, Outcome::Delivered)).collect();
                mine.extend(due.iter().map(|d| d.id));
                store.finish(owner, done, now).await.expect("finishes");
            }
        })
    };
    let (x, y) = (claim(&a, "a"), claim(&b, "b"));
    let (x, y) = (x.await.expect("task"), y.await.expect("task"));
    let claimed: std::collections::HashSet<i64> = x.iter().chain(&y).copied().collect();
    assert_eq!(x.len() + y.len(), 500, "no delivery claimed twice");
    assert_eq!(claimed.len(), 500);
    assert!(
        !x.is_empty() && !y.is_empty(),
        "both took a share: {} {}",
        x.len(),
        y.len()
    );
    let counts = a.delivery_counts().await.expect("counts");
    assert_eq!(counts, [(DeliveryState::Pending, 0)]);
    let events = all(&b).await;
    assert!(
        events
            .iter()
            .flat_map(|e| &e.deliveries)
            .all(|d| d.status == DeliveryState::Delivered && d.attempts == 1),
        "each delivered once"
    );
}
