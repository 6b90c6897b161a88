//! Ad-hoc maintenance windows: put a node, a cluster or a customer into maintenance now,
//! through the API, and classify with them like configured windows.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::inventory::{CustomerId, Inventory};
use crate::window::{Grace, Length, MaintenanceWindow, Owner, Schedule};

/// What an ad-hoc window applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// One node.
    Node,
    /// A whole cluster.
    Cluster,
    /// Every cluster of a customer.
    Customer,
}

impl TargetKind {
    /// All kinds.
    pub const ALL: [TargetKind; 3] = [TargetKind::Node, TargetKind::Cluster, TargetKind::Customer];

    /// The spelling in JSON and in the API's field names.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Node => "node",
            TargetKind::Cluster => "cluster",
            TargetKind::Customer => "customer",
        }
    }

    /// The kind spelled `name`.
    pub fn from_name(name: &str) -> Option<TargetKind> {
        TargetKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The owner named `name` of this kind in `inv`.
    pub fn owner(self, inv: &Inventory, name: &str) -> Option<Owner> {
        match self {
            TargetKind::Node => inv.find_node(name, None).map(Owner::Node),
            TargetKind::Cluster => inv.find_cluster(name).map(Owner::Cluster),
            TargetKind::Customer => inv
                .customers
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(name))
                .and_then(|i| u32::try_from(i).ok())
                .map(|i| Owner::Customer(CustomerId(i))),
        }
    }
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ad-hoc window as asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewMaintenance {
    /// What kind of thing it applies to.
    pub target_kind: TargetKind,
    /// Its inventory name.
    pub target: String,
    /// Customer of the target (for scoped keys).
    pub customer: Option<String>,
    /// Start.
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    /// End.
    #[schema(value_type = String, format = DateTime)]
    pub end: Timestamp,
    /// Why.
    pub reason: String,
    /// The API key's name that created it.
    pub created_by: String,
}

/// An ad-hoc window as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Maintenance {
    /// Id.
    pub id: i64,
    /// Its fields.
    #[serde(flatten)]
    pub window: NewMaintenance,
}

impl Maintenance {
    /// The classification form of this window in `inv`: a window of the whole UTC span,
    /// with no grace. `None` when its target is no longer in the inventory or it has no
    /// length left (ended before it started).
    pub fn to_window(&self, inv: &Inventory) -> Option<MaintenanceWindow> {
        let w = &self.window;
        let owner = w.target_kind.owner(inv, &w.target)?;
        let start = w.start.to_zoned_datetime(TimeZone::UTC);
        MaintenanceWindow::new(
            format!("maintenance #{}: {}", self.id, w.reason),
            owner,
            TimeZone::UTC,
            Schedule::Once { date: start.date() },
            Some(start.time()),
            Length::Exact(w.end.duration_since(w.start)),
            Grace {
                before: SignedDuration::ZERO,
                after: SignedDuration::ZERO,
            },
        )
        .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::classify;
    use crate::inventory::Verdict;

    const INVENTORY: &str = r#"
[[customers]]
name = "acme"

[[clusters]]
name = "db"
customer = "acme"
nodes = ["db1", "db2"]

[[channels]]
name = "log"
kind = "log"

[[routes]]
channels = ["log"]
"#;

    fn window(kind: TargetKind, target: &str, start: &str, end: &str) -> Maintenance {
        Maintenance {
            id: 7,
            window: NewMaintenance {
                target_kind: kind,
                target: target.into(),
                customer: None,
                start: start.parse().expect("instant"),
                end: end.parse().expect("instant"),
                reason: "kernel".into(),
                created_by: "ops".into(),
            },
        }
    }

    #[test]
    fn an_ad_hoc_window_covers_its_span_and_nothing_more() {
        let inv = crate::config::parse(INVENTORY).expect("valid");
        for (kind, target) in [
            (TargetKind::Node, "db2"),
            (TargetKind::Cluster, "DB"),
            (TargetKind::Customer, "acme"),
        ] {
            let w = window(kind, target, "2026-12-09T21:00:00Z", "2026-12-09T22:00:00Z")
                .to_window(&inv)
                .expect("converts");
            let verdict = |at: &str| {
                classify(
                    &inv,
                    std::slice::from_ref(&w),
                    "db2",
                    None,
                    at.parse().expect("instant"),
                )
                .verdict
            };
            assert_eq!(verdict("2026-12-09T21:00:00Z"), Verdict::Planned, "{kind}");
            assert_eq!(verdict("2026-12-09T21:59:59Z"), Verdict::Planned, "{kind}");
            assert_eq!(
                verdict("2026-12-09T22:00:00Z"),
                Verdict::Unplanned,
                "{kind}"
            );
            assert_eq!(
                verdict("2026-12-09T20:59:59Z"),
                Verdict::Unplanned,
                "{kind}"
            );
            assert!(w.name.contains("#7: kernel"), "{}", w.name);
        }
        // Across midnight UTC; a node's window covers its cluster's failovers to any node.
        let w = window(
            TargetKind::Node,
            "db1",
            "2026-12-31T23:30:00Z",
            "2027-01-01T00:30:00Z",
        )
        .to_window(&inv)
        .expect("converts");
        let at = "2027-01-01T00:10:00Z".parse().expect("instant");
        assert_eq!(
            classify(&inv, std::slice::from_ref(&w), "db1", None, at).verdict,
            Verdict::Planned
        );
        assert_eq!(
            classify(&inv, std::slice::from_ref(&w), "db2", None, at).verdict,
            Verdict::Planned
        );
        let after = "2027-01-01T00:30:00Z".parse().expect("instant");
        assert_eq!(
            classify(&inv, std::slice::from_ref(&w), "db2", None, after).verdict,
            Verdict::Unplanned
        );
    }

    #[test]
    fn a_window_for_a_target_gone_from_the_inventory_or_without_length_is_left_out() {
        let inv = crate::config::parse(INVENTORY).expect("valid");
        let gone = window(
            TargetKind::Node,
            "db9",
            "2026-12-09T21:00:00Z",
            "2026-12-09T22:00:00Z",
        );
        assert!(gone.to_window(&inv).is_none());
        let ended = window(
            TargetKind::Cluster,
            "db",
            "2026-12-09T21:00:00Z",
            "2026-12-09T21:00:00Z",
        );
        assert!(ended.to_window(&inv).is_none());
        // The extremes of the instants the store can hold do not panic.
        let mut far = window(
            TargetKind::Cluster,
            "db",
            "2026-12-09T21:00:00Z",
            "2026-12-09T22:00:00Z",
        );
        far.window.start = Timestamp::MIN;
        far.window.end = Timestamp::MAX;
        let _ = far.to_window(&inv);
        assert_eq!(TargetKind::from_name("cluster"), Some(TargetKind::Cluster));
        assert_eq!(TargetKind::from_name("Cluster"), None);
    }
}
