//! What every handler and the worker share: the store, the live inventory with its channels
//! and ad-hoc windows (swapped whole on reload), metrics, and the worker's wake-up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use failover_channels::{Notifier, SetupError};
use failover_core::inventory::Inventory;
use failover_core::window::MaintenanceWindow;
use failover_store::{Lease, Outcome, Store, StoreError};
use jiff::{SignedDuration, Timestamp};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::auth::KeyGuard;
use crate::clock;
use crate::metrics::Metrics;

/// How far back ad-hoc windows stay loaded: a spooled report may arrive this late.
pub(crate) const AD_HOC_LOOKBACK: SignedDuration = SignedDuration::from_hours(7 * 24);

/// Shortest lease on claimed deliveries: a sender that dies holding one is replaced this
/// long after its claim (a restarted `serve` on SQLite ends its old leases at once).
const MIN_LEASE: SignedDuration = SignedDuration::from_mins(5);

/// Where a report's messages are sent from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The outbox worker sends them after the answer (`serve`).
    Outbox,
    /// The request sends them before it answers, 503 while a channel has not taken its
    /// message (AWS Lambda, which runs nothing after the response); a retry with the same
    /// id sends only to the channels that have not.
    InRequest,
}

/// How ad-hoc windows reach classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdHoc {
    /// Kept in memory, refreshed when one is added or ended through this process (`serve`,
    /// the only writer of its store).
    Cached,
    /// Read with each report's history, in the same store call (AWS Lambda, where other
    /// function instances change them).
    PerReport,
}

/// The inventory in force, with everything built from it.
#[derive(Debug)]
pub struct Live {
    /// The validated inventory.
    pub inventory: Arc<Inventory>,
    /// Senders by channel name.
    pub notifiers: HashMap<String, Arc<Notifier>>,
    /// Ad-hoc windows that apply to this inventory.
    pub ad_hoc: Arc<Vec<MaintenanceWindow>>,
}

/// Shared state; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState<S> {
    /// Durable storage.
    pub store: S,
    live: Arc<RwLock<Arc<Live>>>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Wakes the delivery worker when new deliveries are recorded.
    pub wake: Arc<Notify>,
    /// Wrong API keys per address.
    pub(crate) guard: Arc<KeyGuard>,
    /// Held while the live state is rebuilt (reload, ad-hoc windows changed): rebuilds read
    /// the store and swap in the order they took it, so a slower, older read never replaces
    /// a newer one and a refresh never restores the inventory a reload replaced.
    rebuild: Arc<tokio::sync::Mutex<()>>,
    /// Where messages are sent from.
    pub delivery: Delivery,
    /// How ad-hoc windows are read.
    pub ad_hoc: AdHoc,
    /// This process's name on the claims it takes.
    owner: Arc<str>,
    /// Recordings of the outcomes of deliveries sent within a request, running while its
    /// answer is posted.
    deferred: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl<S: Store> AppState<S> {
    /// Builds the channels of `inventory` and loads the ad-hoc windows.
    ///
    /// # Errors
    /// [`SetupError`] when a channel cannot be built (a missing SMTP password variable).
    pub async fn new(store: S, inventory: Inventory) -> Result<AppState<S>, StartError> {
        AppState::with_modes(store, inventory, Delivery::Outbox, AdHoc::Cached).await
    }

    /// State with the given modes: `serve` runs [`Delivery::Outbox`] and [`AdHoc::Cached`],
    /// the Lambda deployment [`Delivery::InRequest`] and [`AdHoc::PerReport`].
    ///
    /// # Errors
    /// [`StartError`] when a channel cannot be built or the windows cannot be read.
    pub async fn with_modes(
        store: S,
        inventory: Inventory,
        delivery: Delivery,
        ad_hoc: AdHoc,
    ) -> Result<AppState<S>, StartError> {
        let inventory = Arc::new(inventory);
        let live = match ad_hoc {
            AdHoc::Cached => build_live(&store, inventory).await?,
            AdHoc::PerReport => Live {
                notifiers: notifiers(&inventory).await?,
                inventory,
                ad_hoc: Arc::new(Vec::new()),
            },
        };
        Ok(AppState {
            store,
            live: Arc::new(RwLock::new(Arc::new(live))),
            metrics: Arc::new(Metrics::default()),
            wake: Arc::new(Notify::new()),
            guard: Arc::default(),
            rebuild: Arc::default(),
            delivery,
            ad_hoc,
            owner: format!("{}-{:08x}", std::process::id(), fastrand::u32(..)).into(),
            deferred: Arc::default(),
        })
    }

    /// A claim for this process from `now`: long enough for the slowest send the delivery
    /// timeout allows, and at least [`MIN_LEASE`].
    pub(crate) fn lease(&self, now: Timestamp) -> Lease {
        let timeout = self.live().inventory.delivery.timeout;
        let length = MIN_LEASE.max(timeout.saturating_mul(4));
        Lease {
            owner: self.owner.to_string(),
            until: now.saturating_add(length).unwrap_or(Timestamp::MAX),
        }
    }

    /// The same state under the name `owner` on its claims, instead of a random one: a
    /// `serve` replica on a shared database keeps its name across restarts, so a restart
    /// takes back what it held (names must be unique among the replicas).
    #[must_use]
    pub fn named(mut self, owner: &str) -> AppState<S> {
        self.owner = owner.into();
        self
    }

    /// This process's name on its claims.
    pub(crate) fn owner(&self) -> &str {
        &self.owner
    }

    /// Starts recording `outcomes` (all delivered) without waiting for it: the answer goes
    /// out meanwhile, and [`AppState::finish_deferred`] waits for it to end.
    pub(crate) fn defer_finish(&self, outcomes: Vec<(i64, Outcome)>) {
        let (store, owner) = (self.store.clone(), Arc::clone(&self.owner));
        let recording = tokio::spawn(async move {
            if let Err(e) = store.finish(&owner, outcomes, clock::now()).await {
                tracing::error!(error = ?e, "cannot record delivery outcomes");
            }
        });
        let mut pending = match self.deferred.lock() {
            Ok(d) => d,
            Err(poisoned) => poisoned.into_inner(),
        };
        pending.retain(|r| !r.is_finished());
        pending.push(recording);
    }

    /// Waits until the outcomes left by requests that delivered everything are recorded: the
    /// Lambda entry runs this after each answer, before it takes the next event (Lambda may
    /// freeze the process then). A failure is logged; the deliveries stay claimed until
    /// their lease ends, and then the drain sends them again (at least once, as after a
    /// crash).
    pub async fn finish_deferred(&self) {
        let recordings = match self.deferred.lock() {
            Ok(mut d) => std::mem::take(&mut *d),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for recording in recordings {
            if let Err(e) = recording.await {
                tracing::error!(error = %e, "recording delivery outcomes did not finish");
            }
        }
    }

    /// The inventory and channels in force now.
    pub fn live(&self) -> Arc<Live> {
        match self.live.read() {
            Ok(l) => Arc::clone(&l),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn swap(&self, live: Live) {
        let live = Arc::new(live);
        match self.live.write() {
            Ok(mut l) => *l = live,
            Err(poisoned) => *poisoned.into_inner() = live,
        }
    }

    /// Replaces the inventory (SIGHUP, file change). On error the old one stays.
    ///
    /// # Errors
    /// [`StartError`] when the new inventory's channels cannot be built.
    pub async fn reload(&self, inventory: Inventory) -> Result<(), StartError> {
        let _rebuilding = self.rebuild.lock().await;
        let live = build_live(&self.store, Arc::new(inventory)).await?;
        self.swap(live);
        self.wake.notify_one();
        crate::ui::session::end_sessions_of_gone_keys(self).await;
        Ok(())
    }

    /// Reloads the ad-hoc windows after one was added or ended (and committed): when this
    /// returns, the live state holds every window committed before the call.
    ///
    /// # Errors
    /// [`StoreError`] when they cannot be read.
    pub async fn refresh_ad_hoc(&self) -> Result<(), StoreError> {
        if self.ad_hoc == AdHoc::PerReport {
            // Each report reads them with its history.
            return Ok(());
        }
        let _rebuilding = self.rebuild.lock().await;
        let old = self.live();
        let ad_hoc = ad_hoc_windows(&self.store, &old.inventory).await?;
        self.swap(Live {
            inventory: Arc::clone(&old.inventory),
            notifiers: old.notifiers.clone(),
            ad_hoc: Arc::new(ad_hoc),
        });
        Ok(())
    }
}

/// Why the service could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A channel could not be built.
    #[error(transparent)]
    Channel(#[from] SetupError),
    /// The store failed.
    #[error("loading ad-hoc windows")]
    Store(#[from] StoreError),
}

async fn build_live<S: Store>(store: &S, inventory: Arc<Inventory>) -> Result<Live, StartError> {
    Ok(Live {
        notifiers: notifiers(&inventory).await?,
        ad_hoc: Arc::new(ad_hoc_windows(store, &inventory).await?),
        inventory,
    })
}

async fn notifiers(inventory: &Inventory) -> Result<HashMap<String, Arc<Notifier>>, SetupError> {
    let timeout = Duration::try_from(inventory.delivery.timeout).unwrap_or(Duration::from_secs(15));
    let mut notifiers = HashMap::new();
    for c in &inventory.channels {
        notifiers.insert(c.name.clone(), Arc::new(Notifier::build(c, timeout).await?));
    }
    Ok(notifiers)
}

/// The ad-hoc windows in the store that apply to `inv` and may still matter.
///
/// # Errors
/// [`StoreError`] when they cannot be read.
pub async fn ad_hoc_windows<S: Store>(
    store: &S,
    inv: &Inventory,
) -> Result<Vec<MaintenanceWindow>, StoreError> {
    let after = clock::now() - AD_HOC_LOOKBACK;
    let rows = store.maintenance(after).await?;
    Ok(rows.iter().filter_map(|m| m.to_window(inv)).collect())
}
