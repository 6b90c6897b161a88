//! Ad-hoc maintenance windows.

use deadpool_postgres::Object;
use jiff::Timestamp;

use failover_store::{Maintenance, NewMaintenance, StoreError};

use crate::rows::{MAINTENANCE_SELECT, db, maintenance_row, ms};

/// Adds window `w`; its id is the database's.
pub(crate) async fn add(client: &Object, w: NewMaintenance) -> Result<Maintenance, StoreError> {
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
}

/// The windows that end after `after`, by start.
pub(crate) async fn open_after(
    client: &Object,
    after: Timestamp,
) -> Result<Vec<Maintenance>, StoreError> {
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
}

/// Ends window `id` at `now`: one not started yet is removed; `false` when none changed.
pub(crate) async fn end(client: &Object, id: i64, now: Timestamp) -> Result<bool, StoreError> {
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
}
