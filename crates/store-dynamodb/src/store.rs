//! [`Store`] on the table: events, the outbox through the pending index, ad-hoc windows.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use failover_store::{
    Decide, DeliveryState, DeliveryStatus, DueDelivery, EventDetail, EventId, EventQuery, Lease,
    Maintenance, NewMaintenance, NewReport, Outcome, Pruned, Recorded, Session, Store, StoreError,
    StoredEvent, event_number,
};
use jiff::Timestamp;

use crate::item::{
    Delivery, Expr, Item, RESOLVE, Row, backend, n, num, pad, s, stored_window, str_of,
    windows_ending_after,
};
use crate::{
    ATTEMPTS, CLUSTER_INDEX, CLUSTER_KEY, CUSTOMER_INDEX, CUSTOMER_KEY, Dynamo, PENDING_INDEX,
    PER_EVENT,
};

/// How long before an event's instant its report may have been received: the service takes
/// reports at most 5 minutes ahead (`failover_core::report::MAX_FUTURE`); a day of slack.
const RECEIVED_BEFORE_AT: jiff::SignedDuration = jiff::SignedDuration::from_hours(24);

impl Dynamo {
    /// Events in the pending index that still have pending deliveries; the others leave the
    /// index.
    async fn pending_events(&self) -> Result<Vec<Row>, StoreError> {
        let mut ids = Vec::new();
        self.query(
            |q| {
                q.index_name(PENDING_INDEX)
                    .key_condition_expression("undelivered = :u")
                    .expression_attribute_values(":u", s("1"))
            },
            false,
            |item| {
                ids.extend(str_of(&item, "sk").and_then(|s| s.parse::<i64>().ok()));
                true
            },
        )
        .await?;
        // The events themselves in batches, not one read each.
        let sks: Vec<String> = ids.iter().map(|&id| pad(id)).collect();
        let keys: Vec<(&str, &str)> = sks.iter().map(|sk| ("EVENT", sk.as_str())).collect();
        let mut rows = Vec::new();
        for item in self.get_items(&keys).await? {
            let row = Row::from_item(&item)?;
            if row.deliveries.iter().any(Delivery::pending) {
                rows.push(row);
            } else {
                let mut u = Expr::default();
                u.remove.push("undelivered".to_owned());
                self.update_event(row.id, u).await?;
            }
        }
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    /// Claims with `lease`, in each event, the pending deliveries that nobody holds and
    /// `pick` selects.
    async fn claim(
        &self,
        rows: Vec<Row>,
        lease: &Lease,
        now: Timestamp,
        limit: usize,
        pick: impl Fn(&Delivery) -> bool,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let mut due = Vec::new();
        for mut row in rows {
            for attempt in 0..ATTEMPTS {
                if attempt > 0 {
                    match self.event(row.id).await? {
                        Some(fresh) => row = fresh,
                        None => break,
                    }
                }
                let picked: Vec<usize> = (0..row.deliveries.len())
                    .filter(|&i| {
                        let d = &row.deliveries[i];
                        d.pending() && d.claimed_until.is_none_or(|c| c <= now) && pick(d)
                    })
                    .take(limit.saturating_sub(due.len()))
                    .collect();
                if picked.is_empty() {
                    break;
                }
                let mut u = Expr::default();
                u.value(":now", n(now.as_millisecond()));
                u.value(":until", n(lease.until.as_millisecond()));
                u.value(":owner", s(&lease.owner));
                u.require("attribute_exists(pk)".to_owned());
                for &i in &picked {
                    u.set(format!("c_{i} = :until, o_{i} = :owner"));
                    u.require(format!(
                        "attribute_not_exists(st_{i}) AND (attribute_not_exists(c_{i}) OR c_{i} <= :now)"
                    ));
                }
                if self.update_event(row.id, u).await? {
                    let stored = row.stored();
                    due.extend(picked.into_iter().map(|i| {
                        let mut d = stored.due(&stored.deliveries[i]);
                        d.created_at = row.deliveries[i].resent.unwrap_or(d.created_at);
                        d
                    }));
                    break;
                }
            }
        }
        Ok(due)
    }

    /// Changes the ad-hoc windows: reads the windows item, lets `change` edit its windows
    /// (the map from id to JSON; the new window's id is the one given), and writes the item
    /// back unless `change` returned `None`, on the condition that nobody wrote it meanwhile
    /// (`n` moves on with every write, so it also yields unique ids); again after a lost race.
    /// `ends_by` is kept just past the latest end, for reports that decide without reading
    /// the windows; a window that does not parse counts as never ending.
    async fn change_windows<T>(
        &self,
        mut change: impl FnMut(i64, &mut Item) -> Option<T>,
    ) -> Result<Option<T>, StoreError> {
        for _ in 0..ATTEMPTS {
            let item = self.get("MAINT", "ALL").await?.unwrap_or_default();
            let version = num(&item, "n");
            let mut windows = match item.get("w") {
                Some(AttributeValue::M(w)) => w.clone(),
                _ => Item::new(),
            };
            let Some(out) = change(version.unwrap_or(0) + 1, &mut windows) else {
                return Ok(None);
            };
            let ends_by = windows
                .values()
                .map(|v| stored_window(v).map_or(i64::MAX, |w| w.end.as_millisecond() + 1))
                .max()
                .unwrap_or(0);
            let written = Item::from([
                ("pk".to_owned(), s("MAINT")),
                ("sk".to_owned(), s("ALL")),
                ("n".to_owned(), n(version.unwrap_or(0) + 1)),
                ("w".to_owned(), AttributeValue::M(windows)),
                ("ends_by".to_owned(), n(ends_by)),
            ]);
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(written))
                .condition_expression(match version {
                    Some(_) => "n = :n",
                    None => "attribute_not_exists(pk)",
                })
                .set_expression_attribute_values(
                    version.map(|v| HashMap::from([(":n".to_owned(), n(v))])),
                )
                .send()
                .await;
            match result {
                Ok(_) => return Ok(Some(out)),
                Err(e) => match e.as_service_error() {
                    Some(PutItemError::ConditionalCheckFailedException(_)) => {}
                    _ => return Err(backend(e)),
                },
            }
        }
        Err(StoreError::Backend(
            "too many concurrent changes of ad-hoc windows; retry".into(),
        ))
    }
}

impl Store for Dynamo {
    async fn record(&self, report: NewReport, decide: Decide) -> Result<Recorded, StoreError> {
        self.record_report(report, decide).await
    }

    async fn event(&self, id: &EventId) -> Result<Option<EventDetail>, StoreError> {
        let Ok(number) = event_number(id) else {
            return Ok(None);
        };
        Ok(self.event(number).await?.map(|row| EventDetail {
            event: row.stored(),
            received: row.received,
        }))
    }

    async fn events(&self, query: EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        let to = query.before.map_or_else(|| "9".repeat(19), |b| pad(b - 1));
        // Ids grow with the time of receipt, and an event never happened long after it was
        // received (a report may be at most minutes ahead), so `since` bounds the walk too.
        let from = query
            .since
            .and_then(|t| t.checked_sub(RECEIVED_BEFORE_AT).ok())
            .map_or(0, |t| t.as_millisecond().max(0).saturating_mul(100));
        // One cluster, or one customer's events, through its index (read eventually
        // consistent, as every index); everything else walks the event partition.
        let (index, key, value) = match (&query.cluster, query.customers.as_deref()) {
            (Some(c), _) => (Some(CLUSTER_INDEX), CLUSTER_KEY, c.clone()),
            (None, Some([c])) => (Some(CUSTOMER_INDEX), CUSTOMER_KEY, c.clone()),
            _ => (None, "pk", "EVENT".to_owned()),
        };
        let mut found = Vec::new();
        let mut failed = None;
        let limit = query.limit as usize;
        let condition = format!("{key} = :k AND sk BETWEEN :from AND :to");
        let keyed = |q: QueryFluentBuilder| {
            q.set_index_name(index.map(str::to_owned))
                .key_condition_expression(&condition)
                .expression_attribute_values(":k", s(&value))
                .expression_attribute_values(":from", s(&pad(from)))
                .expression_attribute_values(":to", s(&to))
        };
        self.query(keyed, true, |item| {
            match Row::from_item(&item) {
                Ok(row) => {
                    let e = &row.event;
                    let keep = query
                        .cluster
                        .as_ref()
                        .is_none_or(|c| e.cluster.as_ref() == Some(c))
                        && query.verdict.is_none_or(|v| e.verdict == v)
                        && query.since.is_none_or(|t| e.at >= t)
                        && query
                            .customers
                            .as_ref()
                            .is_none_or(|cs| e.customer.as_ref().is_some_and(|c| cs.contains(c)));
                    if keep {
                        found.push(row.stored());
                    }
                }
                Err(e) => failed = Some(e),
            }
            failed.is_none() && found.len() < limit
        })
        .await?;
        failed.map_or(Ok(found), Err)
    }

    async fn claim_due(
        &self,
        lease: &Lease,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let rows = self.pending_events().await?;
        self.claim(rows, lease, now, limit as usize, |d| d.next_at <= now)
            .await
    }

    async fn claim_event(
        &self,
        event: &EventId,
        lease: &Lease,
        now: Timestamp,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let Ok(number) = event_number(event) else {
            return Ok(Vec::new());
        };
        let rows = self.event(number).await?.into_iter().collect();
        self.claim(rows, lease, now, usize::MAX, |d| !d.status.reminder)
            .await
    }

    async fn finish(
        &self,
        owner: &str,
        outcomes: Vec<(i64, Outcome)>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut by_event: HashMap<i64, Vec<(i64, Outcome)>> = HashMap::new();
        for (id, outcome) in outcomes {
            by_event
                .entry(id / PER_EVENT)
                .or_default()
                .push((id % PER_EVENT, outcome));
        }
        for (event, outcomes) in by_event {
            // All of an event's outcomes in one update; when one of them is no longer this
            // owner's, each on its own, so the others are still recorded.
            if self
                .update_event(event, outcome_update(&outcomes, owner, now))
                .await?
            {
                continue;
            }
            for one in &outcomes {
                let u = outcome_update(std::slice::from_ref(one), owner, now);
                if !self.update_event(event, u).await? {
                    tracing::warn!(
                        delivery = event * PER_EVENT + one.0,
                        "outcome not recorded: the delivery is no longer this sender's"
                    );
                }
            }
        }
        Ok(())
    }

    async fn pending_of(&self, channel: &str) -> Result<Vec<i64>, StoreError> {
        Ok(self
            .pending_events()
            .await?
            .iter()
            .flat_map(|r| &r.deliveries)
            .filter(|d| d.pending() && d.status.channel == channel)
            .map(|d| d.status.id)
            .collect())
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        Ok(self
            .pending_events()
            .await?
            .iter()
            .flat_map(|r| &r.deliveries)
            .filter(|d| d.pending())
            .map(|d| d.next_at.max(d.claimed_until.unwrap_or(d.next_at)))
            .min())
    }

    async fn delivery_counts(&self) -> Result<Vec<(DeliveryState, u64)>, StoreError> {
        let pending = self
            .pending_events()
            .await?
            .iter()
            .flat_map(|r| &r.deliveries)
            .filter(|d| d.pending())
            .count();
        Ok(vec![(DeliveryState::Pending, pending as u64)])
    }
    async fn resend(
        &self,
        event: &EventId,
        delivery: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let Ok(id) = event_number(event) else {
            return Ok(false);
        };
        if delivery / PER_EVENT != id {
            return Ok(false);
        }
        let i = delivery % PER_EVENT;
        let mut u = Expr::default();
        u.require(format!("attribute_exists(pk) AND st_{i} = :failed"));
        u.set(format!("n_{i} = :now, r_{i} = :now, undelivered = :u"));
        for a in ["st", "f", "c", "o"] {
            u.remove.push(format!("{a}_{i}"));
        }
        u.value(":failed", s(DeliveryState::Failed.as_str()));
        u.value(":now", n(now.as_millisecond()));
        u.value(":u", s("1"));
        self.update_event(id, u).await
    }

    async fn add_resolves(
        &self,
        event: &EventId,
        channels: &[String],
        now: Timestamp,
    ) -> Result<Vec<DeliveryStatus>, StoreError> {
        let Ok(id) = event_number(event) else {
            return Ok(Vec::new());
        };
        // Appended after the event's deliveries, on the condition that nobody appended
        // meanwhile (the next position is still free); again after a lost race.
        for _ in 0..ATTEMPTS {
            let Some(row) = self.event(id).await? else {
                return Ok(Vec::new());
            };
            let mut added = Vec::new();
            let mut u = Expr::default();
            let first = row.deliveries.len();
            u.require(format!(
                "attribute_exists(pk) AND attribute_not_exists(ch_{first})"
            ));
            u.value(":now", n(now.as_millisecond()));
            u.value(":kind", s(RESOLVE));
            u.value(":zero", n(0));
            u.value(":u", s("1"));
            for channel in channels {
                let had = |d: &DeliveryStatus| d.resolve && d.channel == *channel;
                if row.deliveries.iter().any(|d| had(&d.status)) || added.iter().any(had) {
                    continue;
                }
                let i = first + added.len();
                let position = i64::try_from(i).unwrap_or(i64::MAX);
                if position >= PER_EVENT {
                    break;
                }
                u.value(&format!(":ch{i}"), s(channel));
                u.set(format!(
                    "ch_{i} = :ch{i}, a_{i} = :zero, k_{i} = :kind, n_{i} = :now, r_{i} = :now"
                ));
                added.push(DeliveryStatus::resolving(
                    id * PER_EVENT + position,
                    channel.clone(),
                ));
            }
            if added.is_empty() {
                return Ok(added);
            }
            u.set("undelivered = :u".to_owned());
            if self.update_event(id, u).await? {
                return Ok(added);
            }
        }
        Err(StoreError::Backend(
            "the event changed on every attempt to add its resolves".into(),
        ))
    }

    async fn add_session(&self, session: Session, _now: Timestamp) -> Result<(), StoreError> {
        // Ended sessions go by TTL.
        let item = Item::from([
            ("pk".to_owned(), s("SESSION")),
            ("sk".to_owned(), s(&session.token_hash)),
            ("key".to_owned(), s(&session.key)),
            ("key_check".to_owned(), s(&session.key_check)),
            ("expires_ms".to_owned(), n(session.expires.as_millisecond())),
            (
                "expires_at".to_owned(),
                n(session.expires.as_second().saturating_add(1)),
            ),
        ]);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let Some(item) = self.get("SESSION", token_hash).await? else {
            return Ok(None);
        };
        let session = (|| {
            Some(Session {
                token_hash: token_hash.to_owned(),
                key: str_of(&item, "key")?.to_owned(),
                key_check: str_of(&item, "key_check")?.to_owned(),
                expires: Timestamp::from_millisecond(num(&item, "expires_ms")?).ok()?,
            })
        })()
        .ok_or_else(|| StoreError::Corrupt {
            what: "session",
            value: token_hash.to_owned(),
        })?;
        // TTL removes items up to days late.
        Ok((session.expires > now).then_some(session))
    }

    async fn end_session(&self, token_hash: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s("SESSION"))
            .key("sk", s(token_hash))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Rows carry a TTL of `keep` after they were written: DynamoDB deletes them itself.
    async fn prune(
        &self,
        _before: Timestamp,
        _now: Timestamp,
        _batch: u32,
    ) -> Result<Pruned, StoreError> {
        Ok(Pruned::default())
    }

    async fn end_sessions_except(&self, keep: &[(String, String)]) -> Result<u64, StoreError> {
        let mut gone = Vec::new();
        self.query(
            |q| {
                q.key_condition_expression("pk = :pk")
                    .expression_attribute_values(":pk", s("SESSION"))
            },
            false,
            |item| {
                let held = (str_of(&item, "key"), str_of(&item, "key_check"));
                let kept = keep
                    .iter()
                    .any(|(k, c)| held == (Some(k.as_str()), Some(c.as_str())));
                if !kept && let Some(sk) = str_of(&item, "sk") {
                    gone.push(sk.to_owned());
                }
                true
            },
        )
        .await?;
        for token_hash in &gone {
            self.end_session(token_hash).await?;
        }
        Ok(gone.len() as u64)
    }

    async fn add_maintenance(&self, window: NewMaintenance) -> Result<Maintenance, StoreError> {
        // Windows long over are dropped as a new one comes in, as TTL drops other rows.
        let floor = window.start.min(window.end) - self.keep;
        let json = serde_json::to_string(&window).unwrap_or_default();
        let id = self
            .change_windows(|id, windows| {
                windows.retain(|_, v| stored_window(v).is_none_or(|w| w.end >= floor));
                windows.insert(id.to_string(), s(&json));
                Some(id)
            })
            .await?
            .ok_or_else(|| StoreError::Backend("the ad-hoc window was not written".into()))?;
        Ok(Maintenance { id, window })
    }

    async fn maintenance(&self, after: Timestamp) -> Result<Vec<Maintenance>, StoreError> {
        let item = self.get("MAINT", "ALL").await?;
        Ok(windows_ending_after(item.as_ref(), after))
    }

    async fn end_maintenance(&self, id: i64, now: Timestamp) -> Result<bool, StoreError> {
        let key = id.to_string();
        let ended = self
            .change_windows(|_, windows| {
                let mut window = windows.get(&key).and_then(stored_window)?;
                if window.end <= now {
                    return None; // over already
                }
                if window.start >= now {
                    windows.remove(&key);
                } else {
                    window.end = now;
                    windows.insert(key.clone(), s(&serde_json::to_string(&window).ok()?));
                }
                Some(())
            })
            .await?;
        Ok(ended.is_some())
    }
}

/// The update recording `outcomes` (delivery positions in one event) by `owner`: each must
/// still be pending and held by `owner` or by nobody. A status ends the delivery, and with
/// it the claim.
fn outcome_update(outcomes: &[(i64, Outcome)], owner: &str, now: Timestamp) -> Expr {
    let mut u = Expr::default();
    u.require("attribute_exists(pk)".to_owned());
    for (i, outcome) in outcomes {
        u.add.push(format!("a_{i} :one"));
        u.remove.push(format!("c_{i}"));
        u.remove.push(format!("o_{i}"));
        u.require(format!(
            "attribute_not_exists(st_{i}) AND (attribute_not_exists(o_{i}) OR o_{i} = :owner)"
        ));
        match outcome {
            Outcome::Delivered => u.set(format!("st_{i} = :delivered, f_{i} = :now")),
            Outcome::Retry { at, error } => {
                u.value(&format!(":n{i}"), n(at.as_millisecond()));
                u.value(&format!(":e{i}"), s(error));
                u.set(format!("n_{i} = :n{i}, e_{i} = :e{i}"));
            }
            Outcome::Failed { error } => {
                u.value(&format!(":e{i}"), s(error));
                u.set(format!("st_{i} = :failed, e_{i} = :e{i}, f_{i} = :now"));
            }
            Outcome::Cancelled { reason } => {
                u.value(&format!(":e{i}"), s(reason));
                u.set(format!("st_{i} = :cancelled, e_{i} = :e{i}, f_{i} = :now"));
            }
        }
    }
    u.value(":one", n(1));
    u.value(":owner", s(owner));
    u.value(":now", n(now.as_millisecond()));
    u.value(":delivered", s(DeliveryState::Delivered.as_str()));
    u.value(":failed", s(DeliveryState::Failed.as_str()));
    u.value(":cancelled", s(DeliveryState::Cancelled.as_str()));
    // DynamoDB refuses values the expression does not use.
    let used = format!(
        "{} {} {}",
        u.set.join(" "),
        u.add.join(" "),
        u.condition.as_deref().unwrap_or_default()
    );
    let used: std::collections::HashSet<&str> = used
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .collect();
    u.values.retain(|k, _| used.contains(k.as_str()));
    u
}
