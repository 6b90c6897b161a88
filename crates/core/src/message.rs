//! The context a message template sees, built from a classified event.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::classify::Classification;
use crate::inventory::{Inventory, Verdict};
use crate::template::{MessageContext, WindowContext};
use crate::window::MaintenanceWindow;

/// What the event history says about an event (from [`crate::event::assess`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct HistoryFlags {
    /// The cluster is flapping.
    pub flapping: bool,
    /// When the failover this one undoes happened.
    pub failback_of: Option<Timestamp>,
}

/// Local time with the zone's abbreviation: `2026-12-09 22:14:03 CET`.
pub fn local_time(at: Timestamp, tz: &TimeZone) -> String {
    at.to_zoned_datetime(tz.clone())
        .strftime("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// The template context for an event reported by `host` at `at`.
pub fn context(
    inventory: &Inventory,
    ad_hoc: &[MaintenanceWindow],
    classification: &Classification,
    host: &str,
    previous: Option<&str>,
    at: Timestamp,
    flags: HistoryFlags,
) -> MessageContext {
    let cluster = classification.cluster.map(|c| inventory.cluster(c));
    let tz = cluster.map_or(&inventory.default_time_zone, |c| &c.time_zone);
    let nodes: Vec<String> = cluster
        .map(|c| {
            c.nodes
                .iter()
                .map(|&n| inventory.node(n).name.clone())
                .collect()
        })
        .unwrap_or_default();
    let previous = match (previous, classification.node) {
        // A start follows no node.
        _ if classification.verdict == Verdict::ClusterStart => String::new(),
        (Some(p), _) => inventory
            .find_node(p, cluster.and_then(|c| c.customer))
            .map_or_else(|| p.to_owned(), |n| inventory.node(n).name.clone()),
        (None, Some(me)) => {
            let me = &inventory.node(me).name;
            let others: Vec<&str> = nodes
                .iter()
                .filter(|n| *n != me)
                .map(String::as_str)
                .collect();
            others.join(" or ")
        }
        (None, None) => String::new(),
    };
    let window = classification.explanation.as_ref().map(|e| {
        let w = e.window.resolve(inventory, ad_hoc);
        WindowContext {
            name: w.name.clone(),
            owner: inventory.owner_name(w.owner).to_owned(),
            start: e.occurrence.start.strftime("%Y-%m-%d %H:%M").to_string(),
            end: e.occurrence.end.strftime("%Y-%m-%d %H:%M").to_string(),
            time_zone: w.time_zone.iana_name().unwrap_or("UTC").to_owned(),
        }
    });
    MessageContext {
        verdict: classification.verdict.into(),
        host: classification
            .node
            .map_or_else(|| host.to_owned(), |n| inventory.node(n).name.clone()),
        previous,
        cluster: cluster.map_or_else(|| host.to_owned(), |c| c.name.clone()),
        customer: cluster
            .and_then(|c| c.customer)
            .map(|c| inventory.customers[c.index()].name.clone())
            .unwrap_or_default(),
        nodes,
        at: local_time(at, tz),
        at_utc: at.to_string(),
        time_zone: tz.iana_name().unwrap_or("UTC").to_owned(),
        window,
        flapping: flags.flapping && classification.verdict != Verdict::UnknownHost,
        flapping_count: inventory.events.flapping_count,
        flapping_within: crate::config::friendly_duration(inventory.events.flapping_within),
        failback: flags.failback_of.is_some(),
        failback_of: flags
            .failback_of
            .map(|t| local_time(t, tz))
            .unwrap_or_default(),
        failback_of_event: String::new(),
        usual: String::new(),
        back_by: String::new(),
        fault: false,
        fenced: false,
        version: MessageContext::VERSION,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::classify;

    #[test]
    fn context_names_the_other_node_and_local_times() {
        let inv = crate::config::parse(crate::config::EXAMPLE).expect("example is valid");
        let at: Timestamp = "2026-12-09T21:14:03Z".parse().expect("instant");
        let c = classify(&inv, &[], "cluster01-b", None, at);
        let ctx = context(
            &inv,
            &[],
            &c,
            "CLUSTER01-B",
            None,
            at,
            HistoryFlags::default(),
        );
        assert_eq!(ctx.host, "cluster01-b");
        assert_eq!(ctx.previous, "cluster01-a");
        assert_eq!(ctx.customer, "acme");
        assert_eq!(ctx.at, "2026-12-09 21:14:03 UTC");
        // db is in its customer's zone, Europe/Berlin.
        let c = classify(&inv, &[], "db1", None, at);
        let ctx = context(
            &inv,
            &[],
            &c,
            "db1",
            Some("db2-old"),
            at,
            HistoryFlags::default(),
        );
        assert_eq!(ctx.at, "2026-12-09 22:14:03 CET");
        assert_eq!(ctx.previous, "db2.example.com");
        let unknown = classify(&inv, &[], "nosuch", None, at);
        let ctx = context(
            &inv,
            &[],
            &unknown,
            "nosuch",
            None,
            at,
            HistoryFlags::default(),
        );
        assert_eq!(
            (ctx.cluster.as_str(), ctx.previous.as_str()),
            ("nosuch", "")
        );
    }
}
