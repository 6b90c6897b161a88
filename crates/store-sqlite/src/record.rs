//! Recording a report: inside the writer's transaction, the cluster's history is read,
//! `decide` runs on it, and what it chose is written.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use failover_store::{
    Decide, Decision, History, HistoryEvent, Lease, NewEvent, NewReport, Recorded, StoreError,
    event_number, numbered_event,
};

use crate::rows::{active_maintenance, db, load_event, ms, row_ts};

pub(crate) fn record(
    conn: &Connection,
    report: &NewReport,
    decide: Decide,
) -> Result<Recorded, StoreError> {
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

pub(crate) fn channels_json(channels: &[String]) -> String {
    serde_json::to_string(channels).unwrap_or_else(|_| "[]".into())
}

/// The deliveries of new event `id`: one per channel due at `at` (held by `claim` if given),
/// then one reminder per reminder channel due at its `back_by`, its give-up clock started
/// then.
pub(crate) fn add_deliveries(
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
