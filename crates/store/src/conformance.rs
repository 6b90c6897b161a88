//! The contract every backend keeps, written once (feature `conformance`): each backend's
//! tests expand [`conformance_tests!`](crate::conformance_tests) with a block that opens a
//! fresh, empty store, which makes one test of each scenario.
//!
//! A backend may call a decision more than once for one report (DynamoDB first decides on a
//! guess, no events read and older ones assumed, and writes only if the guess was right), so
//! the decisions here are functions of what they are given, and what they were given is
//! checked on the last call, the one that was written.
//!
//! What only one backend can show stays in its own tests: SQLite's group commit and the
//! release of claims at a restart, DynamoDB's first try without a read and its lost race on a
//! cluster's `HEAD` (moto runs transactions without a lock, so concurrent writers cannot race
//! there for real).

use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};

use crate::{
    Action, Decide, Decision, DeliveryKind, DeliveryState, EventId, EventQuery, History, Lease,
    Maintenance, MessageContext, MessageKind, NewEvent, NewMaintenance, NewReport, Outcome, Scope,
    Session, Store, StoreError, TargetKind, Verdict,
};

/// The worker that claims in most scenarios.
const A: &str = "worker-a";

/// A claim by `owner` for five minutes from `now`.
fn lease(owner: &str, now: Timestamp) -> Lease {
    Lease {
        owner: owner.into(),
        until: now + SignedDuration::from_mins(5),
    }
}

/// What a decision was last given.
type Seen = Arc<Mutex<Option<(History, Vec<Maintenance>)>>>;

/// `decide`, noting what it is given.
fn noting(
    decide: impl Fn(&History, &[Maintenance]) -> Decision + Send + 'static,
) -> (Decide, Seen) {
    let seen = Seen::default();
    let noted = Arc::clone(&seen);
    let decide: Decide = Box::new(move |h, m| {
        *noted.lock().expect("lock") = Some((h.clone(), m.to_vec()));
        decide(h, m)
    });
    (decide, seen)
}

/// What the written decision was given.
fn given(seen: &Seen) -> (History, Vec<Maintenance>) {
    seen.lock()
        .expect("lock")
        .clone()
        .expect("the report was decided")
}

/// Records `r` as the new event `e`: what was recorded, and what the written decision was
/// given.
async fn record_new<S: Store>(
    store: &S,
    r: NewReport,
    e: NewEvent,
) -> (crate::Recorded, History, Vec<Maintenance>) {
    let (decide, seen) = noting(move |_, _| new(e.clone()));
    let recorded = store.record(r, decide).await.expect("recorded");
    let (h, m) = given(&seen);
    (recorded, h, m)
}

/// Merges into the newest event of the history, else a new event.
fn merge_or(e: NewEvent) -> impl Fn(&History, &[Maintenance]) -> Decision + Send + 'static {
    move |h, _| match h.events.last() {
        Some(last) => Decision::Merge(last.id.clone()),
        None => Decision::New(Box::new(e.clone())),
    }
}

/// A planned failover's message context as the release before typed contexts stored it
/// (`serde_json::Value` text: members sorted, no `version`): what each backend's upgrade test
/// writes into a row or item as that release did.
pub const CONTEXT_BEFORE_VERSIONS: &str = r#"{"at":"2026-12-09 22:00:00 CET","at_utc":"2026-12-09T21:00:00Z","back_by":"2026-12-09 23:30:00 CET","cluster":"db","customer":"acme","failback":false,"failback_of":"","failback_of_event":"","fault":false,"fenced":false,"flapping":false,"flapping_count":3,"flapping_within":"30m","host":"db2","nodes":["db1","db2"],"previous":"db1","time_zone":"Europe/Berlin","usual":"db1","verdict":"planned","window":{"end":"23:00","name":"patch","owner":"ops","start":"22:00","time_zone":"Europe/Berlin"}}"#;

/// The store's only event holds [`CONTEXT_BEFORE_VERSIONS`], with a delivery to `pager` and a
/// reminder to `mail` due at `back_by`: the context reads with every member the dashboard and
/// the senders use, and the reminder is claimed as one.
///
/// # Panics
/// When the store reads it otherwise.
pub async fn reads_the_previous_release<S: Store>(store: &S, back_by: Timestamp) {
    let events = store.events(EventQuery::default()).await.expect("lists");
    let c = &events[0].event.context;
    assert_eq!(
        (
            c.verdict,
            c.host.as_str(),
            c.usual.as_str(),
            c.back_by.as_str(),
            c.version
        ),
        (
            MessageKind::Planned,
            "db2",
            "db1",
            "2026-12-09 23:30:00 CET",
            0
        ),
        "upgrade: the context"
    );
    assert_eq!(
        c.window.as_ref().map(|w| w.owner.as_str()),
        Some("ops"),
        "upgrade: its window"
    );
    let due = store
        .claim_due(&lease("new", back_by), back_by, 10)
        .await
        .expect("claims");
    let kinds: Vec<_> = due
        .iter()
        .map(|d| (d.channel.as_str(), d.kind, d.context.usual.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("pager", DeliveryKind::Message, "db1"),
            ("mail", DeliveryKind::Reminder, "db1")
        ],
        "upgrade: the deliveries"
    );
}

/// One test per scenario of the contract in the calling test crate, each on a store of its
/// own, so that one scenario's failure hides none of the others. `$open` is an `async`
/// block run once per test that answers `(guard, store)`: the guard keeps alive what the
/// store needs (a temp dir, a throwaway cluster, an emulator) until the test ends. Name
/// `pruning` after it for a backend that deletes old rows itself (DynamoDB leaves that to
/// its TTL).
///
/// ```ignore
/// failover_store::conformance_tests!(async {
///     let dir = tempfile::tempdir().expect("temp dir");
///     let store = Sqlite::open(dir.path().join("events.db")).expect("opens");
///     (dir, store)
/// }, pruning);
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($open:expr $(, $extra:ident)*) => {
        $crate::conformance_tests!(@each $open; recording, completing, outbox, claimed_on_record,
            leases, details, maintenance, resending, sessions, listing, reminders, resolves
            $(, $extra)*);
    };
    (@each $open:expr; $($scenario:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                let (_guard, store) = $open.await;
                $crate::conformance::$scenario(&store).await;
            }
        )*
    };
}

fn t(s: &str) -> Timestamp {
    s.parse().expect("a test instant")
}

/// A report of `host` in cluster `cluster` at `at`, looking back an hour.
fn report(id: &str, scope: &str, cluster: &str, host: &str, at: &str) -> NewReport {
    NewReport {
        client_id: Some(id.into()),
        scope: Scope::from_key(scope),
        host: host.into(),
        action: Action::Takeover,
        previous: None,
        resource: None,
        source: Some("conformance".into()),
        occurred_at: t(at),
        received_at: t(at),
        history: Some((cluster.into(), t(at) - SignedDuration::from_hours(1))),
        claim: None,
        maintenance_after: None,
    }
}

fn event(cluster: &str, customer: &str, active: &str, at: &str, channels: &[&str]) -> NewEvent {
    NewEvent {
        cluster: Some(cluster.into()),
        customer: Some(customer.into()),
        active: Some(active.into()),
        previous: None,
        verdict: Verdict::Unplanned,
        at: t(at),
        flapping: false,
        failback_of: None,
        classification: serde_json::json!({"verdict": "unplanned"}),
        context: MessageContext {
            host: active.into(),
            ..MessageContext::default()
        },
        channels: channels.iter().map(|c| (*c).to_owned()).collect(),
        back_by: None,
        reminders: Vec::new(),
    }
}

fn new(e: NewEvent) -> Decision {
    Decision::New(Box::new(e))
}

/// Every event in `store`, newest first (up to 1,000: the scenarios' stores are small); a
/// backend's own tests use it too.
///
/// # Panics
/// When the store cannot list them.
pub async fn all<S: Store>(store: &S) -> Vec<crate::StoredEvent> {
    store
        .events(EventQuery {
            limit: 1000,
            ..EventQuery::default()
        })
        .await
        .expect("lists")
}

/// History, merging, client ids within a scope, a merge into nothing, older events.
pub async fn recording<S: Store>(store: &S) {
    let (first, h, m) = record_new(
        store,
        report("r1", "acme", "db", "db1", "2026-12-09T21:00:00Z"),
        event(
            "db",
            "acme",
            "db1",
            "2026-12-09T21:00:00Z",
            &["log", "mail"],
        ),
    )
    .await;
    assert!(
        h.events.is_empty() && !h.older,
        "recording: a new cluster: {h:?}"
    );
    assert!(m.is_empty(), "recording: no windows were asked for");
    assert!(!first.merged && !first.duplicate, "recording: {first:?}");
    assert_eq!(first.event.reports, 1, "recording: one report");
    assert_eq!(
        first
            .event
            .deliveries
            .iter()
            .map(|d| (d.channel.as_str(), d.status.as_str()))
            .collect::<Vec<_>>(),
        [("log", "pending"), ("mail", "pending")],
        "recording: one pending delivery per channel"
    );

    let again = store
        .record(
            report("r1", "acme", "db", "db1", "2026-12-09T21:00:30Z"),
            // Whatever a decision says now: the first answer stands.
            Box::new(|_, _| new(event("db", "acme", "db2", "2026-12-09T21:00:30Z", &["log"]))),
        )
        .await
        .expect("recording: the retry is answered");
    assert!(again.duplicate, "recording: {again:?}");
    assert_eq!(
        (
            &again.event.id,
            again.event.reports,
            again.event.deliveries.len()
        ),
        (&first.event.id, 1, 2),
        "recording: the retry gets the same event, nothing written"
    );
    assert_eq!(
        all(store).await.len(),
        1,
        "recording: a retry writes no event"
    );

    let (decide, seen) = noting(merge_or(event(
        "db",
        "acme",
        "db2",
        "2026-12-09T21:00:40Z",
        &[],
    )));
    let merged = store
        .record(
            report("r2", "acme", "db", "db2", "2026-12-09T21:00:40Z"),
            decide,
        )
        .await
        .expect("recording: merged");
    let (h, _) = given(&seen);
    assert_eq!(
        h.events.len(),
        1,
        "recording: the history holds the event: {h:?}"
    );
    assert_eq!(
        (
            &h.events[0].id,
            h.events[0].active.as_deref(),
            h.events[0].at
        ),
        (&first.event.id, Some("db1"), t("2026-12-09T21:00:00Z")),
        "recording: the history"
    );
    assert!(merged.merged && !merged.duplicate, "recording: {merged:?}");
    assert_eq!(
        (&merged.event.id, merged.event.reports),
        (&first.event.id, 2),
        "recording: the merge counts the report"
    );
    assert_eq!(
        all(store).await.len(),
        1,
        "recording: a merge makes no event"
    );

    // Client ids are unique within a scope only.
    let other_scope = store
        .record(
            report("r1", "*", "db", "db1", "2026-12-09T21:01:00Z"),
            Box::new(merge_or(event(
                "db",
                "acme",
                "db1",
                "2026-12-09T21:01:00Z",
                &[],
            ))),
        )
        .await
        .expect("recording: another scope's r1");
    assert!(
        !other_scope.duplicate && other_scope.merged,
        "recording: {other_scope:?}"
    );

    let missing = store
        .record(
            report("r3", "acme", "db", "db1", "2026-12-09T21:02:00Z"),
            Box::new(|_, _| Decision::Merge(crate::EventId("424242".into()))),
        )
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "recording: a merge into no event: {missing:?}"
    );

    // Two hours on, the look-back no longer reaches the event: older, not in the history.
    let (_, h, _) = record_new(
        store,
        report("r4", "acme", "db", "db1", "2026-12-09T23:30:00Z"),
        event("db", "acme", "db1", "2026-12-09T23:30:00Z", &[]),
    )
    .await;
    assert!(
        h.events.is_empty() && h.older,
        "recording: older events: {h:?}"
    );
    // Another cluster has its own history.
    let (_, h, _) = record_new(
        store,
        report("r5", "acme", "web", "web1", "2026-12-09T23:30:10Z"),
        event("web", "acme", "web1", "2026-12-09T23:30:10Z", &[]),
    )
    .await;
    assert!(
        h.events.is_empty() && !h.older,
        "recording: web's history: {h:?}"
    );
}

/// A takeover completes the event of the release before it.
pub async fn completing<S: Store>(store: &S) {
    let released = store
        .record(
            report("r1", "acme", "db", "db1", "2026-12-09T21:00:00Z"),
            Box::new(|_, _| {
                new(NewEvent {
                    active: None,
                    previous: Some("db1".into()),
                    ..event("db", "acme", "db1", "2026-12-09T21:00:00Z", &[])
                })
            }),
        )
        .await
        .expect("completing: the release");
    assert!(
        released.event.deliveries.is_empty(),
        "completing: {released:?}"
    );
    let id = released.event.id.clone();
    let completed = store
        .record(
            report("r2", "acme", "db", "db2", "2026-12-09T21:00:20Z"),
            Box::new(|h, _| {
                let takeover = Box::new(NewEvent {
                    previous: Some("db1".into()),
                    ..event("db", "acme", "db2", "2026-12-09T21:00:20Z", &["log"])
                });
                match h.events.iter().find(|e| e.active.is_none()) {
                    Some(release) => Decision::Complete(release.id.clone(), takeover),
                    None => Decision::New(takeover),
                }
            }),
        )
        .await
        .expect("completing: the takeover");
    assert!(
        completed.merged && !completed.duplicate,
        "completing: {completed:?}"
    );
    assert_eq!(
        completed.event.deliveries.len(),
        1,
        "completing: its delivery"
    );
    assert_eq!(
        (&completed.event.id, completed.event.reports),
        (&id, 2),
        "completing: one event of two reports"
    );
    assert_eq!(
        (
            completed.event.event.active.as_deref(),
            completed.event.event.previous.as_deref(),
            completed.event.event.at
        ),
        (Some("db2"), Some("db1"), t("2026-12-09T21:00:20Z")),
        "completing: the takeover's fields"
    );
    let listed = all(store).await;
    assert_eq!(listed.len(), 1, "completing: {listed:?}");
    let due = store
        .claim_due(
            &lease(A, t("2026-12-09T21:01:00Z")),
            t("2026-12-09T21:01:00Z"),
            10,
        )
        .await
        .expect("completing: claims");
    assert_eq!(
        due.iter()
            .map(|d| (&d.event, d.channel.as_str()))
            .collect::<Vec<_>>(),
        [(&id, "log")],
        "completing: its delivery is due"
    );
    let into = id.clone();
    let (decide, seen) = noting(move |_, _| {
        Decision::Complete(
            into.clone(),
            Box::new(event("db", "acme", "db1", "2026-12-09T21:00:30Z", &["log"])),
        )
    });
    let again = store
        .record(
            report("r3", "acme", "db", "db1", "2026-12-09T21:00:30Z"),
            decide,
        )
        .await;
    assert!(
        matches!(&again, Err(StoreError::NotFound(e)) if *e == id),
        "completing: an event with deliveries is not completed again: {again:?}"
    );
    // The history held it, completed, once.
    let (h, _) = given(&seen);
    assert_eq!(
        h.events
            .iter()
            .map(|e| (e.id.clone(), e.active.clone()))
            .collect::<Vec<_>>(),
        [(id.clone(), Some("db2".to_owned()))],
        "completing: the history"
    );
}

/// Claims, outcomes, retries, give-up, the queue's counts.
pub async fn outbox<S: Store>(store: &S) {
    let at = "2026-12-10T00:00:00Z";
    let recorded = store
        .record(
            report("r1", "acme", "db", "db1", at),
            Box::new(move |_, _| new(event("db", "acme", "db1", at, &["log", "mail", "hook"]))),
        )
        .await
        .expect("outbox: recorded");
    let now = t("2026-12-10T00:00:01Z");
    assert_eq!(
        store.next_due().await.expect("next"),
        Some(t(at)),
        "outbox: due at once"
    );
    let first = store
        .claim_due(&lease(A, now), now, 2)
        .await
        .expect("outbox: claims");
    assert_eq!(first.len(), 2, "outbox: at most the limit");
    let rest = store
        .claim_due(&lease(A, now), now, 10)
        .await
        .expect("outbox: claims");
    assert_eq!(
        rest.len(),
        1,
        "outbox: a claimed delivery is not claimed again"
    );
    assert!(
        store
            .claim_due(&lease(A, now), now, 10)
            .await
            .expect("claims")
            .is_empty(),
        "outbox: everything is claimed"
    );
    let due: Vec<_> = first.into_iter().chain(rest).collect();
    for d in &due {
        assert_eq!(
            (
                &d.event,
                d.attempts,
                d.verdict.as_str(),
                d.cluster.as_deref()
            ),
            (&recorded.event.id, 0, "unplanned", Some("db")),
            "outbox: what a channel needs"
        );
        assert_eq!(d.context.host, "db1", "outbox: the template context");
    }
    let by = |c: &str| due.iter().find(|d| d.channel == c).expect("a delivery").id;
    let retry_at = now + SignedDuration::from_secs(30);
    store
        .finish(
            A,
            vec![
                (by("log"), Outcome::Delivered),
                (
                    by("mail"),
                    Outcome::Retry {
                        at: retry_at,
                        error: "smtp down".into(),
                    },
                ),
                (
                    by("hook"),
                    Outcome::Failed {
                        error: "HTTP 400".into(),
                    },
                ),
            ],
            now,
        )
        .await
        .expect("outbox: finishes");
    let counts = store.delivery_counts().await.expect("outbox: counts");
    for (status, want) in [("pending", Some(1)), ("delivered", None), ("failed", None)] {
        let n = counts
            .iter()
            .find(|(s, _)| s.as_str() == status)
            .map(|(_, n)| *n);
        match want {
            Some(_) => assert_eq!(n, want, "outbox: the queue's depth: {counts:?}"),
            // A backend may leave finished statuses out; counted, they are right.
            None => assert!(n.is_none_or(|n| n == 1), "outbox: {status}: {counts:?}"),
        }
    }
    assert_eq!(store.pending_of("mail").await.expect("lists"), [by("mail")]);
    assert!(store.pending_of("log").await.expect("lists").is_empty());
    assert_eq!(
        store.next_due().await.expect("next"),
        Some(retry_at),
        "outbox: the retry"
    );
    assert!(
        store
            .claim_due(
                &lease(A, retry_at - SignedDuration::from_secs(1)),
                retry_at - SignedDuration::from_secs(1),
                10
            )
            .await
            .expect("claims")
            .is_empty(),
        "outbox: not before its time"
    );
    let retried = store
        .claim_due(&lease(A, retry_at), retry_at, 10)
        .await
        .expect("outbox: claims");
    assert_eq!(
        retried
            .iter()
            .map(|d| (d.id, d.attempts))
            .collect::<Vec<_>>(),
        [(by("mail"), 1)],
        "outbox: the retry, one attempt made"
    );
    store
        .finish(A, vec![(by("mail"), Outcome::Delivered)], retry_at)
        .await
        .expect("outbox: finishes");
    assert_eq!(
        store.next_due().await.expect("next"),
        None,
        "outbox: nothing left"
    );
    let shown = all(store).await;
    let statuses: Vec<_> = shown[0]
        .deliveries
        .iter()
        .map(|d| {
            (
                d.channel.as_str(),
                d.status.as_str(),
                d.attempts,
                d.last_error.as_deref(),
                d.finished_at.is_some(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("log", "delivered", 1, None, true),
            ("mail", "delivered", 2, Some("smtp down"), true),
            ("hook", "failed", 1, Some("HTTP 400"), true)
        ],
        "outbox: what the API shows"
    );
}

/// Deliveries recorded claimed (sent within the request) are not handed out by `claim_due`;
/// `claim_event` takes an event's pending ones that nobody holds once, due or not.
pub async fn claimed_on_record<S: Store>(store: &S) {
    let mut r = report("r1", "acme", "db", "db1", "2026-12-09T21:00:00Z");
    r.claim = Some(lease("request", t("2026-12-09T21:00:00Z")));
    let recorded = store
        .record(
            r,
            Box::new(|_, _| {
                new(event(
                    "db",
                    "acme",
                    "db1",
                    "2026-12-09T21:00:00Z",
                    &["log", "mail"],
                ))
            }),
        )
        .await
        .expect("claimed: recorded");
    let later = t("2026-12-09T21:00:10Z");
    assert!(
        store
            .claim_due(&lease(A, later), later, 10)
            .await
            .expect("claims")
            .is_empty(),
        "claimed: not handed out"
    );
    let [log, mail] = [&recorded.event.deliveries[0], &recorded.event.deliveries[1]];
    store
        .finish(
            "request",
            vec![
                (log.id, Outcome::Delivered),
                (
                    mail.id,
                    Outcome::Retry {
                        at: t("2026-12-09T23:00:00Z"),
                        error: "smtp down".into(),
                    },
                ),
            ],
            later,
        )
        .await
        .expect("claimed: finishes");
    let claimed = store
        .claim_event(&recorded.event.id, &lease("retry", later), later)
        .await
        .expect("claimed: claims the event");
    assert_eq!(
        claimed
            .iter()
            .map(|d| d.channel.as_str())
            .collect::<Vec<_>>(),
        ["mail"],
        "claimed: the failed one, before its time"
    );
    for nothing in ["999999999", "abc", ""] {
        let none = store
            .claim_event(&EventId(nothing.into()), &lease("retry", later), later)
            .await
            .expect("claimed: an id that names no event is no error");
        assert!(none.is_empty(), "claimed: nothing of `{nothing}`: {none:?}");
    }
    assert!(
        store
            .claim_event(&recorded.event.id, &lease("retry", later), later)
            .await
            .expect("claims")
            .is_empty(),
        "claimed: only once"
    );
}

/// A claim holds until its lease ends; then anyone may claim again, and only the holder's
/// outcome counts.
pub async fn leases<S: Store>(store: &S) {
    let at = t("2026-12-10T00:00:00Z");
    let recorded = store
        .record(
            report("r1", "acme", "db", "db1", "2026-12-10T00:00:00Z"),
            Box::new(|_, _| {
                new(event(
                    "db",
                    "acme",
                    "db1",
                    "2026-12-10T00:00:00Z",
                    &["hook"],
                ))
            }),
        )
        .await
        .expect("leases: recorded");
    let id = recorded.event.deliveries[0].id;
    let short = Lease {
        owner: A.into(),
        until: at + SignedDuration::from_mins(1),
    };
    assert_eq!(
        store.claim_due(&short, at, 10).await.expect("claims").len(),
        1,
        "leases: A claims"
    );
    let b = |now| Lease {
        owner: "worker-b".into(),
        until: now + SignedDuration::from_mins(1),
    };
    let half = at + SignedDuration::from_secs(30);
    assert!(
        store
            .claim_due(&b(half), half, 10)
            .await
            .expect("claims")
            .is_empty(),
        "leases: held by A until its lease ends"
    );
    assert!(
        store
            .claim_event(&recorded.event.id, &b(half), half)
            .await
            .expect("claims")
            .is_empty(),
        "leases: the event's claim respects A's lease too"
    );
    assert_eq!(
        store.next_due().await.expect("next"),
        Some(short.until),
        "leases: due again when A's lease ends"
    );
    let ended = short.until;
    let taken = store.claim_due(&b(ended), ended, 10).await.expect("claims");
    assert_eq!(
        taken.iter().map(|d| (d.id, d.attempts)).collect::<Vec<_>>(),
        [(id, 0)],
        "leases: B claims once A's lease has ended"
    );
    // A wakes up late: its outcome is not recorded, the delivery is B's.
    let late = vec![(
        id,
        Outcome::Failed {
            error: "late".into(),
        },
    )];
    store
        .finish(A, late.clone(), ended)
        .await
        .expect("leases: A's late outcome is refused quietly");
    let shown = || async {
        let events = all(store).await;
        let d = &events[0].deliveries[0];
        (d.status, d.attempts, d.last_error.clone())
    };
    assert_eq!(
        shown().await,
        (crate::DeliveryState::Pending, 0, None),
        "leases: A's outcome changed nothing"
    );
    store
        .finish("worker-b", vec![(id, Outcome::Delivered)], ended)
        .await
        .expect("leases: B finishes");
    store
        .finish(A, late.clone(), ended)
        .await
        .expect("leases: finishing a finished delivery is refused quietly");
    assert_eq!(
        shown().await,
        (crate::DeliveryState::Delivered, 1, None),
        "leases: B's outcome stands"
    );
}

/// `event` returns an event with its reports in the order received and its deliveries.
pub async fn details<S: Store>(store: &S) {
    let mut first = report("r1", "acme", "db", "db2", "2026-12-09T21:00:00Z");
    first.action = Action::Lost;
    first.previous = Some("db1.example.net".into());
    first.resource = Some("vip".into());
    first.received_at = t("2026-12-09T21:00:02Z");
    let recorded = store
        .record(
            first,
            Box::new(|_, _| new(event("db", "acme", "db2", "2026-12-09T21:00:00Z", &["log"]))),
        )
        .await
        .expect("details: recorded");
    let id = recorded.event.id.clone();
    let second = report("r2", "acme", "db", "db2", "2026-12-09T21:00:05Z");
    store
        .record(
            second.clone(),
            Box::new(merge_or(event(
                "db",
                "acme",
                "db2",
                "2026-12-09T21:00:05Z",
                &[],
            ))),
        )
        .await
        .expect("details: merged");
    // A retry adds no report.
    store
        .record(
            second,
            Box::new(merge_or(event(
                "db",
                "acme",
                "db2",
                "2026-12-09T21:00:05Z",
                &[],
            ))),
        )
        .await
        .expect("details: retried");
    let detail = store
        .event(&id)
        .await
        .expect("details: reads")
        .expect("details: the event exists");
    assert_eq!(detail.event.id, id, "details: the event");
    assert_eq!(
        detail
            .event
            .deliveries
            .iter()
            .map(|d| d.channel.as_str())
            .collect::<Vec<_>>(),
        ["log"],
        "details: its deliveries"
    );
    let reports: Vec<_> = detail
        .received
        .iter()
        .map(|r| {
            (
                r.client_id.as_deref(),
                r.host.as_str(),
                r.action,
                r.previous.as_deref(),
                r.resource.as_deref(),
                r.source.as_deref(),
                r.occurred_at,
            )
        })
        .collect();
    assert_eq!(
        reports,
        [
            (
                Some("r1"),
                "db2",
                Action::Lost,
                Some("db1.example.net"),
                Some("vip"),
                Some("conformance"),
                t("2026-12-09T21:00:00Z")
            ),
            (
                Some("r2"),
                "db2",
                Action::Takeover,
                None,
                None,
                Some("conformance"),
                t("2026-12-09T21:00:05Z")
            ),
        ],
        "details: both reports as received, once each"
    );
    assert_eq!(
        detail.received[0].received_at,
        t("2026-12-09T21:00:02Z"),
        "details: when it was received"
    );
    for missing in ["424242", "not-a-number", ""] {
        assert!(
            store
                .event(&EventId(missing.into()))
                .await
                .expect("details: reads")
                .is_none(),
            "details: no event `{missing}`"
        );
    }
}

/// An ad-hoc window on acme's cluster `db`.
fn window(start: &str, end: &str) -> NewMaintenance {
    NewMaintenance {
        target_kind: TargetKind::Cluster,
        target: "db".into(),
        customer: Some("acme".into()),
        start: t(start),
        end: t(end),
        reason: "kernel update".into(),
        created_by: "ops".into(),
    }
}

/// Ad-hoc windows: listed by start, handed to a decision, ended or removed.
pub async fn maintenance<S: Store>(store: &S) {
    let later = store
        .add_maintenance(window("2026-12-10T02:00:00Z", "2026-12-10T04:00:00Z"))
        .await
        .expect("maintenance: adds");
    let open = store
        .add_maintenance(window("2026-12-09T20:00:00Z", "2026-12-09T22:00:00Z"))
        .await
        .expect("maintenance: adds");
    assert_ne!(later.id, open.id, "maintenance: ids differ");
    assert_eq!(
        later.window,
        window("2026-12-10T02:00:00Z", "2026-12-10T04:00:00Z")
    );
    let now = t("2026-12-09T21:00:00Z");
    assert_eq!(
        store.maintenance(now).await.expect("lists"),
        [open.clone(), later.clone()],
        "maintenance: by start"
    );
    assert_eq!(
        store
            .maintenance(t("2026-12-09T23:00:00Z"))
            .await
            .expect("lists"),
        std::slice::from_ref(&later),
        "maintenance: only those ending after the instant"
    );
    let mut r = report("r1", "acme", "db", "db1", "2026-12-09T21:00:00Z");
    r.maintenance_after = Some(now);
    let (_, _, m) = record_new(
        store,
        r,
        event("db", "acme", "db1", "2026-12-09T21:00:00Z", &[]),
    )
    .await;
    assert_eq!(
        m,
        [open.clone(), later.clone()],
        "maintenance: given with the history"
    );
    assert!(
        store.end_maintenance(open.id, now).await.expect("ends"),
        "maintenance: ends"
    );
    assert!(
        store.end_maintenance(later.id, now).await.expect("ends"),
        "maintenance: removes"
    );
    assert!(
        !store.end_maintenance(later.id, now).await.expect("ends"),
        "maintenance: nothing left to end"
    );
    let left = store
        .maintenance(t("2026-12-09T00:00:00Z"))
        .await
        .expect("lists");
    assert_eq!(
        left.len(),
        1,
        "maintenance: the future one is gone: {left:?}"
    );
    assert_eq!(
        (left[0].id, left[0].window.end),
        (open.id, now),
        "maintenance: cut to now"
    );
}

/// Newest first, filters, customer scope, pages.
pub async fn listing<S: Store>(store: &S) {
    for (i, (cluster, customer)) in [
        ("db", "acme"),
        ("web", "globex"),
        ("db", "acme"),
        ("db", "acme"),
        ("web", "globex"),
    ]
    .into_iter()
    .enumerate()
    {
        let at = format!("2026-12-0{}T10:00:00Z", i + 1);
        let mut e = event(cluster, customer, "n1", &at, &[]);
        if i == 2 {
            e.verdict = Verdict::Planned;
        }
        store
            .record(
                report(&format!("r{i}"), customer, cluster, "n1", &at),
                Box::new(move |_, _| new(e.clone())),
            )
            .await
            .expect("listing: recorded");
    }
    let ats = |events: &[crate::StoredEvent]| -> Vec<String> {
        events.iter().map(|e| e.event.at.to_string()).collect()
    };
    let everything = all(store).await;
    assert_eq!(
        ats(&everything),
        [
            "2026-12-05T10:00:00Z",
            "2026-12-04T10:00:00Z",
            "2026-12-03T10:00:00Z",
            "2026-12-02T10:00:00Z",
            "2026-12-01T10:00:00Z"
        ],
        "listing: newest first"
    );
    let query = |q: EventQuery| async move { store.events(q).await.expect("lists") };
    let db = query(EventQuery {
        cluster: Some("db".into()),
        limit: 10,
        ..EventQuery::default()
    })
    .await;
    assert_eq!(db.len(), 3, "listing: by cluster");
    let planned = query(EventQuery {
        verdict: Some(Verdict::Planned),
        limit: 10,
        ..EventQuery::default()
    })
    .await;
    assert_eq!(
        ats(&planned),
        ["2026-12-03T10:00:00Z"],
        "listing: by verdict"
    );
    let globex = query(EventQuery {
        customers: Some(vec!["globex".into()]),
        limit: 10,
        ..EventQuery::default()
    })
    .await;
    assert_eq!(
        ats(&globex),
        ["2026-12-05T10:00:00Z", "2026-12-02T10:00:00Z"],
        "listing: a customer sees only its own"
    );
    let since = query(EventQuery {
        since: Some(t("2026-12-03T10:00:00Z")),
        limit: 10,
        ..EventQuery::default()
    })
    .await;
    assert_eq!(since.len(), 3, "listing: since is inclusive");
    let page = query(EventQuery {
        limit: 2,
        ..EventQuery::default()
    })
    .await;
    assert_eq!(ats(&page), ats(&everything[..2]), "listing: the first page");
    let last: i64 = page[1].id.0.parse().expect("numeric ids");
    let next = query(EventQuery {
        before: Some(last),
        limit: 2,
        ..EventQuery::default()
    })
    .await;
    assert_eq!(ats(&next), ats(&everything[2..4]), "listing: the next page");
}

/// A failed delivery sent again: pending, due now, with a fresh give-up clock; nothing else.
pub async fn resending<S: Store>(store: &S) {
    let at = "2026-12-09T21:00:00Z";
    let first = store
        .record(
            report("r1", "acme", "db", "db2", at),
            Box::new(move |_, _| new(event("db", "acme", "db2", at, &["log", "mail"]))),
        )
        .await
        .expect("resending: recorded")
        .event;
    let claimed = store
        .claim_due(&lease(A, t(at)), t(at), 10)
        .await
        .expect("resending: claimed");
    let id_of = |channel: &str| {
        claimed
            .iter()
            .find(|d| d.channel == channel)
            .map(|d| d.id)
            .expect("resending: both deliveries claimed")
    };
    let (log, mail) = (id_of("log"), id_of("mail"));
    store
        .finish(
            A,
            vec![
                (
                    log,
                    Outcome::Failed {
                        error: "HTTP 404".into(),
                    },
                ),
                (mail, Outcome::Delivered),
            ],
            t(at),
        )
        .await
        .expect("resending: finished");
    let later = t("2026-12-11T08:00:00Z");
    let other = store
        .record(
            report("r2", "acme", "web", "web1", at),
            Box::new(move |_, _| new(event("web", "acme", "web1", at, &["log"]))),
        )
        .await
        .expect("resending: another event")
        .event;
    assert!(
        !store
            .resend(&other.id, log, later)
            .await
            .expect("resending: answers"),
        "resending: a delivery of another event is not sent again"
    );
    assert!(
        !store
            .resend(&first.id, mail, later)
            .await
            .expect("resending: answers"),
        "resending: a delivered delivery is not sent again"
    );
    assert!(
        !store
            .resend(&EventId("424242".into()), log, later)
            .await
            .expect("resending: answers"),
        "resending: no such event"
    );
    assert!(
        store
            .resend(&first.id, log, later)
            .await
            .expect("resending: resent"),
        "resending: the failed delivery is sent again"
    );
    assert!(
        !store
            .resend(&first.id, log, later)
            .await
            .expect("resending: answers"),
        "resending: a pending delivery is not resent twice"
    );
    let detail = store
        .event(&first.id)
        .await
        .expect("resending: reads")
        .expect("resending: the event exists");
    let d = detail
        .event
        .deliveries
        .iter()
        .find(|d| d.id == log)
        .expect("resending: the delivery");
    assert_eq!(
        (d.status, d.attempts, d.last_error.as_deref(), d.finished_at),
        (DeliveryState::Pending, 1, Some("HTTP 404"), None),
        "resending: pending again, its attempt and error kept"
    );
    let due = store
        .claim_due(&lease(A, later), later, 10)
        .await
        .expect("resending: claimed again");
    let due: Vec<_> = due.iter().filter(|d| d.event == first.id).collect();
    assert_eq!(due.len(), 1, "resending: only the resent delivery is due");
    assert_eq!(
        (due[0].id, due[0].attempts, due[0].created_at),
        (log, 1, later),
        "resending: its give-up clock starts again"
    );
}

/// Sessions: found by their token's hash until they end; ended on sign-out.
pub async fn sessions<S: Store>(store: &S) {
    let now = t("2026-12-09T21:00:00Z");
    let session = |hash: &str, hours: i64| Session {
        token_hash: hash.into(),
        key: "acme-ops".into(),
        key_check: "0123abcd".into(),
        expires: now + SignedDuration::from_hours(hours),
    };
    let (one, two) = ("a".repeat(64), "b".repeat(64));
    store
        .add_session(session(&one, 12), now)
        .await
        .expect("sessions: added");
    store
        .add_session(session(&two, 1), now)
        .await
        .expect("sessions: added");
    assert_eq!(
        store.session(&one, now).await.expect("sessions: read"),
        Some(session(&one, 12)),
        "sessions: found by its hash"
    );
    assert_eq!(
        store
            .session(&"c".repeat(64), now)
            .await
            .expect("sessions: read"),
        None,
        "sessions: an unknown hash"
    );
    let later = now + SignedDuration::from_hours(1);
    assert_eq!(
        store.session(&two, later).await.expect("sessions: read"),
        None,
        "sessions: one that has ended"
    );
    store.end_session(&one).await.expect("sessions: ended");
    assert_eq!(
        store.session(&one, now).await.expect("sessions: read"),
        None,
        "sessions: one signed out"
    );
    store
        .end_session(&one)
        .await
        .expect("sessions: ending it again changes nothing");
    // A key removed (or given a new hash): its sessions go, the others stay.
    let three = "d".repeat(64);
    let other = Session {
        key: "globex-ops".into(),
        ..session(&three, 12)
    };
    store
        .add_session(session(&one, 12), now)
        .await
        .expect("sessions: added");
    store
        .add_session(other.clone(), now)
        .await
        .expect("sessions: added");
    let keep = [("globex-ops".to_owned(), "0123abcd".to_owned())];
    assert_eq!(
        store
            .end_sessions_except(&keep)
            .await
            .expect("sessions: ended except"),
        2,
        "sessions: only the removed key's (`one`, and `two`, ended but not yet forgotten)"
    );
    assert_eq!(
        store.session(&one, now).await.expect("sessions: read"),
        None,
        "sessions: the removed key's is gone"
    );
    assert_eq!(
        store.session(&three, now).await.expect("sessions: read"),
        Some(other),
        "sessions: the kept key's stays"
    );
}

/// A planned event's reminder: recorded with it, due at its `back_by` (not before, and not
/// claimed with the event's own deliveries), sent as `not-back`, cancellable; `back_by` in
/// the history; the same through a completed release.
pub async fn reminders<S: Store>(store: &S) {
    let at = "2026-12-10T01:00:00Z";
    let back_by = t("2026-12-10T03:30:00Z");
    let planned = NewEvent {
        verdict: Verdict::Planned,
        back_by: Some(back_by),
        reminders: vec!["pager".into(), "mail".into()],
        ..event("db", "acme", "db2", at, &["log"])
    };
    let (recorded, _, _) = record_new(
        store,
        NewReport {
            claim: Some(lease(A, t(at))),
            ..report("r1", "acme", "db", "db2", at)
        },
        planned.clone(),
    )
    .await;
    let id = recorded.event.id.clone();
    assert_eq!(
        recorded.event.event, planned,
        "reminders: the event as recorded"
    );
    let kinds: Vec<_> = recorded
        .event
        .deliveries
        .iter()
        .map(|d| (d.channel.as_str(), d.reminder, d.status))
        .collect();
    assert_eq!(
        kinds,
        [
            ("log", false, DeliveryState::Pending),
            ("pager", true, DeliveryState::Pending),
            ("mail", true, DeliveryState::Pending),
        ],
        "reminders: deliveries as recorded"
    );
    let read = store.event(&id).await.expect("reads").expect("found");
    assert_eq!(
        (read.event.event, read.event.deliveries),
        (planned.clone(), recorded.event.deliveries.clone()),
        "reminders: read back"
    );
    // The event's own delivery is held by the report's claim; the reminders by nobody, and
    // a delivery within the request never takes them.
    let now = t("2026-12-10T01:00:01Z");
    assert!(
        store
            .claim_event(&id, &lease("other", now), now)
            .await
            .expect("claims")
            .is_empty(),
        "reminders: not claimed with the event"
    );
    let own = recorded.event.deliveries[0].id;
    store
        .finish(A, vec![(own, Outcome::Delivered)], now)
        .await
        .expect("finishes");
    assert_eq!(
        store.next_due().await.expect("next"),
        Some(back_by),
        "reminders: next due at back_by"
    );
    let early = back_by - SignedDuration::from_secs(1);
    assert!(
        store
            .claim_due(&lease(A, early), early, 10)
            .await
            .expect("claims")
            .is_empty(),
        "reminders: not due before back_by"
    );
    let due = store
        .claim_due(&lease(A, back_by), back_by, 10)
        .await
        .expect("claims");
    let seen: Vec<_> = due
        .iter()
        .map(|d| {
            (
                d.channel.as_str(),
                d.kind,
                d.kind.message(d.verdict),
                d.created_at,
                &d.event,
            )
        })
        .collect();
    let reminder = (DeliveryKind::Reminder, MessageKind::NotBack);
    assert_eq!(
        seen,
        [
            ("pager", reminder.0, reminder.1, back_by, &id),
            ("mail", reminder.0, reminder.1, back_by, &id)
        ],
        "reminders: due at back_by, as not-back, the give-up clock started then"
    );
    assert_eq!(due[0].context.host, "db2", "reminders: the event's context");
    let reason = "db failed back to db1 at 2026-12-10T02:00:00Z (event 9)";
    store
        .finish(
            A,
            vec![
                (
                    due[0].id,
                    Outcome::Cancelled {
                        reason: reason.into(),
                    },
                ),
                (due[1].id, Outcome::Delivered),
            ],
            back_by,
        )
        .await
        .expect("finishes");
    let read = store.event(&id).await.expect("reads").expect("found");
    let pager = &read.event.deliveries[1];
    assert_eq!(
        (
            pager.status,
            pager.last_error.as_deref(),
            pager.finished_at,
            pager.reminder
        ),
        (DeliveryState::Cancelled, Some(reason), Some(back_by), true),
        "reminders: cancelled"
    );
    assert_eq!(
        store.next_due().await.expect("next"),
        None,
        "reminders: nothing left"
    );
    // The history a later report of the cluster sees holds back_by.
    let later = "2026-12-10T01:50:00Z";
    let (_, history, _) = record_new(
        store,
        report("r2", "acme", "db", "db1", later),
        event("db", "acme", "db1", later, &[]),
    )
    .await;
    let h = history
        .events
        .iter()
        .find(|h| h.id == id)
        .expect("in the history");
    assert_eq!(
        h.back_by,
        Some(back_by),
        "reminders: back_by in the history"
    );
    assert!(h.told, "reminders: an event with deliveries was told");

    // A release completed by a planned takeover gets its reminders too.
    let released = store
        .record(
            report("r3", "acme", "web", "web1", "2026-12-11T01:00:00Z"),
            Box::new(|_, _| {
                new(NewEvent {
                    active: None,
                    previous: Some("web1".into()),
                    ..event("web", "acme", "web1", "2026-12-11T01:00:00Z", &[])
                })
            }),
        )
        .await
        .expect("reminders: the release");
    let takeover = NewEvent {
        verdict: Verdict::Planned,
        previous: Some("web1".into()),
        back_by: Some(t("2026-12-11T02:00:00Z")),
        reminders: vec!["pager".into()],
        ..event("web", "acme", "web2", "2026-12-11T01:00:10Z", &["log"])
    };
    let into = released.event.id.clone();
    let completed = store
        .record(
            report("r4", "acme", "web", "web2", "2026-12-11T01:00:10Z"),
            Box::new(move |_, _| Decision::Complete(into.clone(), Box::new(takeover.clone()))),
        )
        .await
        .expect("reminders: the takeover");
    let kinds: Vec<_> = completed
        .event
        .deliveries
        .iter()
        .map(|d| (d.channel.as_str(), d.reminder))
        .collect();
    assert_eq!(
        (kinds, completed.event.event.back_by),
        (
            vec![("log", false), ("pager", true)],
            Some(t("2026-12-11T02:00:00Z"))
        ),
        "reminders: completed with its reminders"
    );
}

/// Resolves added to an event after the fact: pending at once, once per channel however
/// often asked, claimed by a delivery within the request and by the outbox as resolves
/// with the give-up clock started when added, none for an unknown event.
pub async fn resolves<S: Store>(store: &S) {
    let at = "2026-12-12T01:00:00Z";
    let (recorded, _, _) = record_new(
        store,
        report("r1", "acme", "db", "db2", at),
        event("db", "acme", "db2", at, &["pager", "mail"]),
    )
    .await;
    let id = recorded.event.id.clone();
    let now = t("2026-12-12T01:00:01Z");
    let due = store
        .claim_due(&lease(A, now), now, 10)
        .await
        .expect("claims");
    let outcomes = due.iter().map(|d| (d.id, Outcome::Delivered)).collect();
    store.finish(A, outcomes, now).await.expect("finishes");

    let added_at = t("2026-12-12T01:20:00Z");
    let channels = ["pager".to_owned(), "am".to_owned()];
    let added = store
        .add_resolves(&id, &channels, added_at)
        .await
        .expect("resolves: added");
    let kinds: Vec<_> = added
        .iter()
        .map(|d| (d.channel.as_str(), d.status, d.resolve, d.reminder))
        .collect();
    assert_eq!(
        kinds,
        [
            ("pager", DeliveryState::Pending, true, false),
            ("am", DeliveryState::Pending, true, false)
        ],
        "resolves: added pending"
    );
    let again = store
        .add_resolves(&id, &["am".to_owned(), "pager".to_owned()], added_at)
        .await
        .expect("resolves: asked again");
    assert!(again.is_empty(), "resolves: once per channel: {again:?}");
    let read = store.event(&id).await.expect("reads").expect("found");
    assert_eq!(
        read.event.deliveries.len(),
        4,
        "resolves: the event's deliveries: {:?}",
        read.event.deliveries
    );
    assert_eq!(
        read.event.deliveries[2..],
        added[..],
        "resolves: read back after the event's own"
    );
    assert_eq!(
        store.next_due().await.expect("next"),
        Some(added_at),
        "resolves: due when added"
    );
    // Within the request (the Lambda), then by the outbox once that lease has ended.
    let held = store
        .claim_event(&id, &lease("lambda", added_at), added_at)
        .await
        .expect("claims");
    assert_eq!(held.len(), 2, "resolves: claimed with the event: {held:?}");
    let later = added_at + SignedDuration::from_mins(6);
    let due = store
        .claim_due(&lease(A, later), later, 10)
        .await
        .expect("claims");
    let seen: Vec<_> = due
        .iter()
        .map(|d| {
            (
                d.channel.as_str(),
                d.kind == DeliveryKind::Resolve,
                d.created_at,
                &d.event,
                d.verdict,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("pager", true, added_at, &id, Verdict::Unplanned),
            ("am", true, added_at, &id, Verdict::Unplanned)
        ],
        "resolves: due as resolves of the event, the give-up clock started when added"
    );
    assert_eq!(due[0].context.host, "db2", "resolves: the event's context");
    let unknown = store
        .add_resolves(&EventId("999999999".into()), &channels, added_at)
        .await
        .expect("resolves: an unknown event");
    assert!(unknown.is_empty(), "resolves: none for an unknown event");
}

/// Pruning, for the stores that delete old rows themselves (SQLite, PostgreSQL): an old
/// event without pending deliveries goes with its reports and deliveries, one batch at a
/// time; an old one still pending, a recent one, a live session and a window not long over
/// stay.
///
/// # Panics
/// When the store breaks the contract.
pub async fn pruning<S: Store>(store: &S) {
    let old = "2025-01-01T00:00:00Z";
    for (id, cluster, channels) in [
        ("p1", "db", &[][..]),
        ("p2", "web", &[][..]),
        ("p3", "mail", &["sns"][..]),
    ] {
        record_new(
            store,
            report(id, "acme", cluster, "n1", old),
            event(cluster, "acme", "n1", old, channels),
        )
        .await;
    }
    let recent = "2026-12-01T00:00:00Z";
    record_new(
        store,
        report("p4", "acme", "db", "n1", recent),
        event("db", "acme", "n1", recent, &[]),
    )
    .await;
    store
        .add_maintenance(window("2025-01-01T00:00:00Z", "2025-01-01T02:00:00Z"))
        .await
        .expect("pruning: adds a window");
    store
        .add_maintenance(window("2026-12-01T00:00:00Z", "2026-12-01T02:00:00Z"))
        .await
        .expect("pruning: adds a window");
    let now = t("2026-12-09T21:00:00Z");
    for (hash, expires) in [
        ("a", now - SignedDuration::from_hours(1)),
        ("b", now + SignedDuration::from_hours(1)),
    ] {
        let session = Session {
            token_hash: hash.repeat(64),
            key: "acme-ops".into(),
            key_check: "0123abcd".into(),
            expires,
        };
        store
            .add_session(session, now - SignedDuration::from_hours(2))
            .await
            .expect("pruning: adds a session");
    }
    let before = t("2026-01-01T00:00:00Z");
    let first = store.prune(before, now, 1).await.expect("pruning: prunes");
    assert_eq!(
        first,
        crate::Pruned {
            events: 1,
            sessions: 1,
            windows: 1
        },
        "pruning: one batch of one of each"
    );
    let second = store.prune(before, now, 1).await.expect("pruning: prunes");
    assert_eq!(second.events, 1, "pruning: the second old event");
    let third = store
        .prune(before, now, 100)
        .await
        .expect("pruning: prunes");
    assert_eq!(
        third.total(),
        0,
        "pruning: nothing else is old and done: {third:?}"
    );
    let left: Vec<String> = all(store)
        .await
        .iter()
        .map(|e| e.event.cluster.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        left,
        ["db", "mail"],
        "pruning: the recent one and the pending one stay"
    );
    assert!(
        store
            .session(&"b".repeat(64), now)
            .await
            .expect("pruning: reads a session")
            .is_some(),
        "pruning: a live session stays"
    );
    assert_eq!(
        store
            .maintenance(t("2026-11-01T00:00:00Z"))
            .await
            .expect("pruning: lists windows")
            .len(),
        1,
        "pruning: the recent window stays"
    );
}
