//! The embedded store: SQLite in WAL mode with `synchronous = FULL`.
//!
//! One writer thread owns the only write connection. Writes are closures sent to it; it
//! runs every closure waiting in its queue inside one transaction (each in its own
//! savepoint, so one failure spoils only itself), commits once, and only then answers the
//! callers. Concurrent reports therefore share one fsync (group commit). Reads use a small
//! pool of read connections on blocking threads; WAL lets them run beside the writer.
//!
//! Here: the writer, the read pool and the [`Store`] impl; `rows` decodes rows and holds the
//! read-only queries, `record` the report transaction, `outbox` claims and outcomes,
//! `sessions` the dashboard's sessions.

mod outbox;
mod record;
mod rows;
mod sessions;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use failover_store::{
    Decide, DeliveryState, DeliveryStatus, DueDelivery, EventDetail, EventId, EventQuery, Lease,
    Maintenance, NewMaintenance, NewReport, Outcome, Pruned, Recorded, Session, Store, StoreError,
    StoredEvent, event_number,
};

use outbox::{claim_due, claim_event, finish};
use record::record;
use rows::{active_maintenance, db, events, load_event, ms, reports_of, row_state, row_ts};

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
        self.write(move |conn| sessions::add(conn, s, now)).await
    }

    async fn session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.read(move |conn| sessions::get(conn, &token_hash, now))
            .await
    }

    async fn end_session(&self, token_hash: &str) -> Result<(), StoreError> {
        let token_hash = token_hash.to_owned();
        self.write(move |conn| sessions::end(conn, token_hash))
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
        self.write(move |conn| sessions::end_except(conn, keep))
            .await
    }
}
