//! Retention (`[events] keep`): old history is deleted in small batches, so the database
//! stops growing and no batch holds the writer for long.
//!
//! Every [`EVERY`] (and soon after start) the store is asked for batches of at most
//! [`BATCH`] rows of each kind until one deletes nothing, with a pause between batches so
//! reports are never kept waiting behind a long delete. On PostgreSQL one replica prunes at
//! a time; DynamoDB expires rows itself.

use std::time::Duration;

use failover_store::{Pruned, Store};
use tokio::sync::watch;

use crate::clock;
use crate::state::AppState;

/// How often retention runs.
pub const EVERY: Duration = Duration::from_secs(3600);
/// Rows of each kind one batch deletes at most.
pub const BATCH: u32 = 500;
/// Pause between batches.
const PAUSE: Duration = Duration::from_millis(20);
/// First run after start: not in the way of a restart's own work.
const FIRST: Duration = Duration::from_secs(30);

/// Prunes what is older than `[events] keep` now; the rows deleted.
///
/// # Errors
/// The store's error; what was deleted before it stays deleted.
pub async fn prune_now<S: Store>(
    state: &AppState<S>,
) -> Result<Pruned, failover_store::StoreError> {
    let mut total = Pruned::default();
    loop {
        let now = clock::now();
        let keep = state.live().inventory.events.keep;
        let batch = state.store.prune(now - keep, now, BATCH).await?;
        state.metrics.pruned(batch);
        total.events += batch.events;
        total.sessions += batch.sessions;
        total.windows += batch.windows;
        if batch.total() == 0 {
            return Ok(total);
        }
        tokio::time::sleep(PAUSE).await;
    }
}

/// Runs retention until `stop` turns true.
pub async fn run<S: Store>(state: AppState<S>, mut stop: watch::Receiver<bool>) {
    let mut wait = FIRST;
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        wait = EVERY;
        match prune_now(&state).await {
            Ok(p) if p.total() > 0 => tracing::info!(
                events = p.events,
                sessions = p.sessions,
                windows = p.windows,
                "old history deleted ([events] keep)"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention failed; trying again at its next run"),
        }
    }
}
