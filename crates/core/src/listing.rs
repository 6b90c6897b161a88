//! Occurrences of many windows between two instants, one row per (cluster, occurrence).

use jiff::Timestamp;

use crate::inventory::{ClusterId, Inventory, NodeId, WindowId};
use crate::window::{Occurrence, Owner, WindowError};

/// Which windows to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Every window.
    All,
    /// Windows that can make this cluster's failover planned.
    Cluster(ClusterId),
    /// Windows of this node, of its cluster and of its customer.
    Node(NodeId),
}

/// One occurrence of one window, for one cluster it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The cluster it applies to.
    pub cluster: ClusterId,
    /// The window.
    pub window: WindowId,
    /// When.
    pub occurrence: Occurrence,
}

/// Occurrences overlapping `[from, to)`, sorted by start, then cluster and window name.
///
/// # Errors
/// [`WindowError`] when the range reaches past the supported years.
pub fn occurrences(
    inventory: &Inventory,
    from: Timestamp,
    to: Timestamp,
    filter: Filter,
) -> Result<Vec<Listed>, WindowError> {
    let mut rows = Vec::new();
    for (i, w) in inventory.windows.iter().enumerate() {
        let window = WindowId(i as u32);
        let clusters: Vec<ClusterId> = inventory
            .clusters_of(w.owner)
            .into_iter()
            .filter(|&c| match filter {
                Filter::All => true,
                Filter::Cluster(only) => c == only,
                Filter::Node(n) => {
                    let node = inventory.node(n);
                    c == node.cluster
                        && match w.owner {
                            Owner::Node(owner) => owner == n,
                            Owner::Cluster(_) | Owner::Customer(_) => true,
                        }
                }
            })
            .collect();
        if clusters.is_empty() {
            continue;
        }
        for occurrence in w.occurrences_between(from, to)? {
            for &cluster in &clusters {
                rows.push(Listed {
                    cluster,
                    window,
                    occurrence: occurrence.clone(),
                });
            }
        }
    }
    rows.sort_by(|a, b| {
        (
            a.occurrence.start.timestamp(),
            &inventory.cluster(a.cluster).name,
            &inventory.window(a.window).name,
        )
            .cmp(&(
                b.occurrence.start.timestamp(),
                &inventory.cluster(b.cluster).name,
                &inventory.window(b.window).name,
            ))
    });
    Ok(rows)
}

/// One listed occurrence as shown to users: `windows --format json` and `GET /v1/windows`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ListedView {
    /// Cluster name.
    pub cluster: String,
    /// Node, cluster or customer the window belongs to.
    pub owner: String,
    /// Window name.
    pub window: String,
    /// Start, RFC 3339 with the zone's offset.
    pub start: String,
    /// End, RFC 3339 with the zone's offset.
    pub end: String,
}

impl Listed {
    /// The user-facing view of this row.
    pub fn view(&self, inventory: &Inventory) -> ListedView {
        let w = inventory.window(self.window);
        ListedView {
            cluster: inventory.cluster(self.cluster).name.clone(),
            owner: inventory.owner_name(w.owner).to_owned(),
            window: w.name.clone(),
            start: crate::classify::rfc3339(&self.occurrence.start),
            end: crate::classify::rfc3339(&self.occurrence.end),
        }
    }
}
