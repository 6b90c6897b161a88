//! The shared store: PostgreSQL, for several `serve` replicas on one database.
//!
//! A small pool of connections (deadpool) with TLS by rustls as the URL's `sslmode` asks
//! ([`url`]). The numbered files of `migrations/` are applied at start under an advisory
//! lock, so replicas starting together apply each once.
//!
//! - A report is one transaction: it locks its cluster's row in `cluster_heads` (an upsert)
//!   before it reads the cluster's history, so two reports of one cluster, on any replicas,
//!   are decided one after the other on committed state. The event, its deliveries and the
//!   report are written by one statement and committed before the answer; a client id is
//!   unique per scope by a unique index, and the loser of a race on one retries and finds
//!   the winner's row. Statements of one phase are pipelined on the connection, so a report
//!   costs two round trips.
//! - The outbox: a claim is one statement (`FOR UPDATE SKIP LOCKED`, then the lease written),
//!   committed before anything is sent; an outcome is written only where the lease is still
//!   the sender's. No transaction is open while a message is sent.
//! - Every operation runs in a task of its own, so a request that goes away mid-way never
//!   leaves a connection inside a transaction, and ends with an error after
//!   [`OP_TIMEOUT`] when the database does not answer.

pub mod url;

#[cfg(feature = "throwaway")]
pub mod throwaway;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use jiff::Timestamp;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use failover_store::{
    Action, Decide, Decision, DeliveryKind, DeliveryState, DeliveryStatus, DueDelivery,
    EventDetail, EventId, EventQuery, History, HistoryEvent, Lease, Maintenance, MessageContext,
    NewEvent, NewMaintenance, NewReport, Outcome, Pruned, Recorded, Session, Store, StoreError,
    StoredEvent, StoredReport, TargetKind, Verdict, event_number, numbered_event,
};

pub use url::{UrlError, redacted};

/// Schema versions, applied in order and recorded in `schema_migrations`. Append only; never
/// edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_events_reports_deliveries_maintenance.sql"),
    include_str!("../migrations/0002_sessions.sql"),
    include_str!("../migrations/0003_reminders.sql"),
    include_str!("../migrations/0004_resolves.sql"),
];

/// The advisory lock a replica holds while it prunes ("fn-prune").
const PRUNE_LOCK: i64 = 0x666e_2d70_7275_6e65;

/// The advisory lock held while migrating (any constant; "fn-migr").
const MIGRATION_LOCK: i64 = 0x0066_6e2d_6d69_6772;

/// Longest wait for one operation (a connection from the pool included).
pub const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// How a report's transaction ended.
enum Attempt {
    Done(Box<Recorded>),
    /// Another transaction recorded the same client id first: try again, and find it.
    LostRace,
}

/// The PostgreSQL store. Cheap to clone.
#[derive(Clone)]
pub struct Postgres {
    pool: Pool,
    target: Arc<str>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL cannot be used.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The database could not be reached or migrated.
    #[error("database `{target}` cannot be used")]
    Database {
        /// The URL without its password.
        target: String,
        /// What failed.
        #[source]
        source: StoreError,
    },
    /// The database holds a schema newer than this binary knows.
    #[error(
        "database `{target}` has schema version {found}; this failover-notify knows up to \
         {known}: upgrade it (migrations are applied by the newer binary)"
    )]
    TooNew {
        /// The URL without its password.
        target: String,
        /// The database's version.
        found: i32,
        /// This binary's.
        known: usize,
    },
}

fn db(e: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Backend(Box::new(e))
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn row_ts(ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(ms).map_err(|_| StoreError::Corrupt {
        what: "time",
        value: ms.to_string(),
    })
}

fn row_state(s: String) -> Result<DeliveryState, StoreError> {
    DeliveryState::from_name(&s).ok_or(StoreError::Corrupt {
        what: "status",
        value: s,
    })
}

fn row_verdict(s: String) -> Result<Verdict, StoreError> {
    Verdict::from_name(&s).ok_or(StoreError::Corrupt {
        what: "verdict",
        value: s,
    })
}

/// A stored message context ([`MessageContext::from_json`]).
fn row_context(s: String) -> Result<MessageContext, StoreError> {
    MessageContext::from_json(&s).map_err(|_| StoreError::Corrupt {
        what: "context",
        value: s,
    })
}

fn row_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    s: String,
) -> Result<T, StoreError> {
    serde_json::from_str(&s).map_err(|_| StoreError::Corrupt { what, value: s })
}

fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

/// PostgreSQL text holds no NUL character: one in a channel's error text is replaced.
fn text(s: &str) -> String {
    s.replace('\0', "\u{fffd}")
}

impl Postgres {
    /// Connects to the database at `url` (libpq's URL form; see [`url`] for `sslmode`) with
    /// at most `pool` connections, and applies the migrations it lacks.
    ///
    /// # Errors
    /// [`OpenError`] when the URL is unusable, the database unreachable, or its schema
    /// newer than this binary's.
    pub async fn connect(url: &str, pool: usize) -> Result<Postgres, OpenError> {
        let target: Arc<str> = redacted(url).into();
        let (config, tls) = url::parse(url)?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls {
            None => Manager::from_config(config, tokio_postgres::NoTls, manager_config),
            Some(tls) => Manager::from_config(
                config,
                tokio_postgres_rustls::MakeRustlsConnect::new(tls),
                manager_config,
            ),
        };
        let timeout = Some(Duration::from_secs(5));
        let pool = Pool::builder(manager)
            .max_size(pool.max(2))
            .runtime(Runtime::Tokio1)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .build()
            .map_err(|e| OpenError::Database {
                target: target.to_string(),
                source: StoreError::Backend(Box::new(e)),
            })?;
        let store = Postgres { pool, target };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), OpenError> {
        let failed = |source| OpenError::Database {
            target: self.target.to_string(),
            source,
        };
        let client = self.pool.get().await.map_err(|e| failed(pool_error(e)))?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(|e| failed(db(e)))?;
        let applied = apply(&client).await;
        let unlocked = client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await;
        let found = applied.map_err(failed)?;
        unlocked.map_err(|e| failed(db(e)))?;
        if usize::try_from(found).is_ok_and(|f| f > MIGRATIONS.len()) {
            return Err(OpenError::TooNew {
                target: self.target.to_string(),
                found,
                known: MIGRATIONS.len(),
            });
        }
        Ok(())
    }

    /// Runs `op` with a connection from the pool, in a task of its own (it runs to its end
    /// even when the caller goes away), for at most [`OP_TIMEOUT`].
    async fn run<R, F, Fut>(&self, op: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(Object) -> Fut + Send + 'static,
        Fut: Future<Output = Result<R, StoreError>> + Send,
    {
        let pool = self.pool.clone();
        let task = tokio::spawn(async move {
            let client = pool.get().await.map_err(pool_error)?;
            op(client).await
        });
        match tokio::time::timeout(OP_TIMEOUT, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(StoreError::Closed),
            Err(_) => Err(StoreError::Backend(
                "the database did not answer in time".into(),
            )),
        }
    }
}

/// Applies the migrations the database lacks; returns its version before.
async fn apply(client: &Object) -> Result<i32, StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(db)?;
    let found: i32 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(db)?
        .get(0);
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
        if version <= found {
            continue;
        }
        let applied = async {
            client.batch_execute("BEGIN").await?;
            client.batch_execute(sql).await?;
            client
                .execute(
                    "INSERT INTO schema_migrations (version) VALUES ($1)",
                    &[&version],
                )
                .await?;
            client.batch_execute("COMMIT").await
        }
        .await;
        if let Err(e) = applied {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(db(e));
        }
        tracing::info!(version, "database migrated");
    }
    Ok(found)
}

const EVENT_COLUMNS: &str = "id, cluster, customer, active, previous, verdict, at_ms, \
    received_ms, flapping, failback_of, classification, context, channels, reports, back_by_ms, \
    reminders";

fn event_row(r: &Row) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        id: numbered_event(r.get(0)),
        event: NewEvent {
            cluster: r.get(1),
            customer: r.get(2),
            active: r.get(3),
            previous: r.get(4),
            verdict: row_verdict(r.get(5))?,
            at: row_ts(r.get(6))?,
            flapping: r.get(8),
            failback_of: r.get::<_, Option<i64>>(9).map(numbered_event),
            classification: row_json("classification", r.get(10))?,
            context: row_context(r.get(11))?,
            channels: row_json("channels", r.get(12))?,
            back_by: r.get::<_, Option<i64>>(14).map(row_ts).transpose()?,
            reminders: row_json("reminders", r.get(15))?,
        },
        received_at: row_ts(r.get(7))?,
        reports: count(r.get(13)),
        deliveries: Vec::new(),
    })
}

const DELIVERY_COLUMNS: &str =
    "event_id, id, channel, status, attempts, last_error, finished_ms, reminder, resolve";

fn delivery_row(r: &Row) -> Result<(i64, DeliveryStatus), StoreError> {
    Ok((
        r.get(0),
        DeliveryStatus {
            id: r.get(1),
            channel: r.get(2),
            status: row_state(r.get(3))?,
            attempts: count(r.get(4)),
            last_error: r.get(5),
            finished_at: r.get::<_, Option<i64>>(6).map(row_ts).transpose()?,
            reminder: r.get(7),
            resolve: r.get(8),
        },
    ))
}

/// The events with ids `ids` (in that order, missing ones left out), with their deliveries.
async fn load_events(client: &Object, ids: &[i64]) -> Result<Vec<StoredEvent>, StoreError> {
    let events = client
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE id = ANY($1)"
        ))
        .await
        .map_err(db)?;
    let deliveries = client
        .prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE event_id = ANY($1) ORDER BY id"
        ))
        .await
        .map_err(db)?;
    let ids = ids.to_vec();
    let by = [&ids as &(dyn ToSql + Sync)];
    let (events, deliveries) =
        tokio::try_join!(client.query(&events, &by), client.query(&deliveries, &by)).map_err(db)?;
    let mut by_id = std::collections::HashMap::new();
    for r in &events {
        let e = event_row(r)?;
        by_id.insert(event_number(&e.id)?, e);
    }
    for r in &deliveries {
        let (event, d) = delivery_row(r)?;
        if let Some(e) = by_id.get_mut(&event) {
            e.deliveries.push(d);
        }
    }
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

async fn load_event(client: &Object, id: i64) -> Result<StoredEvent, StoreError> {
    load_events(client, &[id])
        .await?
        .pop()
        .ok_or_else(|| StoreError::NotFound(numbered_event(id)))
}

/// Appends the report's columns after `event_id` and `merged`: scope, client id, host,
/// action, previous, resource, source, occurred, received (nine parameters).
fn push_report(values: &mut Vec<Box<dyn ToSql + Sync + Send>>, r: &NewReport) {
    values.push(Box::new(r.scope.key().to_owned()));
    values.push(Box::new(r.client_id.clone()));
    values.push(Box::new(r.host.clone()));
    values.push(Box::new(r.action.as_str().to_owned()));
    values.push(Box::new(r.previous.clone()));
    values.push(Box::new(r.resource.clone()));
    values.push(Box::new(r.source.clone()));
    values.push(Box::new(ms(r.occurred_at)));
    values.push(Box::new(ms(r.received_at)));
}

/// `INSERT INTO deliveries` of the event `from` returns (a CTE with its `id`): one per
/// element of the arrays `channels` and `reminder` (parameters, [`delivery_arrays`]), the
/// event's own due at `now` and held by `claim`, its reminders due at `back_by` (or `now`)
/// and held by nobody.
fn insert_deliveries(
    from: &str,
    now: &str,
    channels: &str,
    reminder: &str,
    claim: Option<(&str, &str)>,
    back_by: &str,
) -> String {
    let (owner, until) = claim.unwrap_or(("NULL", "NULL"));
    format!(
        "INSERT INTO deliveries (event_id, channel, created_ms, next_ms, claimed_by,
             claimed_until_ms, reminder)
         SELECT {from}.id, t.c, t.due, t.due, CASE WHEN t.r THEN NULL ELSE {owner} END,
             CASE WHEN t.r THEN NULL ELSE {until}::bigint END, t.r
         FROM {from}, LATERAL (SELECT c, r, n,
                 CASE WHEN r THEN greatest({back_by}::bigint, {now}) ELSE {now} END AS due
             FROM unnest({channels}::text[], {reminder}::bool[]) WITH ORDINALITY AS u (c, r, n)) t
         ORDER BY t.n"
    )
}

/// The channels of an event's deliveries, its own then its reminders, and which are
/// reminders.
fn delivery_arrays(e: &NewEvent) -> (Vec<String>, Vec<bool>) {
    let own = e.channels.iter().map(|c| (c.clone(), false));
    own.chain(e.reminders.iter().map(|c| (c.clone(), true)))
        .unzip()
}

/// Appends the event's `back_by_ms` and `reminders` columns.
fn push_reminders(values: &mut Vec<Box<dyn ToSql + Sync + Send>>, e: &NewEvent) {
    values.push(Box::new(e.back_by.map(ms)));
    values.push(Box::new(
        serde_json::to_string(&e.reminders).unwrap_or_else(|_| "[]".into()),
    ));
}

/// `INSERT INTO reports` of one report whose event id is `event` (an expression) and merged
/// flag `merged`, its other columns `$first` to `$first + 8` ([`push_report`]).
fn insert_report(event: &str, merged: bool, first: usize) -> String {
    let p: Vec<String> = (first..first + 9).map(|i| format!("${i}")).collect();
    format!(
        "INSERT INTO reports (event_id, merged, scope, client_id, host, action, previous,
             resource, source, occurred_ms, received_ms)
         SELECT {event}, {merged}, {}",
        p.join(", ")
    )
}

fn params(values: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    values
        .iter()
        .map(|v| v.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

fn event_params(e: &NewEvent) -> Result<Vec<Box<dyn ToSql + Sync + Send>>, StoreError> {
    Ok(vec![
        Box::new(e.active.clone()),
        Box::new(e.previous.clone()),
        Box::new(e.verdict.as_str().to_owned()),
        Box::new(ms(e.at)),
        Box::new(e.flapping),
        Box::new(e.failback_of.as_ref().map(event_number).transpose()?),
        Box::new(e.classification.to_string()),
        Box::new(e.context.to_json()),
        Box::new(serde_json::to_string(&e.channels).unwrap_or_else(|_| "[]".into())),
    ])
}

fn is(e: &tokio_postgres::Error, state: &SqlState) -> bool {
    e.code() == Some(state)
}

/// One try at recording a report on `client`, which is outside any transaction and is
/// left outside one.
async fn try_record(
    client: &Object,
    report: &NewReport,
    decide: &Mutex<Decide>,
) -> Result<Attempt, StoreError> {
    let result = record_in_transaction(client, report, decide).await;
    if !matches!(result, Ok(Attempt::Done(_))) {
        // Harmless when the transaction already ended (a warning from the server).
        let _ = client.batch_execute("ROLLBACK").await;
    }
    result
}

async fn record_in_transaction(
    client: &Object,
    report: &NewReport,
    decide: &Mutex<Decide>,
) -> Result<Attempt, StoreError> {
    let head = client
        .prepare_cached(
            "INSERT INTO cluster_heads (cluster) VALUES ($1)
             ON CONFLICT (cluster) DO UPDATE SET cluster = excluded.cluster",
        )
        .await
        .map_err(db)?;
    let earlier = client
        .prepare_cached("SELECT event_id, merged FROM reports WHERE scope = $1 AND client_id = $2")
        .await
        .map_err(db)?;
    let history = client
        .prepare_cached(
            "SELECT id, active, previous, at_ms, flapping, false, back_by_ms,
                    EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id)
             FROM events WHERE cluster = $1 AND at_ms >= $2
             UNION ALL
             SELECT NULL, NULL, NULL, NULL, NULL, true, NULL, NULL
             WHERE EXISTS (SELECT 1 FROM events WHERE cluster = $1 AND at_ms < $2)
             ORDER BY 4",
        )
        .await
        .map_err(db)?;
    let windows = client
        .prepare_cached(&format!(
            "{MAINTENANCE_SELECT} WHERE end_ms > $1 ORDER BY start_ms"
        ))
        .await
        .map_err(db)?;
    let scope = report.scope.key();
    let since = report.history.as_ref().map(|(c, s)| (c, ms(*s)));
    // One pipelined round trip: the cluster's lock first, then reads on fresh snapshots.
    let (_, _, earlier, rows, windows) = tokio::try_join!(
        client.batch_execute("BEGIN"),
        async {
            match &since {
                Some((cluster, _)) => client.execute(&head, &[cluster]).await.map(|_| ()),
                None => Ok(()),
            }
        },
        async {
            match &report.client_id {
                Some(id) => client.query_opt(&earlier, &[&scope, id]).await,
                None => Ok(None),
            }
        },
        async {
            match &since {
                Some((cluster, since)) => client.query(&history, &[cluster, since]).await,
                None => Ok(Vec::new()),
            }
        },
        async {
            match report.maintenance_after {
                Some(after) => client.query(&windows, &[&ms(after)]).await,
                None => Ok(Vec::new()),
            }
        },
    )
    .map_err(db)?;
    if let Some(row) = earlier {
        client.batch_execute("ROLLBACK").await.map_err(db)?;
        return Ok(Attempt::Done(Box::new(Recorded {
            event: load_event(client, row.get(0)).await?,
            merged: row.get(1),
            duplicate: true,
        })));
    }
    let mut history_seen = History::default();
    for r in &rows {
        if r.get::<_, bool>(5) {
            history_seen.older = true;
            continue;
        }
        history_seen.events.push(HistoryEvent {
            id: numbered_event(r.get(0)),
            active: r.get(1),
            previous: r.get(2),
            at: row_ts(r.get(3))?,
            flapping: r.get(4),
            back_by: r.get::<_, Option<i64>>(6).map(row_ts).transpose()?,
            told: r.get(7),
        });
    }
    let windows = windows
        .iter()
        .map(maintenance_row)
        .collect::<Result<Vec<_>, _>>()?;
    let decision = match decide.lock() {
        Ok(decide) => decide(&history_seen, &windows),
        Err(poisoned) => poisoned.into_inner()(&history_seen, &windows),
    };
    match decision {
        Decision::New(e) => record_new(client, report, &e).await,
        Decision::Merge(into) => record_merge(client, report, &into).await,
        Decision::Complete(into, e) => record_complete(client, report, &into, &e).await,
    }
}

/// The statement's result and the `COMMIT` after it, pipelined; a failed statement ends the
/// transaction without a commit (the server answers the `COMMIT` with a rollback).
async fn with_commit<T>(
    client: &Object,
    statement: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, tokio_postgres::Error> {
    let (result, committed) = tokio::join!(statement, client.batch_execute("COMMIT"));
    let result = result?;
    committed?;
    Ok(result)
}

async fn record_new(
    client: &Object,
    report: &NewReport,
    e: &NewEvent,
) -> Result<Attempt, StoreError> {
    let sql = format!(
        "WITH e AS (
             INSERT INTO events (active, previous, verdict, at_ms, flapping, failback_of,
                 classification, context, channels, cluster, customer, received_ms, reports,
                 back_by_ms, reminders)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $20, 1, $24, $25)
             RETURNING id),
         d AS ({}
             RETURNING id),
         r AS ({})
         SELECT e.id, coalesce((SELECT array_agg(d.id ORDER BY d.id) FROM d), '{{}}')
         FROM e",
        insert_deliveries("e", "$20", "$21", "$26", Some(("$22", "$23")), "$24"),
        insert_report("e.id", false, 12) + " FROM e"
    );
    let statement = client.prepare_cached(&sql).await.map_err(db)?;
    let mut values = event_params(e)?;
    values.push(Box::new(e.cluster.clone()));
    values.push(Box::new(e.customer.clone()));
    push_report(&mut values, report);
    let (channels, reminder) = delivery_arrays(e);
    values.push(Box::new(channels));
    let (owner, until) = match &report.claim {
        Some(l) => (Some(l.owner.clone()), Some(ms(l.until))),
        None => (None, None),
    };
    values.push(Box::new(owner));
    values.push(Box::new(until));
    push_reminders(&mut values, e);
    values.push(Box::new(reminder));
    let row = match with_commit(client, client.query_one(&statement, &params(&values))).await {
        Ok(row) => row,
        Err(err) if is(&err, &SqlState::UNIQUE_VIOLATION) => return Ok(Attempt::LostRace),
        Err(err) => return Err(db(err)),
    };
    let id: i64 = row.get(0);
    let ids: Vec<i64> = row.get(1);
    Ok(Attempt::Done(Box::new(Recorded {
        event: StoredEvent {
            id: numbered_event(id),
            event: e.clone(),
            received_at: report.received_at,
            reports: 1,
            deliveries: ids
                .into_iter()
                .zip(
                    e.channels
                        .iter()
                        .map(|c| (c, false))
                        .chain(e.reminders.iter().map(|c| (c, true))),
                )
                .map(|(id, (channel, reminder))| DeliveryStatus {
                    reminder,
                    ..DeliveryStatus::new(id, channel.clone())
                })
                .collect(),
        },
        merged: false,
        duplicate: false,
    })))
}

async fn record_merge(
    client: &Object,
    report: &NewReport,
    into: &EventId,
) -> Result<Attempt, StoreError> {
    let id = event_number(into)?;
    let sql = format!(
        "WITH r AS ({}) UPDATE events SET reports = reports + 1 WHERE id = $1
         RETURNING {EVENT_COLUMNS}",
        insert_report("$1", true, 2)
    );
    let statement = client.prepare_cached(&sql).await.map_err(db)?;
    let deliveries = client
        .prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE event_id = $1 ORDER BY id"
        ))
        .await
        .map_err(db)?;
    let mut values: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(id)];
    push_report(&mut values, report);
    let merged = with_commit(client, async {
        let (values, id) = (params(&values), [&id as &(dyn ToSql + Sync)]);
        // The first statement's error, not the second's "transaction aborted".
        let (row, deliveries) = tokio::join!(
            client.query_opt(&statement, &values),
            client.query(&deliveries, &id)
        );
        Ok((row?, deliveries?))
    })
    .await;
    let (row, deliveries) = match merged {
        Ok(rows) => rows,
        Err(err) if is(&err, &SqlState::UNIQUE_VIOLATION) => return Ok(Attempt::LostRace),
        Err(err) if is(&err, &SqlState::FOREIGN_KEY_VIOLATION) => {
            return Err(StoreError::NotFound(into.clone()));
        }
        Err(err) => return Err(db(err)),
    };
    let mut event = event_row(&row.ok_or_else(|| StoreError::NotFound(into.clone()))?)?;
    for r in &deliveries {
        event.deliveries.push(delivery_row(r)?.1);
    }
    Ok(Attempt::Done(Box::new(Recorded {
        event,
        merged: true,
        duplicate: false,
    })))
}

async fn record_complete(
    client: &Object,
    report: &NewReport,
    into: &EventId,
    e: &NewEvent,
) -> Result<Attempt, StoreError> {
    let id = event_number(into)?;
    // Unclaimed deliveries: the caller claims a merged report's deliveries itself.
    let sql = format!(
        "WITH u AS (
             UPDATE events SET active = $1, previous = $2, verdict = $3, at_ms = $4,
                 flapping = $5, failback_of = $6, classification = $7, context = $8,
                 channels = $9, reports = reports + 1, back_by_ms = $21, reminders = $22
             WHERE id = $10 AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_id = $10)
             RETURNING id),
         d AS ({}),
         r AS ({} FROM u)
         SELECT id FROM u",
        insert_deliveries("u", "$19", "$20", "$23", None, "$21"),
        insert_report("u.id", true, 11)
    );
    let statement = client.prepare_cached(&sql).await.map_err(db)?;
    let mut values = event_params(e)?;
    values.push(Box::new(id));
    push_report(&mut values, report);
    let (channels, reminder) = delivery_arrays(e);
    values.push(Box::new(channels));
    push_reminders(&mut values, e);
    values.push(Box::new(reminder));
    match with_commit(client, client.query_opt(&statement, &params(&values))).await {
        Ok(Some(_)) => {}
        Ok(None) => return Err(StoreError::NotFound(into.clone())),
        Err(err) if is(&err, &SqlState::UNIQUE_VIOLATION) => return Ok(Attempt::LostRace),
        Err(err) => return Err(db(err)),
    }
    Ok(Attempt::Done(Box::new(Recorded {
        event: load_event(client, id).await?,
        merged: true,
        duplicate: false,
    })))
}

async fn record(
    client: &Object,
    report: &NewReport,
    decide: Decide,
) -> Result<Recorded, StoreError> {
    // Called between awaits only; the lock makes it shareable across them.
    let decide = Mutex::new(decide);
    // A lost race on a client id means the other report is committed: the next try finds it.
    for _ in 0..3 {
        if let Attempt::Done(recorded) = try_record(client, report, &decide).await? {
            return Ok(*recorded);
        }
    }
    Err(StoreError::Backend(
        "a client id was recorded concurrently but cannot be read back".into(),
    ))
}

/// The reports of event `id`, in the order received.
async fn reports_of(client: &Object, id: i64) -> Result<Vec<StoredReport>, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT host, action, previous, resource, source, client_id, occurred_ms,
                    received_ms
             FROM reports WHERE event_id = $1 ORDER BY id",
        )
        .await
        .map_err(db)?;
    client
        .query(&statement, &[&id])
        .await
        .map_err(db)?
        .iter()
        .map(|r| {
            Ok(StoredReport {
                host: r.get(0),
                action: {
                    let a: String = r.get(1);
                    Action::from_name(&a).ok_or(StoreError::Corrupt {
                        what: "action",
                        value: a,
                    })?
                },
                previous: r.get(2),
                resource: r.get(3),
                source: r.get(4),
                client_id: r.get(5),
                occurred_at: row_ts(r.get(6))?,
                received_at: row_ts(r.get(7))?,
            })
        })
        .collect()
}

async fn events(client: &Object, q: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
    // No stored text holds a NUL (PostgreSQL refuses one), so such a filter matches nothing.
    let texts = q.cluster.iter().chain(q.customers.iter().flatten());
    if texts.into_iter().any(|t| t.contains('\0')) {
        return Ok(Vec::new());
    }
    let mut sql = "SELECT id FROM events WHERE true".to_owned();
    let mut values: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut arg = |sql: &mut String, clause: &str, v: Box<dyn ToSql + Sync + Send>| {
        values.push(v);
        sql.push_str(&format!(" AND {clause}${}", values.len()));
    };
    if let Some(c) = &q.cluster {
        arg(&mut sql, "cluster = ", Box::new(c.clone()));
    }
    if let Some(v) = q.verdict {
        arg(&mut sql, "verdict = ", Box::new(v.as_str().to_owned()));
    }
    if let Some(t) = q.since {
        arg(&mut sql, "at_ms >= ", Box::new(ms(t)));
    }
    if let Some(b) = q.before {
        arg(&mut sql, "id < ", Box::new(b));
    }
    if let Some(customers) = &q.customers {
        arg(&mut sql, "customer = ANY(", Box::new(customers.clone()));
        sql.push(')');
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", q.limit.max(1)));
    let ids: Vec<i64> = client
        .query(&sql, &params(&values))
        .await
        .map_err(db)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    load_events(client, &ids).await
}

/// The deliveries a claim returned, with what their channels need, by due time.
fn claimed(rows: &[Row]) -> Result<Vec<DueDelivery>, StoreError> {
    let mut due = rows
        .iter()
        .map(|r| {
            Ok((
                r.get::<_, i64>(9),
                DueDelivery {
                    id: r.get(0),
                    channel: r.get(1),
                    attempts: count(r.get(2)),
                    created_at: row_ts(r.get(3))?,
                    event: numbered_event(r.get(4)),
                    verdict: row_verdict(r.get(5))?,
                    kind: DeliveryKind::from_flags(r.get(10), r.get(11)),
                    cluster: r.get(6),
                    customer: r.get(7),
                    context: row_context(r.get(8))?,
                },
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    due.sort_by_key(|(next, d)| (*next, d.id));
    Ok(due.into_iter().map(|(_, d)| d).collect())
}

/// Takes the lease on the deliveries `which` selects (`$1` = now) and returns them: one
/// statement, committed before anything is sent. Rows another claim is taking are skipped.
async fn claim(
    client: &Object,
    which: &str,
    values: &[&(dyn ToSql + Sync)],
) -> Result<Vec<DueDelivery>, StoreError> {
    let sql = format!(
        "WITH due AS (
             SELECT id FROM deliveries
             WHERE status = 'pending' AND (claimed_until_ms IS NULL OR claimed_until_ms <= $1)
                 AND {which}
             FOR UPDATE SKIP LOCKED)
         UPDATE deliveries d SET claimed_by = $3, claimed_until_ms = $4
         FROM due, events e WHERE d.id = due.id AND e.id = d.event_id
         RETURNING d.id, d.channel, d.attempts, d.created_ms, e.id, e.verdict, e.cluster,
                   e.customer, e.context, d.next_ms, d.reminder, d.resolve"
    );
    let statement = client.prepare_cached(&sql).await.map_err(db)?;
    claimed(&client.query(&statement, values).await.map_err(db)?)
}

async fn finish(
    client: &Object,
    owner: &str,
    outcomes: &[(i64, Outcome)],
    now: Timestamp,
) -> Result<(), StoreError> {
    let statement = client
        .prepare_cached(
            "UPDATE deliveries d SET claimed_by = NULL, claimed_until_ms = NULL,
                 attempts = d.attempts + 1, status = o.status,
                 next_ms = coalesce(o.next_ms, d.next_ms),
                 last_error = coalesce(o.error, d.last_error), finished_ms = o.finished
             FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::bigint[])
                 AS o (id, status, next_ms, error, finished)
             WHERE d.id = o.id AND d.status = 'pending'
                 AND (d.claimed_by IS NULL OR d.claimed_by = $6)
             RETURNING d.id",
        )
        .await
        .map_err(db)?;
    let (mut ids, mut states, mut nexts, mut errors, mut finished) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (id, outcome) in outcomes {
        let (state, next, error, done) = match outcome {
            Outcome::Delivered => (DeliveryState::Delivered, None, None, Some(ms(now))),
            Outcome::Retry { at, error } => (
                DeliveryState::Pending,
                Some(ms(*at)),
                Some(text(error)),
                None,
            ),
            Outcome::Failed { error } => (
                DeliveryState::Failed,
                None,
                Some(text(error)),
                Some(ms(now)),
            ),
            Outcome::Cancelled { reason } => (
                DeliveryState::Cancelled,
                None,
                Some(text(reason)),
                Some(ms(now)),
            ),
        };
        ids.push(*id);
        states.push(state.as_str());
        nexts.push(next);
        errors.push(error);
        finished.push(done);
    }
    let recorded: std::collections::HashSet<i64> = client
        .query(
            &statement,
            &[&ids, &states, &nexts, &errors, &finished, &owner],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for id in ids.iter().filter(|id| !recorded.contains(id)) {
        tracing::warn!(
            delivery = id,
            "outcome not recorded: the delivery is no longer this sender's"
        );
    }
    Ok(())
}

const MAINTENANCE_SELECT: &str = "SELECT id, target_kind, target, customer, start_ms, end_ms, \
    reason, created_by FROM maintenance";

fn maintenance_row(r: &Row) -> Result<Maintenance, StoreError> {
    let kind: String = r.get(1);
    Ok(Maintenance {
        id: r.get(0),
        window: NewMaintenance {
            target_kind: TargetKind::from_name(&kind).ok_or(StoreError::Corrupt {
                what: "target_kind",
                value: kind,
            })?,
            target: r.get(2),
            customer: r.get(3),
            start: row_ts(r.get(4))?,
            end: row_ts(r.get(5))?,
            reason: r.get(6),
            created_by: r.get(7),
        },
    })
}

impl Store for Postgres {
    async fn record(&self, report: NewReport, decide: Decide) -> Result<Recorded, StoreError> {
        self.run(move |client| async move { record(&client, &report, decide).await })
            .await
    }

    async fn event(&self, id: &EventId) -> Result<Option<EventDetail>, StoreError> {
        let Ok(id) = event_number(id) else {
            return Ok(None);
        };
        self.run(move |client| async move {
            let (event, received) = tokio::join!(load_event(&client, id), reports_of(&client, id));
            match event {
                Ok(event) => Ok(Some(EventDetail {
                    event,
                    received: received?,
                })),
                Err(StoreError::NotFound(_)) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn events(&self, query: EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        self.run(move |client| async move { events(&client, &query).await })
            .await
    }

    async fn claim_due(
        &self,
        lease: &Lease,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let lease = lease.clone();
        self.run(move |client| async move {
            claim(
                &client,
                "next_ms <= $1 ORDER BY next_ms LIMIT $2",
                &[&ms(now), &i64::from(limit), &lease.owner, &ms(lease.until)],
            )
            .await
        })
        .await
    }

    async fn finish(
        &self,
        owner: &str,
        outcomes: Vec<(i64, Outcome)>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let owner = owner.to_owned();
        self.run(move |client| async move { finish(&client, &owner, &outcomes, now).await })
            .await
    }

    async fn claim_event(
        &self,
        event: &EventId,
        lease: &Lease,
        now: Timestamp,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let Ok(event) = event_number(event) else {
            return Ok(Vec::new());
        };
        let lease = lease.clone();
        self.run(move |client| async move {
            claim(
                &client,
                "event_id = $2 AND NOT reminder",
                &[&ms(now), &event, &lease.owner, &ms(lease.until)],
            )
            .await
        })
        .await
    }

    async fn pending_of(&self, channel: &str) -> Result<Vec<i64>, StoreError> {
        let channel = channel.to_owned();
        self.run(move |client| async move {
            Ok(client
                .query(
                    "SELECT id FROM deliveries WHERE status = 'pending' AND channel = $1",
                    &[&channel],
                )
                .await
                .map_err(db)?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })
        .await
    }

    async fn release(&self, owner: &str) -> Result<u64, StoreError> {
        let owner = owner.to_owned();
        self.run(move |client| async move {
            client
                .execute(
                    "UPDATE deliveries SET claimed_by = NULL, claimed_until_ms = NULL
                     WHERE claimed_by = $1 AND status = 'pending'",
                    &[&owner],
                )
                .await
                .map_err(db)
        })
        .await
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.run(|client| async move {
            let next: Option<i64> = client
                .query_one(
                    "SELECT min(greatest(next_ms, coalesce(claimed_until_ms, next_ms)))
                     FROM deliveries WHERE status = 'pending'",
                    &[],
                )
                .await
                .map_err(db)?
                .get(0);
            next.map(row_ts).transpose()
        })
        .await
    }

    /// Pending only, counted on the partial index of pending deliveries: `/healthz` and
    /// `/metrics` ask on every probe, and counting the delivered would read the whole table.
    async fn delivery_counts(&self) -> Result<Vec<(DeliveryState, u64)>, StoreError> {
        self.run(|client| async move {
            let n: i64 = client
                .query_one(
                    "SELECT count(*) FROM deliveries WHERE status = 'pending'",
                    &[],
                )
                .await
                .map_err(db)?
                .get(0);
            Ok(vec![(
                DeliveryState::Pending,
                u64::try_from(n).unwrap_or(0),
            )])
        })
        .await
    }

    async fn add_maintenance(&self, w: NewMaintenance) -> Result<Maintenance, StoreError> {
        self.run(move |client| async move {
            let row = client
                .query_one(
                    "INSERT INTO maintenance (target_kind, target, customer, start_ms, end_ms,
                         reason, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                    &[
                        &w.target_kind.as_str(),
                        &w.target,
                        &w.customer,
                        &ms(w.start),
                        &ms(w.end),
                        &w.reason,
                        &w.created_by,
                    ],
                )
                .await
                .map_err(db)?;
            Ok(Maintenance {
                id: row.get(0),
                window: w,
            })
        })
        .await
    }

    async fn maintenance(&self, after: Timestamp) -> Result<Vec<Maintenance>, StoreError> {
        self.run(move |client| async move {
            client
                .query(
                    &format!("{MAINTENANCE_SELECT} WHERE end_ms > $1 ORDER BY start_ms"),
                    &[&ms(after)],
                )
                .await
                .map_err(db)?
                .iter()
                .map(maintenance_row)
                .collect()
        })
        .await
    }

    async fn end_maintenance(&self, id: i64, now: Timestamp) -> Result<bool, StoreError> {
        self.run(move |client| async move {
            // One that has not started is removed; an open one ends now.
            let changed: i64 = client
                .query_one(
                    "WITH removed AS (
                         DELETE FROM maintenance WHERE id = $1 AND start_ms >= $2 RETURNING id),
                     ended AS (
                         UPDATE maintenance SET end_ms = $2
                         WHERE id = $1 AND start_ms < $2 AND end_ms > $2 RETURNING id)
                     SELECT (SELECT count(*) FROM removed) + (SELECT count(*) FROM ended)",
                    &[&id, &ms(now)],
                )
                .await
                .map_err(db)?
                .get(0);
            Ok(changed > 0)
        })
        .await
    }

    async fn resend(
        &self,
        event: &EventId,
        delivery: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let Ok(event) = event_number(event) else {
            return Ok(false);
        };
        self.run(move |client| async move {
            let changed = client
                .execute(
                    "UPDATE deliveries SET status = 'pending', next_ms = $3, created_ms = $3,
                         finished_ms = NULL, claimed_by = NULL, claimed_until_ms = NULL
                     WHERE id = $1 AND event_id = $2 AND status = 'failed'",
                    &[&delivery, &event, &ms(now)],
                )
                .await
                .map_err(db)?;
            Ok(changed > 0)
        })
        .await
    }

    async fn add_resolves(
        &self,
        event: &EventId,
        channels: &[String],
        now: Timestamp,
    ) -> Result<Vec<DeliveryStatus>, StoreError> {
        let Ok(event) = event_number(event) else {
            return Ok(Vec::new());
        };
        let channels = channels.to_vec();
        self.run(move |client| async move {
            let rows = client
                .query(
                    "INSERT INTO deliveries (event_id, channel, created_ms, next_ms, resolve)
                     SELECT e.id, u.c, $3, $3, true
                     FROM events e, unnest($2::text[]) WITH ORDINALITY AS u (c, n)
                     WHERE e.id = $1 ORDER BY u.n
                     ON CONFLICT DO NOTHING
                     RETURNING id, channel",
                    &[&event, &channels, &ms(now)],
                )
                .await
                .map_err(db)?;
            let mut added: Vec<DeliveryStatus> = rows
                .iter()
                .map(|r| DeliveryStatus::resolving(r.get(0), r.get(1)))
                .collect();
            added.sort_by_key(|d| d.id);
            Ok(added)
        })
        .await
    }

    async fn add_session(&self, s: Session, now: Timestamp) -> Result<(), StoreError> {
        self.run(move |client| async move {
            client
                .execute(
                    "WITH gone AS (DELETE FROM sessions WHERE expires_ms <= $5)
                     INSERT INTO sessions (token_hash, key_name, key_check, expires_ms)
                     VALUES ($1, $2, $3, $4)",
                    &[
                        &s.token_hash,
                        &s.key,
                        &s.key_check,
                        &ms(s.expires),
                        &ms(now),
                    ],
                )
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.run(move |client| async move {
            let row = client
                .query_opt(
                    "SELECT key_name, key_check, expires_ms FROM sessions
                     WHERE token_hash = $1 AND expires_ms > $2",
                    &[&token_hash, &ms(now)],
                )
                .await
                .map_err(db)?;
            row.map(|r| {
                Ok(Session {
                    key: r.get(0),
                    key_check: r.get(1),
                    expires: row_ts(r.get(2))?,
                    token_hash,
                })
            })
            .transpose()
        })
        .await
    }

    async fn end_session(&self, token_hash: &str) -> Result<(), StoreError> {
        let token_hash = token_hash.to_owned();
        self.run(move |client| async move {
            client
                .execute("DELETE FROM sessions WHERE token_hash = $1", &[&token_hash])
                .await
                .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn prune(
        &self,
        before: Timestamp,
        now: Timestamp,
        batch: u32,
    ) -> Result<Pruned, StoreError> {
        let limit = i64::from(batch);
        self.run(move |client| async move {
            // One statement, so one short transaction; the lock is released at its end. A
            // replica that does not get it deletes nothing: one prunes at a time.
            let row = client
                .query_one(
                    "WITH lock AS (SELECT pg_try_advisory_xact_lock($4) AS got),
                     doomed AS (
                         SELECT e.id FROM events e
                         WHERE (SELECT got FROM lock) AND e.at_ms < $1
                           AND NOT EXISTS (SELECT 1 FROM deliveries d
                                           WHERE d.event_id = e.id AND d.status = 'pending')
                         ORDER BY e.id LIMIT $3 FOR UPDATE SKIP LOCKED),
                     r AS (DELETE FROM reports WHERE event_id IN (SELECT id FROM doomed)),
                     d AS (DELETE FROM deliveries WHERE event_id IN (SELECT id FROM doomed)),
                     e AS (DELETE FROM events WHERE id IN (SELECT id FROM doomed) RETURNING 1),
                     s AS (DELETE FROM sessions WHERE ctid IN (
                         SELECT ctid FROM sessions
                         WHERE (SELECT got FROM lock) AND expires_ms < $2 LIMIT $3)
                         RETURNING 1),
                     m AS (DELETE FROM maintenance WHERE id IN (
                         SELECT id FROM maintenance
                         WHERE (SELECT got FROM lock) AND end_ms < $1 LIMIT $3)
                         RETURNING 1)
                     SELECT (SELECT count(*) FROM e), (SELECT count(*) FROM s),
                            (SELECT count(*) FROM m)",
                    &[&ms(before), &ms(now), &limit, &PRUNE_LOCK],
                )
                .await
                .map_err(db)?;
            let n = |i: usize| row.get::<_, i64>(i).unsigned_abs();
            Ok(Pruned {
                events: n(0),
                sessions: n(1),
                windows: n(2),
            })
        })
        .await
    }

    async fn end_sessions_except(&self, keep: &[(String, String)]) -> Result<u64, StoreError> {
        let (names, checks): (Vec<String>, Vec<String>) = keep.iter().cloned().unzip();
        self.run(move |client| async move {
            client
                .execute(
                    "DELETE FROM sessions s WHERE NOT EXISTS (
                         SELECT 1 FROM unnest($1::text[], $2::text[]) AS k(name, checked)
                         WHERE k.name = s.key_name AND k.checked = s.key_check)",
                    &[&names, &checks],
                )
                .await
                .map_err(db)
        })
        .await
    }
}
