//! The DynamoDB backend of [`Store`](failover_store::Store), for the AWS Lambda deployment: no server to run, and
//! any number of concurrent function instances share one table.
//!
//! # Table
//! One table, on-demand, with a string partition key `pk`, a string sort key `sk`, TTL on
//! `expires_at` (epoch seconds), and three global secondary indexes, all with sort key `sk`:
//! [`PENDING_INDEX`] (partition key `undelivered`, keys only), [`CLUSTER_INDEX`]
//! (`cluster_key`, all attributes) and [`CUSTOMER_INDEX`] (`customer_key`, all attributes).
//! `deploy/cloudformation.yaml` defines it; the tests create theirs from that template.
//! Items:
//!
//! | pk | sk | what |
//! |---|---|---|
//! | `EVENT` | id, zero-padded | an event and its deliveries (attributes per delivery, below); `undelivered` while it may have pending deliveries (removed lazily), which puts it in the sparse index; `cluster_key` and `customer_key`, its cluster's and customer's names, which put it in the listing indexes |
//! | `CLUSTER#name` | `HEAD` | the cluster's `history` (its recent events as JSON, for merging, flapping and failback), `last_at` (when the newest of them happened, epoch ms), `older` (the cluster has events the history no longer holds) and `version` (a random token, new with every write); no TTL, so a cluster outlives its events |
//! | `REPORT#scope#client id` | `-` | a client id already recorded, for idempotent retries |
//! | `SESSION` | token hash | a dashboard session: `key` (the key's name), `key_check`, `expires_ms`; TTL at its end |
//! | `MAINT` | `ALL` | the ad-hoc windows (`w`, a map from id to JSON), `n` (the last id, moved on by every write) and `ends_by` (just past the latest end, epoch ms) |
//!
//! Recording a report first decides on no history and no ad-hoc windows, without reading,
//! and writes the new event in one transaction with the cluster's `HEAD`, on the conditions
//! that made that decision right: the `HEAD` exists (the cluster has older events) and holds
//! no event since the report's look-back plus a day (`last_at`), and no ad-hoc window ends
//! after the instant the report asks about (`ends_by`, a condition check on the windows
//! item). That is a cluster's first failover in
//! a while, the common case, and it costs one call. Otherwise (the other node's report of the
//! same failover, a flapping cluster, a window, a known client id, a cluster's first report)
//! it reads what it needs in
//! one consistent `BatchGetItem` (the `HEAD`, the ad-hoc windows, the client id), decides
//! again, and writes on the condition that the `HEAD`'s `version` is the one read; a lost
//! race reads again and decides again, so two reports of one failover that arrive at once
//! still become one event. The history keeps the events since the report's look-back plus a
//! day (for reports spooled on a node and sent late), at most [`HISTORY_KEPT`] of them. The
//! ad-hoc windows share one item (DynamoDB's 400 KB item limit: about 1,500 windows), so a
//! report reads them with its history in the same call; adding or ending one rewrites the
//! item on the condition that `n` is the one read. Failovers are rare, so the `EVENT`
//! partition stays far below DynamoDB's per-partition limits.
//!
//! Event ids are the millisecond of receipt × 100 plus a random number below 100 (the put is
//! conditional, so a collision just draws again): ordered by time, no counter round trip. A
//! delivery's id is `event id × 1000 + its position i`, so an outcome finds its event; its
//! state lives in the event item as `ch_i` (channel), `st_i` (status), `a_i` (attempts),
//! `e_i` (last error), `f_i` (finished at), `n_i` (next attempt, ms), `c_i` (claimed until,
//! ms), `o_i` (the claim's owner), `r_i` (when it was sent again after failing, ms: its
//! give-up clock starts there) and `k_i` (`not-back` for a reminder, due at the event's
//! `back_by`, after its own deliveries); it is pending until it has a status. The event's
//! reports are `rl`, a list of JSON strings, appended to by each report merged into it. A claim and an outcome each update only those
//! attributes, so they need no read and never overwrite each other.
//!
//! # Layout
//! - this file: the table, its settings, and the calls every operation uses
//! - `item`: how events, deliveries and ad-hoc windows are written as items
//! - `record`: recording a report (the decision, the transaction, and the read when needed)
//! - `store`: the rest of [`Store`](failover_store::Store): listing, the outbox, ad-hoc windows

mod item;
mod record;
mod store;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::item::{Expr, Item, Row, backend, n, pad, s, str_of};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem};
use failover_store::StoreError;
use jiff::{SignedDuration, Timestamp};

/// Deliveries per event at most (delivery ids are `event × 1000 + position`).
const PER_EVENT: i64 = 1000;
/// Lost races retried before giving up.
const ATTEMPTS: usize = 8;
/// Keys a `BatchGetItem` may ask for.
const BATCH_GET: usize = 100;
/// The sparse index of events that may have pending deliveries.
pub const PENDING_INDEX: &str = "pending";
/// The index of events by cluster and id (time), for listing one cluster's events.
pub const CLUSTER_INDEX: &str = "by_cluster";
/// The index of events by customer and id (time), for a customer's key's listing.
pub const CUSTOMER_INDEX: &str = "by_customer";
/// An event's cluster name: the partition key of [`CLUSTER_INDEX`].
const CLUSTER_KEY: &str = "cluster_key";
/// An event's customer name: the partition key of [`CUSTOMER_INDEX`].
const CUSTOMER_KEY: &str = "customer_key";
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
    calls: Calls,
}

/// DynamoDB requests sent (retries included), by operation (`Query`, `TransactWriteItems`):
/// what a deployment pays for, counted where the SDK sends them.
#[derive(Debug, Clone, Default)]
struct Calls(Arc<Mutex<BTreeMap<String, u64>>>);

impl Intercept for Calls {
    fn name(&self) -> &'static str {
        "failover-dynamodb-calls"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // `X-Amz-Target: DynamoDB_20120810.Query`
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("?");
        let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
        if let Ok(mut calls) = self.0.lock() {
            *calls.entry(operation).or_default() += 1;
        }
        Ok(())
    }
}

impl Dynamo {
    /// A store on `table` with `config` (region, credentials, endpoint, HTTP client; the
    /// Lambda entry uses `failover_channels::aws::sdk_config`). Rows expire `keep` after they
    /// are written (DynamoDB TTL).
    pub fn with_config(
        config: &aws_config::SdkConfig,
        table: &str,
        keep: SignedDuration,
    ) -> Dynamo {
        let calls = Calls::default();
        let client = aws_sdk_dynamodb::config::Builder::from(config)
            .interceptor(calls.clone())
            .build();
        Dynamo {
            client: Client::from_conf(client),
            table: table.to_owned(),
            keep,
            calls,
        }
    }

    /// The requests this store (and its clones) sent so far, by operation.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.calls.0.lock().map(|c| c.clone()).unwrap_or_default()
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
        let items = self.get_items(keys).await?;
        Ok(items
            .into_iter()
            .filter_map(|item| Some((str_of(&item, "pk")?.to_owned(), item)))
            .collect())
    }

    /// The items of `keys` that exist, read consistently, [`BATCH_GET`] keys a call (more
    /// calls if DynamoDB leaves some unprocessed).
    async fn get_items(&self, keys: &[(&str, &str)]) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::new();
        for chunk in keys.chunks(BATCH_GET) {
            let mut wanted: Vec<Item> = chunk
                .iter()
                .map(|(pk, sk)| Item::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))]))
                .collect();
            let mut attempts = 0;
            while !wanted.is_empty() {
                attempts += 1;
                if attempts > ATTEMPTS {
                    return Err(StoreError::Backend(
                        "DynamoDB left keys unprocessed too often; retry".into(),
                    ));
                }
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
                found.extend(
                    out.responses
                        .into_iter()
                        .flat_map(|mut r| r.remove(&self.table))
                        .flatten(),
                );
                wanted = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
            }
        }
        Ok(found)
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
}
