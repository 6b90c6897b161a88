//! Ad-hoc windows are never lost from memory: many concurrent creates, ends and inventory
//! reloads, and after each acknowledged change the next classification sees it.

use failover_app::AppState;
use failover_store::{
    Decide, DeliveryState, DeliveryStatus, DueDelivery, EventDetail, EventId, EventQuery, Lease,
    Maintenance, NewMaintenance, NewReport, Outcome, Recorded, Session, Store, StoreError,
    StoredEvent,
};
use failover_store_sqlite::Sqlite;
use jiff::{SignedDuration, Timestamp};

/// SQLite whose reads of ad-hoc windows take a random 0-4 ms after reading, as a store
/// across a network does: a refresh that read first may finish last.
#[derive(Debug, Clone)]
struct Slow(Sqlite);

impl Store for Slow {
    async fn record(&self, report: NewReport, decide: Decide) -> Result<Recorded, StoreError> {
        self.0.record(report, decide).await
    }
    async fn event(&self, id: &EventId) -> Result<Option<EventDetail>, StoreError> {
        self.0.event(id).await
    }
    async fn events(&self, query: EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        self.0.events(query).await
    }
    async fn claim_due(
        &self,
        lease: &Lease,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        self.0.claim_due(lease, now, limit).await
    }
    async fn finish(
        &self,
        owner: &str,
        outcomes: Vec<(i64, Outcome)>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.0.finish(owner, outcomes, now).await
    }
    async fn claim_event(
        &self,
        event: &EventId,
        lease: &Lease,
        now: Timestamp,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        self.0.claim_event(event, lease, now).await
    }
    async fn pending_of(&self, channel: &str) -> Result<Vec<i64>, StoreError> {
        self.0.pending_of(channel).await
    }
    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.0.next_due().await
    }
    async fn delivery_counts(&self) -> Result<Vec<(DeliveryState, u64)>, StoreError> {
        self.0.delivery_counts().await
    }
    async fn add_maintenance(&self, window: NewMaintenance) -> Result<Maintenance, StoreError> {
        self.0.add_maintenance(window).await
    }
    async fn maintenance(&self, after: Timestamp) -> Result<Vec<Maintenance>, StoreError> {
        let rows = self.0.maintenance(after).await;
        tokio::time::sleep(std::time::Duration::from_micros(fastrand::u64(0..4000))).await;
        rows
    }
    async fn end_maintenance(&self, id: i64, now: Timestamp) -> Result<bool, StoreError> {
        self.0.end_maintenance(id, now).await
    }
    async fn add_resolves(
        &self,
        event: &EventId,
        channels: &[String],
        now: Timestamp,
    ) -> Result<Vec<DeliveryStatus>, StoreError> {
        self.0.add_resolves(event, channels, now).await
    }
    async fn resend(&self, event: &EventId, id: i64, now: Timestamp) -> Result<bool, StoreError> {
        self.0.resend(event, id, now).await
    }
    async fn add_session(&self, session: Session, now: Timestamp) -> Result<(), StoreError> {
        self.0.add_session(session, now).await
    }
    async fn session(&self, hash: &str, now: Timestamp) -> Result<Option<Session>, StoreError> {
        self.0.session(hash, now).await
    }
    async fn end_session(&self, hash: &str) -> Result<(), StoreError> {
        self.0.end_session(hash).await
    }
    async fn end_sessions_except(&self, keep: &[(String, String)]) -> Result<u64, StoreError> {
        self.0.end_sessions_except(keep).await
    }
    async fn prune(
        &self,
        before: Timestamp,
        now: Timestamp,
        batch: u32,
    ) -> Result<failover_store::Pruned, StoreError> {
        self.0.prune(before, now, batch).await
    }
}

const INVENTORY: &str = r#"
[[clusters]]
name = "db"
nodes = ["db1", "db2"]

[[clusters]]
name = "web"
nodes = ["web1", "web2"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_change_is_in_memory_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Slow(Sqlite::open(dir.path().join("db.sqlite")).expect("opens"));
    let inventory = || failover_core::config::parse(INVENTORY).expect("valid");
    let state = AppState::new(store, inventory()).await.expect("state");
    #[allow(clippy::disallowed_methods)] // the windows must be in force at the real now
    let now = Timestamp::now();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let state = state.clone();
        tasks.push(tokio::spawn(async move {
            if i % 8 == 7 {
                state.reload(inventory()).await.expect("reloads");
                return None;
            }
            let m = state
                .store
                .add_maintenance(NewMaintenance {
                    target_kind: failover_store::TargetKind::Cluster,
                    target: if i % 2 == 0 { "db" } else { "web" }.into(),
                    customer: None,
                    start: now - SignedDuration::from_mins(1),
                    end: now + SignedDuration::from_hours(1),
                    reason: format!("window {i}"),
                    created_by: "test".into(),
                })
                .await
                .expect("stored");
            state.refresh_ad_hoc().await.expect("refreshed");
            // Acknowledged: from now on it must be in memory, whatever else runs.
            let live = state.live();
            assert!(
                live.ad_hoc
                    .iter()
                    .any(|w| w.name.starts_with(&format!("maintenance #{}:", m.id))),
                "window #{} is missing right after its refresh",
                m.id
            );
            if i % 3 == 0 {
                state.store.end_maintenance(m.id, now).await.expect("ends");
                state.refresh_ad_hoc().await.expect("refreshed");
                return Some((m.id, false));
            }
            Some((m.id, true))
        }));
    }
    let mut expected = Vec::new();
    for t in tasks {
        if let Some(e) = t.await.expect("task") {
            expected.push(e);
        }
    }
    let live = state.live();
    for (id, open) in expected {
        let found = live
            .ad_hoc
            .iter()
            .find(|w| w.name.starts_with(&format!("maintenance #{id}:")));
        let in_force = found.is_some_and(|w| w.occurrence_containing(now).ok().flatten().is_some());
        assert_eq!(in_force, open, "window #{id}");
    }
}
