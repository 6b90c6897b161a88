//! The schema: the numbered files of `migrations/`, applied in order under an advisory lock.

use deadpool_postgres::Object;

use failover_store::StoreError;

use crate::rows::db;

/// Schema versions, applied in order and recorded in `schema_migrations`. Append only; never
/// edit one that has shipped.
pub(crate) const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_events_reports_deliveries_maintenance.sql"),
    include_str!("../migrations/0002_sessions.sql"),
    include_str!("../migrations/0003_reminders.sql"),
    include_str!("../migrations/0004_resolves.sql"),
];

/// The advisory lock held while migrating (any constant; "fn-migr").
pub(crate) const MIGRATION_LOCK: i64 = 0x0066_6e2d_6d69_6772;

/// Applies the migrations the database lacks; returns its version before.
pub(crate) async fn apply(client: &Object) -> Result<i32, StoreError> {
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
