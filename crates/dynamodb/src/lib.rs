//! The DynamoDB backend of [`Store`], for the AWS Lambda deployment: no server to run, and
//! any number of concurrent function instances share one table.
//!
//! # Table
//! One table, on-demand, with a string partition key `pk`, a string sort key `sk`, and TTL on
//! `expires_at` (epoch seconds). Items:
//!
//! | pk | sk | what |
//! |---|---|---|
//! | `SEQ` | `SEQ` | the counter of ad-hoc window ids (atomic `ADD`) |
//! | `EVENT` | id, zero-padded | an event and its deliveries (attributes per delivery, below) |
//! | `PENDING` | id, zero-padded | marks an event that had pending deliveries (removed lazily) |
//! | `CLUSTER#name` | `HEAD` | the cluster's `version`: a write that saw older history fails |
//! | `CLUSTER#name` | `H#millis#id` | the cluster's history for merging, flapping and failback |
//! | `REPORT#scope#client id` | `-` | a client id already recorded, for idempotent retries |
//! | `MAINT` | id, zero-padded | an ad-hoc maintenance window |
//!
//! A new event is written in one transaction with the cluster's `HEAD` updated on the
//! condition that its `version` is the one the history was read at; a lost race reads again
//! and decides again, so two reports of one failover that arrive at once still become one
//! event. Failovers are rare, so the `EVENT` and `PENDING` partitions stay far below
//! DynamoDB's per-partition limits.
//!
//! Event ids are the millisecond of receipt × 100 plus a random number below 100 (the put is
//! conditional, so a collision just draws again): ordered by time, no counter round trip. A
//! delivery's id is `event id × 1000 + its position i`, so an outcome finds its event; its
//! state lives in the event item as `ch_i` (channel), `st_i` (status), `a_i` (attempts),
//! `e_i` (last error), `f_i` (finished at), `n_i` (next attempt, ms), `c_i` (claimed until, ms)
//! and `p_i` (present while pending). A claim and an outcome each update only those
//! attributes, so they need no read and never overwrite each other.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::Region;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use failover_store::{
    Decide, Decision, DeliveryStatus, DueDelivery, EventId, EventQuery, HistoryEvent, Maintenance,
    NewEvent, NewMaintenance, NewReport, Outcome, Recorded, Store, StoreError, StoredEvent,
};
use jiff::{SignedDuration, Timestamp};

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
        let http = match endpoint_url {
            // A local emulator over plain HTTP: no TLS set-up (it reads every system CA
            // certificate, about 4 ms of a cold start).
            Some(url) if url.starts_with("http://") => {
                aws_smithy_http_client::Builder::new().build_http()
            }
            _ => aws_smithy_http_client::Builder::new()
                .tls_provider(Provider::Rustls(CryptoMode::Ring))
                .build_https(),
        };
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

    /// The next ad-hoc window id.
    async fn next_id(&self) -> Result<i64, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s("SEQ"))
            .key("sk", s("SEQ"))
            .update_expression("ADD n :k")
            .expression_attribute_values(":k", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(backend)?;
        out.attributes()
            .and_then(|a| num(a, "n"))
            .ok_or(StoreError::Corrupt {
                what: "counter",
                value: String::new(),
            })
    }

    fn expires(&self, now: Timestamp) -> AttributeValue {
        n((now + self.keep).as_second())
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

    async fn delete(&self, pk: &str, sk: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Items of a partition (sort keys in `from..=to` when given), in sort key order or
    /// reversed, until `each` returns false.
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
            .map(|item| Row::from_item(&item))
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
                Some(TransactWriteItemsError::TransactionCanceledException(_)) => Ok(false),
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

    /// Runs an update of one event's attributes; `Ok(false)` when its condition failed.
    async fn update_event(&self, id: i64, u: Expr) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s("EVENT"))
            .key("sk", s(&pad(id)))
            .update_expression(u.update())
            .set_condition_expression(u.condition)
            .set_expression_attribute_values(Some(u.values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(backend(e)),
            },
        }
    }

    /// Events marked as having pending deliveries; markers of finished events are removed.
    async fn pending_events(&self) -> Result<Vec<Row>, StoreError> {
        let mut ids = Vec::new();
        self.query("PENDING", None, false, |item| {
            ids.extend(str_of(&item, "sk").and_then(|s| s.parse::<i64>().ok()));
            true
        })
        .await?;
        let mut rows = Vec::new();
        for id in ids {
            match self.event(id).await? {
                Some(row) if row.deliveries.iter().any(Delivery::pending) => rows.push(row),
                _ => self.delete("PENDING", &pad(id)).await?,
            }
        }
        Ok(rows)
    }

    /// Claims, in each event, the pending deliveries that nobody holds and `pick` selects.
    async fn claim(
        &self,
        rows: Vec<Row>,
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
                u.value(":until", n((now + LEASE).as_millisecond()));
                for &i in &picked {
                    u.set(format!("c_{i} = :until"));
                    u.require(format!(
                        "attribute_exists(p_{i}) AND (attribute_not_exists(c_{i}) OR c_{i} <= :now)"
                    ));
                }
                if self.update_event(row.id, u).await? {
                    let stored = row.stored();
                    due.extend(
                        picked
                            .into_iter()
                            .map(|i| stored.due(&stored.deliveries[i])),
                    );
                    break;
                }
            }
        }
        Ok(due)
    }

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
            merged: bool_of(&item, "merged"),
            duplicate: true,
        }))
    }

    /// The cluster's history since `since` and its `HEAD` version, in one query.
    async fn history(
        &self,
        pk: &str,
        since: Timestamp,
    ) -> Result<(Vec<HistoryEvent>, Option<i64>), StoreError> {
        let mut history = Vec::new();
        let mut head = None;
        // `H#...` sorts before `HEAD` (`#` < `E`), so one range holds both.
        let range = (history_key(since, 0), "HEAD".to_owned());
        self.query(pk, Some(range), false, |item| {
            if str_of(&item, "sk") == Some("HEAD") {
                head = num(&item, "version");
            } else {
                history.extend(history_event(&item));
            }
            true
        })
        .await?;
        Ok((history, head))
    }

    /// The transaction items of a new event: the event with its deliveries, its pending
    /// marker, and its place in the cluster's history.
    fn new_event_items(
        &self,
        row: &Row,
        report: &NewReport,
        cluster_pk: Option<&str>,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let now = report.received_at;
        let e = &row.event;
        let mut item = row.to_item();
        for (i, d) in row.deliveries.iter().enumerate() {
            item.insert(format!("n_{i}"), n(now.as_millisecond()));
            item.insert(format!("p_{i}"), AttributeValue::Bool(true));
            if let Some(c) = d.claimed_until {
                item.insert(format!("c_{i}"), n(c.as_millisecond()));
            }
        }
        item.insert("expires_at".into(), self.expires(now));
        let mut items = vec![self.put(item, Some("attribute_not_exists(pk)"))?];
        if !row.deliveries.is_empty() {
            let marker = Item::from([
                ("pk".to_owned(), s("PENDING")),
                ("sk".to_owned(), s(&pad(row.id))),
                ("expires_at".to_owned(), self.expires(now)),
            ]);
            items.push(self.put(marker, None)?);
        }
        if let Some(pk) = cluster_pk {
            let mut h = Item::from([
                ("pk".to_owned(), s(pk)),
                ("sk".to_owned(), s(&history_key(e.at, row.id))),
                ("id".to_owned(), s(&row.id.to_string())),
                ("at".to_owned(), s(&e.at.to_string())),
                ("flapping".to_owned(), AttributeValue::Bool(e.flapping)),
                ("expires_at".to_owned(), self.expires(now)),
            ]);
            if let Some(a) = &e.active {
                h.insert("active".into(), s(a));
            }
            if let Some(p) = &e.previous {
                h.insert("previous".into(), s(p));
            }
            items.push(self.put(h, None)?);
        }
        Ok(items)
    }
}

/// An update expression being built: `SET`, `REMOVE` and `ADD` clauses, conditions, values.
#[derive(Default)]
struct Expr {
    set: Vec<String>,
    remove: Vec<String>,
    add: Vec<String>,
    condition: Option<String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    fn set(&mut self, clause: String) {
        self.set.push(clause);
    }
    fn value(&mut self, name: &str, v: AttributeValue) {
        self.values.insert(name.to_owned(), v);
    }
    fn require(&mut self, c: String) {
        self.condition = Some(match self.condition.take() {
            Some(old) => format!("{old} AND ({c})"),
            None => format!("({c})"),
        });
    }
    fn update(&self) -> String {
        let mut parts = Vec::new();
        for (word, list) in [
            ("SET", &self.set),
            ("REMOVE", &self.remove),
            ("ADD", &self.add),
        ] {
            if !list.is_empty() {
                parts.push(format!("{word} {}", list.join(", ")));
            }
        }
        parts.join(" ")
    }
}

/// One delivery inside an event item.
#[derive(Debug, Clone)]
struct Delivery {
    status: DeliveryStatus,
    next_at: Timestamp,
    claimed_until: Option<Timestamp>,
}

impl Delivery {
    fn pending(&self) -> bool {
        self.status.status == "pending"
    }
}

/// An event item.
#[derive(Debug, Clone)]
struct Row {
    id: i64,
    event: NewEvent,
    received_at: Timestamp,
    reports: u32,
    deliveries: Vec<Delivery>,
}

impl Row {
    fn from_item(item: &Item) -> Result<Row, StoreError> {
        let corrupt = |what| StoreError::Corrupt {
            what,
            value: str_of(item, "sk").unwrap_or_default().to_owned(),
        };
        let id: i64 = str_of(item, "sk")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| corrupt("id"))?;
        let event = str_of(item, "event")
            .and_then(|e| serde_json::from_str(e).ok())
            .ok_or_else(|| corrupt("event"))?;
        let mut deliveries = Vec::new();
        for i in 0.. {
            let Some(channel) = str_of(item, &format!("ch_{i}")) else {
                break;
            };
            let ms =
                |name: String| num(item, &name).and_then(|v| Timestamp::from_millisecond(v).ok());
            let status = if item.contains_key(&format!("p_{i}")) {
                "pending"
            } else {
                str_of(item, &format!("st_{i}")).unwrap_or("pending")
            };
            deliveries.push(Delivery {
                status: DeliveryStatus {
                    id: id * PER_EVENT + i,
                    channel: channel.to_owned(),
                    status: status.to_owned(),
                    attempts: num(item, &format!("a_{i}"))
                        .and_then(|a| u32::try_from(a).ok())
                        .unwrap_or(0),
                    last_error: str_of(item, &format!("e_{i}")).map(str::to_owned),
                    finished_at: ms(format!("f_{i}")),
                },
                next_at: ms(format!("n_{i}")).unwrap_or_default(),
                claimed_until: ms(format!("c_{i}")),
            });
        }
        Ok(Row {
            id,
            event,
            received_at: str_of(item, "received_at")
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| corrupt("received_at"))?,
            reports: num(item, "reports")
                .and_then(|r| u32::try_from(r).ok())
                .ok_or_else(|| corrupt("reports"))?,
            deliveries,
        })
    }

    /// The item without per-delivery state other than each channel.
    fn to_item(&self) -> Item {
        let mut item = Item::from([
            ("pk".to_owned(), s("EVENT")),
            ("sk".to_owned(), s(&pad(self.id))),
            (
                "event".to_owned(),
                s(&serde_json::to_string(&self.event).unwrap_or_default()),
            ),
            ("received_at".to_owned(), s(&self.received_at.to_string())),
            ("reports".to_owned(), n(i64::from(self.reports))),
        ]);
        for (i, d) in self.deliveries.iter().enumerate() {
            item.insert(format!("ch_{i}"), s(&d.status.channel));
            item.insert(format!("a_{i}"), n(0));
        }
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

fn bool_of(item: &Item, name: &str) -> bool {
    item.get(name)
        .and_then(|v| v.as_bool().ok())
        .copied()
        .unwrap_or(false)
}

fn pad(id: i64) -> String {
    format!("{id:019}")
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

/// A new event id: the millisecond of receipt and two random digits.
fn new_event_id(now: Timestamp) -> i64 {
    now.as_millisecond().max(0) * 100 + i64::from(fastrand::u8(..100))
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
        let cluster_pk = report.history.as_ref().map(|(c, _)| format!("CLUSTER#{c}"));
        for _ in 0..ATTEMPTS {
            let (history, head) = match (&cluster_pk, &report.history) {
                (Some(pk), Some((_, since))) => self.history(pk, *since).await?,
                _ => (Vec::new(), None),
            };
            let mut items = Vec::new();
            let (row, merged) = match decide(&history) {
                Decision::Merge(id) => {
                    let number = event_number(&id)?;
                    let update = Update::builder()
                        .table_name(&self.table)
                        .key("pk", s("EVENT"))
                        .key("sk", s(&pad(number)))
                        .update_expression("ADD reports :one")
                        .condition_expression("attribute_exists(pk)")
                        .expression_attribute_values(":one", n(1))
                        .build()
                        .map_err(backend)?;
                    items.push(TransactWriteItem::builder().update(update).build());
                    let mut row = self
                        .event(number)
                        .await?
                        .ok_or_else(|| StoreError::NotFound(id.clone()))?;
                    row.reports += 1;
                    (row, true)
                }
                Decision::New(event) => {
                    let id = new_event_id(now);
                    let claimed_until = report.claimed.then_some(now + LEASE);
                    let deliveries = (0..)
                        .zip(&event.channels)
                        .map(|(i, channel)| Delivery {
                            status: DeliveryStatus {
                                id: id * PER_EVENT + i,
                                channel: channel.clone(),
                                status: "pending".into(),
                                attempts: 0,
                                last_error: None,
                                finished_at: None,
                            },
                            next_at: now,
                            claimed_until,
                        })
                        .collect();
                    let row = Row {
                        id,
                        event: *event,
                        received_at: now,
                        reports: 1,
                        deliveries,
                    };
                    items.extend(self.new_event_items(&row, &report, cluster_pk.as_deref())?);
                    (row, false)
                }
            };
            if let Some(pk) = &cluster_pk {
                let mut values = HashMap::from([(":one".to_owned(), n(1))]);
                let condition = match head {
                    Some(v) => {
                        values.insert(":v".to_owned(), n(v));
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
            match Row::from_item(&item) {
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
        failed.map_or(Ok(found), Err)
    }

    async fn claim_due(&self, now: Timestamp, limit: u32) -> Result<Vec<DueDelivery>, StoreError> {
        let rows = self.pending_events().await?;
        self.claim(rows, now, limit as usize, |d| d.next_at <= now)
            .await
    }

    async fn claim_event(
        &self,
        event: &EventId,
        now: Timestamp,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let rows = self
            .event(event_number(event)?)
            .await?
            .into_iter()
            .collect();
        self.claim(rows, now, usize::MAX, |_| true).await
    }

    async fn finish(
        &self,
        outcomes: Vec<(i64, Outcome)>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut by_event: HashMap<i64, Expr> = HashMap::new();
        for (id, outcome) in outcomes {
            let u = by_event.entry(id / PER_EVENT).or_default();
            let i = id % PER_EVENT;
            u.add.push(format!("a_{i} :one"));
            u.remove.push(format!("c_{i}"));
            match outcome {
                Outcome::Delivered => {
                    u.set(format!("st_{i} = :delivered, f_{i} = :now"));
                    u.remove.push(format!("p_{i}"));
                }
                Outcome::Retry { at, error } => {
                    u.value(&format!(":n{i}"), n(at.as_millisecond()));
                    u.value(&format!(":e{i}"), s(&error));
                    u.set(format!("n_{i} = :n{i}, e_{i} = :e{i}"));
                }
                Outcome::Failed { error } => {
                    u.value(&format!(":e{i}"), s(&error));
                    u.set(format!("st_{i} = :failed, e_{i} = :e{i}, f_{i} = :now"));
                    u.remove.push(format!("p_{i}"));
                }
            }
        }
        for (event, mut u) in by_event {
            u.value(":one", n(1));
            u.value(":now", n(now.as_millisecond()));
            u.value(":delivered", s("delivered"));
            u.value(":failed", s("failed"));
            // DynamoDB refuses values the expression does not use.
            let clauses = format!("{} {}", u.set.join(" "), u.add.join(" "));
            u.values.retain(|k, _| clauses.contains(k.as_str()));
            u.require("attribute_exists(pk)".to_owned());
            if !self.update_event(event, u).await? {
                tracing::warn!(event, "delivery outcomes of a removed event not recorded");
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

    async fn delivery_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let pending = self
            .pending_events()
            .await?
            .iter()
            .flat_map(|r| &r.deliveries)
            .filter(|d| d.pending())
            .count();
        Ok(vec![("pending".to_owned(), pending as u64)])
    }
    async fn add_maintenance(&self, window: NewMaintenance) -> Result<Maintenance, StoreError> {
        let id = self.next_id().await?;
        let mut item = Item::new();
        item.insert("pk".into(), s("MAINT"));
        item.insert("sk".into(), s(&pad(id)));
        item.insert(
            "window".into(),
            s(&serde_json::to_string(&window).unwrap_or_default()),
        );
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
            self.delete("MAINT", &pad(id)).await?;
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
            .expression_attribute_values(
                ":w",
                s(&serde_json::to_string(&m.window).unwrap_or_default()),
            )
            .send()
            .await
            .map_err(backend)?;
        Ok(true)
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
