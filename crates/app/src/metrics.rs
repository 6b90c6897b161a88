//! Prometheus text metrics, kept in atomics (no registry crate needed for a handful).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use failover_core::inventory::Verdict;
use failover_store::DeliveryState;

/// Upper bounds of the report latency histogram, seconds.
const BUCKETS: [f64; 10] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Counters of the running service.
#[derive(Debug, Default)]
pub struct Metrics {
    reports: [AtomicU64; Verdict::ALL.len()],
    rejected: AtomicU64,
    windows_skipped: AtomicU64,
    keys_refused: AtomicU64,
    keys_throttled: AtomicU64,
    /// Rows deleted by retention: events (with their reports and deliveries), sessions,
    /// ad-hoc windows.
    pruned: [AtomicU64; 3],
    deliveries: Mutex<BTreeMap<(String, &'static str), u64>>,
    latency_buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

impl Metrics {
    /// A report was recorded with this verdict, taking `seconds`.
    pub fn report(&self, verdict: Verdict, seconds: f64) {
        let i = Verdict::ALL.iter().position(|v| *v == verdict).unwrap_or(0);
        self.reports[i].fetch_add(1, Ordering::Relaxed);
        for (b, bound) in self.latency_buckets.iter().zip(BUCKETS) {
            if seconds <= bound {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// A report was refused (4xx).
    pub fn rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// A classification left out `n` windows it could not evaluate.
    pub fn windows_skipped(&self, n: usize) {
        self.windows_skipped.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// A request came with a missing or wrong API key.
    pub fn key_refused(&self) {
        self.keys_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A request was answered 429 because its address sent too many wrong keys.
    pub fn key_throttled(&self) {
        self.keys_throttled.fetch_add(1, Ordering::Relaxed);
    }

    /// Retention deleted these rows.
    pub fn pruned(&self, p: failover_store::Pruned) {
        for (n, add) in self.pruned.iter().zip([p.events, p.sessions, p.windows]) {
            n.fetch_add(add, Ordering::Relaxed);
        }
    }

    /// A delivery attempt ended with `outcome` (`delivered`, `retry`, `failed`).
    pub fn delivery(&self, channel: &str, outcome: &'static str) {
        if let Ok(mut d) = self.deliveries.lock() {
            *d.entry((channel.to_owned(), outcome)).or_default() += 1;
        }
    }

    /// The exposition text; `queue` is the number of deliveries by status in the store.
    pub fn render(&self, queue: &[(DeliveryState, u64)]) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP failover_reports_total Reports recorded, by verdict."
        );
        let _ = writeln!(s, "# TYPE failover_reports_total counter");
        for (v, n) in Verdict::ALL.iter().zip(&self.reports) {
            let _ = writeln!(
                s,
                "failover_reports_total{{verdict=\"{}\"}} {}",
                v.as_str(),
                n.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "# HELP failover_reports_rejected_total Reports refused with a 4xx answer."
        );
        let _ = writeln!(s, "# TYPE failover_reports_rejected_total counter");
        let _ = writeln!(
            s,
            "failover_reports_rejected_total {}",
            self.rejected.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "# HELP failover_pruned_total Rows deleted by retention ([events] keep), by kind; an event counts with its reports and deliveries."
        );
        let _ = writeln!(s, "# TYPE failover_pruned_total counter");
        for (kind, n) in ["events", "sessions", "windows"].iter().zip(&self.pruned) {
            let _ = writeln!(
                s,
                "failover_pruned_total{{kind=\"{kind}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        for (name, help, n) in [
            (
                "failover_windows_skipped_total",
                "Windows left out of a classification because their arithmetic failed (logged).",
                &self.windows_skipped,
            ),
            (
                "failover_api_keys_refused_total",
                "Requests with a missing or wrong API key.",
                &self.keys_refused,
            ),
            (
                "failover_api_keys_throttled_total",
                "Requests answered 429 because their address sent too many wrong keys.",
                &self.keys_throttled,
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}");
            let _ = writeln!(s, "# TYPE {name} counter");
            let _ = writeln!(s, "{name} {}", n.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            s,
            "# HELP failover_delivery_attempts_total Delivery attempts, by channel and outcome."
        );
        let _ = writeln!(s, "# TYPE failover_delivery_attempts_total counter");
        if let Ok(d) = self.deliveries.lock() {
            for ((channel, outcome), n) in d.iter() {
                let _ = writeln!(
                    s,
                    "failover_delivery_attempts_total{{channel=\"{channel}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            s,
            "# HELP failover_deliveries Deliveries in the outbox, by status (pending = queue depth)."
        );
        let _ = writeln!(s, "# TYPE failover_deliveries gauge");
        for (status, n) in queue {
            let status = status.as_str();
            let _ = writeln!(s, "failover_deliveries{{status=\"{status}\"}} {n}");
        }
        let _ = writeln!(
            s,
            "# HELP failover_report_seconds Time to classify and durably record a report."
        );
        let _ = writeln!(s, "# TYPE failover_report_seconds histogram");
        for (b, bound) in self.latency_buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                s,
                "failover_report_seconds_bucket{{le=\"{bound}\"}} {}",
                b.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(s, "failover_report_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            s,
            "failover_report_seconds_sum {}",
            self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(s, "failover_report_seconds_count {count}");
        s
    }
}
