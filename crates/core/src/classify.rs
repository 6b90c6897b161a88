//! Classification: is a failover planned, unplanned, or from an unknown host?
//!
//! [`classify`] is a pure function of the inventory, the ad-hoc windows, the host and the
//! instant; it never reads the clock.

use jiff::Timestamp;

use crate::inventory::{ClusterId, CustomerId, Inventory, NodeId, Verdict, WindowId};
use crate::window::{MaintenanceWindow, Occurrence};

/// Which window explains a planned failover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowRef {
    /// A window of the inventory.
    Inventory(WindowId),
    /// An ad-hoc window, by index into the slice given to [`classify`].
    AdHoc(usize),
}

impl WindowRef {
    /// The window this refers to, in the inventory or in the ad-hoc windows given to
    /// [`classify`].
    pub fn resolve<'a>(
        self,
        inventory: &'a Inventory,
        ad_hoc: &'a [MaintenanceWindow],
    ) -> &'a MaintenanceWindow {
        match self {
            WindowRef::Inventory(id) => inventory.window(id),
            WindowRef::AdHoc(i) => &ad_hoc[i],
        }
    }
}

/// The window and occurrence that make a failover planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The window.
    pub window: WindowRef,
    /// Its occurrence around the instant (without grace).
    pub occurrence: Occurrence,
}

/// The result of classifying one report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// planned / unplanned / unknown-host.
    pub verdict: Verdict,
    /// The node the host name matched.
    pub node: Option<NodeId>,
    /// Its cluster.
    pub cluster: Option<ClusterId>,
    /// For `planned`: why.
    pub explanation: Option<Explanation>,
    /// Windows that could not be evaluated at this instant (their arithmetic left the
    /// supported years) and were left out: the caller logs and counts them. A broken window
    /// never stops a report from being classified.
    pub skipped: Vec<WindowRef>,
}

/// Classifies a failover reported by `host` at `at`.
///
/// `customer` limits the host lookup to one customer (a customer-scoped API key). A failover
/// is planned when, at `at`, a window of the cluster, of any of its nodes or of its customer
/// contains `at` once widened by its grace. Of several such windows, the one whose
/// occurrence contains `at` without grace wins, then the one that started last.
///
/// A window whose arithmetic fails at `at` (an instant or a stored ad-hoc window near the
/// end of the supported years) is left out and named in [`Classification::skipped`].
pub fn classify(
    inventory: &Inventory,
    ad_hoc: &[MaintenanceWindow],
    host: &str,
    customer: Option<CustomerId>,
    at: Timestamp,
) -> Classification {
    let Some(node) = inventory.find_node(host, customer) else {
        return Classification {
            verdict: Verdict::UnknownHost,
            node: None,
            cluster: None,
            explanation: None,
            skipped: Vec::new(),
        };
    };
    let cluster_id = inventory.node(node).cluster;
    let cluster = inventory.cluster(cluster_id);

    let mut best: Option<(bool, Explanation)> = None;
    let mut skipped = Vec::new();
    let mut consider = |window: WindowRef, w: &MaintenanceWindow| {
        let Ok(found) = w.occurrence_containing(at) else {
            skipped.push(window);
            return;
        };
        if let Some(occurrence) = found {
            let strict = occurrence.start.timestamp() <= at && at < occurrence.end.timestamp();
            let better = match &best {
                None => true,
                Some((best_strict, b)) => {
                    (strict, occurrence.start.timestamp())
                        > (*best_strict, b.occurrence.start.timestamp())
                }
            };
            if better {
                best = Some((strict, Explanation { window, occurrence }));
            }
        }
    };
    for &id in &cluster.windows {
        consider(WindowRef::Inventory(id), inventory.window(id));
    }
    for (i, w) in ad_hoc.iter().enumerate() {
        let applies = match w.owner {
            crate::window::Owner::Node(n) => inventory.node(n).cluster == cluster_id,
            crate::window::Owner::Cluster(c) => c == cluster_id,
            crate::window::Owner::Customer(c) => cluster.customer == Some(c),
        };
        if applies {
            consider(WindowRef::AdHoc(i), w);
        }
    }
    let explanation = best.map(|(_, e)| e);
    Classification {
        verdict: if explanation.is_some() {
            Verdict::Planned
        } else {
            Verdict::Unplanned
        },
        node: Some(node),
        cluster: Some(cluster_id),
        explanation,
        skipped,
    }
}

/// The explaining window as shown to users (`check --format json`, the HTTP answer).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WindowView {
    /// Window name.
    pub name: String,
    /// Node, cluster or customer it belongs to.
    pub owner: String,
    /// Occurrence start, RFC 3339 with the zone's offset.
    pub start: String,
    /// Occurrence end, RFC 3339 with the zone's offset.
    pub end: String,
    /// IANA zone of the window.
    pub time_zone: String,
}

/// A classification as shown to users: the stable JSON contract of `check --format json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClassificationView {
    /// `planned`, `unplanned` or `unknown-host`.
    pub verdict: Verdict,
    /// The host as reported.
    pub host: String,
    /// The matched cluster, or `null`.
    pub cluster: Option<String>,
    /// The instant classified, RFC 3339 UTC.
    pub at: String,
    /// Why it is planned, or `null`.
    pub window: Option<WindowView>,
}

/// RFC 3339 with the zone's offset, `2026-12-09T22:00:00+01:00`.
pub fn rfc3339(z: &jiff::ZonedDateTime) -> String {
    z.timestamp().display_with_offset(z.offset()).to_string()
}

impl Classification {
    /// The user-facing view of this classification.
    pub fn view(
        &self,
        inventory: &Inventory,
        ad_hoc: &[MaintenanceWindow],
        host: &str,
        at: Timestamp,
    ) -> ClassificationView {
        let window = self.explanation.as_ref().map(|e| {
            let w = e.window.resolve(inventory, ad_hoc);
            WindowView {
                name: w.name.clone(),
                owner: inventory.owner_name(w.owner).to_owned(),
                start: rfc3339(&e.occurrence.start),
                end: rfc3339(&e.occurrence.end),
                time_zone: w.time_zone.iana_name().unwrap_or("UTC").to_owned(),
            }
        });
        ClassificationView {
            verdict: self.verdict,
            host: host.to_owned(),
            cluster: self.cluster.map(|c| inventory.cluster(c).name.clone()),
            at: at.to_string(),
            window,
        }
    }
}
