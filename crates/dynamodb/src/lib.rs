//! The DynamoDB backend of [`Store`], for the AWS Lambda deployment: no server to run, and
//! any number of concurrent function instances share one table.
//!
//! # Table
//! One table, on-demand, with a string partition key `pk`, a string sort key `sk`, and TTL on
//! `expires_at` (epoch seconds). Items:
//!
//! | pk | sk | what |
//! |---|---|---|
//! | `SEQ` | `SEQ` | the id counter (atomic `ADD`) |
//! | `EVENT` | id, zero-padded | an event with its deliveries and a `version` |
//! | `PENDING` | id, zero-padded | present while the event has pending deliveries |
//! | `CLUSTER#name` | `HEAD` | the cluster's `version`: a write that saw older history fails |
//! | `CLUSTER#name` | `H#millis#id` | the cluster's history for merging, flapping and failback |
//! | `REPORT#scope#client id` | `-` | a client id already recorded, for idempotent retries |
//! | `MAINT` | id, zero-padded | an ad-hoc maintenance window |
//!
//! Every write that depends on what was read is a conditional transaction on a `version`;
//! a lost race reads again and decides again, so two reports of one failover that arrive at
//! once still become one event. Failovers are rare, so the `EVENT` and `PENDING` partitions
//! stay far below DynamoDB's per-partition limits.
//!
//! A delivery's id is `event id × 1000 + its position`, so an outcome finds its event.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::Region;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use failover_store::{
    Decide, Decision, DeliveryStatus, DueDelivery, EventId, EventQuery, HistoryEvent, Maintenance,
    NewEvent, NewMaintenance, NewReport, Outcome, Recorded, Store, StoreError, StoredEvent,
};
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

type Item = HashMap<String, AttributeValue>;

/// Deliveries per event at most (delivery ids are `event × 1000 + position`).
const PER_EVENT: i64 = 1000;
/// A claim not finished within this is released (the function was killed mid-delivery).
const LEASE: SignedDuration = SignedDuration::from_mins(5);
/// Lost races retried before giving up.
const ATTEMPTS: usize = 8;

/// A DynamoDB table holding everything.
#[derive(Debug, Clone)]
pub struct Dynamo {
    client: Client,
    table: String,
    keep: SignedDuration,
}

impl Dynamo {
    /// A store on `table`. Region and credentials come from the usual AWS chain (the Lambda
    /// environment); `endpoint_url` points at another endpoint (tests: moto). Rows expire
    /// `keep` after they are written (DynamoDB TTL).
    pub async fn new(table: &str, endpoint_url: Option<&str>, keep: SignedDuration) -> Dynamo {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(10))
                    .build(),
            );
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            loader = loader.region(Region::new("us-east-1"));
        }
        if let Some(url) = endpoint_url {
            loader = loader.endpoint_url(url);
        }
        Dynamo {
            client: Client::new(&loader.load().await),
            table: table.to_owned(),
            keep,
        }
    }

    /// Creates the table with TTL, as the CloudFormation template does (tests, first runs).
    ///
    /// # Errors
    /// [`StoreError::Backend`] when DynamoDB refuses.
    pub async fn create_table(&self) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
            TimeToLiveSpecification,
        };
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(backend)
        };
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(backend)
        };
        self.client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .send()
            .await
            .map_err(backend)?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name("expires_at")
                    .enabled(true)
                    .build()
                    .map_err(backend)?,
            )
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    fn expires(&self, now: Timestamp) -> AttributeValue {
        n((now + self.keep).as_second())
    }

    async fn next_ids(&self, count: i64) -> Result<i64, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s("SEQ"))
            .key("sk", s("SEQ"))
            .update_expression("ADD n :k")
            .expression_attribute_values(":k", n(count))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(backend)?;
        let last = out
            .attributes()
            .and_then(|a| num(a, "n"))
            .ok_or(StoreError::Corrupt {
                what: "counter",
                value: String::new(),
            })?;
        Ok(last - count + 1)
    }

    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        Ok(out.item)
    }

    /// Items of a partition, sort keys in `from..=to`, newest first when `reverse`.
    async fn query(
        &self,
        pk: &str,
        range: Option<(String, String)>,
        reverse: bool,
        mut each: impl FnMut(Item) -> bool,
    ) -> Result<(), StoreError> {
        let mut start = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .scan_index_forward(!reverse)
                .expression_attribute_values(":pk", s(pk))
                .set_exclusive_start_key(start.take());
            q = match &range {
                Some((from, to)) => q
                    .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                    .expression_attribute_values(":from", s(from))
                    .expression_attribute_values(":to", s(to)),
                None => q.key_condition_expression("pk = :pk"),
            };
            let out = q.send().await.map_err(backend)?;
            for item in out.items.unwrap_or_default() {
                if !each(item) {
                    return Ok(());
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(()),
            }
        }
    }

    async fn event(&self, id: i64) -> Result<Option<Row>, StoreError> {
        self.get("EVENT", &pad(id))
            .await?
            .map(Row::from_item)
            .transpose()
    }

    /// Writes `items` in one transaction; `Ok(false)` when a condition failed (a lost race).
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<bool, StoreError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(_)) => Ok(false),
                _ => Err(backend(e)),
            },
        }
    }

    fn put(&self, item: Item, condition: Option<&str>) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .build()
            .map_err(backend)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Saves a changed event if nobody else changed it since `row.version`, keeping the
    /// `PENDING` marker in step.
    async fn save(&self, row: &Row, now: Timestamp) -> Result<bool, StoreError> {
        let mut item = row.to_item();
        item.insert("version".into(), n(row.version + 1));
        item.insert("expires_at".into(), self.expires(now));
        let mut items = vec![self.put(item, Some("version = :v"))?];
        if let Some(TransactWriteItem { put: Some(put), .. }) = items.first_mut() {
            let mut values = HashMap::new();
            values.insert(":v".to_owned(), n(row.version));
            put.expression_attribute_values = Some(values);
        }
        items.push(self.pending_marker(row, now)?);
        self.transact(items).await
    }

    fn pending_marker(&self, row: &Row, now: Timestamp) -> Result<TransactWriteItem, StoreError> {
        let key = [
            ("pk".to_owned(), s("PENDING")),
            ("sk".to_owned(), s(&pad(row.id))),
        ];
        if row.deliveries.iter().any(|d| d.status.status == "pending") {
            let mut item: Item = key.into_iter().collect();
            item.insert("expires_at".into(), self.expires(now));
            self.put(item, None)
        } else {
            let delete = aws_sdk_dynamodb::types::Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key.into_iter().collect()))
                .build()
                .map_err(backend)?;
            Ok(TransactWriteItem::builder().delete(delete).build())
        }
    }

    /// Events with pending deliveries.
    async fn pending_events(&self) -> Result<Vec<Row>, StoreError> {
        let mut ids = Vec::new();
        self.query("PENDING", None, false, |item| {
            if let Some(id) = str_of(&item, "sk").and_then(|s| s.parse().ok()) {
                ids.push(id);
            }
            true
        })
        .await?;
        let mut rows = Vec::new();
        for id in ids {
            if let Some(row) = self.event(id).await? {
                rows.push(row);
            }
        }
        Ok(rows)
    }

    /// Claims the deliveries `pick` selects in each event, retrying lost races.
    async fn claim(
        &self,
        events: Vec<i64>,
        now: Timestamp,
        limit: usize,
        pick: impl Fn(&Delivery) -> bool,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let mut due = Vec::new();
        for id in events {
            for _ in 0..ATTEMPTS {
                let Some(mut row) = self.event(id).await? else {
                    break;
                };
                let mut picked = Vec::new();
                for (i, d) in row.deliveries.iter_mut().enumerate() {
                    let free = d.claimed_until.is_none_or(|until| until <= now);
                    if due.len() + picked.len() < limit
                        && d.status.status == "pending"
                        && free
                        && pick(d)
                    {
                        d.claimed_until = Some(now + LEASE);
                        picked.push(i);
                    }
                }
                if picked.is_empty() {
                    break;
                }
                if self.save(&row, now).await? {
                    due.extend(picked.into_iter().map(|i| row.due(i)));
                    break;
                }
            }
        }
        Ok(due)
    }
}

/// One delivery inside an event item.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Delivery {
    #[serde(flatten)]
    status: DeliveryStatus,
    next_at: Timestamp,
    claimed_until: Option<Timestamp>,
}

/// An event item.
#[derive(Debug, Clone)]
struct Row {
    id: i64,
    event: NewEvent,
    received_at: Timestamp,
    reports: u32,
    deliveries: Vec<Delivery>,
    version: i64,
}

impl Row {
    fn from_item(item: Item) -> Result<Row, StoreError> {
        let corrupt = |what| StoreError::Corrupt {
            what,
            value: str_of(&item, "sk").unwrap_or_default().to_owned(),
        };
        let json = |name: &'static str| -> Result<Value, StoreError> {
            serde_json::from_str(str_of(&item, name).ok_or_else(|| corrupt(name))?)
                .map_err(|_| corrupt(name))
        };
        Ok(Row {
            id: str_of(&item, "sk")
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| corrupt("id"))?,
            event: serde_json::from_value(json("event")?).map_err(|_| corrupt("event"))?,
            received_at: str_of(&item, "received_at")
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| corrupt("received_at"))?,
            reports: num(&item, "reports")
                .and_then(|r| u32::try_from(r).ok())
                .ok_or_else(|| corrupt("reports"))?,
            deliveries: serde_json::from_value(json("deliveries")?)
                .map_err(|_| corrupt("deliveries"))?,
            version: num(&item, "version").ok_or_else(|| corrupt("version"))?,
        })
    }

    fn to_item(&self) -> Item {
        let mut item = Item::new();
        item.insert("pk".into(), s("EVENT"));
        item.insert("sk".into(), s(&pad(self.id)));
        item.insert("event".into(), s(&json_string(&self.event)));
        item.insert("received_at".into(), s(&self.received_at.to_string()));
        item.insert("reports".into(), n(i64::from(self.reports)));
        item.insert("deliveries".into(), s(&json_string(&self.deliveries)));
        item.insert("version".into(), n(self.version));
        item
    }

    fn stored(&self) -> StoredEvent {
        StoredEvent {
            id: EventId(self.id.to_string()),
            event: self.event.clone(),
            received_at: self.received_at,
            reports: self.reports,
            deliveries: self.deliveries.iter().map(|d| d.status.clone()).collect(),
        }
    }

    fn due(&self, i: usize) -> DueDelivery {
        let d = &self.deliveries[i];
        DueDelivery {
            id: d.status.id,
            channel: d.status.channel.clone(),
            attempts: d.status.attempts,
            created_at: self.received_at,
            event: EventId(self.id.to_string()),
            verdict: self.event.verdict.clone(),
            cluster: self.event.cluster.clone(),
            customer: self.event.customer.clone(),
            context: self.event.context.clone(),
        }
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn str_of<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn num(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn pad(id: i64) -> String {
    format!("{id:019}")
}

fn json_string<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(e))
}

fn history_key(at: Timestamp, id: i64) -> String {
    format!("H#{:016}#{}", at.as_millisecond().max(0), pad(id))
}

fn event_number(id: &EventId) -> Result<i64, StoreError> {
    id.0.parse().map_err(|_| StoreError::NotFound(id.clone()))
}

impl Store for Dynamo {
    async fn record(&self, report: NewReport, decide: Decide) -> Result<Recorded, StoreError> {
        let report_key = report
            .client_id
            .as_ref()
            .map(|id| format!("REPORT#{}#{id}", report.scope));
        if let Some(known) = self.seen(report_key.as_deref()).await? {
            return Ok(known);
        }
        let now = report.received_at;
        for _ in 0..ATTEMPTS {
            // The history and the version it was read at.
            let (history, head) = match &report.history {
                Some((cluster, since)) => {
                    let pk = format!("CLUSTER#{cluster}");
                    let head = self
                        .get(&pk, "HEAD")
                        .await?
                        .and_then(|h| num(&h, "version"));
                    let mut history = Vec::new();
                    let range = (history_key(*since, 0), "H#~".to_owned());
                    self.query(&pk, Some(range), false, |item| {
                        if let Some(h) = history_event(&item) {
                            history.push(h);
                        }
                        true
                    })
                    .await?;
                    (history, Some((pk, head)))
                }
                None => (Vec::new(), None),
            };
            let decision = decide(&history);
            let mut items = Vec::new();
            let (row, merged) = match &decision {
                Decision::Merge(id) => {
                    let mut row = self
                        .event(event_number(id)?)
                        .await?
                        .ok_or_else(|| StoreError::NotFound(id.clone()))?;
                    let mut item = row.to_item();
                    item.insert("reports".into(), n(i64::from(row.reports) + 1));
                    item.insert("version".into(), n(row.version + 1));
                    item.insert("expires_at".into(), self.expires(now));
                    let mut put = self.put(item, Some("version = :v"))?;
                    if let Some(p) = put.put.as_mut() {
                        p.expression_attribute_values =
                            Some(HashMap::from([(":v".to_owned(), n(row.version))]));
                    }
                    items.push(put);
                    row.reports += 1;
                    row.version += 1;
                    (row, true)
                }
                Decision::New(event) => {
                    let id = self.next_ids(1).await?;
                    let deliveries = event
                        .channels
                        .iter()
                        .enumerate()
                        .map(|(i, channel)| Delivery {
                            status: DeliveryStatus {
                                id: id * PER_EVENT + i as i64,
                                channel: channel.clone(),
                                status: "pending".into(),
                                attempts: 0,
                                last_error: None,
                                finished_at: None,
                            },
                            next_at: now,
                            claimed_until: None,
                        })
                        .collect();
                    let row = Row {
                        id,
                        event: (**event).clone(),
                        received_at: now,
                        reports: 1,
                        deliveries,
                        version: 0,
                    };
                    let mut item = row.to_item();
                    item.insert("expires_at".into(), self.expires(now));
                    items.push(self.put(item, Some("attribute_not_exists(pk)"))?);
                    items.push(self.pending_marker(&row, now)?);
                    if let Some((pk, _)) = &head {
                        let mut h = Item::new();
                        h.insert("pk".into(), s(pk));
                        h.insert("sk".into(), s(&history_key(event.at, id)));
                        h.insert("id".into(), s(&id.to_string()));
                        h.insert("at".into(), s(&event.at.to_string()));
                        h.insert("flapping".into(), AttributeValue::Bool(event.flapping));
                        if let Some(a) = &event.active {
                            h.insert("active".into(), s(a));
                        }
                        if let Some(p) = &event.previous {
                            h.insert("previous".into(), s(p));
                        }
                        h.insert("expires_at".into(), self.expires(now));
                        items.push(self.put(h, None)?);
                    }
                    (row, false)
                }
            };
            if let Some((pk, seen)) = &head {
                let mut values = HashMap::from([(":one".to_owned(), n(1))]);
                let condition = match seen {
                    Some(v) => {
                        values.insert(":v".to_owned(), n(*v));
                        "version = :v"
                    }
                    None => "attribute_not_exists(version)",
                };
                let update = Update::builder()
                    .table_name(&self.table)
                    .key("pk", s(pk))
                    .key("sk", s("HEAD"))
                    .update_expression("ADD version :one")
                    .condition_expression(condition)
                    .set_expression_attribute_values(Some(values))
                    .build()
                    .map_err(backend)?;
                items.push(TransactWriteItem::builder().update(update).build());
            }
            if let Some(key) = &report_key {
                let mut r = Item::new();
                r.insert("pk".into(), s(key));
                r.insert("sk".into(), s("-"));
                r.insert("event".into(), s(&row.id.to_string()));
                r.insert("merged".into(), AttributeValue::Bool(merged));
                r.insert("expires_at".into(), self.expires(now));
                items.push(self.put(r, Some("attribute_not_exists(pk)"))?);
            }
            if self.transact(items).await? {
                return Ok(Recorded {
                    event: row.stored(),
                    merged,
                    duplicate: false,
                });
            }
            // Lost a race: another report of this client id, or of this cluster, won.
            if let Some(known) = self.seen(report_key.as_deref()).await? {
                return Ok(known);
            }
        }
        Err(StoreError::Backend(
            "too many concurrent writes to one cluster; retry".into(),
        ))
    }

    async fn events(&self, query: EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        let to = query.before.map_or_else(|| "9".repeat(19), |b| pad(b - 1));
        let mut found = Vec::new();
        let mut failed = None;
        let limit = query.limit as usize;
        self.query("EVENT", Some((pad(0), to)), true, |item| {
            match Row::from_item(item) {
                Ok(row) => {
                    let e = &row.event;
                    let keep = query
                        .cluster
                        .as_ref()
                        .is_none_or(|c| e.cluster.as_ref() == Some(c))
                        && query.verdict.as_ref().is_none_or(|v| &e.verdict == v)
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
        match failed {
            Some(e) => Err(e),
            None => Ok(found),
        }
    }

    async fn claim_due(&self, now: Timestamp, limit: u32) -> Result<Vec<DueDelivery>, StoreError> {
        let ids = self.pending_events().await?.iter().map(|r| r.id).collect();
        self.claim(ids, now, limit as usize, |d| d.next_at <= now)
            .await
    }

    async fn claim_event(
        &self,
        event: &EventId,
        now: Timestamp,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        self.claim(vec![event_number(event)?], now, usize::MAX, |_| true)
            .await
    }

    async fn finish(
        &self,
        outcomes: Vec<(i64, Outcome)>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut by_event: HashMap<i64, Vec<(i64, Outcome)>> = HashMap::new();
        for (id, outcome) in outcomes {
            by_event
                .entry(id / PER_EVENT)
                .or_default()
                .push((id, outcome));
        }
        for (event, outcomes) in by_event {
            let mut saved = false;
            for _ in 0..ATTEMPTS {
                let Some(mut row) = self.event(event).await? else {
                    break;
                };
                for (id, outcome) in &outcomes {
                    let Some(d) = row.deliveries.iter_mut().find(|d| d.status.id == *id) else {
                        continue;
                    };
                    d.claimed_until = None;
                    d.status.attempts += 1;
                    match outcome {
                        Outcome::Delivered => {
                            d.status.status = "delivered".into();
                            d.status.finished_at = Some(now);
                        }
                        Outcome::Retry { at, error } => {
                            d.next_at = *at;
                            d.status.last_error = Some(error.clone());
                        }
                        Outcome::Failed { error } => {
                            d.status.status = "failed".into();
                            d.status.last_error = Some(error.clone());
                            d.status.finished_at = Some(now);
                        }
                    }
                }
                if self.save(&row, now).await? {
                    saved = true;
                    break;
                }
            }
            if !saved {
                tracing::warn!(
                    event,
                    "delivery outcomes not recorded: the event kept changing"
                );
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
            .filter(|d| d.status.status == "pending" && d.status.channel == channel)
            .map(|d| d.status.id)
            .collect())
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        Ok(self
            .pending_events()
            .await?
            .iter()
            .flat_map(|r| &r.deliveries)
            .filter(|d| d.status.status == "pending" && d.claimed_until.is_none())
            .map(|d| d.next_at)
            .min())
    }

    async fn delivery_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let pending = self
            .pending_events()
            .await?
            .iter()
            .flat_map(|r| &r.deliveries)
            .filter(|d| d.status.status == "pending")
            .count();
        Ok(vec![("pending".to_owned(), pending as u64)])
    }

    async fn add_maintenance(&self, window: NewMaintenance) -> Result<Maintenance, StoreError> {
        let id = self.next_ids(1).await?;
        let mut item = Item::new();
        item.insert("pk".into(), s("MAINT"));
        item.insert("sk".into(), s(&pad(id)));
        item.insert("window".into(), s(&json_string(&window)));
        item.insert("expires_at".into(), self.expires(window.end));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(backend)?;
        Ok(Maintenance { id, window })
    }

    async fn maintenance(&self, after: Timestamp) -> Result<Vec<Maintenance>, StoreError> {
        let mut found = Vec::new();
        self.query("MAINT", None, false, |item| {
            if let Some(m) = maintenance_of(&item).filter(|m| m.window.end > after) {
                found.push(m);
            }
            true
        })
        .await?;
        Ok(found)
    }

    async fn end_maintenance(&self, id: i64, now: Timestamp) -> Result<bool, StoreError> {
        let Some(mut m) = self
            .get("MAINT", &pad(id))
            .await?
            .as_ref()
            .and_then(maintenance_of)
        else {
            return Ok(false);
        };
        if m.window.end <= now {
            return Ok(false);
        }
        if m.window.start >= now {
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("pk", s("MAINT"))
                .key("sk", s(&pad(id)))
                .send()
                .await
                .map_err(backend)?;
            return Ok(true);
        }
        m.window.end = now;
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s("MAINT"))
            .key("sk", s(&pad(id)))
            .update_expression("SET #w = :w")
            .expression_attribute_names("#w", "window")
            .expression_attribute_values(":w", s(&json_string(&m.window)))
            .send()
            .await
            .map_err(backend)?;
        Ok(true)
    }
}

impl Dynamo {
    /// The answer recorded for a client id, if it was seen before.
    async fn seen(&self, key: Option<&str>) -> Result<Option<Recorded>, StoreError> {
        let Some(key) = key else { return Ok(None) };
        let Some(item) = self.get(key, "-").await? else {
            return Ok(None);
        };
        let id =
            str_of(&item, "event")
                .and_then(|e| e.parse().ok())
                .ok_or(StoreError::Corrupt {
                    what: "report",
                    value: key.to_owned(),
                })?;
        let row = self
            .event(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(EventId(id.to_string())))?;
        Ok(Some(Recorded {
            event: row.stored(),
            merged: item
                .get("merged")
                .and_then(|m| m.as_bool().ok())
                .copied()
                .unwrap_or(false),
            duplicate: true,
        }))
    }
}

fn history_event(item: &Item) -> Option<HistoryEvent> {
    Some(HistoryEvent {
        id: EventId(str_of(item, "id")?.to_owned()),
        active: str_of(item, "active").map(str::to_owned),
        previous: str_of(item, "previous").map(str::to_owned),
        at: str_of(item, "at")?.parse().ok()?,
        flapping: item
            .get("flapping")
            .and_then(|f| f.as_bool().ok())
            .copied()
            .unwrap_or(false),
    })
}

fn maintenance_of(item: &Item) -> Option<Maintenance> {
    Some(Maintenance {
        id: str_of(item, "sk")?.parse().ok()?,
        window: serde_json::from_str(str_of(item, "window")?).ok()?,
    })
}
