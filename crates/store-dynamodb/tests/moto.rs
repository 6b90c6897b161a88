//! The DynamoDB store against a real DynamoDB emulator: a moto server from the venv that
//! `scripts/test` installs (`FAILOVER_TEST_VENV`), on a free loopback port, with the table as
//! `deploy/cloudformation.yaml` creates it.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::types::AttributeValue;
use failover_store::{
    Action, Decide, Decision, DeliveryState, EventQuery, History, Lease, Maintenance, NewEvent,
    NewMaintenance, NewReport, Outcome, Scope, Store, StoreError, StoredEvent, TargetKind, Verdict,
};
use failover_store_dynamodb::Dynamo;
use jiff::{SignedDuration, Timestamp};

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn moto() -> (Moto, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let venv = std::env::var_os("FAILOVER_TEST_VENV").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv"),
        PathBuf::from,
    );
    let child = Command::new(venv.join("bin/moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server from the venv (run scripts/test once to install it)");
    let moto = Moto(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (moto, format!("http://127.0.0.1:{port}"))
}

/// The SDK set up for moto only: its URL, dummy credentials, so nothing else is ever asked.
async fn sdk(url: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(url)
        .load()
        .await
}

/// The table as `deploy/cloudformation.yaml` defines it, created by the script the
/// Lambda test uses too.
fn create_table(url: &str, table: &str) {
    let venv = std::env::var_os("FAILOVER_TEST_VENV").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv"),
        PathBuf::from,
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/dynamodb-table.py");
    let status = Command::new(venv.join("bin/python"))
        .arg(script)
        .args([url, table])
        .status()
        .expect("python from the venv");
    assert!(status.success(), "creating the table from the template");
}

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

fn report(id: &str, at: &str) -> NewReport {
    NewReport {
        client_id: Some(id.into()),
        scope: Scope::Customer("acme".into()),
        host: "db1".into(),
        action: Action::Takeover,
        previous: None,
        resource: None,
        source: None,
        occurred_at: t(at),
        received_at: t(at),
        history: Some(("db".into(), t(at) - SignedDuration::from_hours(1))),
        claim: None,
        maintenance_after: Some(t(at) - SignedDuration::from_hours(1)),
    }
}

fn new_event(at: &str, channels: &[&str]) -> Decision {
    Decision::New(Box::new(new_event_fields(at, channels)))
}

fn new_event_fields(at: &str, channels: &[&str]) -> NewEvent {
    NewEvent {
        cluster: Some("db".into()),
        customer: Some("acme".into()),
        active: Some("db1".into()),
        previous: None,
        verdict: Verdict::Unplanned,
        at: t(at),
        flapping: false,
        failback_of: None,
        classification: serde_json::json!({"verdict": "unplanned"}),
        context: failover_store::MessageContext::default(),
        channels: channels.iter().map(|c| (*c).to_owned()).collect(),
        back_by: None,
        reminders: Vec::new(),
    }
}

fn window(target: &str, start: &str, end: &str) -> NewMaintenance {
    NewMaintenance {
        target_kind: TargetKind::Cluster,
        target: target.into(),
        customer: Some("acme".into()),
        start: t(start),
        end: t(end),
        reason: "patching".into(),
        created_by: "ops".into(),
    }
}

/// What a `decide` was given on each call: the history's length, whether the cluster has
/// older events, and the ad-hoc windows.
type Inputs = Arc<Mutex<Vec<(usize, bool, Vec<Maintenance>)>>>;

/// A `decide` that makes a new event at `at` on `channels`, and notes what it was given.
fn noting(at: &'static str, channels: &'static [&'static str]) -> (Decide, Inputs) {
    let inputs = Inputs::default();
    let noted = Arc::clone(&inputs);
    let decide: Decide = Box::new(move |h: &History, m: &[Maintenance]| {
        noted
            .lock()
            .expect("lock")
            .push((h.events.len(), h.older, m.to_vec()));
        new_event(at, channels)
    });
    (decide, inputs)
}

/// A `decide` that merges into the newest event in the history, or makes a new one at `at`.
fn merge_or_new(at: &'static str) -> Decide {
    merge_or(new_event_fields(at, &["log"]))
}

/// A `decide` that merges into the newest event in the history, else records `e`.
fn merge_or(e: NewEvent) -> Decide {
    Box::new(move |h, _| match h.events.last() {
        Some(last) => Decision::Merge(last.id.clone()),
        None => Decision::New(Box::new(e.clone())),
    })
}

/// Every event in the store, newest first.
async fn all_events(store: &Dynamo) -> Vec<StoredEvent> {
    store
        .events(EventQuery {
            limit: 100,
            ..EventQuery::default()
        })
        .await
        .expect("lists")
}

/// The store contract (`failover_store::conformance`): one test per scenario, each on a
/// moto of its own.
mod contract {
    use super::*;

    failover_store::conformance_tests!(async {
        let (moto, url) = moto();
        let config = sdk(&url).await;
        create_table(&url, "contract");
        let store = Dynamo::with_config(&config, "contract", SignedDuration::from_hours(24 * 90));
        (moto, store)
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_store_story() {
    let (_moto, url) = moto();
    let config = sdk(&url).await;
    create_table(&url, "events");
    let store = Dynamo::with_config(&config, "events", SignedDuration::from_hours(24 * 90));

    // Ad-hoc windows: listed by start, and handed to `decide` with the history.
    let later = store
        .add_maintenance(window("db", "2026-12-09T23:00:00Z", "2026-12-10T01:00:00Z"))
        .await
        .expect("adds");
    let now_open = store
        .add_maintenance(window("db", "2026-12-09T20:00:00Z", "2026-12-09T22:00:00Z"))
        .await
        .expect("adds");
    assert_ne!(later.id, now_open.id);
    let listed = store
        .maintenance(t("2026-12-09T20:30:00Z"))
        .await
        .expect("lists");
    assert_eq!(listed, [now_open.clone(), later.clone()]);

    // A new event with two deliveries. `decide` is first tried on nothing read, assuming a
    // cluster with older events; the cluster has none and the windows exist, so that write
    // fails and it is decided again on what was read.
    let (decide, inputs) = noting("2026-12-09T21:00:00Z", &["log", "mail"]);
    let first = store
        .record(report("r1", "2026-12-09T21:00:00Z"), decide)
        .await
        .expect("recorded");
    assert!(!first.merged && !first.duplicate);
    assert_eq!(first.event.deliveries.len(), 2);
    assert_eq!(
        *inputs.lock().expect("lock"),
        [(0, true, Vec::new()), (0, false, listed.clone())]
    );

    // The same client id: the same answer, whatever `decide` would say now.
    let again = store
        .record(
            report("r1", "2026-12-09T21:00:30Z"),
            Box::new(|_, _| new_event("2026-12-09T21:00:30Z", &[])),
        )
        .await
        .expect("recorded");
    assert!(again.duplicate);
    assert_eq!(again.event.id, first.event.id);
    assert_eq!(again.event.deliveries.len(), 2);

    // The other node's report sees the event in the history and merges into it.
    let merged = store
        .record(
            report("r2", "2026-12-09T21:00:40Z"),
            merge_or_new("2026-12-09T21:00:40Z"),
        )
        .await
        .expect("recorded");
    assert!(merged.merged);
    assert_eq!(
        (merged.event.id.clone(), merged.event.reports),
        (first.event.id.clone(), 2)
    );

    // A lost race on the cluster's HEAD, made deterministic: between this report's read and
    // its write, another writer (a second store, as another function instance would be)
    // records four events of the cluster. The write fails on the HEAD version, and the report
    // is decided again on the history that writer left. (Concurrent writes cannot test this
    // against moto: it runs transactions without a lock.) The first decision, on nothing
    // read, fails on the recent event.
    let calls = Arc::new(AtomicUsize::new(0));
    let seen_again = Arc::new(AtomicUsize::new(0));
    let (calls_in, seen_in, other) = (Arc::clone(&calls), Arc::clone(&seen_again), config.clone());
    let at = "2026-12-09T21:30:00Z";
    store
        .record(
            report("c-outer", at),
            Box::new(move |h, _| {
                if calls_in.fetch_add(1, SeqCst) == 1 {
                    let other = other.clone();
                    std::thread::spawn(move || {
                        let runtime = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .expect("runtime");
                        runtime.block_on(async {
                            let racer = Dynamo::with_config(
                                &other,
                                "events",
                                SignedDuration::from_hours(24),
                            );
                            for i in 0..4 {
                                // A millisecond apart: ids drawn in one millisecond may collide.
                                let mut r = report(&format!("c{i}"), at);
                                r.received_at += SignedDuration::from_millis(i + 1);
                                racer
                                    .record(r, Box::new(move |_, _| new_event(at, &["log"])))
                                    .await
                                    .expect("recorded");
                            }
                        });
                    })
                    .join()
                    .expect("the other writer finishes");
                } else {
                    seen_in.store(h.events.len(), SeqCst);
                }
                new_event(at, &["log"])
            }),
        )
        .await
        .expect("recorded");
    assert_eq!(calls.load(SeqCst), 3, "the lost race is decided again");
    assert_eq!(
        seen_again.load(SeqCst),
        5,
        "on the history the other writer left"
    );
    let (decide, inputs) = noting("2026-12-09T21:40:00Z", &[]);
    store
        .record(report("r-after", "2026-12-09T21:40:00Z"), decide)
        .await
        .expect("recorded");
    assert_eq!(
        inputs.lock().expect("lock").last().map(|i| (i.0, i.1)),
        Some((6, false))
    );
    assert_eq!(all_events(&store).await.len(), 7);

    // The outbox, through the pending index: 2 + 5 deliveries due.
    let now = t("2026-12-09T21:45:00Z");
    let due = store
        .claim_due(&lease(now), now, 100)
        .await
        .expect("claims");
    assert_eq!(due.len(), 7);
    assert!(
        store
            .claim_due(&lease(now), now, 100)
            .await
            .expect("claims")
            .is_empty()
    );
    let mail = due.iter().find(|d| d.channel == "mail").expect("mail");
    let outcomes = due
        .iter()
        .map(|d| {
            let o = if d.id == mail.id {
                Outcome::Retry {
                    at: now + SignedDuration::from_mins(1),
                    error: "smtp down".into(),
                }
            } else {
                Outcome::Delivered
            };
            (d.id, o)
        })
        .collect();
    store.finish(OWNER, outcomes, now).await.expect("finishes");
    assert_eq!(store.pending_of("mail").await.expect("lists"), [mail.id]);
    assert_eq!(
        store.delivery_counts().await.expect("counts"),
        [(DeliveryState::Pending, 1)]
    );
    assert_eq!(
        store.next_due().await.expect("next"),
        Some(now + SignedDuration::from_mins(1))
    );
    let retried = store
        .claim_due(
            &lease(now + SignedDuration::from_mins(2)),
            now + SignedDuration::from_mins(2),
            100,
        )
        .await
        .expect("claims");
    assert_eq!(retried.iter().map(|d| d.id).collect::<Vec<_>>(), [mail.id]);
    store
        .finish(OWNER, vec![(mail.id, Outcome::Delivered)], now)
        .await
        .expect("finishes");
    assert_eq!(store.next_due().await.expect("next"), None);
    let shown = all_events(&store).await;
    let first_shown = shown
        .iter()
        .find(|e| e.id == first.event.id)
        .expect("listed");
    assert!(
        first_shown
            .deliveries
            .iter()
            .all(|d| d.status == DeliveryState::Delivered)
    );
    assert_eq!(first_shown.deliveries[1].attempts, 2);

    // Ending windows: an open one is cut to now, a future one is removed.
    let at = t("2026-12-09T21:50:00Z");
    assert!(store.end_maintenance(now_open.id, at).await.expect("ends"));
    assert!(store.end_maintenance(later.id, at).await.expect("ends"));
    assert!(!store.end_maintenance(later.id, at).await.expect("ends"));
    let left = store
        .maintenance(t("2026-12-09T00:00:00Z"))
        .await
        .expect("lists");
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].id, left[0].window.end), (now_open.id, at));

    // A cluster's first failover in a while, with no ad-hoc window left to apply: decided
    // once, on nothing read, and written on the condition that this was so. The events kept in
    // the HEAD were all older than the look-back and a day, so it now holds only the new one.
    let at = "2026-12-20T08:00:00Z";
    let (decide, inputs) = noting(at, &["log"]);
    let quiet = store
        .record(report("r-quiet", at), decide)
        .await
        .expect("recorded");
    assert_eq!(*inputs.lock().expect("lock"), [(0, true, Vec::new())]);
    let next = store
        .record(
            report("r-quiet-2", "2026-12-20T08:00:20Z"),
            merge_or_new("2026-12-20T08:00:20Z"),
        )
        .await
        .expect("recorded");
    assert!(next.merged);
    assert_eq!((next.event.id, next.event.reports), (quiet.event.id, 2));

    // A window added since: the next report cannot skip reading it.
    let patch = store
        .add_maintenance(window("db", "2026-12-21T07:00:00Z", "2026-12-21T09:00:00Z"))
        .await
        .expect("adds");
    let (decide, inputs) = noting("2026-12-21T08:00:00Z", &[]);
    store
        .record(report("r-patch", "2026-12-21T08:00:00Z"), decide)
        .await
        .expect("recorded");
    assert_eq!(
        inputs.lock().expect("lock").last().map(|i| i.2.clone()),
        Some(vec![patch])
    );

    // Deliveries sent within the request are recorded claimed: no drain takes them.
    let mut claimed = report("r-claimed", "2026-12-09T22:00:00Z");
    claimed.claim = Some(Lease {
        owner: "request".into(),
        until: t("2026-12-09T22:05:00Z"),
    });
    store
        .record(
            claimed,
            Box::new(|_, _| new_event("2026-12-09T22:00:00Z", &["log"])),
        )
        .await
        .expect("recorded");
    assert!(
        store
            .claim_due(
                &lease(t("2026-12-09T22:01:00Z")),
                t("2026-12-09T22:01:00Z"),
                100
            )
            .await
            .expect("claims")
            .is_empty()
    );

    // A graceful switchover: a release without deliveries, then the takeover that completes
    // it under its id, with its delivery; it is then in the cluster's history as active.
    let at = "2027-01-05T03:00:00Z";
    let release = Decision::New(Box::new(NewEvent {
        active: None,
        previous: Some("db1".into()),
        ..new_event_fields(at, &[])
    }));
    let released = store
        .record(
            report("r-release", at),
            Box::new(move |_, _| release.clone()),
        )
        .await
        .expect("recorded");
    let id = released.event.id.clone();
    let into = id.clone();
    let completed = store
        .record(
            report("r-takeover", "2027-01-05T03:00:20Z"),
            Box::new(move |h, _| {
                // The first try reads nothing and cannot complete; the second reads the release.
                if !h.events.is_empty() {
                    assert_eq!(
                        h.events.iter().map(|e| &e.active).collect::<Vec<_>>(),
                        [&None]
                    );
                    assert!(h.older, "{h:?}");
                }
                Decision::Complete(
                    into.clone(),
                    Box::new(NewEvent {
                        active: Some("db2".into()),
                        previous: Some("db1".into()),
                        ..new_event_fields("2027-01-05T03:00:20Z", &["log"])
                    }),
                )
            }),
        )
        .await
        .expect("recorded");
    assert!(completed.merged);
    assert_eq!((&completed.event.id, completed.event.reports), (&id, 2));
    assert_eq!(completed.event.event.active.as_deref(), Some("db2"));
    let due = store
        .claim_due(
            &lease(t("2027-01-05T03:01:00Z")),
            t("2027-01-05T03:01:00Z"),
            100,
        )
        .await
        .expect("claims");
    assert_eq!(
        due.iter().filter(|d| d.event == id).count(),
        1,
        "the completed event's delivery is due"
    );
    let into = id.clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let noted = Arc::clone(&seen);
    let again = store
        .record(
            report("r-again", "2027-01-05T03:00:30Z"),
            Box::new(move |h, _| {
                noted.lock().expect("lock").clone_from(&h.events);
                Decision::Complete(into.clone(), Box::new(new_event_fields(at, &["log"])))
            }),
        )
        .await;
    assert!(
        matches!(&again, Err(StoreError::NotFound(e)) if *e == id),
        "{again:?}"
    );
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        seen.iter()
            .map(|e| (e.id.0.as_str(), e.active.as_deref()))
            .collect::<Vec<_>>(),
        [(id.0.as_str(), Some("db2"))],
        "the history holds the completed event once"
    );

    // The cluster's `HEAD` has no TTL: a cluster quiet for longer than the retention is still
    // known to have run (its next failover is no "cluster start"); its events do expire.
    let raw = aws_sdk_dynamodb::Client::new(&config);
    let item = |pk: &str, sk: &str| {
        let raw = raw.clone();
        let (pk, sk) = (pk.to_owned(), sk.to_owned());
        async move {
            raw.get_item()
                .table_name("events")
                .key("pk", AttributeValue::S(pk))
                .key("sk", AttributeValue::S(sk))
                .send()
                .await
                .expect("reads")
                .item
                .expect("the item exists")
        }
    };
    let head = item("CLUSTER#db", "HEAD").await;
    assert!(!head.contains_key("expires_at"), "{head:?}");
    let event = item("EVENT", &format!("{:0>19}", id.0)).await;
    assert!(event.contains_key("expires_at"), "{event:?}");
}

/// What each kind of request costs in DynamoDB calls, counted where the SDK sends them; the
/// numbers are in BENCHMARKS.md. Listing one cluster or one customer reads its index, not
/// every event: its answer is right with many more events of others in the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_calls_per_request() {
    let (_moto, url) = moto();
    let config = sdk(&url).await;
    create_table(&url, "calls");
    let store = Dynamo::with_config(&config, "calls", SignedDuration::from_hours(24 * 90));
    let cost = |before: &std::collections::BTreeMap<String, u64>| {
        let mut spent: Vec<(String, u64)> = store
            .calls()
            .into_iter()
            .map(|(op, n)| (op.clone(), n - before.get(&op).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .collect();
        spent.sort();
        spent
    };
    let ops = |pairs: &[(&str, u64)]| -> Vec<(String, u64)> {
        pairs.iter().map(|(o, n)| ((*o).to_owned(), *n)).collect()
    };
    let record = |id: &str, cluster: &str, customer: &str, at: &str| {
        let mut r = report(id, at);
        r.history = Some((cluster.into(), t(at) - SignedDuration::from_hours(1)));
        r.maintenance_after = None;
        let mut e = new_event_fields(at, &["log"]);
        e.cluster = Some(cluster.into());
        e.customer = Some(customer.into());
        (r, e)
    };

    // A cluster's very first report reads its (absent) HEAD once.
    let (r, e) = record("q-0", "quiet", "acme", "2026-12-01T00:00:00Z");
    let before = store.calls();
    store
        .record(r, Box::new(move |_, _| Decision::New(Box::new(e.clone()))))
        .await
        .expect("recorded");
    let first = cost(&before);
    assert_eq!(
        first,
        ops(&[("BatchGetItem", 1), ("TransactWriteItems", 2)]),
        "first report"
    );
    // A failover in a while: one call.
    let (r, e) = record("q-1", "quiet", "acme", "2026-12-03T00:00:00Z");
    let before = store.calls();
    store.record(r, merge_or(e)).await.expect("recorded");
    let quiet = cost(&before);
    assert_eq!(
        quiet,
        ops(&[("TransactWriteItems", 1)]),
        "a failover in a while"
    );
    // The other node's report of it: read, then merge.
    let (r, e) = record("q-2", "quiet", "acme", "2026-12-03T00:00:10Z");
    let before = store.calls();
    store.record(r, merge_or(e)).await.expect("recorded");
    let merged = cost(&before);
    assert_eq!(
        merged,
        ops(&[
            ("BatchGetItem", 1),
            ("GetItem", 1),
            ("TransactWriteItems", 2)
        ]),
        "the other node's report"
    );

    // 200 newer events of another customer's cluster.
    for i in 0..200 {
        let at = (t("2026-12-04T00:00:00Z") + SignedDuration::from_mins(i)).to_string();
        let (r, e) = record(&format!("b-{i}"), "busy", "globex", &at);
        store
            .record(r, Box::new(move |_, _| Decision::New(Box::new(e.clone()))))
            .await
            .expect("recorded");
    }
    let list = |cluster: Option<&str>, customers: Option<Vec<String>>| EventQuery {
        cluster: cluster.map(str::to_owned),
        customers,
        limit: 5,
        ..EventQuery::default()
    };
    let before = store.calls();
    let listed = store
        .events(list(Some("quiet"), None))
        .await
        .expect("lists");
    assert_eq!(listed.len(), 2, "quiet's two events");
    let by_cluster = cost(&before);
    assert_eq!(by_cluster, ops(&[("Query", 1)]), "one cluster");
    let before = store.calls();
    let listed = store
        .events(list(None, Some(vec!["acme".into()])))
        .await
        .expect("lists");
    assert_eq!(listed.len(), 2, "acme's two events");
    assert_eq!(cost(&before), ops(&[("Query", 1)]), "one customer");
    let listed = store
        .events(list(Some("busy"), Some(vec!["acme".into()])))
        .await
        .expect("lists");
    assert!(listed.is_empty(), "another customer's cluster");

    // The outbox: 202 events with a pending delivery, read in batches of 100.
    let before = store.calls();
    let now = t("2026-12-05T00:00:00Z");
    let due = store
        .claim_due(&lease(now), now, 1000)
        .await
        .expect("claims");
    assert_eq!(due.len(), 202);
    let claim = cost(&before);
    assert_eq!(
        claim,
        ops(&[("BatchGetItem", 3), ("Query", 1), ("UpdateItem", 202)]),
        "claiming 202 events' deliveries"
    );
    let before = store.calls();
    store.next_due().await.expect("next");
    let next = cost(&before);
    assert_eq!(
        next,
        ops(&[("BatchGetItem", 3), ("Query", 1)]),
        "next_due (healthz, metrics)"
    );
    eprintln!(
        "DynamoDB calls: first report {first:?}; failover in a while {quiet:?}; the other node's report {merged:?}; one cluster's events {by_cluster:?}; claiming 202 {claim:?}; next_due {next:?}"
    );
}

/// An item whose `event` holds the context the release before typed contexts wrote reads,
/// with every member the dashboard and the senders use, and its reminder is claimed as one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_stored_before_contexts_were_typed_read() {
    let (_moto, url) = moto();
    let config = sdk(&url).await;
    create_table(&url, "previous");
    let store = Dynamo::with_config(&config, "previous", SignedDuration::from_hours(24 * 90));
    let back_by = t("2026-12-09T22:30:00Z");
    let planned = NewEvent {
        verdict: Verdict::Planned,
        back_by: Some(back_by),
        reminders: vec!["mail".into()],
        ..new_event_fields("2026-12-09T21:00:00Z", &["pager"])
    };
    store
        .record(report("r1", "2026-12-09T21:00:00Z"), merge_or(planned))
        .await
        .expect("recorded");
    // The item's `event` as that release wrote it: the same JSON with the old context.
    let client = aws_sdk_dynamodb::Client::new(&config);
    let items = client
        .scan()
        .table_name("previous")
        .send()
        .await
        .expect("scans")
        .items
        .unwrap_or_default();
    let item = items
        .iter()
        .find(|i| i.get("pk").and_then(|v| v.as_s().ok()).map(String::as_str) == Some("EVENT"))
        .expect("the event's item");
    let mut event: serde_json::Value = item
        .get("event")
        .and_then(|v| v.as_s().ok())
        .and_then(|e| serde_json::from_str(e).ok())
        .expect("its event JSON");
    event["context"] =
        serde_json::from_str(failover_store::conformance::CONTEXT_BEFORE_VERSIONS).expect("JSON");
    client
        .update_item()
        .table_name("previous")
        .key("pk", item["pk"].clone())
        .key("sk", item["sk"].clone())
        .update_expression("SET #e = :e")
        .expression_attribute_names("#e", "event")
        .expression_attribute_values(":e", AttributeValue::S(event.to_string()))
        .send()
        .await
        .expect("the old event written");

    failover_store::conformance::reads_the_previous_release(&store, back_by).await;
}
