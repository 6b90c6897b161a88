//! What a report does to a cluster's history: merge into an event, become a new one, or
//! complete a release; and what a new event is (its message context and its channels).
//!
//! The store runs [`decide`] inside its write transaction on the cluster's committed
//! [`History`], so the decision is taken on what is durable; this module only decides.
//! Client-id retries are the store's: a report whose id is recorded never reaches here.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::classify::Classification;
use crate::event::{PastEvent, assess, event_at};
use crate::inventory::{ClusterId, Inventory, MessageKind, NodeId, Verdict};
use crate::message::{HistoryFlags, context, local_time};
use crate::report::{Action, FailoverReport};
use crate::template::MessageContext;
use crate::window::MaintenanceWindow;

/// An event's id, unique within a store.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct EventId(pub String);

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A cluster's earlier event, as [`decide`] sees it. Nodes are inventory names (the
/// inventory's indexes change with every reload); a node renamed in the inventory keeps its
/// history when its old name stays among its `aliases`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// Its id.
    pub id: EventId,
    /// The node that became active; `None` for a release recorded on its own.
    pub active: Option<String>,
    /// The node active before, when known.
    pub previous: Option<String>,
    /// When it happened.
    pub at: Timestamp,
    /// It was flagged as flapping.
    pub flapping: bool,
    /// When its cluster was expected back on its usual node, for a planned failover with
    /// `not-back` reminders ([`NewEvent::back_by`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub back_by: Option<Timestamp>,
    /// It has deliveries: someone was told. A release recorded on its own has none (a
    /// takeover completes it); a node's own fault has them, and is never completed.
    #[serde(default)]
    pub told: bool,
}

/// A cluster's history as [`decide`] sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Its events from the report's look-back on ([`lookback_start`]), oldest first.
    pub events: Vec<HistoryEvent>,
    /// It has an event before that instant too (recorded at any time, also one whose event
    /// has since expired from the store).
    pub older: bool,
}

/// A new event with its deliveries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewEvent {
    /// Cluster name, `None` for an unknown host.
    pub cluster: Option<String>,
    /// Customer name.
    pub customer: Option<String>,
    /// The node that became active (inventory name), if known.
    pub active: Option<String>,
    /// The node active before (inventory name), if known.
    pub previous: Option<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// When it happened.
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The cluster is flapping.
    pub flapping: bool,
    /// The event this one undoes.
    pub failback_of: Option<EventId>,
    /// The classification as answered to the caller (JSON).
    #[schema(value_type = Object)]
    pub classification: Value,
    /// The template context of its message.
    #[schema(value_type = Object)]
    #[serde(default, deserialize_with = "null_as_default")]
    pub context: MessageContext,
    /// Channel names to deliver to.
    pub channels: Vec<String>,
    /// For a planned failover away from the cluster's usual node: when it is expected back
    /// (the end of the window's occurrence plus its after-grace), if a route carries
    /// `not-back` reminders for the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub back_by: Option<Timestamp>,
    /// Channels to send the `not-back` reminder to at [`NewEvent::back_by`], unless the
    /// cluster has moved by then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reminders: Vec<String>,
}

/// A stored `null` (a context that could not be written, in an early release) as the
/// default.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// What to do with a report, decided on the history inside the write transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Attach it to an existing event; deliver nothing new.
    Merge(EventId),
    /// Record a new event and its deliveries.
    New(Box<NewEvent>),
    /// Attach it to an existing event that has no deliveries (a release, recorded without a
    /// message), which takes these fields and deliveries: the report completes the failover
    /// that event began, under its id.
    Complete(EventId, Box<NewEvent>),
}

/// From when a report needs its cluster's history: the longest of the merge, flapping and
/// failback intervals before its instant.
pub fn lookback_start(inv: &Inventory, occurred_at: Timestamp) -> Timestamp {
    let p = &inv.events;
    let lookback = p.merge_within.max(p.flapping_within).max(p.failback_within);
    occurred_at.checked_sub(lookback).unwrap_or(Timestamp::MIN)
}

/// Merge, flapping, failback and cluster start on the cluster's committed history; the
/// store runs it in its write transaction. `c` is `r` classified with the ad-hoc windows
/// `ad_hoc`.
pub fn decide(
    inv: &Inventory,
    ad_hoc: &[MaintenanceWindow],
    r: &FailoverReport,
    c: &Classification,
    history: &History,
) -> Decision {
    let (Some(cluster), Some(node)) = (c.cluster, c.node) else {
        return Decision::New(Box::new(new_event(
            inv,
            ad_hoc,
            r,
            c,
            HistoryFlags::default(),
            None,
            false,
        )));
    };
    let events = history.events.as_slice();
    if r.action == Action::Release {
        // A release is part of the failover another node reports (never of this node's own
        // takeover); alone, it is recorded without a message, and the takeover that follows
        // completes it.
        let releasing = &inv.node(node).name;
        // The nearest takeover by another node since this node last became active, not
        // merely the nearest event: the one just before may be this node's own start or
        // takeover, and under concurrent reports the takeover may be recorded first. One
        // before this node's own last event belongs to an earlier failover.
        let own_last = events
            .iter()
            .filter(|h| h.active.as_ref() == Some(releasing))
            .map(|h| h.at)
            .max();
        let others = events.iter().filter(|h| {
            h.active.as_ref().is_some_and(|a| a != releasing)
                && own_last.is_none_or(|own| h.at > own)
        });
        let nearby = event_at(others, r.occurred_at, inv.events.merge_within, |h| h.at);
        return match nearby {
            Some(h) => Decision::Merge(h.id.clone()),
            None => Decision::New(Box::new(new_event(
                inv,
                ad_hoc,
                r,
                c,
                HistoryFlags::default(),
                None,
                true,
            ))),
        };
    }
    if r.action == Action::Lost && r.previous.is_none() {
        return fault(inv, ad_hoc, r, c, node, events);
    }
    if r.action == Action::Fenced {
        return fenced(inv, ad_hoc, r, c, cluster, events);
    }
    let customer = inv.cluster(cluster).customer;
    let past: Vec<PastEvent> = events
        .iter()
        .filter_map(|h| {
            Some(PastEvent {
                id: h.id.0.clone(),
                cluster,
                active: inv.find_node(h.active.as_deref()?, customer)?,
                previous: h
                    .previous
                    .as_deref()
                    .and_then(|p| inv.find_node(p, customer)),
                at: h.at,
                flapping: h.flapping,
            })
        })
        .collect();
    let a = assess(&inv.events, &past, cluster, node, r.occurred_at);
    if let Some(into) = a.merge_into {
        return Decision::Merge(EventId(into));
    }
    // A takeover that names no previous node, by a cluster with no earlier event: the
    // cluster starting. A node lost, or a node named as the one before, says a failover.
    if inv.events.first_report_is_start
        && r.action == Action::Takeover
        && r.previous.is_none()
        && !history.older
        && events.iter().all(|h| h.at > r.occurred_at)
    {
        let start = Classification {
            verdict: Verdict::ClusterStart,
            ..c.clone()
        };
        return Decision::New(Box::new(new_event(
            inv,
            ad_hoc,
            r,
            &start,
            HistoryFlags::default(),
            None,
            false,
        )));
    }
    let released = released_before(inv, r, cluster, node, events);
    let inferred;
    let r = if r.previous.is_none() {
        let mut with = r.clone();
        with.previous = released
            .and_then(|h| h.previous.clone())
            .or_else(|| infer_previous(inv, r, cluster, node, events));
        inferred = with;
        &inferred
    } else {
        r
    };
    let failback = a
        .failback_of
        .as_ref()
        .and_then(|id| events.iter().find(|h| &h.id.0 == id));
    let flags = HistoryFlags {
        flapping: a.flapping,
        failback_of: failback.map(|h| h.at),
    };
    // Flapping is said once: later events of the same flapping spell are only recorded.
    let silent = a.flapping && !a.flapping_started;
    let mut event = Box::new(new_event(
        inv,
        ad_hoc,
        r,
        c,
        flags,
        failback.map(|h| h.id.clone()),
        silent,
    ));
    // A failback returns to where the cluster was: it expects nothing more.
    match failback {
        _ if silent => {}
        None => expect_back(inv, ad_hoc, cluster, c, &mut event),
        Some(h) => {
            if let Some(due) = h.back_by.filter(|due| r.occurred_at > *due) {
                back(inv, cluster, due, &mut event);
            }
        }
    }
    match released {
        // A graceful switchover (heartbeat's `hb_standby`: `release` from the old node, then
        // `takeover` from the new one) is one failover: the release's event becomes it.
        Some(h) if r.previous == h.previous => Decision::Complete(h.id.clone(), event),
        _ => Decision::New(event),
    }
}

/// The release by another node of the cluster, recorded on its own within the merge
/// interval of this report: the first half of a graceful switchover. Usually before it; when
/// both nodes report at once, the release may carry the later time and still be recorded
/// first.
fn released_before<'h>(
    inv: &Inventory,
    r: &FailoverReport,
    cluster: ClusterId,
    node: NodeId,
    events: &'h [HistoryEvent],
) -> Option<&'h HistoryEvent> {
    let customer = inv.cluster(cluster).customer;
    events
        .iter()
        .filter(|h| {
            h.active.is_none()
                && !h.told
                && r.occurred_at.duration_since(h.at).abs() <= inv.events.merge_within
        })
        .min_by_key(|h| r.occurred_at.duration_since(h.at).abs())
        .filter(|h| {
            h.previous
                .as_deref()
                .and_then(|p| inv.find_node(p, customer))
                .is_some_and(|n| n != node)
        })
}

/// A `lost` report naming no other node: the reporting node itself cannot serve (keepalived
/// `FAULT`: a tracked interface or script failed). Part of a failover another node reported
/// since this node last became active, or a repeat of this node's fault within the merge
/// interval: merged. Otherwise its own event, with a message: no node became active
/// (`active` is `None`), the faulted node is `previous`, and it is told (`fault` in the
/// context), so a standby's fault is seen though no takeover follows. A takeover after it
/// is a failover of its own (it never completes a fault, as it does a release).
fn fault(
    inv: &Inventory,
    ad_hoc: &[MaintenanceWindow],
    r: &FailoverReport,
    c: &Classification,
    node: NodeId,
    events: &[HistoryEvent],
) -> Decision {
    let faulted = &inv.node(node).name;
    let own_last = events
        .iter()
        .filter(|h| h.active.as_ref() == Some(faulted))
        .map(|h| h.at)
        .max();
    let related = events.iter().filter(|h| {
        let takeover = h.active.as_ref().is_some_and(|a| a != faulted)
            && own_last.is_none_or(|own| h.at > own);
        let repeat = h.active.is_none() && h.told && h.previous.as_ref() == Some(faulted);
        takeover || repeat
    });
    match event_at(related, r.occurred_at, inv.events.merge_within, |h| h.at) {
        Some(h) => Decision::Merge(h.id.clone()),
        None => node_out(inv, ad_hoc, r, c, faulted.clone(), Out::Fault),
    }
}

/// A fencing seen by the reporting node: the cluster fenced `previous` (powered it off or
/// rebooted it). Its own event with a message that names the fenced node, as a fault's:
/// no node became active, the fenced node is `previous`, `fenced` in the context. The
/// failover it is part of is told by its own reports; the same fencing seen by several
/// nodes within the merge interval is one event.
fn fenced(
    inv: &Inventory,
    ad_hoc: &[MaintenanceWindow],
    r: &FailoverReport,
    c: &Classification,
    cluster: ClusterId,
    events: &[HistoryEvent],
) -> Decision {
    let named = r.previous.as_deref().unwrap_or_default();
    let victim = inv
        .find_node(named, inv.cluster(cluster).customer)
        .map_or_else(|| named.to_owned(), |n| inv.node(n).name.clone());
    let repeats = events
        .iter()
        .filter(|h| h.active.is_none() && h.told && h.previous.as_ref() == Some(&victim));
    match event_at(repeats, r.occurred_at, inv.events.merge_within, |h| h.at) {
        Some(h) => Decision::Merge(h.id.clone()),
        None => node_out(inv, ad_hoc, r, c, victim, Out::Fenced),
    }
}

/// The event of node `out` out of service ([`fault`], [`fenced`]): told, no node active,
/// `out` as the node before, `how` set in the message context.
fn node_out(
    inv: &Inventory,
    ad_hoc: &[MaintenanceWindow],
    r: &FailoverReport,
    c: &Classification,
    out: String,
    how: Out,
) -> Decision {
    let mut e = new_event(inv, ad_hoc, r, c, HistoryFlags::default(), None, false);
    e.active = None;
    e.previous = Some(out);
    match how {
        Out::Fault => e.context.fault = true,
        Out::Fenced => e.context.fenced = true,
    }
    Decision::New(Box::new(e))
}

/// How a node went out of service.
#[derive(Debug, Clone, Copy)]
enum Out {
    /// It reports a fault of its own.
    Fault,
    /// The cluster fenced it.
    Fenced,
}

/// The node active before a report that names none (keepalived says only "I am master
/// now", the original's curl line names nobody), when no node released the cluster just
/// before: the node the cluster's last event before the report made active, or, in a
/// two-node cluster, the other node (the only one that can have been active).
fn infer_previous(
    inv: &Inventory,
    r: &FailoverReport,
    cluster: ClusterId,
    node: NodeId,
    events: &[HistoryEvent],
) -> Option<String> {
    let customer = inv.cluster(cluster).customer;
    let last_active = events
        .iter()
        .filter(|h| h.at <= r.occurred_at && h.active.is_some())
        .max_by_key(|h| h.at)
        .and_then(|h| h.active.clone())
        .filter(|name| inv.find_node(name, customer).is_some_and(|n| n != node));
    let only_other = || match inv.cluster(cluster).nodes.as_slice() {
        [a, b] => Some(inv.node(if *a == node { *b } else { *a }).name.clone()),
        _ => None,
    };
    last_active.or_else(only_other)
}

/// A planned failover away from the cluster's usual node (its `preferred` node, else the one
/// active before) expects the cluster back when the window's occurrence ends, plus its
/// after-grace: the `not-back` reminder is due then, to the channels that carry it.
fn expect_back(
    inv: &Inventory,
    ad_hoc: &[MaintenanceWindow],
    cluster: ClusterId,
    c: &Classification,
    event: &mut NewEvent,
) {
    let (Verdict::Planned, Some(e)) = (event.verdict, &c.explanation) else {
        return;
    };
    let cl = inv.cluster(cluster);
    let usual = inv.usual_node(cluster, event.previous.as_deref());
    let Some(usual) = usual
        .filter(|u| event.active.as_deref() != Some(*u))
        .map(str::to_owned)
    else {
        return;
    };
    let grace = e.window.resolve(inv, ad_hoc).grace.after;
    let Some(due) = e.occurrence.end.timestamp().checked_add(grace).ok() else {
        return;
    };
    let reminders = channels_for(inv, MessageKind::NotBack, Some(cluster), false);
    if reminders.is_empty() {
        return;
    }
    expected_back(&mut event.context, &usual, due, &cl.time_zone);
    event.back_by = Some(due);
    event.reminders = reminders;
}

/// A failback after the reminder of the failover it undoes was due: the `back` message, to
/// the channels that carry it (and those that resolve alerts). Routed by its verdict as
/// before when no route carries `back`.
fn back(inv: &Inventory, cluster: ClusterId, due: Timestamp, event: &mut NewEvent) {
    if channels_for(inv, MessageKind::Back, Some(cluster), false).is_empty() {
        return;
    }
    let tz = &inv.cluster(cluster).time_zone;
    let usual = event.active.clone().unwrap_or_default();
    expected_back(&mut event.context, &usual, due, tz);
    event.context.verdict = MessageKind::Back;
    event.verdict = Verdict::Back;
    event.channels = channels_for(inv, MessageKind::Back, Some(cluster), true);
}

fn expected_back(context: &mut MessageContext, usual: &str, due: Timestamp, tz: &TimeZone) {
    context.usual = usual.to_owned();
    context.back_by = local_time(due, tz);
}

fn new_event(
    inv: &Inventory,
    ad_hoc: &[MaintenanceWindow],
    r: &FailoverReport,
    c: &Classification,
    flags: HistoryFlags,
    failback_of: Option<EventId>,
    silent: bool,
) -> NewEvent {
    let cluster = c.cluster.map(|id| inv.cluster(id));
    let previous_node = r
        .previous
        .as_deref()
        .and_then(|p| inv.find_node(p, cluster.and_then(|cl| cl.customer)));
    NewEvent {
        cluster: cluster.map(|cl| cl.name.clone()),
        customer: cluster
            .and_then(|cl| cl.customer)
            .map(|id| inv.customers[id.index()].name.clone()),
        active: c
            .node
            .filter(|_| r.action != Action::Release)
            .map(|n| inv.node(n).name.clone()),
        // A release names the releasing node as the one active before, so that the takeover
        // that follows can say who handed over.
        previous: if r.action == Action::Release {
            c.node.map(|n| inv.node(n).name.clone())
        } else {
            previous_node.map(|n| inv.node(n).name.clone())
        },
        verdict: c.verdict,
        at: r.occurred_at,
        flapping: flags.flapping,
        failback_of: failback_of.clone(),
        classification: serde_json::to_value(c.view(inv, ad_hoc, &r.hostname, r.occurred_at))
            .unwrap_or(Value::Null),
        context: MessageContext {
            failback_of_event: failback_of
                .as_ref()
                .map(|e| e.0.clone())
                .unwrap_or_default(),
            ..context(
                inv,
                ad_hoc,
                c,
                &r.hostname,
                r.previous.as_deref(),
                r.occurred_at,
                flags,
            )
        },
        channels: if silent {
            Vec::new()
        } else {
            channels_for(inv, c.verdict.into(), c.cluster, failback_of.is_some())
        },
        back_by: None,
        reminders: Vec::new(),
    }
}

/// The channels of every route that carries this verdict for this cluster; an unknown host
/// goes to the routes that name no customer and no cluster (the operators'). A failback
/// also goes to every channel that resolves alerts ([`ChannelKind::resolves`]) on the
/// cluster's routes, whatever verdicts they carry: the alert the failover it undoes raised
/// there is resolved even when the failback itself is routed elsewhere.
///
/// [`ChannelKind::resolves`]: crate::inventory::ChannelKind::resolves
pub fn channels_for(
    inv: &Inventory,
    verdict: MessageKind,
    cluster: Option<ClusterId>,
    failback: bool,
) -> Vec<String> {
    let customer = cluster.and_then(|c| inv.cluster(c).customer);
    let mut out: Vec<String> = Vec::new();
    for route in &inv.routes {
        let applies = match cluster {
            None => route.customer.is_none() && route.cluster.is_none(),
            Some(c) => {
                route.cluster.is_none_or(|rc| rc == c)
                    && route.customer.is_none_or(|rc| Some(rc) == customer)
            }
        };
        if !applies {
            continue;
        }
        let carried = route.verdicts.contains(&verdict);
        for &i in &route.channels {
            let channel = &inv.channels[i];
            if carried || (failback && channel.kind.resolves()) {
                let name = &channel.name;
                if !out.contains(name) {
                    out.push(name.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::classify;

    const INVENTORY: &str = r#"
[[clusters]]
name = "db"
nodes = ["db1", "db2"]

[[clusters]]
name = "web"
nodes = ["web1", "web2", "web3"]

[[channels]]
name = "log"
kind = "log"

[[routes]]
channels = ["log"]
"#;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("test instant")
    }

    fn report(host: &str, action: Action, when: &str) -> FailoverReport {
        FailoverReport {
            hostname: host.into(),
            occurred_at: at(when),
            previous: None,
            action,
            resource: None,
            source: None,
            id: None,
        }
    }

    fn past(id: &str, active: Option<&str>, previous: Option<&str>, when: &str) -> HistoryEvent {
        HistoryEvent {
            id: EventId(id.into()),
            active: active.map(str::to_owned),
            previous: previous.map(str::to_owned),
            at: at(when),
            flapping: false,
            back_by: None,
            told: active.is_some(),
        }
    }

    /// What `decide` does with `r` on a cluster with events before `history` too.
    fn decision(r: &FailoverReport, history: &[HistoryEvent], older: bool) -> Decision {
        let inv = crate::config::parse(INVENTORY).expect("valid");
        let c = classify(&inv, &[], &r.hostname, None, r.occurred_at);
        let history = History {
            events: history.to_vec(),
            older,
        };
        decide(&inv, &[], r, &c, &history)
    }

    /// The event `decide` would record on a cluster with older events, or the id it merges
    /// into.
    fn decided(r: &FailoverReport, history: &[HistoryEvent]) -> Result<NewEvent, String> {
        match decision(r, history, true) {
            Decision::New(e) => Ok(*e),
            Decision::Merge(id) => Err(id.0),
            Decision::Complete(id, _) => Err(format!("complete {id}")),
        }
    }

    #[test]
    fn in_a_two_node_cluster_the_previous_node_is_the_other_one() {
        // The original's curl line: no `previous`, no recent history.
        let e = decided(
            &report("db2", Action::Takeover, "2026-12-09T21:00:00Z"),
            &[],
        )
        .expect("new event");
        assert_eq!(e.previous.as_deref(), Some("db1"));
        // So the failover back is a failback.
        let back = decided(
            &report("db1", Action::Takeover, "2026-12-09T22:00:00Z"),
            &[past("1", Some("db2"), Some("db1"), "2026-12-09T21:00:00Z")],
        )
        .expect("new event");
        assert_eq!(back.failback_of, Some(EventId("1".into())));
        // Its message context names the event it undoes (a pager resolves that alert).
        assert_eq!(back.context.failback_of_event, "1");
        assert_eq!(e.context.failback_of_event, "");
        // With three nodes nobody can tell.
        let e = decided(
            &report("web2", Action::Takeover, "2026-12-09T21:00:00Z"),
            &[],
        )
        .expect("new event");
        assert_eq!(e.previous, None);
    }

    #[test]
    fn a_graceful_switchover_is_one_event_naming_the_releasing_node() {
        // hb_standby on web1: `release` from web1 first, recorded without a message.
        let release = decided(
            &report("web1", Action::Release, "2026-12-09T21:00:00Z"),
            &[],
        )
        .expect("new event");
        assert!(release.channels.is_empty(), "{release:?}");
        assert_eq!(
            (release.active.as_deref(), release.previous.as_deref()),
            (None, Some("web1"))
        );
        // Then `takeover` from web3 completes that event: one message, previous = web1.
        let history = [past("1", None, Some("web1"), "2026-12-09T21:00:00Z")];
        let Decision::Complete(id, takeover) = decision(
            &report("web3", Action::Takeover, "2026-12-09T21:00:20Z"),
            &history,
            true,
        ) else {
            panic!("the takeover completes the release");
        };
        assert_eq!(id, EventId("1".into()));
        assert_eq!(
            (takeover.active.as_deref(), takeover.previous.as_deref()),
            (Some("web3"), Some("web1"))
        );
        assert_eq!(takeover.channels, ["log"]);
        assert_eq!(takeover.verdict, Verdict::Unplanned);
        // Also on a cluster with nothing older: a release is an earlier event.
        assert!(matches!(
            decision(
                &report("web3", Action::Takeover, "2026-12-09T21:00:20Z"),
                &history,
                false
            ),
            Decision::Complete(..)
        ));
        // Both nodes at once: the release stamped a little after the takeover, recorded
        // first, is still its first half.
        assert!(matches!(
            decision(
                &report("web3", Action::Takeover, "2026-12-09T20:59:59.990Z"),
                &history,
                true
            ),
            Decision::Complete(..)
        ));
        // A release longer ago than the merge interval is not this failover.
        let e = decided(
            &report("web3", Action::Takeover, "2026-12-09T21:10:00Z"),
            &history,
        )
        .expect("new event");
        assert_eq!(e.previous, None);
        // The other order: the release merges into the takeover it belongs to.
        let history = [past("2", Some("web3"), None, "2026-12-09T21:00:00Z")];
        assert_eq!(
            decided(
                &report("web1", Action::Release, "2026-12-09T21:00:10Z"),
                &history
            )
            .err(),
            Some("2".to_owned())
        );
        // Also when the releasing node's own start is nearer: the takeover recorded just
        // before the release, a moment after the cluster started.
        let history = [
            past("1", Some("web1"), None, "2026-12-09T21:00:09.500Z"),
            past("2", Some("web3"), None, "2026-12-09T21:00:09.990Z"),
        ];
        assert_eq!(
            decided(
                &report("web1", Action::Release, "2026-12-09T21:00:09.980Z"),
                &history
            )
            .err(),
            Some("2".to_owned())
        );
        // Nor into a takeover by another node before this node's own last one: that was an
        // earlier failover (heartbeat: to web3, back to web1, then `hb_standby` on web1).
        let history = [
            past("1", Some("web3"), None, "2026-12-09T20:59:30Z"),
            past("2", Some("web1"), Some("web3"), "2026-12-09T21:00:00Z"),
        ];
        let e = decided(
            &report("web1", Action::Release, "2026-12-09T21:00:10Z"),
            &history,
        )
        .expect("new event");
        assert!(e.active.is_none() && e.channels.is_empty(), "{e:?}");
        // Never into the releasing node's own takeover.
        let history = [past("3", Some("web1"), None, "2026-12-09T21:00:00Z")];
        let e = decided(
            &report("web1", Action::Release, "2026-12-09T21:00:10Z"),
            &history,
        )
        .expect("new event");
        assert!(e.active.is_none() && e.channels.is_empty(), "{e:?}");
    }

    #[test]
    fn a_clusters_first_takeover_is_a_cluster_start_and_routed_as_one() {
        let first = |r: &FailoverReport, history: &[HistoryEvent]| match decision(r, history, false)
        {
            Decision::New(e) => *e,
            other => panic!("a new event, not {other:?}"),
        };
        let e = first(
            &report("db1", Action::Takeover, "2026-12-09T21:00:00Z"),
            &[],
        );
        assert_eq!(e.verdict, Verdict::ClusterStart);
        assert_eq!(e.classification["verdict"], "cluster-start");
        assert_eq!((e.active.as_deref(), e.previous), (Some("db1"), None));
        assert_eq!(e.context.previous, "", "a start follows no node");
        assert_eq!(e.channels, ["log"], "routes without `verdicts` carry it");
        // Only a report after every recorded one can be the first.
        let later = [past("1", Some("db2"), Some("db1"), "2026-12-09T22:00:00Z")];
        let e = first(
            &report("db1", Action::Takeover, "2026-12-09T21:00:00Z"),
            &later,
        );
        assert_eq!(e.verdict, Verdict::ClusterStart);
        let earlier = [past("1", Some("db2"), Some("db1"), "2026-12-09T20:00:00Z")];
        let e = first(
            &report("db1", Action::Takeover, "2026-12-09T21:00:00Z"),
            &earlier,
        );
        assert_eq!(e.verdict, Verdict::Unplanned);
        // A node lost, or a takeover naming the node before, says a failover.
        let e = first(&report("db1", Action::Lost, "2026-12-09T21:00:00Z"), &[]);
        assert_eq!(e.verdict, Verdict::Unplanned);
        let mut named = report("db1", Action::Takeover, "2026-12-09T21:00:00Z");
        named.previous = Some("db2".into());
        assert_eq!(first(&named, &[]).verdict, Verdict::Unplanned);
        // A cluster with older events is running already.
        let e = decided(
            &report("db1", Action::Takeover, "2026-12-09T21:00:00Z"),
            &[],
        )
        .expect("new event");
        assert_eq!(e.verdict, Verdict::Unplanned);
    }

    #[test]
    fn routing_follows_customer_cluster_and_verdict_and_names_each_channel_once() {
        let inv = crate::config::parse(
            r#"
[[customers]]
name = "acme"

[[customers]]
name = "globex"

[[clusters]]
name = "db"
customer = "acme"
nodes = ["db1", "db2"]

[[clusters]]
name = "web"
customer = "globex"
nodes = ["web1", "web2"]

[[channels]]
name = "ops"
kind = "log"

[[channels]]
name = "acme-pager"
kind = "pagerduty"
routing_key_env = "ACME_PD_KEY"

[[channels]]
name = "db-team"
kind = "log"

[[routes]]
channels = ["ops"]

[[routes]]
customer = "acme"
verdicts = ["unplanned"]
channels = ["acme-pager", "ops"]

[[routes]]
cluster = "db"
channels = ["db-team"]
"#,
        )
        .expect("valid");
        let db = inv.find_cluster("db");
        let web = inv.find_cluster("web");
        assert_eq!(
            channels_for(&inv, MessageKind::Unplanned, db, false),
            ["ops", "acme-pager", "db-team"]
        );
        assert_eq!(
            channels_for(&inv, MessageKind::Planned, db, false),
            ["ops", "db-team"]
        );
        // A planned failback also reaches the pager that the unplanned failover it undoes
        // paged, so that alert is resolved; not another customer's.
        assert_eq!(
            channels_for(&inv, MessageKind::Planned, db, true),
            ["ops", "acme-pager", "db-team"]
        );
        assert_eq!(channels_for(&inv, MessageKind::Planned, web, true), ["ops"]);
        assert_eq!(
            channels_for(&inv, MessageKind::Unplanned, web, false),
            ["ops"]
        );
        // An unknown host has no customer or cluster: only the operators' routes.
        assert_eq!(
            channels_for(&inv, MessageKind::UnknownHost, None, false),
            ["ops"]
        );
    }

    const REMINDED: &str = r#"
[defaults]
grace = { before = "5m", after = "30m" }

[[clusters]]
name = "db"
nodes = ["db1", "db2"]
time_zone = "Europe/Berlin"

[[clusters]]
name = "web"
nodes = ["web1", "web2", "web3"]
preferred = "web1"

[[windows]]
name = "nightly"
cluster = "db"
date = "2026-12-09"
start = "22:00"
duration = "2h"

[[windows]]
name = "nightly"
cluster = "web"
date = "2026-12-09"
start = "22:00"
duration = "2h"

[[channels]]
name = "ops"
kind = "log"

[[channels]]
name = "team"
kind = "log"

[[routes]]
channels = ["ops"]

[[routes]]
verdicts = ["not-back", "back"]
channels = ["team"]
"#;

    fn reminded(r: &FailoverReport, history: &[HistoryEvent]) -> NewEvent {
        let inv = crate::config::parse(REMINDED).expect("valid");
        let c = classify(&inv, &[], &r.hostname, None, r.occurred_at);
        let history = History {
            events: history.to_vec(),
            older: true,
        };
        match decide(&inv, &[], r, &c, &history) {
            Decision::New(e) => *e,
            d => panic!("a new event, not {d:?}"),
        }
    }

    #[test]
    fn a_planned_failover_away_from_the_usual_node_expects_it_back_after_the_window() {
        // db fails over to db2 inside its window (22:00-24:00 Berlin = 21:00-23:00 UTC):
        // expected back on db1, the node before, by the end plus the 30 min after-grace.
        let e = reminded(
            &report("db2", Action::Takeover, "2026-12-09T21:30:00Z"),
            &[],
        );
        assert_eq!(e.verdict, Verdict::Planned);
        assert_eq!(
            e.channels,
            ["ops"],
            "routes without verdicts carry no reminders"
        );
        assert_eq!(e.back_by, Some(at("2026-12-09T23:30:00Z")));
        assert_eq!(e.reminders, ["team"]);
        assert_eq!(e.context.usual, "db1");
        assert_eq!(e.context.back_by, "2026-12-10 00:30:00 CET");
        // A failover onto the preferred node expects nothing; one between two others
        // expects the cluster back on its preferred node.
        let home = reminded(
            &report("web1", Action::Takeover, "2026-12-09T22:30:00Z"),
            &[],
        );
        assert_eq!((home.back_by, home.reminders.len()), (None, 0));
        let mut away = report("web3", Action::Takeover, "2026-12-09T22:30:00Z");
        away.previous = Some("web2".into());
        let away = reminded(&away, &[]);
        assert_eq!(away.context.usual, "web1");
        assert_eq!(away.back_by, Some(at("2026-12-10T00:30:00Z")));
        // Unplanned: nothing expected.
        let unplanned = reminded(
            &report("db2", Action::Takeover, "2026-12-10T12:00:00Z"),
            &[],
        );
        assert_eq!(
            (unplanned.verdict, unplanned.back_by),
            (Verdict::Unplanned, None)
        );
    }

    #[test]
    fn a_window_at_the_end_of_the_supported_years_expects_nothing_and_panics_nowhere() {
        // The window ends a minute before the last supported instant: plus its 30 min
        // after-grace there is no `back_by`, so no reminder; the failover is still planned.
        // (jiff's last instant is 9999-12-30T22:00:00Z.)
        let toml = REMINDED.replace("2026-12-09", "9999-12-30").replace(
            "start = \"22:00\"\nduration = \"2h\"",
            "start = \"20:00\"\nduration = \"1h59m\"\ntime_zone = \"UTC\"",
        );
        let inv = crate::config::parse(&toml).expect("valid");
        let r = report("db2", Action::Takeover, "9999-12-30T21:30:00Z");
        let c = classify(&inv, &[], &r.hostname, None, r.occurred_at);
        assert_eq!(c.verdict, Verdict::Planned, "{c:?}");
        let Decision::New(e) = decide(&inv, &[], &r, &c, &History::default()) else {
            panic!("a new event");
        };
        assert_eq!((e.back_by, e.reminders.len()), (None, 0), "{e:?}");
        assert_eq!(e.channels, ["ops"]);
    }

    #[test]
    fn the_failback_after_the_reminder_was_due_is_back_and_before_it_an_ordinary_failback() {
        let planned = HistoryEvent {
            back_by: Some(at("2026-12-09T23:30:00Z")),
            ..past("7", Some("db2"), Some("db1"), "2026-12-09T21:30:00Z")
        };
        // In time: a planned failback (inside the after-grace), routed by its verdict.
        let in_time = reminded(
            &report("db1", Action::Takeover, "2026-12-09T23:10:00Z"),
            std::slice::from_ref(&planned),
        );
        assert_eq!(
            (in_time.verdict, in_time.channels.as_slice()),
            (Verdict::Planned, ["ops".to_owned()].as_slice())
        );
        assert_eq!(in_time.failback_of, Some(EventId("7".into())));
        assert_eq!(in_time.back_by, None, "a failback expects nothing");
        // Late: `back`, to the routes that carry it, naming when it was due.
        let late = reminded(
            &report("db1", Action::Takeover, "2026-12-10T01:00:00Z"),
            std::slice::from_ref(&planned),
        );
        assert_eq!(late.verdict, Verdict::Back);
        assert_eq!(late.channels, ["team"]);
        assert_eq!(late.context.verdict, MessageKind::Back);
        assert_eq!(late.context.back_by, "2026-12-10 00:30:00 CET");
        assert_eq!(late.context.usual, "db1");
        assert_eq!(late.back_by, None, "a failback expects nothing more");
        // Without a route for `back` the late failback keeps its verdict.
        let inv =
            crate::config::parse(&REMINDED.replace(r#"["not-back", "back"]"#, r#"["not-back"]"#))
                .expect("valid");
        let r = report("db1", Action::Takeover, "2026-12-10T01:00:00Z");
        let c = classify(&inv, &[], &r.hostname, None, r.occurred_at);
        let history = History {
            events: vec![planned],
            older: true,
        };
        let Decision::New(e) = decide(&inv, &[], &r, &c, &history) else {
            panic!("a new event");
        };
        assert_eq!(
            (e.verdict, e.channels.as_slice()),
            (Verdict::Unplanned, ["ops".to_owned()].as_slice())
        );
    }

    #[test]
    fn the_reminder_kinds_have_templates_of_their_own() {
        let src = format!(
            "{REMINDED}\n[templates.not-back]\nsubject = \"{{{{ cluster }}}} not on {{{{ usual }}}} by {{{{ back_by }}}}\"\n\n\
             [templates.back]\nsubject = \"{{{{ cluster }}}} home on {{{{ host }}}}\"\n"
        );
        let inv = crate::config::parse(&src).expect("valid");
        let late = reminded(
            &report("db2", Action::Takeover, "2026-12-09T21:30:00Z"),
            &[],
        );
        let subject = |verdict, ctx: &MessageContext| {
            inv.templates
                .render(ctx, verdict, inv.find_cluster("db"), None)
                .expect("renders")
                .subject
        };
        assert_eq!(
            subject(MessageKind::NotBack, &late.context),
            "db not on db1 by 2026-12-10 00:30:00 CET"
        );
        let defaults = crate::config::parse(REMINDED).expect("valid");
        let body = defaults
            .templates
            .render(&late.context, MessageKind::NotBack, None, None)
            .expect("renders")
            .body;
        assert!(
            body.contains("still running on db2, not on its usual node db1: it was expected back by 2026-12-10 00:30:00 CET (Europe/Berlin)"),
            "{body}"
        );
        let home = reminded(
            &report("db1", Action::Takeover, "2026-12-10T01:00:00Z"),
            &[HistoryEvent {
                back_by: Some(at("2026-12-09T23:30:00Z")),
                ..past("7", Some("db2"), Some("db1"), "2026-12-09T21:30:00Z")
            }],
        );
        assert_eq!(subject(MessageKind::Back, &home.context), "db home on db1");
    }

    #[test]
    fn a_node_reporting_its_own_fault_is_told_and_never_completed() {
        // keepalived FAULT on the standby db2: no node became active, db2 is the one lost.
        let e =
            decided(&report("db2", Action::Lost, "2026-12-09T21:00:00Z"), &[]).expect("new event");
        assert_eq!(
            (e.active.as_deref(), e.previous.as_deref()),
            (None, Some("db2"))
        );
        assert_eq!(
            (e.verdict, e.channels.as_slice()),
            (Verdict::Unplanned, ["log".to_owned()].as_slice())
        );
        assert_eq!(
            (
                e.context.fault,
                e.context.host.as_str(),
                e.context.previous.as_str()
            ),
            (true, "db2", "db1")
        );
        let inv = crate::config::parse(INVENTORY).expect("valid");
        let msg = inv
            .templates
            .render(&e.context, e.verdict.into(), None, None)
            .expect("renders");
        assert_eq!(msg.subject, "UNPLANNED: db2 of db reports a fault");
        assert!(
            msg.body
                .starts_with("Server db2 reports a fault: it cannot serve db"),
            "{}",
            msg.body
        );
        let fault = HistoryEvent {
            told: true,
            ..past("5", None, Some("db2"), "2026-12-09T21:00:00Z")
        };
        // The same fault again within the merge interval: merged.
        assert_eq!(
            decided(
                &report("db2", Action::Lost, "2026-12-09T21:00:30Z"),
                std::slice::from_ref(&fault)
            ),
            Err("5".to_owned())
        );
        // A takeover after it is a failover of its own, not the completion of a release.
        let after = decision(
            &report("db1", Action::Takeover, "2026-12-09T21:00:10Z"),
            std::slice::from_ref(&fault),
            true,
        );
        let Decision::New(t) = after else {
            panic!("a new event, not {after:?}")
        };
        assert_eq!(
            (t.active.as_deref(), t.previous.as_deref()),
            (Some("db1"), Some("db2"))
        );
        // A fault of the node that was just taken over from: part of that failover.
        let takeover = past("6", Some("db1"), Some("db2"), "2026-12-09T21:00:00Z");
        assert_eq!(
            decided(
                &report("db2", Action::Lost, "2026-12-09T21:00:05Z"),
                &[takeover]
            ),
            Err("6".to_owned())
        );
        // The original `lost` (the survivor names the node lost) is unchanged.
        let mut survivor = report("db1", Action::Lost, "2026-12-09T21:00:00Z");
        survivor.previous = Some("db2".into());
        let s = decided(&survivor, &[]).expect("new event");
        assert_eq!(
            (s.active.as_deref(), s.previous.as_deref()),
            (Some("db1"), Some("db2"))
        );
        assert!(!s.context.fault);
    }

    #[test]
    fn a_fencing_is_told_naming_the_fenced_node_once() {
        let mut r = report("db2", Action::Fenced, "2026-12-09T21:00:20Z");
        r.previous = Some("db1".into());
        // After the failover it belongs to: still its own message.
        let takeover = past("6", Some("db2"), Some("db1"), "2026-12-09T21:00:00Z");
        let e = decided(&r, std::slice::from_ref(&takeover)).expect("new event");
        assert_eq!(
            (e.active.as_deref(), e.previous.as_deref()),
            (None, Some("db1"))
        );
        assert!(e.context.fenced);
        let inv = crate::config::parse(INVENTORY).expect("valid");
        let msg = inv
            .templates
            .render(&e.context, e.verdict.into(), None, None)
            .expect("renders");
        assert_eq!(msg.subject, "UNPLANNED: db1 of db was fenced");
        assert!(
            msg.body.starts_with(
                "Server db1 was fenced: the cluster powered it off or rebooted it, as db2 saw."
            ),
            "{}",
            msg.body
        );
        // Seen again (another survivor, a repeated alert): the same event.
        let seen = HistoryEvent {
            told: true,
            ..past("7", None, Some("db1"), "2026-12-09T21:00:20Z")
        };
        assert_eq!(decided(&r, &[takeover, seen]), Err("7".to_owned()));
    }
}
