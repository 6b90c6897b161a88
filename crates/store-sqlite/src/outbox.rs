//! The outbox: claims taken under a lease, outcomes written only under the sender's lease.

use jiff::Timestamp;
use rusqlite::{Connection, params};

use failover_store::{
    DeliveryKind, DeliveryState, DueDelivery, EventId, Lease, Outcome, StoreError, event_number,
    numbered_event,
};

use crate::rows::{db, ms, row_context, row_ts, row_verdict};

/// A delivery nobody holds: never claimed, released, or its lease has ended (`?1` = now).
pub(crate) const FREE: &str = "(claimed_until_ms IS NULL OR claimed_until_ms <= ?1)";

pub(crate) fn claim_due(
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

pub(crate) fn claim_event(
    conn: &Connection,
    event: &EventId,
    lease: &Lease,
    now: Timestamp,
) -> Result<Vec<DueDelivery>, StoreError> {
    let Ok(event) = event_number(event) else {
        return Ok(Vec::new());
    };
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
pub(crate) fn claimed(conn: &Connection, ids: Vec<i64>) -> Result<Vec<DueDelivery>, StoreError> {
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

pub(crate) fn finish(
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
