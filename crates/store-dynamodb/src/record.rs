//! Recording a report: the decision and one transaction. The first try reads nothing: it
//! decides on no history and no ad-hoc windows, and writes on the condition that this is true
//! (a cluster's first failover in a while, the common case). Every later try reads what the
//! decision needs in one consistent call and writes on the condition that the cluster's
//! `HEAD` is still the one read.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem, Update};
use failover_store::{
    Decide, Decision, DeliveryStatus, History, HistoryEvent, Lease, NewEvent, NewReport, Recorded,
    StoreError, StoredReport, event_number, numbered_event,
};
use jiff::Timestamp;

use crate::item::{
    Delivery, Item, Row, backend, bool_of, n, new_event_id, num, pad, report_value, s, str_of,
    windows_ending_after,
};
use crate::{ATTEMPTS, Dynamo, HISTORY_KEPT, HISTORY_SLACK, PER_EVENT};

impl Dynamo {
    /// [`Store::record`]: a decision and a transaction, first without a read, then with one
    /// read each try.
    pub(crate) async fn record_report(
        &self,
        report: NewReport,
        decide: Decide,
    ) -> Result<Recorded, StoreError> {
        let report_key = report
            .client_id
            .as_ref()
            .map(|id| format!("REPORT#{}#{id}", report.scope.key()));
        let stored_report = StoredReport::of(&report);
        let now = report.received_at;
        let cluster = report
            .history
            .as_ref()
            .map(|(c, since)| (format!("CLUSTER#{c}"), *since));
        let mut keys = Vec::new();
        keys.extend(report_key.as_deref().map(|k| (k, "-")));
        keys.extend(cluster.as_ref().map(|(pk, _)| (pk.as_str(), "HEAD")));
        if report.maintenance_after.is_some() {
            keys.push(("MAINT", "ALL"));
        }
        for attempt in 0..=ATTEMPTS {
            // The first try reads nothing and writes only if nothing was there to read.
            let unread = attempt == 0;
            let mut read = if unread {
                HashMap::new()
            } else {
                self.get_many(&keys).await?
            };
            if let Some(key) = &report_key
                && let Some(item) = read.get(key)
            {
                return self.known(key, item).await;
            }
            let head = cluster.as_ref().and_then(|(pk, _)| read.remove(pk));
            let guard = match head.as_ref() {
                _ if unread => Guard::Unread,
                Some(h) => Guard::Version(num(h, "version").unwrap_or_default()),
                None => Guard::Absent,
            };
            let (mut kept, history) = history_of(head.as_ref(), cluster.as_ref(), unread)?;
            let maintenance = report
                .maintenance_after
                .map(|after| windows_ending_after(read.get("MAINT"), after))
                .unwrap_or_default();

            let mut items = Vec::new();
            // A new or completed event joins the cluster's history.
            let mut remember = true;
            let (row, merged) = match decide(&history, &maintenance) {
                // Nothing to merge into was read.
                Decision::Merge(_) | Decision::Complete(..) if unread => continue,
                Decision::Merge(id) => {
                    let number = event_number(&id)?;
                    items.push(self.merge_item(number, &stored_report)?);
                    let mut row = self
                        .event(number)
                        .await?
                        .ok_or_else(|| StoreError::NotFound(id.clone()))?;
                    row.reports += 1;
                    row.received.push(stored_report.clone());
                    remember = false;
                    (row, true)
                }
                Decision::New(event) => {
                    let id = new_event_id(now);
                    let row = Row {
                        id,
                        deliveries: deliveries(id, &event, now, report.claim.as_ref()),
                        event: *event,
                        received_at: now,
                        reports: 1,
                        received: vec![stored_report.clone()],
                    };
                    items.push(self.event_item(&row, now, "attribute_not_exists(pk)")?);
                    (row, false)
                }
                Decision::Complete(id, event) => {
                    let number = event_number(&id)?;
                    let old = self
                        .event(number)
                        .await?
                        .filter(|r| r.deliveries.is_empty())
                        .ok_or_else(|| StoreError::NotFound(id.clone()))?;
                    // Unclaimed: the caller claims a merged report's deliveries itself.
                    let mut received = old.received;
                    received.push(stored_report.clone());
                    let row = Row {
                        id: number,
                        deliveries: deliveries(number, &event, now, None),
                        event: *event,
                        received_at: old.received_at,
                        reports: old.reports + 1,
                        received,
                    };
                    kept.retain(|h| h.id != id);
                    items.push(self.event_item(
                        &row,
                        now,
                        "attribute_exists(pk) AND attribute_not_exists(ch_0)",
                    )?);
                    (row, true)
                }
            };
            if cluster.is_some() && remember {
                let e = &row.event;
                kept.push(HistoryEvent {
                    id: numbered_event(row.id),
                    active: e.active.clone(),
                    previous: e.previous.clone(),
                    at: e.at,
                    flapping: e.flapping,
                    back_by: e.back_by,
                    told: !row.deliveries.is_empty(),
                });
            }
            if let Some((pk, since)) = &cluster {
                // Every write moves the version on, so a decision made on older history
                // loses; the history itself keeps what later reports may still look at.
                let floor = *since - HISTORY_SLACK;
                let trimmed = trim(&mut kept, floor);
                // Whether the cluster has events the history no longer holds.
                let older = unread || trimmed || head.as_ref().is_some_and(|h| bool_of(h, "older"));
                items.push(self.head(pk, guard, floor, &kept, older)?);
            }
            if unread && let Some(after) = report.maintenance_after {
                items.push(self.no_windows_after(after)?);
            }
            if let Some(key) = &report_key {
                let r = Item::from([
                    ("pk".to_owned(), s(key)),
                    ("sk".to_owned(), s("-")),
                    ("event".to_owned(), s(&row.id.to_string())),
                    ("merged".to_owned(), AttributeValue::Bool(merged)),
                    ("expires_at".to_owned(), self.expires(now)),
                ]);
                items.push(self.put(r, Some("attribute_not_exists(pk)"))?);
            }
            if self.transact(items).await? {
                return Ok(Recorded {
                    event: row.stored(),
                    merged,
                    duplicate: false,
                });
            }
            // Lost a race: another report of this client id or this cluster won, or the new
            // id was taken. Read again and decide again.
        }
        Err(StoreError::Backend(
            "too many concurrent writes to one cluster; retry".into(),
        ))
    }

    /// The transaction item that merges `report` into event `number`.
    fn merge_item(
        &self,
        number: i64,
        report: &StoredReport,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s("EVENT"))
            .key("sk", s(&pad(number)))
            .update_expression(
                "ADD reports :one SET rl = list_append(if_not_exists(rl, :none), :r)",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
            .expression_attribute_values(":r", AttributeValue::L(vec![report_value(report)]))
            .build()
            .map_err(backend)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The answer recorded for a client id seen before (its item is `item`).
    async fn known(&self, key: &str, item: &Item) -> Result<Recorded, StoreError> {
        let id = str_of(item, "event")
            .and_then(|e| e.parse().ok())
            .ok_or(StoreError::Corrupt {
                what: "report",
                value: key.to_owned(),
            })?;
        let row = self
            .event(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(numbered_event(id)))?;
        Ok(Recorded {
            event: row.stored(),
            merged: bool_of(item, "merged"),
            duplicate: true,
        })
    }

    /// The put of the cluster's `HEAD` with `history`, on the condition `guard`. Its `version`
    /// is a random token rather than a counter, since a write that read nothing cannot count
    /// on from the last one; `last_at` is when its newest event happened (epoch ms), so that
    /// write can require that the history holds nothing at or after `floor`, as it assumed
    /// (what the read would have kept is then only the new event); `older` says the cluster
    /// has events the history no longer holds.
    fn head(
        &self,
        pk: &str,
        guard: Guard,
        floor: Timestamp,
        history: &[HistoryEvent],
        older: bool,
    ) -> Result<TransactWriteItem, StoreError> {
        let last_at = history.iter().map(|h| h.at.as_millisecond()).max();
        let item = Item::from([
            ("pk".to_owned(), s(pk)),
            ("sk".to_owned(), s("HEAD")),
            ("version".to_owned(), n(fastrand::i64(1..))),
            (
                "history".to_owned(),
                s(&serde_json::to_string(history).unwrap_or_else(|_| "[]".into())),
            ),
            ("last_at".to_owned(), n(last_at.unwrap_or(0))),
            // No `expires_at`: the `HEAD` outlives its events, so a cluster quiet for longer
            // than the retention is still known to have run before (no "cluster start").
            ("older".to_owned(), AttributeValue::Bool(older)),
        ]);
        let (condition, value) = match guard {
            Guard::Unread => ("last_at < :v", Some(floor.as_millisecond())),
            Guard::Version(v) => ("version = :v", Some(v)),
            Guard::Absent => ("attribute_not_exists(pk)", None),
        };
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_values(
                value.map(|v| HashMap::from([(":v".to_owned(), n(v))])),
            )
            .build()
            .map_err(backend)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The check that no ad-hoc window ends after `after`: what a decision made without
    /// reading them assumed (`ends_by` is just past the latest end of all windows).
    fn no_windows_after(&self, after: Timestamp) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .key("pk", s("MAINT"))
            .key("sk", s("ALL"))
            .condition_expression("attribute_not_exists(pk) OR ends_by <= :after")
            .expression_attribute_values(":after", n(after.as_millisecond()))
            .build()
            .map_err(backend)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// The put of an event with its deliveries, in the pending index while it has any, on
    /// `condition`.
    fn event_item(
        &self,
        row: &Row,
        now: Timestamp,
        condition: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut item = row.to_item();
        for (i, d) in row.deliveries.iter().enumerate() {
            item.insert(format!("n_{i}"), n(d.next_at.as_millisecond()));
            if let Some(c) = d.claimed_until {
                item.insert(format!("c_{i}"), n(c.as_millisecond()));
            }
            if let Some(o) = &d.claimed_by {
                item.insert(format!("o_{i}"), s(o));
            }
        }
        if !row.deliveries.is_empty() {
            item.insert("undelivered".into(), s("1"));
        }
        item.insert("expires_at".into(), self.expires(now));
        self.put(item, Some(condition))
    }
}

/// One pending delivery per channel of event `id`, due at `now`, held by `claim` if given;
/// then one per reminder channel, due at its `back_by`, held by nobody.
fn deliveries(id: i64, event: &NewEvent, now: Timestamp, claim: Option<&Lease>) -> Vec<Delivery> {
    let due = event.back_by.unwrap_or(now).max(now);
    let own = event.channels.iter().map(|c| (c, false, now, claim));
    let reminders = event.reminders.iter().map(|c| (c, true, due, None));
    (0..)
        .zip(own.chain(reminders))
        .map(|(i, (channel, reminder, next_at, claim))| Delivery {
            status: DeliveryStatus {
                reminder,
                ..DeliveryStatus::new(id * PER_EVENT + i, channel.clone())
            },
            next_at,
            claimed_until: claim.map(|l| l.until),
            claimed_by: claim.map(|l| l.owner.clone()),
            resent: None,
        })
        .collect()
}

/// What the write of a cluster's `HEAD` requires of the one it replaces.
#[derive(Clone, Copy)]
enum Guard {
    /// Nothing was read: a `HEAD` with no event at or after the floor.
    Unread,
    /// The `HEAD` read had this version.
    Version(i64),
    /// There was no `HEAD`.
    Absent,
}

/// The events a cluster's `HEAD` item keeps, and the history a decision sees: those since
/// the cluster's floor, and whether it has older ones. The first try (`unread`) assumes a
/// `HEAD` with no event since the floor, and older ones.
fn history_of(
    head: Option<&Item>,
    cluster: Option<&(String, Timestamp)>,
    unread: bool,
) -> Result<(Vec<HistoryEvent>, History), StoreError> {
    let kept: Vec<HistoryEvent> = head
        .and_then(|h| str_of(h, "history"))
        .map(serde_json::from_str)
        .transpose()
        .map_err(|_| StoreError::Corrupt {
            what: "history",
            value: cluster.map(|(pk, _)| pk.clone()).unwrap_or_default(),
        })?
        .unwrap_or_default();
    let history = match cluster {
        _ if unread => History {
            events: Vec::new(),
            older: true,
        },
        Some((_, since)) => History {
            events: kept.iter().filter(|h| h.at >= *since).cloned().collect(),
            older: head.is_some_and(|h| {
                bool_of(h, "older")
                    || num(h, "last_at").is_none_or(|t| t < since.as_millisecond())
                    || kept.iter().any(|e| e.at < *since)
            }),
        },
        None => History::default(),
    };
    Ok((kept, history))
}

/// Keeps the events at or after `floor`, by time, at most [`HISTORY_KEPT`] of the newest;
/// whether any was dropped.
fn trim(kept: &mut Vec<HistoryEvent>, floor: Timestamp) -> bool {
    let before = kept.len();
    kept.retain(|h| h.at >= floor);
    kept.sort_by_key(|h| h.at);
    let drop = kept.len().saturating_sub(HISTORY_KEPT);
    kept.drain(..drop);
    kept.len() < before
}
