//! An ad-hoc window that ends the matter: added with a start before an unplanned failover
//! ("that was our patching"), it resolves the alerts that failover raised on pagers and
//! Alertmanagers, as its failback would.

use failover_core::classify::{WindowRef, classify};
use failover_core::inventory::{Inventory, Verdict};
use failover_core::window::{MaintenanceWindow, Owner};
use failover_store::{DeliveryState, EventId, EventQuery, Maintenance, Store, StoredEvent};

use crate::state::{AppState, Delivery};
use crate::{clock, worker};

/// Most events of the window's scope looked at (its start is at most a day ago).
const LOOKED_AT: u32 = 500;

/// Resolves the alerts of the unplanned failovers that window `m`, just added, puts inside
/// maintenance: on each such event's pager and Alertmanager channels that took its alert,
/// a resolve is added ([`Store::add_resolves`]) and sent (by the worker, or at once within
/// the request). Returns the events that got resolves. A failure is logged, never the
/// caller's: the window is in force either way.
pub(crate) async fn resolve_covered<S: Store>(
    state: &AppState<S>,
    m: &Maintenance,
) -> Vec<EventId> {
    let now = clock::now();
    if m.window.start > now {
        return Vec::new();
    }
    let inv = &state.live().inventory;
    let Some(window) = m.to_window(inv) else {
        return Vec::new();
    };
    let query = EventQuery {
        cluster: match window.owner {
            Owner::Node(n) => Some(inv.cluster(inv.node(n).cluster).name.clone()),
            Owner::Cluster(c) => Some(inv.cluster(c).name.clone()),
            Owner::Customer(_) => None,
        },
        customers: m.window.customer.clone().map(|c| vec![c]),
        since: Some(m.window.start),
        limit: LOOKED_AT,
        ..EventQuery::default()
    };
    let events = match state.store.events(query).await {
        Ok(events) => events,
        Err(e) => {
            tracing::error!(window = m.id, error = ?e, "cannot list the events an ad-hoc window may resolve");
            return Vec::new();
        }
    };
    let mut resolved = Vec::new();
    for e in &events {
        let undone = events
            .iter()
            .any(|later| later.event.failback_of.as_ref() == Some(&e.id));
        let channels = alerted(inv, e);
        if undone || channels.is_empty() || !covers(inv, &window, e) {
            continue;
        }
        match state.store.add_resolves(&e.id, &channels, now).await {
            Ok(added) if added.is_empty() => {}
            Ok(added) => {
                tracing::info!(window = m.id, event = %e.id, count = added.len(), "ad-hoc window resolves the alerts of an unplanned failover");
                resolved.push(e.id.clone());
            }
            Err(err) => {
                tracing::error!(window = m.id, event = %e.id, error = ?err, "cannot add the resolves of an event an ad-hoc window covers");
            }
        }
    }
    if resolved.is_empty() {
        return resolved;
    }
    match state.delivery {
        Delivery::Outbox => state.wake.notify_one(),
        Delivery::InRequest => {
            for id in &resolved {
                if let Err(e) = worker::deliver_event(state, id).await {
                    tracing::error!(event = %id, error = ?e, "cannot send the resolves now; the scheduled run sends them");
                }
            }
        }
    }
    resolved
}

/// The channels that resolve alerts (pagers, Alertmanagers) and took the alert of `e`, an
/// unplanned failover to a node that is not itself a failback.
fn alerted(inv: &Inventory, e: &StoredEvent) -> Vec<String> {
    let ev = &e.event;
    if ev.verdict != Verdict::Unplanned || ev.active.is_none() || ev.failback_of.is_some() {
        return Vec::new();
    }
    e.deliveries
        .iter()
        .filter(|d| !d.reminder && !d.resolve && d.status == DeliveryState::Delivered)
        .filter(|d| inv.resolves_on(&d.channel))
        .map(|d| d.channel.clone())
        .collect()
}

/// A report of `e` classified now with `window` would be planned because of it.
fn covers(inv: &Inventory, window: &MaintenanceWindow, e: &StoredEvent) -> bool {
    let Some(active) = e.event.active.as_deref() else {
        return false;
    };
    let customer = e
        .event
        .cluster
        .as_deref()
        .and_then(|c| inv.find_cluster(c))
        .and_then(|c| inv.cluster(c).customer);
    let c = classify(
        inv,
        std::slice::from_ref(window),
        active,
        customer,
        e.event.at,
    );
    c.explanation
        .is_some_and(|x| x.window == WindowRef::AdHoc(0))
}
