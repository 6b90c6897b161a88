//! Authentication, done once before any other part of a request is read: the [`Caller`]
//! extractor. Every handler that needs a key takes a `Caller` as its first argument, so a
//! request without a valid key is answered 401 before its path, query or body is parsed.
//!
//! Wrong keys leave a trail and are slowed down: each refusal is counted in `/metrics`;
//! the first refusal from an address in a minute is logged (with the address, never the
//! key), and an address that sends more than [`STRIKES`] wrong keys within a minute is
//! answered 429 for the rest of that minute without its key being checked, so guessing
//! gains nothing from a burst.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use failover_core::inventory::{ApiKey, Inventory, Role};
use failover_core::keys::KeyHash;
use failover_store::Store;
use tokio::time::{Duration, Instant};

use crate::error::ApiError;
use crate::state::{AppState, Live};

/// Wrong keys from one address within [`STRIKE_WINDOW`] before it is answered 429.
pub const STRIKES: u32 = 10;
/// How long wrong keys are remembered, and how long an address stays slowed down.
pub const STRIKE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most; beyond, new addresses are not tracked until old ones age.
const TRACKED: usize = 10_000;

/// The authenticated caller: the inventory in force when the request arrived and its key.
#[derive(Debug, Clone)]
pub struct Caller {
    live: Arc<Live>,
    key: usize,
}

impl Caller {
    /// The caller holding key number `key` of `live`'s inventory (a dashboard session).
    pub(crate) fn of(live: Arc<Live>, key: usize) -> Caller {
        Caller { live, key }
    }

    /// The inventory, channels and ad-hoc windows this request sees, all of one version.
    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }

    /// The inventory.
    pub fn inventory(&self) -> &Inventory {
        &self.live.inventory
    }

    /// The key presented.
    pub fn key(&self) -> &ApiKey {
        &self.live.inventory.keys[self.key]
    }

    /// 403 for a viewer key: it may read, not report or change anything.
    ///
    /// # Errors
    /// [`ApiError`] 403 naming the key.
    pub fn may_change(&self) -> Result<(), ApiError> {
        match self.key().role {
            Role::Operator => Ok(()),
            Role::Viewer => Err(ApiError::forbidden(format!(
                "key `{}` is a viewer key: it may read, not report or change anything",
                self.key().name
            ))),
        }
    }

    /// The key's customer name; `None` for an admin key.
    pub fn customer_name(&self) -> Option<&str> {
        self.key()
            .customer
            .map(|c| self.live.inventory.customers[c.index()].name.as_str())
    }
}

impl<S: Store> FromRequestParts<AppState<S>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S>,
    ) -> Result<Caller, ApiError> {
        let from = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let presented = parts.headers.get("x-api-key").and_then(|v| v.to_str().ok());
        authenticate(state, from, presented, parts.uri.path())
    }
}

/// The caller presenting `presented` (from `x-api-key`, or the dashboard's sign-in form):
/// 429 while its address is slowed down, 401 for a missing or wrong key (counted, logged
/// once a minute per address, and a strike towards the slow-down).
///
/// # Errors
/// [`ApiError`] 429 or 401.
pub(crate) fn authenticate<S: Store>(
    state: &AppState<S>,
    from: Option<IpAddr>,
    presented: Option<&str>,
    path: &str,
) -> Result<Caller, ApiError> {
    let now = Instant::now();
    if let Some(ip) = from
        && let Some(wait) = state.guard.throttled(ip, now)
    {
        state.metrics.key_throttled();
        return Err(ApiError::Throttled {
            retry_after: wait.as_secs().max(1),
        });
    }
    let live = state.live();
    if let Some(key) = presented.and_then(|p| key_index(&live.inventory, p)) {
        return Ok(Caller { live, key });
    }
    state.metrics.key_refused();
    match state.guard.strike(from, now) {
        Strike::First => tracing::warn!(
            from = %from.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
            path = %path,
            "refused a missing or wrong API key"
        ),
        Strike::Throttling(n) => tracing::warn!(
            from = %from.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
            wrong_keys = n,
            "too many wrong API keys from this address; answering 429 for a minute"
        ),
        Strike::Quiet => {}
    }
    Err(ApiError::unauthorized())
}

/// The index of the configured key `presented`, compared in constant time against every
/// key (no early exit, so timing does not tell which one matched).
fn key_index(inv: &Inventory, presented: &str) -> Option<usize> {
    let hash = KeyHash::of(presented);
    inv.keys.iter().enumerate().fold(None, |found, (i, k)| {
        if k.hash.same(&hash) {
            found.or(Some(i))
        } else {
            found
        }
    })
}

/// What one more wrong key means for logging.
#[derive(Debug, PartialEq, Eq)]
enum Strike {
    /// The first from this address in this minute: log it.
    First,
    /// The one that starts the slow-down: log it with the count.
    Throttling(u32),
    /// Already said.
    Quiet,
}

/// Wrong keys per address (and, for requests with no known address, one shared count used
/// only to rate-limit the log).
#[derive(Debug, Default)]
pub struct KeyGuard {
    strikes: Mutex<HashMap<Option<IpAddr>, (Instant, u32)>>,
    /// Addresses in `strikes`, readable without the lock: every request asks whether its
    /// address is slowed down, and almost always none has a strike.
    tracked: AtomicUsize,
}

impl KeyGuard {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Option<IpAddr>, (Instant, u32)>> {
        match self.strikes.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// How long `ip` stays slowed down, if it is.
    fn throttled(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let strikes = self.lock();
        let &(since, n) = strikes.get(&Some(ip))?;
        let ends = since + STRIKE_WINDOW;
        (n > STRIKES && now < ends).then(|| ends - now)
    }

    fn strike(&self, from: Option<IpAddr>, now: Instant) -> Strike {
        let mut strikes = self.lock();
        if strikes.len() >= TRACKED {
            strikes.retain(|_, (since, _)| now.duration_since(*since) < STRIKE_WINDOW);
            if strikes.len() >= TRACKED && !strikes.contains_key(&from) {
                return Strike::Quiet;
            }
        }
        strikes.entry(from).or_insert((now, 0));
        self.tracked.store(strikes.len(), Ordering::Relaxed);
        let Some(entry) = strikes.get_mut(&from) else {
            return Strike::Quiet;
        };
        if now.duration_since(entry.0) >= STRIKE_WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
        match entry.1 {
            1 => Strike::First,
            n if n == STRIKES + 1 && from.is_some() => Strike::Throttling(n),
            _ => Strike::Quiet,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_slowed_down_after_ten_wrong_keys_for_a_minute() {
        let guard = KeyGuard::default();
        let ip: IpAddr = "192.0.2.7".parse().expect("address");
        let other: IpAddr = "192.0.2.8".parse().expect("address");
        let start = Instant::now();
        assert_eq!(guard.strike(Some(ip), start), Strike::First);
        for _ in 2..=STRIKES {
            assert_eq!(guard.strike(Some(ip), start), Strike::Quiet);
            assert_eq!(guard.throttled(ip, start), None);
        }
        assert_eq!(
            guard.strike(Some(ip), start),
            Strike::Throttling(STRIKES + 1)
        );
        assert_eq!(guard.throttled(ip, start), Some(STRIKE_WINDOW));
        assert_eq!(
            guard.throttled(other, start),
            None,
            "other addresses are not affected"
        );
        let later = start + STRIKE_WINDOW;
        assert_eq!(
            guard.throttled(ip, later),
            None,
            "the slow-down ends after a minute"
        );
        assert_eq!(
            guard.strike(Some(ip), later),
            Strike::First,
            "and the count starts again"
        );
    }

    #[test]
    fn requests_without_an_address_are_logged_once_a_minute_and_never_throttled() {
        let guard = KeyGuard::default();
        let start = Instant::now();
        assert_eq!(guard.strike(None, start), Strike::First);
        for _ in 0..100 {
            assert_eq!(guard.strike(None, start), Strike::Quiet);
        }
        assert_eq!(guard.strike(None, start + STRIKE_WINDOW), Strike::First);
    }
}
