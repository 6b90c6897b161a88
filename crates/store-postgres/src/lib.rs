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
//!
//! The [`Store`] impl here runs each operation on a pooled connection; `migrate` holds the
//! schema, `rows` the decoding of rows and the read-only queries, `record` the report
//! transaction, `outbox` claims and outcomes, `maintenance` and `sessions` their tables.

mod maintenance;
mod migrate;
mod outbox;
mod record;
mod rows;
mod sessions;
pub mod url;

#[cfg(feature = "throwaway")]
pub mod throwaway;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use jiff::Timestamp;

use failover_store::{
    Decide, DeliveryState, DeliveryStatus, DueDelivery, EventDetail, EventId, EventQuery, Lease,
    Maintenance, NewMaintenance, NewReport, Outcome, Pruned, Recorded, Session, Store, StoreError,
    StoredEvent, event_number,
};

pub use url::{UrlError, redacted};

use migrate::{MIGRATION_LOCK, MIGRATIONS, apply};
use outbox::{claim, finish};
use record::record;
use rows::{db, events, load_event, ms, pool_error, reports_of, row_ts};

/// The advisory lock a replica holds while it prunes ("fn-prune").
const PRUNE_LOCK: i64 = 0x666e_2d70_7275_6e65;

/// Longest wait for one operation (a connection from the pool included).
pub const OP_TIMEOUT: Duration = Duration::from_secs(10);

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
        self.run(move |client| async move { maintenance::add(&client, w).await })
            .await
    }

    async fn maintenance(&self, after: Timestamp) -> Result<Vec<Maintenance>, StoreError> {
        self.run(move |client| async move { maintenance::open_after(&client, after).await })
            .await
    }

    async fn end_maintenance(&self, id: i64, now: Timestamp) -> Result<bool, StoreError> {
        self.run(move |client| async move { maintenance::end(&client, id, now).await })
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
        self.run(move |client| async move { sessions::add(&client, s, now).await })
            .await
    }

    async fn session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.run(move |client| async move { sessions::get(&client, token_hash, now).await })
            .await
    }

    async fn end_session(&self, token_hash: &str) -> Result<(), StoreError> {
        let token_hash = token_hash.to_owned();
        self.run(move |client| async move { sessions::end(&client, token_hash).await })
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
        self.run(move |client| async move { sessions::end_except(&client, names, checks).await })
            .await
    }
}
