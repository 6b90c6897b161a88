//! The outbox worker: claims due deliveries, renders and sends them, and records each
//! outcome with backoff and give-up per the inventory's `[delivery]` policy.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use failover_channels::{DeliveryError, Intent, Notifier, Outgoing};
use failover_core::inventory::Inventory;
use failover_store::{
    DeliveryKind, DeliveryState, DueDelivery, EventId, EventQuery, Outcome, Recorded, Store,
    StoreError, event_number,
};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::clock;
use crate::state::AppState;

/// Deliveries claimed per round.
const BATCH: u32 = 256;
/// Sends in flight at once.
const CONCURRENCY: usize = 64;
/// Longest sleep when nothing is due (new reports wake the worker sooner).
const IDLE: Duration = Duration::from_secs(5);

/// Runs until `shutdown` turns true, then waits for the sends in flight.
pub async fn run<S: Store>(state: AppState<S>, mut shutdown: watch::Receiver<bool>) {
    skip_logged(&state).await;
    // What an earlier process of this name left claimed is sent again now, not when its
    // lease ends.
    release(&state, "claims of an earlier run released").await;
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    // Outcomes sent to the finisher and not yet recorded (or given up).
    let unrecorded = Arc::new(AtomicUsize::new(0));
    let finisher = tokio::spawn(finish(
        state.clone(),
        done_rx,
        shutdown.clone(),
        Arc::clone(&unrecorded),
    ));
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let mut sends = JoinSet::new();
    let mut orphans = false;
    while !*shutdown.borrow() {
        if orphans {
            // A claim that failed may have been committed with its answer lost (the
            // database went away): once nothing of this worker's is in flight or waiting
            // to be recorded, whatever its name still holds is such a claim.
            while sends.join_next().await.is_some() {}
            while unrecorded.load(Ordering::Acquire) > 0 && !*shutdown.borrow() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if release(&state, "claims whose answer was lost released").await {
                orphans = false;
            } else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        let now = clock::now();
        let due = match state.store.claim_due(&state.lease(now), now, BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = ?e, "cannot claim deliveries");
                orphans = true;
                Vec::new()
            }
        };
        let full = due.len() == BATCH as usize;
        for d in due {
            let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                break;
            };
            let (state, done) = (state.clone(), done_tx.clone());
            let unrecorded = Arc::clone(&unrecorded);
            sends.spawn(async move {
                let outcome = attempt(&state, &d).await;
                unrecorded.fetch_add(1, Ordering::AcqRel);
                let _ = done.send((d.id, outcome));
                drop(permit);
            });
        }
        while sends.try_join_next().is_some() {}
        if full {
            continue;
        }
        let wait = match state.store.next_due().await {
            Ok(Some(at)) => Duration::try_from(at.duration_since(clock::now()))
                .unwrap_or_default()
                .min(IDLE),
            _ => IDLE,
        };
        tokio::select! {
            () = state.wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
    while sends.join_next().await.is_some() {}
    drop(done_tx);
    let _ = finisher.await;
}

/// Sends the pending deliveries of a just recorded report's event now: [`Delivery::InRequest`](crate::state::Delivery::InRequest).
/// A new event's deliveries were recorded claimed; for a retry or a merge, the event's
/// pending deliveries that nobody holds are claimed first. When a channel failed,
/// the outcomes are recorded before this returns, so the reporter's retry finds them; when
/// every channel took its message, they are recorded while the answer goes out, and the
/// Lambda entry waits for that in [`AppState::finish_deferred`] before it takes the next
/// event (the claims keep other instances and the drain away meanwhile). Returns each attempted
/// channel with its outcome, and the channels still pending that another request is sending.
///
/// # Errors
/// [`StoreError`] when the deliveries cannot be claimed or a failure not recorded.
pub async fn deliver_recorded<S: Store>(
    state: &AppState<S>,
    recorded: &Recorded,
) -> Result<(Vec<(String, Outcome)>, Vec<String>), StoreError> {
    let e = &recorded.event;
    let due = if recorded.duplicate || recorded.merged {
        let now = clock::now();
        state
            .store
            .claim_event(&e.id, &state.lease(now), now)
            .await?
    } else {
        // Recorded claimed, but for its reminders, which wait for their time.
        e.deliveries
            .iter()
            .filter(|d| !d.reminder)
            .map(|d| e.due(d))
            .collect()
    };
    let elsewhere = e
        .deliveries
        .iter()
        .filter(|d| {
            d.status == DeliveryState::Pending && !d.reminder && !due.iter().any(|x| x.id == d.id)
        })
        .map(|d| d.channel.clone())
        .collect();
    let (outcomes, by_channel): (Vec<_>, Vec<_>) = send(state, due)
        .await
        .into_iter()
        .map(|(id, channel, o)| ((id, o.clone()), (channel, o)))
        .unzip();
    if outcomes.iter().all(|(_, o)| *o == Outcome::Delivered) {
        state.defer_finish(outcomes);
    } else {
        state
            .store
            .finish(state.owner(), outcomes, clock::now())
            .await?;
    }
    Ok((by_channel, elsewhere))
}

/// Sends the pending deliveries of event `id` that nobody holds now, due or not (but its
/// reminders), and records their outcomes: the resolves an ad-hoc window added, within the
/// request ([`Delivery::InRequest`](crate::state::Delivery::InRequest)).
///
/// # Errors
/// [`StoreError`] when the deliveries cannot be claimed or their outcomes recorded.
pub async fn deliver_event<S: Store>(state: &AppState<S>, id: &EventId) -> Result<(), StoreError> {
    let now = clock::now();
    let due = state.store.claim_event(id, &state.lease(now), now).await?;
    let outcomes = send(state, due)
        .await
        .into_iter()
        .map(|(id, _, o)| (id, o))
        .collect();
    state
        .store
        .finish(state.owner(), outcomes, clock::now())
        .await
}

/// Sends everything due, round after round, until nothing is due or `budget` is spent:
/// the scheduled invocation of the Lambda deployment. Returns how many were attempted.
///
/// # Errors
/// [`StoreError`] when deliveries cannot be claimed or their outcomes recorded.
pub async fn drain<S: Store>(state: &AppState<S>, budget: Duration) -> Result<usize, StoreError> {
    let started = tokio::time::Instant::now();
    let mut attempted = 0;
    while started.elapsed() < budget {
        let now = clock::now();
        let due = state.store.claim_due(&state.lease(now), now, BATCH).await?;
        if due.is_empty() {
            break;
        }
        let outcomes: Vec<(i64, Outcome)> = send(state, due)
            .await
            .into_iter()
            .map(|(id, _, o)| (id, o))
            .collect();
        attempted += outcomes.len();
        state
            .store
            .finish(state.owner(), outcomes, clock::now())
            .await?;
    }
    Ok(attempted)
}

/// Sends each delivery at once; returns its id, channel and outcome.
async fn send<S: Store>(state: &AppState<S>, due: Vec<DueDelivery>) -> Vec<(i64, String, Outcome)> {
    let mut sends = JoinSet::new();
    for d in due {
        let state = state.clone();
        sends.spawn(async move {
            let outcome = attempt(&state, &d).await;
            (d.id, d.channel, outcome)
        });
    }
    let mut sent = Vec::new();
    while let Some(done) = sends.join_next().await {
        sent.extend(done.ok());
    }
    sent
}

/// Writes outcomes in batches: whatever finished while the last batch was committing. A
/// batch the store refuses (the database is down) is kept and tried again: the claims are
/// still this worker's while their leases last, and a delivery whose outcome was lost
/// would be sent again when its lease ended (a log line written twice). At shutdown a
/// refused batch is tried a few more times, then left to the leases.
async fn finish<S: Store>(
    state: AppState<S>,
    mut done: mpsc::UnboundedReceiver<(i64, Outcome)>,
    shutdown: watch::Receiver<bool>,
    unrecorded: Arc<AtomicUsize>,
) {
    let mut batch = Vec::new();
    while done.recv_many(&mut batch, 1024).await > 0 {
        let (mut pause, mut tries) = (Duration::from_millis(100), 0);
        loop {
            let outcomes = batch.clone();
            match state
                .store
                .finish(state.owner(), outcomes, clock::now())
                .await
            {
                Ok(()) => break,
                Err(e) if *shutdown.borrow() && tries >= 3 => {
                    tracing::error!(error = ?e, count = batch.len(), "delivery outcomes not recorded; their deliveries are sent again when the leases end");
                    break;
                }
                Err(e) => {
                    tracing::error!(error = ?e, count = batch.len(), "cannot record delivery outcomes; trying again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                    tries += 1;
                    while let Ok(more) = done.try_recv() {
                        batch.push(more);
                    }
                }
            }
        }
        unrecorded.fetch_sub(batch.len(), Ordering::AcqRel);
        batch.clear();
    }
}

/// Ends the leases held under this worker's name ([`Store::release`]); `false` when the
/// store failed.
async fn release<S: Store>(state: &AppState<S>, what: &str) -> bool {
    match state.store.release(state.owner()).await {
        Ok(0) => true,
        Ok(n) => {
            tracing::info!(count = n, owner = state.owner(), "{what}");
            true
        }
        Err(e) => {
            tracing::error!(error = ?e, "cannot release the claims held under this name");
            false
        }
    }
}

/// Before the first claim: deliveries whose log line was written by a process that died
/// before recording it are marked delivered instead of being written twice.
async fn skip_logged<S: Store>(state: &AppState<S>) {
    let live = state.live();
    let mut delivered = Vec::new();
    for (name, n) in &live.notifiers {
        let Notifier::Log(log) = n.as_ref() else {
            continue;
        };
        if log.path().is_none() {
            continue;
        }
        let pending = match state.store.pending_of(name).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = ?e, "cannot list pending deliveries");
                continue;
            }
        };
        let log = log.clone();
        let found = tokio::task::spawn_blocking(move || log.written(&pending))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
        match found {
            Ok(ids) => delivered.extend(ids.into_iter().map(|id| (id, Outcome::Delivered))),
            Err(e) => tracing::warn!(channel = %name, error = %e, "cannot read the log file back"),
        }
    }
    if !delivered.is_empty() {
        tracing::info!(
            count = delivered.len(),
            "deliveries already in their log file marked delivered"
        );
        if let Err(e) = state
            .store
            .finish(state.owner(), delivered, clock::now())
            .await
        {
            tracing::error!(error = ?e, "cannot record delivery outcomes");
        }
    }
}

/// Why a `not-back` reminder is not to be sent: its cluster is no longer on the node its
/// event made active (a later event moved it). `None` when it is still there, or when the
/// store cannot tell (then the reminder is sent: better one too many than none).
async fn moved<S: Store>(state: &AppState<S>, d: &DueDelivery) -> Option<String> {
    let ours = match state.store.event(&d.event).await {
        Ok(Some(e)) => e.event.event,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(event = %d.event, error = ?e, "cannot read the event of a reminder; sending it");
            return None;
        }
    };
    let query = EventQuery {
        cluster: ours.cluster.clone(),
        since: Some(ours.at),
        limit: 100,
        ..EventQuery::default()
    };
    let later = match state.store.events(query).await {
        Ok(events) => events,
        Err(e) => {
            tracing::warn!(event = %d.event, error = ?e, "cannot read the cluster's later events; sending the reminder");
            return None;
        }
    };
    let now_on = later
        .iter()
        .filter(|e| e.id != d.event && e.event.active.is_some())
        .max_by_key(|e| (e.event.at, event_number(&e.id).unwrap_or_default()))?;
    (now_on.event.active != ours.active).then(|| {
        format!(
            "not sent: {} moved to {} at {} (event {})",
            ours.cluster.unwrap_or_default(),
            now_on.event.active.as_deref().unwrap_or_default(),
            now_on.event.at,
            now_on.id
        )
    })
}

async fn attempt<S: Store>(state: &AppState<S>, d: &DueDelivery) -> Outcome {
    if d.kind == DeliveryKind::Reminder
        && let Some(reason) = moved(state, d).await
    {
        tracing::info!(delivery = d.id, event = %d.event, channel = %d.channel, %reason, "reminder cancelled");
        state.metrics.delivery(&d.channel, "cancelled");
        return Outcome::Cancelled { reason };
    }
    let live = state.live();
    if d.kind == DeliveryKind::Resolve && !live.inventory.resolves_on(&d.channel) {
        // The channel became one that raises no alert: resending the event would page.
        state.metrics.delivery(&d.channel, "cancelled");
        return Outcome::Cancelled {
            reason: format!("channel `{}` no longer resolves alerts", d.channel),
        };
    }
    let policy = live.inventory.delivery;
    let result = match live.notifiers.get(&d.channel) {
        None => Err(DeliveryError::permanent(format!(
            "channel `{}` is no longer in the inventory",
            d.channel
        ))),
        Some(n) => match render(&live.inventory, d) {
            Err(e) => Err(DeliveryError::permanent(e)),
            Ok(msg) => {
                let limit = Duration::try_from(policy.timeout).unwrap_or(Duration::from_secs(15));
                tokio::time::timeout(limit + Duration::from_secs(1), n.send(&msg))
                    .await
                    .unwrap_or_else(|_| Err(DeliveryError::retryable("timed out")))
            }
        },
    };
    let attempts = d.attempts + 1;
    let (outcome, label) = match result {
        Ok(()) => (Outcome::Delivered, "delivered"),
        Err(e) if !e.is_retryable() => (
            Outcome::Failed {
                error: e.into_message(),
            },
            "failed",
        ),
        Err(e) => {
            let error = e.into_message();
            match policy.next_attempt(attempts, d.created_at, clock::now(), fastrand::f64()) {
                Some(at) => (Outcome::Retry { at, error }, "retry"),
                None => (
                    Outcome::Failed {
                        error: format!("gave up after {attempts} attempts: {error}"),
                    },
                    "failed",
                ),
            }
        }
    };
    match &outcome {
        Outcome::Delivered => tracing::debug!(delivery = d.id, channel = %d.channel, "delivered"),
        Outcome::Retry { at, error } => {
            tracing::warn!(delivery = d.id, channel = %d.channel, %error, next = %at, "delivery failed; will retry");
        }
        Outcome::Failed { error } => {
            tracing::error!(delivery = d.id, event = %d.event, channel = %d.channel, %error, "delivery given up");
        }
        Outcome::Cancelled { .. } => {}
    }
    state.metrics.delivery(&d.channel, label);
    outcome
}

fn render(inv: &Inventory, d: &DueDelivery) -> Result<Outgoing, String> {
    let kind = d.kind.message(d.verdict);
    let cluster = d.cluster.as_deref().and_then(|c| inv.find_cluster(c));
    let customer = cluster.and_then(|c| inv.cluster(c).customer);
    let msg = inv
        .templates
        .render(&d.context, kind, cluster, customer)
        .map_err(|e| format!("{e}: {}", e.source))?;
    let intent = match d.kind {
        DeliveryKind::Message => Intent::of_event(&d.context),
        DeliveryKind::Reminder => Intent::Reminder,
        // What a pager and an Alertmanager resolve: the event's own alert, at the time the
        // resolve was added.
        DeliveryKind::Resolve => Intent::Resolve { at: d.created_at },
    };
    Ok(Outgoing {
        delivery: d.id,
        event: d.event.0.clone(),
        verdict: kind,
        intent,
        subject: msg.subject,
        body: msg.body,
        sms: msg.sms,
        context: d.context.clone(),
        link: inv
            .public_url
            .as_ref()
            .map(|u| format!("{u}/ui/events/{}", d.event.0)),
    })
}
