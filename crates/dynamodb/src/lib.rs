//! The DynamoDB backend of [`Store`], for the AWS Lambda deployment: no server to run, and
//! any number of concurrent function instances share one table.
//!
//! # Table
//! One table, on-demand, with a string partition key `pk`, a string sort key `sk`, TTL on
//! `expires_at` (epoch seconds), and a global secondary index [`PENDING_INDEX`] (partition key
//! `undelivered`, sort key `sk`, keys only). Items:
//!
//! | pk | sk | what |
//! |---|---|---|
//! | `EVENT` | id, zero-padded | an event and its deliveries (attributes per delivery, below); `undelivered` while it may have pending deliveries (removed lazily), which puts it in the sparse index |
//! | `CLUSTER#name` | `HEAD` | the cluster's `version` and `history` (its recent events as JSON, for merging, flapping and failback) |
//! | `REPORT#scope#client id` | `-` | a client id already recorded, for idempotent retries |
//! | `MAINT` | `ALL` | the ad-hoc windows (`w`, a map from id to JSON) and their id counter `n` |
//!
//! Recording a report reads what it needs in one consistent `BatchGetItem` (the cluster's
//! `HEAD`, the ad-hoc windows, the client id) and writes the new event in one transaction
//! with the `HEAD`, on the condition that its `version` is the one read; a lost race reads
//! again and decides again, so two reports of one failover that arrive at once still become
//! one event. The history keeps the events since the report's look-back plus a day (for
//! reports spooled on a node and sent late), at most [`HISTORY_KEPT`] of them. The ad-hoc
//! windows share one item (DynamoDB's 400 KB item limit: about 1,500 windows), so a report
//! reads them with its history in the same call. Failovers are rare, so the `EVENT`
//! partition stays far below DynamoDB's per-partition limits.
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
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnValue, TransactWriteItem, Update,
};
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
/// The sparse index of events that may have pending deliveries.
pub const PENDING_INDEX: &str = "pending";
/// Most events a cluster's `HEAD` keeps in its history.
pub const HISTORY_KEPT: usize = 100;
/// How much older than a report's look-back the kept history reaches.
const HISTORY_SLACK: SignedDuration = SignedDuration::from_hours(24);

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
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_some()
            && std::env::var_os("AWS_SECRET_ACCESS_KEY").is_some()
        {
            // What the default chain would pick first (and always there on Lambda), taken
            // directly: the rest of the chain is not built (an STS client for web identity,
            // an IMDS client): a tenth of a cold start's instructions (callgrind).
            loader = loader.credentials_provider(
                aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
            );
        }
        if let Some(url) = endpoint_url {
            loader = loader.endpoint_url(url);
        }
        Dynamo::with_config(&loader.load().await, table, keep)
    }

    /// A store on `table` with an SDK configuration made elsewhere (region, credentials,
    /// endpoint, HTTP client).
    pub fn with_config(
        config: &aws_config::SdkConfig,
        table: &str,
        keep: SignedDuration,
    ) -> Dynamo {
        Dynamo {
            client: Client::new(config),
            table: table.to_owned(),
            keep,
        }
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

    /// Items of the query `key` sets up (index, key condition and values), in sort key
    /// order or reversed, until `each` returns false. Reads are consistent, except on an
    /// index, where DynamoDB has no consistent reads.
    async fn query(
        &self,
        key: impl Fn(QueryFluentBuilder) -> QueryFluentBuilder,
        reverse: bool,
        mut each: impl FnMut(Item) -> bool,
    ) -> Result<(), StoreError> {
        let mut start = None;
        loop {
            let q = key(self.client.query().table_name(&self.table));
            let consistent = q.get_index_name().is_none();
            let out = q
                .consistent_read(consistent)
                .scan_index_forward(!reverse)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(backend)?;
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

    /// The items of `keys` (partition keys, each with its sort key) that exist, by partition
    /// key, read consistently in one call (more if DynamoDB leaves some unprocessed).
    async fn get_many(&self, keys: &[(&str, &str)]) -> Result<HashMap<String, Item>, StoreError> {
        let mut found = HashMap::new();
        if keys.is_empty() {
            return Ok(found);
        }
        let mut wanted: Vec<Item> = keys
            .iter()
            .map(|(pk, sk)| Item::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))]))
            .collect();
        for _ in 0..ATTEMPTS {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(wanted))
                .consistent_read(true)
                .build()
                .map_err(backend)?;
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(backend)?;
            for item in out
                .responses
                .into_iter()
                .flat_map(|mut r| r.remove(&self.table))
                .flatten()
            {
                if let Some(pk) = str_of(&item, "pk") {
                    found.insert(pk.to_owned(), item);
                }
            }
            wanted = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.table))
                .map(|k| k.keys)
                .unwrap_or_default();
            if wanted.is_empty() {
                return Ok(found);
            }
        }
        Err(StoreError::Backend(
            "DynamoDB left keys unprocessed too often; retry".into(),
        ))
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
            .set_expression_attribute_values((!u.values.is_empty()).then_some(u.values))
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
        let mut rows = Vec::new();
        for id in ids {
            match self.event(id).await? {
                Some(row) if row.deliveries.iter().any(Delivery::pending) => rows.push(row),
                Some(_) => {
                    let mut u = Expr::default();
                    u.remove.push("undelivered".to_owned());
                    self.update_event(id, u).await?;
                }
                None => {}
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
            .ok_or_else(|| StoreError::NotFound(EventId(id.to_string())))?;
        Ok(Recorded {
            event: row.stored(),
            merged: bool_of(item, "merged"),
            duplicate: true,
        })
    }

    /// The cluster's `HEAD` with `history` and the version `version` (`None`: a new head).
    fn head(
        &self,
        pk: &str,
        version: Option<i64>,
        history: &[HistoryEvent],
        now: Timestamp,
    ) -> Result<TransactWriteItem, StoreError> {
        let item = Item::from([
            ("pk".to_owned(), s(pk)),
            ("sk".to_owned(), s("HEAD")),
            ("version".to_owned(), n(version.map_or(1, |v| v + 1))),
            (
                "history".to_owned(),
                s(&serde_json::to_string(history).unwrap_or_else(|_| "[]".into())),
            ),
            ("expires_at".to_owned(), self.expires(now)),
        ]);
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(match version {
                Some(_) => "version = :v",
                None => "attribute_not_exists(pk)",
            })
            .set_expression_attribute_values(
                version.map(|v| HashMap::from([(":v".to_owned(), n(v))])),
            )
            .build()
            .map_err(backend)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The put of a new event with its deliveries, in the pending index while it has any.
    fn new_event_item(&self, row: &Row, now: Timestamp) -> Result<TransactWriteItem, StoreError> {
        let mut item = row.to_item();
        for (i, d) in row.deliveries.iter().enumerate() {
            item.insert(format!("n_{i}"), n(now.as_millisecond()));
            item.insert(format!("p_{i}"), AttributeValue::Bool(true));
            if let Some(c) = d.claimed_until {
                item.insert(format!("c_{i}"), n(c.as_millisecond()));
            }
        }
        if !row.deliveries.is_empty() {
            item.insert("undelivered".into(), s("1"));
        }
        item.insert("expires_at".into(), self.expires(now));
        self.put(item, Some("attribute_not_exists(pk)"))
    }

    /// The ad-hoc windows item after `ADD n :one` (the new id) and making sure `w` exists.
    async fn maintenance_counter(&self) -> Result<(i64, Vec<Maintenance>), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s("MAINT"))
            .key("sk", s("ALL"))
            .update_expression("ADD n :one SET w = if_not_exists(w, :empty)")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":empty", AttributeValue::M(HashMap::new()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(backend)?;
        let item = out.attributes.unwrap_or_default();
        let id = num(&item, "n").ok_or(StoreError::Corrupt {
            what: "counter",
            value: String::new(),
        })?;
        Ok((id, windows_of(&item)))
    }

    /// Sets (`Some`) or removes (`None`) ad-hoc windows in the windows item.
    async fn write_windows(
        &self,
        changes: &[(i64, Option<&NewMaintenance>)],
    ) -> Result<(), StoreError> {
        let mut u = Expr::default();
        let mut names = HashMap::new();
        for (k, (id, window)) in changes.iter().enumerate() {
            names.insert(format!("#k{k}"), id.to_string());
            match window {
                Some(w) => {
                    u.value(
                        &format!(":w{k}"),
                        s(&serde_json::to_string(w).unwrap_or_default()),
                    );
                    u.set(format!("w.#k{k} = :w{k}"));
                }
                None => u.remove.push(format!("w.#k{k}")),
            }
        }
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s("MAINT"))
            .key("sk", s("ALL"))
            .update_expression(u.update())
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values((!u.values.is_empty()).then_some(u.values))
            .condition_expression("attribute_exists(w)")
            .send()
            .await
            .map_err(backend)?;
        Ok(())
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
        for _ in 0..ATTEMPTS {
            let mut read = self.get_many(&keys).await?;
            if let Some(key) = &report_key
                && let Some(item) = read.get(key)
            {
                return self.known(key, item).await;
            }
            let head = cluster.as_ref().and_then(|(pk, _)| read.remove(pk));
            let version = head.as_ref().and_then(|h| num(h, "version"));
            let mut kept: Vec<HistoryEvent> = head
                .as_ref()
                .and_then(|h| str_of(h, "history"))
                .map(serde_json::from_str)
                .transpose()
                .map_err(|_| StoreError::Corrupt {
                    what: "history",
                    value: cluster
                        .as_ref()
                        .map(|(pk, _)| pk.clone())
                        .unwrap_or_default(),
                })?
                .unwrap_or_default();
            let history: Vec<HistoryEvent> = match &cluster {
                Some((_, since)) => kept.iter().filter(|h| h.at >= *since).cloned().collect(),
                None => Vec::new(),
            };
            let mut maintenance: Vec<Maintenance> = match report.maintenance_after {
                Some(after) => read
                    .get("MAINT")
                    .map(windows_of)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|m| m.window.end > after)
                    .collect(),
                None => Vec::new(),
            };
            maintenance.sort_by_key(|m| (m.window.start, m.id));

            let mut items = Vec::new();
            let (row, merged) = match decide(&history, &maintenance) {
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
                    items.push(self.new_event_item(&row, now)?);
                    if cluster.is_some() {
                        let e = &row.event;
                        kept.push(HistoryEvent {
                            id: EventId(row.id.to_string()),
                            active: e.active.clone(),
                            previous: e.previous.clone(),
                            at: e.at,
                            flapping: e.flapping,
                        });
                    }
                    (row, false)
                }
            };
            if let Some((pk, since)) = &cluster {
                // Every write moves the version on, so a decision made on older history
                // loses; the history itself keeps what later reports may still look at.
                let floor = *since - HISTORY_SLACK;
                kept.retain(|h| h.at >= floor);
                kept.sort_by_key(|h| h.at);
                let drop = kept.len().saturating_sub(HISTORY_KEPT);
                kept.drain(..drop);
                items.push(self.head(pk, version, &kept, now)?);
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

    async fn events(&self, query: EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        let to = query.before.map_or_else(|| "9".repeat(19), |b| pad(b - 1));
        let mut found = Vec::new();
        let mut failed = None;
        let limit = query.limit as usize;
        let key = |q: QueryFluentBuilder| {
            q.key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s("EVENT"))
                .expression_attribute_values(":from", s(&pad(0)))
                .expression_attribute_values(":to", s(&to))
        };
        self.query(key, true, |item| {
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
        let (id, existing) = self.maintenance_counter().await?;
        // Windows long over are dropped as a new one comes in, as TTL drops other rows.
        let floor = window.start.min(window.end) - self.keep;
        let mut changes: Vec<(i64, Option<&NewMaintenance>)> = existing
            .iter()
            .filter(|m| m.window.end < floor)
            .map(|m| (m.id, None))
            .collect();
        changes.push((id, Some(&window)));
        self.write_windows(&changes).await?;
        Ok(Maintenance { id, window })
    }

    async fn maintenance(&self, after: Timestamp) -> Result<Vec<Maintenance>, StoreError> {
        let mut found: Vec<Maintenance> = self
            .get("MAINT", "ALL")
            .await?
            .as_ref()
            .map(windows_of)
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.window.end > after)
            .collect();
        found.sort_by_key(|m| (m.window.start, m.id));
        Ok(found)
    }

    async fn end_maintenance(&self, id: i64, now: Timestamp) -> Result<bool, StoreError> {
        let Some(mut m) = self
            .maintenance(now)
            .await?
            .into_iter()
            .find(|m| m.id == id)
        else {
            return Ok(false);
        };
        if m.window.start >= now {
            self.write_windows(&[(id, None)]).await?;
        } else {
            m.window.end = now;
            self.write_windows(&[(id, Some(&m.window))]).await?;
        }
        Ok(true)
    }
}

/// The ad-hoc windows in the windows item; an entry that does not parse is skipped, with a
/// warning.
fn windows_of(item: &Item) -> Vec<Maintenance> {
    let Some(AttributeValue::M(w)) = item.get("w") else {
        return Vec::new();
    };
    w.iter()
        .filter_map(|(id, v)| {
            let parsed = id.parse().ok().zip(
                v.as_s()
                    .ok()
                    .and_then(|json| serde_json::from_str(json).ok()),
            );
            if parsed.is_none() {
                tracing::warn!(id, "an ad-hoc window in DynamoDB does not parse; skipped");
            }
            parsed.map(|(id, window)| Maintenance { id, window })
        })
        .collect()
}
