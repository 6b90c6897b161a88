//! Authentication, done once before any other part of a request is read: the [`Caller`]
//! extractor. Every handler that needs a key takes a `Caller` as its first argument, so a
//! request without a valid key is answered 401 before its path, query or body is parsed.
//!
//! A valid key is always accepted: it is checked first, so no flood of wrong keys from the
//! same address (a NAT gateway both nodes share, a reverse proxy) can stop a real report.
//! Wrong keys leave a trail and are slowed down: each refusal is counted in `/metrics`; the
//! first refusal from an address in a minute is logged (with the address, never the key),
//! and once an address has sent more than [`STRIKES`] wrong keys within a minute, its wrong
//! keys are answered 429 for the rest of that minute, so guessing learns nothing more from a
//! burst. Addresses are counted by network: one IPv4 address, one IPv6 /64 (what one host
//! can pick from freely); at most [`TRACKED`] are remembered, the oldest forgotten first.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use failover_core::inventory::{ApiKey, Inventory, Role};
use failover_core::keys::KeyHash;
use failover_store::Store;
use tokio::time::{Duration, Instant};

use crate::client::Client;
use crate::error::ApiError;
use crate::state::{AppState, Live};

/// Wrong keys from one address within [`STRIKE_WINDOW`] before it is answered 429.
pub const STRIKES: u32 = 10;
/// How long wrong keys are remembered, and how long an address stays slowed down.
pub const STRIKE_WINDOW: Duration = Duration::from_secs(60);
/// Networks remembered at most; beyond, the one counted longest ago is forgotten.
pub const TRACKED: usize = 10_000;

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
        let from = Client::of(
            &parts.extensions,
            &parts.headers,
            &state.live().inventory.trusted_proxies,
        )
        .ip;
        let presented = parts.headers.get("x-api-key").and_then(|v| v.to_str().ok());
        authenticate(state, from, presented, parts.uri.path())
    }
}

/// The caller presenting `presented` (from `x-api-key`, or the dashboard's sign-in form):
/// a valid key is accepted whatever its address did; a missing or wrong one is 429 while its
/// address is slowed down, else 401 (counted, logged once a minute per address, and a
/// strike towards the slow-down).
///
/// # Errors
/// [`ApiError`] 429 or 401.
pub(crate) fn authenticate<S: Store>(
    state: &AppState<S>,
    from: Option<IpAddr>,
    presented: Option<&str>,
    path: &str,
) -> Result<Caller, ApiError> {
    let live = state.live();
    if let Some(key) = presented.and_then(|p| key_index(&live.inventory, p)) {
        return Ok(Caller { live, key });
    }
    state.metrics.key_refused();
    let now = Instant::now();
    let from = from.map(network);
    if let Some(net) = from
        && let Some(wait) = state.guard.throttled(net, now)
    {
        state.metrics.key_throttled();
        return Err(ApiError::Throttled {
            retry_after: wait.as_secs().max(1),
        });
    }
    let shown = || from.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    match state.guard.strike(from, now) {
        Strike::First => tracing::warn!(
            from = %shown(),
            path = %path,
            "refused a missing or wrong API key"
        ),
        Strike::Throttling(n) => tracing::warn!(
            from = %shown(),
            wrong_keys = n,
            "too many wrong API keys from this address; answering its wrong keys 429 for a minute"
        ),
        Strike::Quiet => {}
    }
    Err(ApiError::unauthorized())
}

/// What wrong keys are counted by: an IPv4 address, or an IPv6 address's /64.
fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
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

/// Wrong keys per network (and, for requests with no known address, one shared count used
/// only to rate-limit the log).
#[derive(Debug, Default)]
pub struct KeyGuard {
    counts: Mutex<Counts>,
    /// Networks in `counts`, readable without the lock.
    tracked: AtomicUsize,
}

/// The counts, and the order their minutes began in (oldest first) to forget by.
#[derive(Debug, Default)]
struct Counts {
    by_net: HashMap<Option<IpAddr>, (Instant, u32)>,
    /// `(since, net)` for each count's minute; an entry whose count began a new minute since
    /// is stale and skipped.
    order: VecDeque<(Instant, Option<IpAddr>)>,
}

impl Counts {
    /// Forgets counts whose minute is over, and the oldest beyond `TRACKED` (but `keep`).
    fn forget(&mut self, now: Instant, keep: Option<IpAddr>) {
        while let Some(&(since, net)) = self.order.front() {
            let current = self.by_net.get(&net).is_some_and(|&(s, _)| s == since);
            let expired = now.duration_since(since) >= STRIKE_WINDOW;
            let full = self.by_net.len() >= TRACKED && !self.by_net.contains_key(&keep);
            if current && !expired && !full {
                break;
            }
            self.order.pop_front();
            if current {
                self.by_net.remove(&net);
            }
        }
    }
}

impl KeyGuard {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        match self.counts.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// How long wrong keys from `net` stay slowed down, if they are.
    fn throttled(&self, net: IpAddr, now: Instant) -> Option<Duration> {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let counts = self.lock();
        let &(since, n) = counts.by_net.get(&Some(net))?;
        let ends = since + STRIKE_WINDOW;
        (n > STRIKES && now < ends).then(|| ends - now)
    }

    fn strike(&self, from: Option<IpAddr>, now: Instant) -> Strike {
        let mut counts = self.lock();
        counts.forget(now, from);
        let fresh = match counts.by_net.get(&from) {
            Some(&(since, _)) => now.duration_since(since) >= STRIKE_WINDOW,
            None => true,
        };
        if fresh {
            counts.by_net.insert(from, (now, 0));
            counts.order.push_back((now, from));
        }
        self.tracked.store(counts.by_net.len(), Ordering::Relaxed);
        let Some(entry) = counts.by_net.get_mut(&from) else {
            return Strike::Quiet;
        };
        entry.1 = entry.1.saturating_add(1);
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

    #[test]
    fn a_full_table_forgets_the_oldest_and_still_slows_down_a_new_guesser() {
        // One wrong key from each of TRACKED addresses fills the table; a guesser that comes
        // next is still counted (the oldest count makes room) and slowed down.
        let guard = KeyGuard::default();
        let start = Instant::now();
        for i in 0..TRACKED as u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            guard.strike(Some(ip), start);
        }
        let guesser: IpAddr = "192.0.2.200".parse().expect("address");
        let later = start + Duration::from_secs(1);
        for _ in 0..=STRIKES {
            guard.strike(Some(guesser), later);
        }
        assert!(guard.throttled(guesser, later).is_some());
        assert_eq!(guard.lock().by_net.len(), TRACKED);
        let first = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000));
        assert!(
            !guard.lock().by_net.contains_key(&Some(first)),
            "the oldest went first"
        );
    }

    #[test]
    fn ipv6_addresses_are_counted_by_their_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("address");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("address");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("address");
        assert_eq!(network(a), network(b));
        assert_ne!(network(a), network(c));
        let v4: IpAddr = "192.0.2.1".parse().expect("address");
        assert_eq!(network(v4), v4);
    }
}
