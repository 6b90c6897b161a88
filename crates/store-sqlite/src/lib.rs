//! The embedded store: SQLite in WAL mode with `synchronous = FULL`.
//!
//! One writer thread owns the only write connection. Writes are closures sent to it; it
//! runs every closure waiting in its queue inside one transaction (each in its own
//! savepoint, so one failure spoils only itself), commits once, and only then answers the
//! callers. Concurrent reports therefore share one fsync (group commit). Reads use a small
//! pool of read connections on blocking threads; WAL lets them run beside the writer.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row, params};
use tokio::sync::oneshot;

use failover_store::{
    Action, Decide, Decision, DeliveryKind, DeliveryState, DeliveryStatus, DueDelivery,
    EventDetail, EventId, EventQuery, History, HistoryEvent, Lease, Maintenance, MessageContext,
    NewEvent, NewMaintenance, NewReport, Outcome, Pruned, Recorded, Session, Store, StoreError,
    StoredEvent, StoredReport, TargetKind, Verdict, event_number, numbered_event,
};

/// Most closures committed together.
const MAX_GROUP: usize = 1024;

/// Schema versions, applied in order and recorded in `PRAGMA user_version`: the numbered
/// files of `migrations/`. Append only; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_events_reports_deliveries_maintenance.sql"),
    include_str!("../migrations/0002_delivery_leases.sql"),
    include_str!("../migrations/0003_sessions.sql"),
    include_str!("../migrations/0004_reminders.sql"),
    include_str!("../migrations/0005_resolves.sql"),
];

type Reply = Box<dyn FnOnce(bool) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Reply + Send>;

/// The SQLite store. Cheap to clone; the writer thread stops when the last clone is dropped.
#[derive(Clone)]
pub struct Sqlite {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: Mutex<mpsc::Sender<Job>>,
    readers: Mutex<Vec<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqlite")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(db)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000;",
    )
    .map_err(db)?;
    Ok(conn)
}

impl Sqlite {
    /// Opens (creating if needed) the database at `path`, applies migrations, and ends the
    /// leases left by a previous process: an embedded database has one `serve`, so a lease
    /// it did not take is one whose holder has died.
    ///
    /// # Errors
    /// [`StoreError`] when the file cannot be opened or migrated.
    pub fn open(path: impl Into<PathBuf>) -> Result<Sqlite, StoreError> {
        let path = path.into();
        let conn = open(&path)?;
        let version: usize = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(db)?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            conn.execute_batch(&format!(
                "BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;",
                i + 1
            ))
            .map_err(db)?;
        }
        conn.execute(
            "UPDATE deliveries SET claimed_by = NULL, claimed_until_ms = NULL
             WHERE claimed_by IS NOT NULL",
            [],
        )
        .map_err(db)?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer(&conn, &rx))
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(Sqlite {
            inner: Arc::new(Inner {
                jobs: Mutex::new(tx),
                readers: Mutex::new(Vec::new()),
                path,
            }),
        })
    }

    /// Runs `f` in the next group transaction; resolves once that transaction is durable.
    async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = savepoint(conn, f);
            Box::new(move |committed| {
                let _ = tx.send(if committed {
                    result
                } else {
                    Err(StoreError::Closed)
                });
            })
        });
        self.inner
            .jobs
            .lock()
            .map_err(|_| StoreError::Closed)?
            .send(job)
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on a read connection on a blocking thread.
    async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().ok().and_then(|mut p| p.pop());
            let conn = match pooled {
                Some(c) => c,
                None => open(&inner.path)?,
            };
            let result = f(&conn);
            if let Ok(mut pool) = inner.readers.lock() {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}

fn savepoint<R>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<R, StoreError>,
) -> Result<R, StoreError> {
    conn.execute_batch("SAVEPOINT job").map_err(db)?;
    let result = f(conn);
    let end = if result.is_ok() {
        "RELEASE job"
    } else {
        "ROLLBACK TO job; RELEASE job"
    };
    conn.execute_batch(end).map_err(db)?;
    result
}

fn writer(conn: &Connection, jobs: &mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            tracing::error!(error = ?e, "cannot begin a transaction");
            first(conn)(false);
            continue;
        }
        let mut replies = vec![first(conn)];
        while replies.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => replies.push(job(conn)),
                Err(_) => break,
            }
        }
        let committed = match conn.execute_batch("COMMIT") {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = ?e, "commit failed");
                let _ = conn.execute_batch("ROLLBACK");
                false
            }
        };
        for reply in replies {
            reply(committed);
        }
    }
}

const EVENT_COLUMNS: &str = "SELECT id, cluster, customer, active, previous, verdict, at_ms,
    received_ms, flapping, failback_of, classification, context, channels, reports, back_by_ms,
    reminders FROM events";

fn load_event(conn: &Connection, id: i64) -> Result<StoredEvent, StoreError> {
    let event = conn
        .prepare_cached(&format!("{EVENT_COLUMNS} WHERE id = ?1"))
        .map_err(db)?
        .query_row([id], event_row)
        .optional()
        .map_err(db)?
        .ok_or_else(|| StoreError::NotFound(numbered_event(id)))?;
    with_deliveries(conn, event)
}

fn with_deliveries(conn: &Connection, mut event: StoredEvent) -> Result<StoredEvent, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, channel, status, attempts, last_error, finished_ms, reminder, resolve
             FROM deliveries WHERE event_id = ?1 ORDER BY id",
        )
        .map_err(db)?;
    event.deliveries = stmt
        .query_map([event_number(&event.id)?], |r| {
            Ok(DeliveryStatus {
                id: r.get(0)?,
                channel: r.get(1)?,
                status: row_state(r.get(2)?)?,
                attempts: r.get(3)?,
                last_error: r.get(4)?,
                finished_at: r.get::<_, Option<i64>>(5)?.map(row_ts).transpose()?,
                reminder: r.get(6)?,
                resolve: r.get(7)?,
            })
        })
        .and_then(Iterator::collect)
        .map_err(db)?;
    Ok(event)
}

fn corrupt(what: &'static str, value: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        Box::new(StoreError::Corrupt { what, value }),
    )
}

fn row_ts(ms: i64) -> rusqlite::Result<Timestamp> {
    Timestamp::from_millisecond(ms).map_err(|_| corrupt("time", ms.to_string()))
}

fn row_state(s: String) -> rusqlite::Result<DeliveryState> {
    DeliveryState::from_name(&s).ok_or_else(|| corrupt("status", s))
}

fn row_verdict(s: String) -> rusqlite::Result<Verdict> {
    Verdict::from_name(&s).ok_or_else(|| corrupt("verdict", s))
}

/// A stored message context ([`MessageContext::from_json`]).
fn row_context(s: String) -> rusqlite::Result<MessageContext> {
    MessageContext::from_json(&s).map_err(|_| corrupt("context", s))
}

fn row_json<T: serde::de::DeserializeOwned>(what: &'static str, s: String) -> rusqlite::Result<T> {
    serde_json::from_str(&s).map_err(|_| corrupt(what, s))
}

fn event_row(r: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        id: numbered_event(r.get(0)?),
        event: NewEvent {
            cluster: r.get(1)?,
            customer: r.get(2)?,
            active: r.get(3)?,
            previous: r.get(4)?,
            verdict: row_verdict(r.get(5)?)?,
            at: row_ts(r.get(6)?)?,
            flapping: r.get(8)?,
            failback_of: r.get::<_, Option<i64>>(9)?.map(numbered_event),
            classification: row_json("classification", r.get(10)?)?,
            context: row_context(r.get(11)?)?,
            channels: row_json("channels", r.get(12)?)?,
            back_by: r.get::<_, Option<i64>>(14)?.map(row_ts).transpose()?,
            reminders: row_json("reminders", r.get(15)?)?,
        },
        received_at: row_ts(r.get(7)?)?,
        reports: r.get(13)?,
        deliveries: Vec::new(),
    })
}

fn record(conn: &Connection, report: &NewReport, decide: Decide) -> Result<Recorded, StoreError> {
    if let Some(client_id) = &report.client_id {
        let earlier: Option<(i64, bool)> = conn
            .prepare_cached(
                "SELECT event_id, merged FROM reports WHERE scope = ?1 AND client_id = ?2",
            )
            .map_err(db)?
            .query_row(params![report.scope.key(), client_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(db)?;
        if let Some((id, merged)) = earlier {
            return Ok(Recorded {
                event: load_event(conn, id)?,
                merged,
                duplicate: true,
            });
        }
    }
    let mut history = History::default();
    if let Some((cluster, since)) = &report.history {
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, active, previous, at_ms, flapping, back_by_ms,
                        EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id)
                 FROM events WHERE cluster = ?1 AND at_ms >= ?2 ORDER BY at_ms",
            )
            .map_err(db)?;
        history.events = stmt
            .query_map(params![cluster, ms(*since)], |r| {
                Ok(HistoryEvent {
                    id: numbered_event(r.get(0)?),
                    active: r.get(1)?,
                    previous: r.get(2)?,
                    at: row_ts(r.get(3)?)?,
                    flapping: r.get(4)?,
                    back_by: r.get::<_, Option<i64>>(5)?.map(row_ts).transpose()?,
                    told: r.get(6)?,
                })
            })
            .and_then(Iterator::collect)
            .map_err(db)?;
        history.older = conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM events WHERE cluster = ?1 AND at_ms < ?2)",
            )
            .map_err(db)?
            .query_row(params![cluster, ms(*since)], |r| r.get(0))
            .map_err(db)?;
    }
    let maintenance = match report.maintenance_after {
        Some(after) => active_maintenance(conn, after)?,
        None => Vec::new(),
    };
    let (id, merged) = match decide(&history, &maintenance) {
        Decision::Merge(into) => {
            let id = event_number(&into)?;
            (id, true)
        }
        Decision::New(e) => {
            let e = *e;
            conn.prepare_cached(
                "INSERT INTO events (cluster, customer, active, previous, verdict, at_ms,
                     received_ms, flapping, failback_of, classification, context, channels,
                     back_by_ms, reminders)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )
            .map_err(db)?
            .execute(params![
                e.cluster,
                e.customer,
                e.active,
                e.previous,
                e.verdict.as_str(),
                ms(e.at),
                ms(report.received_at),
                e.flapping,
                e.failback_of.as_ref().map(event_number).transpose()?,
                e.classification.to_string(),
                e.context.to_json(),
                channels_json(&e.channels),
                e.back_by.map(ms),
                channels_json(&e.reminders),
            ])
            .map_err(db)?;
            let id = conn.last_insert_rowid();
            add_deliveries(conn, id, &e, report.received_at, report.claim.as_ref())?;
            (id, false)
        }
        Decision::Complete(into, e) => {
            let id = event_number(&into)?;
            let changed = conn
                .prepare_cached(
                    "UPDATE events SET active = ?2, previous = ?3, verdict = ?4, at_ms = ?5,
                         flapping = ?6, failback_of = ?7, classification = ?8, context = ?9,
                         channels = ?10, back_by_ms = ?11, reminders = ?12
                     WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_id = ?1)",
                )
                .map_err(db)?
                .execute(params![
                    id,
                    e.active,
                    e.previous,
                    e.verdict.as_str(),
                    ms(e.at),
                    e.flapping,
                    e.failback_of.as_ref().map(event_number).transpose()?,
                    e.classification.to_string(),
                    e.context.to_json(),
                    channels_json(&e.channels),
                    e.back_by.map(ms),
                    channels_json(&e.reminders),
                ])
                .map_err(db)?;
            if changed == 0 {
                return Err(StoreError::NotFound(into));
            }
            // Unclaimed: the caller claims a merged report's deliveries itself.
            add_deliveries(conn, id, &e, report.received_at, None)?;
            (id, true)
        }
    };
    conn.prepare_cached(
        "INSERT INTO reports (event_id, scope, client_id, merged, host, action, previous,
             resource, source, occurred_ms, received_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )
    .map_err(db)?
    .execute(params![
        id,
        report.scope.key(),
        report.client_id,
        merged,
        report.host,
        report.action.as_str(),
        report.previous,
        report.resource,
        report.source,
        ms(report.occurred_at),
        ms(report.received_at),
    ])
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::NotFound(numbered_event(id))
        }
        e => db(e),
    })?;
    conn.prepare_cached("UPDATE events SET reports = reports + 1 WHERE id = ?1")
        .map_err(db)?
        .execute([id])
        .map_err(db)?;
    Ok(Recorded {
        event: load_event(conn, id)?,
        merged,
        duplicate: false,
    })
}

/// The reports of event `id`, in the order received.
fn reports_of(conn: &Connection, id: i64) -> Result<Vec<StoredReport>, StoreError> {
    conn.prepare_cached(
        "SELECT host, action, previous, resource, source, client_id, occurred_ms, received_ms
         FROM reports WHERE event_id = ?1 ORDER BY id",
    )
    .map_err(db)?
    .query_map([id], |r| {
        Ok(StoredReport {
            host: r.get(0)?,
            action: {
                let a: String = r.get(1)?;
                Action::from_name(&a).ok_or_else(|| corrupt("action", a))?
            },
            previous: r.get(2)?,
            resource: r.get(3)?,
            source: r.get(4)?,
            client_id: r.get(5)?,
            occurred_at: row_ts(r.get(6)?)?,
            received_at: row_ts(r.get(7)?)?,
        })
    })
    .and_then(Iterator::collect)
    .map_err(db)
}

fn channels_json(channels: &[String]) -> String {
    serde_json::to_string(channels).unwrap_or_else(|_| "[]".into())
}

/// The deliveries of new event `id`: one per channel due at `at` (held by `claim` if given),
/// then one reminder per reminder channel due at its `back_by`, its give-up clock started
/// then.
fn add_deliveries(
    conn: &Connection,
    event: i64,
    e: &NewEvent,
    at: Timestamp,
    claim: Option<&Lease>,
) -> Result<(), StoreError> {
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO deliveries (event_id, channel, created_ms, next_ms, claimed_by,
                 claimed_until_ms, reminder)
             VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6)",
        )
        .map_err(db)?;
    let (owner, until) = (claim.map(|l| &l.owner), claim.map(|l| ms(l.until)));
    for channel in &e.channels {
        insert
            .execute(params![event, channel, ms(at), owner, until, false])
            .map_err(db)?;
    }
    let due = e.back_by.unwrap_or(at).max(at);
    for channel in &e.reminders {
        insert
            .execute(params![
                event,
                channel,
                ms(due),
                None::<String>,
                None::<i64>,
                true
            ])
            .map_err(db)?;
    }
    Ok(())
}

fn events(conn: &Connection, q: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
    let mut sql = format!("{EVENT_COLUMNS} WHERE 1 = 1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let mut arg = |sql: &mut String, clause: &str, v: rusqlite::types::Value| {
        args.push(v);
        sql.push_str(&format!(" AND {clause} ?{}", args.len()));
    };
    if let Some(c) = &q.cluster {
        arg(&mut sql, "cluster =", c.clone().into());
    }
    if let Some(v) = q.verdict {
        arg(&mut sql, "verdict =", v.as_str().to_owned().into());
    }
    if let Some(t) = q.since {
        arg(&mut sql, "at_ms >=", ms(t).into());
    }
    if let Some(b) = q.before {
        arg(&mut sql, "id <", b.into());
    }
    if let Some(customers) = &q.customers {
        let start = args.len();
        args.extend(customers.iter().map(|c| c.clone().into()));
        let list: Vec<String> = (start + 1..=args.len()).map(|i| format!("?{i}")).collect();
        sql.push_str(&format!(" AND customer IN ({})", list.join(", ")));
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", q.limit.max(1)));
    let mut stmt = conn.prepare(&sql).map_err(db)?;
    let events: Vec<StoredEvent> = stmt
        .query_map(rusqlite::params_from_iter(args), event_row)
        .and_then(Iterator::collect)
        .map_err(db)?;
    events
        .into_iter()
        .map(|e| with_deliveries(conn, e))
        .collect()
}

/// A delivery nobody holds: never claimed, released, or its lease has ended (`?1` = now).
const FREE: &str = "(claimed_until_ms IS NULL OR claimed_until_ms <= ?1)";

fn claim_due(
    conn: &Connection,
    lease: &Lease,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<DueDelivery>, StoreError> {
    let ids: Vec<i64> = conn
        .prepare_cached(&format!(
            "UPDATE deliveries SET claimed_by = ?3, claimed_until_ms = ?4
             WHERE id IN (SELECT id FROM deliveries
                          WHERE status = 'pending' AND next_ms <= ?1 AND {FREE}
                          ORDER BY next_ms LIMIT ?2)
             RETURNING id"
        ))
        .map_err(db)?
        .query_map(params![ms(now), limit, lease.owner, ms(lease.until)], |r| {
            r.get::<_, i64>(0)
        })
        .and_then(Iterator::collect)
        .map_err(db)?;
    claimed(conn, ids)
}

fn claim_event(
    conn: &Connection,
    event: &EventId,
    lease: &Lease,
    now: Timestamp,
) -> Result<Vec<DueDelivery>, StoreError> {
    let event = event_number(event)?;
    let ids: Vec<i64> = conn
        .prepare_cached(&format!(
            "UPDATE deliveries SET claimed_by = ?3, claimed_until_ms = ?4
             WHERE event_id = ?2 AND status = 'pending' AND NOT reminder AND {FREE}
             RETURNING id"
        ))
        .map_err(db)?
        .query_map(params![ms(now), event, lease.owner, ms(lease.until)], |r| {
            r.get::<_, i64>(0)
        })
        .and_then(Iterator::collect)
        .map_err(db)?;
    claimed(conn, ids)
}

/// The claimed deliveries with what their channels need.
fn claimed(conn: &Connection, ids: Vec<i64>) -> Result<Vec<DueDelivery>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT d.id, d.channel, d.attempts, d.created_ms, e.id, e.verdict, e.cluster,
                    e.customer, e.context, d.reminder, d.resolve
             FROM deliveries d JOIN events e ON e.id = d.event_id
             WHERE d.id IN (SELECT value FROM json_each(?1))
             ORDER BY d.next_ms",
        )
        .map_err(db)?;
    let ids = serde_json::Value::from(ids).to_string();
    stmt.query_map([ids], |r| {
        Ok(DueDelivery {
            id: r.get(0)?,
            channel: r.get(1)?,
            attempts: r.get(2)?,
            created_at: row_ts(r.get(3)?)?,
            event: numbered_event(r.get(4)?),
            verdict: row_verdict(r.get(5)?)?,
            kind: DeliveryKind::from_flags(r.get(9)?, r.get(10)?),
            cluster: r.get(6)?,
            customer: r.get(7)?,
            context: row_context(r.get(8)?)?,
        })
    })
    .and_then(Iterator::collect)
    .map_err(db)
}

fn finish(
    conn: &Connection,
    owner: &str,
    outcomes: &[(i64, Outcome)],
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "UPDATE deliveries SET claimed_by = NULL, claimed_until_ms = NULL,
                 attempts = attempts + 1, status = ?2, next_ms = coalesce(?3, next_ms),
                 last_error = coalesce(?4, last_error), finished_ms = ?5
             WHERE id = ?1 AND status = 'pending' AND (claimed_by IS NULL OR claimed_by = ?6)",
        )
        .map_err(db)?;
    for (id, outcome) in outcomes {
        let (status, next, error, finished) = match outcome {
            Outcome::Delivered => (DeliveryState::Delivered, None, None, Some(ms(now))),
            Outcome::Retry { at, error } => {
                (DeliveryState::Pending, Some(ms(*at)), Some(error), None)
            }
            Outcome::Failed { error } => (DeliveryState::Failed, None, Some(error), Some(ms(now))),
            Outcome::Cancelled { reason } => {
                (DeliveryState::Cancelled, None, Some(reason), Some(ms(now)))
            }
        };
        let changed = stmt
            .execute(params![id, status.as_str(), next, error, finished, owner])
            .map_err(db)?;
        if changed == 0 {
            tracing::warn!(
                delivery = id,
                "outcome not recorded: the delivery is no longer this sender's"
            );
        }
    }
    Ok(())
}

fn maintenance_row(r: &Row<'_>) -> rusqlite::Result<Maintenance> {
    Ok(Maintenance {
        id: r.get(0)?,
        window: NewMaintenance {
            target_kind: {
                let kind: String = r.get(1)?;
                TargetKind::from_name(&kind).ok_or_else(|| corrupt("target_kind", kind))?
            },
            target: r.get(2)?,
            customer: r.get(3)?,
            start: row_ts(r.get(4)?)?,
            end: row_ts(r.get(5)?)?,
            reason: r.get(6)?,
            created_by: r.get(7)?,
        },
    })
}

/// Ad-hoc windows that end after `after`, by start.
fn active_maintenance(conn: &Connection, after: Timestamp) -> Result<Vec<Maintenance>, StoreError> {
    conn.prepare_cached(&format!(
        "{MAINTENANCE_COLUMNS} WHERE end_ms > ?1 ORDER BY start_ms"
    ))
    .map_err(db)?
    .query_map([ms(after)], maintenance_row)
    .and_then(Iterator::collect)
    .map_err(db)
}

const MAINTENANCE_COLUMNS: &str = "SELECT id, target_kind, target, customer, start_ms, end_ms, reason, created_by FROM maintenance";

impl Store for Sqlite {
    async fn record(&self, report: NewReport, decide: Decide) -> Result<Recorded, StoreError> {
        self.write(move |conn| record(conn, &report, decide)).await
    }

    async fn events(&self, query: EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(move |conn| events(conn, &query)).await
    }

    async fn event(&self, id: &EventId) -> Result<Option<EventDetail>, StoreError> {
        let Ok(id) = event_number(id) else {
            return Ok(None);
        };
        self.read(move |conn| match load_event(conn, id) {
            Ok(event) => Ok(Some(EventDetail {
                event,
                received: reports_of(conn, id)?,
            })),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        })
        .await
    }

    async fn claim_due(
        &self,
        lease: &Lease,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let lease = lease.clone();
        self.write(move |conn| claim_due(conn, &lease, now, limit))
            .await
    }

    async fn finish(
        &self,
        owner: &str,
        outcomes: Vec<(i64, Outcome)>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let owner = owner.to_owned();
        self.write(move |conn| finish(conn, &owner, &outcomes, now))
            .await
    }

    async fn claim_event(
        &self,
        event: &EventId,
        lease: &Lease,
        now: Timestamp,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let (event, lease) = (event.clone(), lease.clone());
        self.write(move |conn| claim_event(conn, &event, &lease, now))
            .await
    }

    async fn pending_of(&self, channel: &str) -> Result<Vec<i64>, StoreError> {
        let channel = channel.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id FROM deliveries WHERE status = 'pending' AND channel = ?1",
            )
            .map_err(db)?
            .query_map([channel], |r| r.get(0))
            .and_then(Iterator::collect)
            .map_err(db)
        })
        .await
    }

    async fn next_due(&self) -> Result<Option<Timestamp>, StoreError> {
        self.read(|conn| {
            let next: Option<i64> = conn
                .query_row(
                    "SELECT min(max(next_ms, coalesce(claimed_until_ms, next_ms)))
                     FROM deliveries WHERE status = 'pending'",
                    [],
                    |r| r.get(0),
                )
                .map_err(db)?;
            next.map(row_ts).transpose().map_err(db)
        })
        .await
    }

    async fn delivery_counts(&self) -> Result<Vec<(DeliveryState, u64)>, StoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT status, count(*) FROM deliveries GROUP BY status")
                .map_err(db)?
                .query_map([], |r| Ok((row_state(r.get(0)?)?, r.get(1)?)))
                .and_then(Iterator::collect)
                .map_err(db)
        })
        .await
    }

    async fn add_maintenance(&self, w: NewMaintenance) -> Result<Maintenance, StoreError> {
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO maintenance (target_kind, target, customer, start_ms, end_ms,
                     reason, created_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(db)?
            .execute(params![
                w.target_kind.as_str(),
                w.target,
                w.customer,
                ms(w.start),
                ms(w.end),
                w.reason,
                w.created_by
            ])
            .map_err(db)?;
            Ok(Maintenance {
                id: conn.last_insert_rowid(),
                window: w,
            })
        })
        .await
    }

    async fn maintenance(&self, after: Timestamp) -> Result<Vec<Maintenance>, StoreError> {
        self.read(move |conn| active_maintenance(conn, after)).await
    }

    async fn end_maintenance(&self, id: i64, now: Timestamp) -> Result<bool, StoreError> {
        self.write(move |conn| {
            // One that has not started is removed; an open one ends now.
            let removed = conn
                .execute(
                    "DELETE FROM maintenance WHERE id = ?1 AND start_ms >= ?2",
                    params![id, ms(now)],
                )
                .map_err(db)?;
            let ended = conn
                .execute(
                    "UPDATE maintenance SET end_ms = ?2 WHERE id = ?1 AND end_ms > ?2",
                    params![id, ms(now)],
                )
                .map_err(db)?;
            Ok(removed + ended > 0)
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
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE deliveries SET status = 'pending', next_ms = ?3, created_ms = ?3,
                         finished_ms = NULL, claimed_by = NULL, claimed_until_ms = NULL
                     WHERE id = ?1 AND event_id = ?2 AND status = 'failed'",
                )
                .map_err(db)?
                .execute(params![delivery, event, ms(now)])
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
        self.write(move |conn| {
            let mut insert = conn
                .prepare_cached(
                    "INSERT INTO deliveries (event_id, channel, created_ms, next_ms, resolve)
                     SELECT ?1, ?2, ?3, ?3, 1 WHERE EXISTS (SELECT 1 FROM events WHERE id = ?1)
                     ON CONFLICT DO NOTHING
                     RETURNING id",
                )
                .map_err(db)?;
            let mut added = Vec::new();
            for channel in channels {
                let id: Option<i64> = insert
                    .query_row(params![event, channel, ms(now)], |r| r.get(0))
                    .optional()
                    .map_err(db)?;
                added.extend(id.map(|id| DeliveryStatus::resolving(id, channel)));
            }
            Ok(added)
        })
        .await
    }

    async fn add_session(&self, s: Session, now: Timestamp) -> Result<(), StoreError> {
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM sessions WHERE expires_ms <= ?1")
                .map_err(db)?
                .execute([ms(now)])
                .map_err(db)?;
            conn.prepare_cached(
                "INSERT INTO sessions (token_hash, key_name, key_check, expires_ms)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(db)?
            .execute(params![s.token_hash, s.key, s.key_check, ms(s.expires)])
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
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT key_name, key_check, expires_ms FROM sessions
                 WHERE token_hash = ?1 AND expires_ms > ?2",
            )
            .map_err(db)?
            .query_row(params![token_hash, ms(now)], |r| {
                Ok(Session {
                    token_hash: token_hash.clone(),
                    key: r.get(0)?,
                    key_check: r.get(1)?,
                    expires: row_ts(r.get(2)?)?,
                })
            })
            .optional()
            .map_err(db)
        })
        .await
    }

    async fn end_session(&self, token_hash: &str) -> Result<(), StoreError> {
        let token_hash = token_hash.to_owned();
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")
                .map_err(db)?
                .execute([token_hash])
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
        self.write(move |conn| {
            let doomed: String = conn
                .prepare_cached(
                    "SELECT coalesce(json_group_array(id), '[]') FROM (
                         SELECT e.id FROM events e
                         WHERE e.at_ms < ?1
                           AND NOT EXISTS (SELECT 1 FROM deliveries d
                                           WHERE d.event_id = e.id AND d.status = 'pending')
                         ORDER BY e.id LIMIT ?2)",
                )
                .map_err(db)?
                .query_row(rusqlite::params![ms(before), batch], |r| r.get(0))
                .map_err(db)?;
            for sql in [
                "DELETE FROM reports WHERE event_id IN (SELECT value FROM json_each(?1))",
                "DELETE FROM deliveries WHERE event_id IN (SELECT value FROM json_each(?1))",
            ] {
                conn.prepare_cached(sql)
                    .map_err(db)?
                    .execute([&doomed])
                    .map_err(db)?;
            }
            let events = conn
                .prepare_cached("DELETE FROM events WHERE id IN (SELECT value FROM json_each(?1))")
                .map_err(db)?
                .execute([&doomed])
                .map_err(db)?;
            let sessions = conn
                .prepare_cached(
                    "DELETE FROM sessions WHERE token_hash IN (
                         SELECT token_hash FROM sessions WHERE expires_ms < ?1 LIMIT ?2)",
                )
                .map_err(db)?
                .execute(rusqlite::params![ms(now), batch])
                .map_err(db)?;
            let windows = conn
                .prepare_cached(
                    "DELETE FROM maintenance WHERE id IN (
                         SELECT id FROM maintenance WHERE end_ms < ?1 LIMIT ?2)",
                )
                .map_err(db)?
                .execute(rusqlite::params![ms(before), batch])
                .map_err(db)?;
            Ok(Pruned {
                events: events as u64,
                sessions: sessions as u64,
                windows: windows as u64,
            })
        })
        .await
    }

    async fn end_sessions_except(&self, keep: &[(String, String)]) -> Result<u64, StoreError> {
        let keep = serde_json::to_string(keep).map_err(|e| StoreError::Backend(Box::new(e)))?;
        self.write(move |conn| {
            conn.prepare_cached(
                "DELETE FROM sessions WHERE NOT EXISTS (
                     SELECT 1 FROM json_each(?1) AS k
                     WHERE k.value ->> 0 = key_name AND k.value ->> 1 = key_check)",
            )
            .map_err(db)?
            .execute([keep])
            .map(|n| n as u64)
            .map_err(db)
        })
        .await
    }
}
