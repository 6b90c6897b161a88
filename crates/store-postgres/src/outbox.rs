//! The outbox: claims taken in one committed statement, outcomes written only under the
//! sender's lease.

use deadpool_postgres::Object;
use jiff::Timestamp;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use failover_store::{
    DeliveryKind, DeliveryState, DueDelivery, Outcome, StoreError, numbered_event,
};

use crate::rows::{count, db, ms, row_context, row_ts, row_verdict, text};

/// The deliveries a claim returned, with what their channels need, by due time.
pub(crate) fn claimed(rows: &[Row]) -> Result<Vec<DueDelivery>, StoreError> {
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
pub(crate) async fn claim(
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

pub(crate) async fn finish(
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
