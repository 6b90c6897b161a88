//! Rows read back into the store's records, and the queries that only read.

use jiff::Timestamp;
use rusqlite::{Connection, OptionalExtension, Row};

use failover_store::{
    Action, DeliveryState, DeliveryStatus, EventQuery, Maintenance, MessageContext, NewEvent,
    NewMaintenance, StoreError, StoredEvent, StoredReport, TargetKind, Verdict, event_number,
    numbered_event,
};

pub(crate) fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

pub(crate) fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

pub(crate) const EVENT_COLUMNS: &str =
    "SELECT id, cluster, customer, active, previous, verdict, at_ms,
    received_ms, flapping, failback_of, classification, context, channels, reports, back_by_ms,
    reminders FROM events";

pub(crate) fn load_event(conn: &Connection, id: i64) -> Result<StoredEvent, StoreError> {
    let event = conn
        .prepare_cached(&format!("{EVENT_COLUMNS} WHERE id = ?1"))
        .map_err(db)?
        .query_row([id], event_row)
        .optional()
        .map_err(db)?
        .ok_or_else(|| StoreError::NotFound(numbered_event(id)))?;
    with_deliveries(conn, event)
}

pub(crate) fn with_deliveries(
    conn: &Connection,
    mut event: StoredEvent,
) -> Result<StoredEvent, StoreError> {
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

pub(crate) fn corrupt(what: &'static str, value: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        Box::new(StoreError::Corrupt { what, value }),
    )
}

pub(crate) fn row_ts(ms: i64) -> rusqlite::Result<Timestamp> {
    Timestamp::from_millisecond(ms).map_err(|_| corrupt("time", ms.to_string()))
}

pub(crate) fn row_state(s: String) -> rusqlite::Result<DeliveryState> {
    DeliveryState::from_name(&s).ok_or_else(|| corrupt("status", s))
}

pub(crate) fn row_verdict(s: String) -> rusqlite::Result<Verdict> {
    Verdict::from_name(&s).ok_or_else(|| corrupt("verdict", s))
}

/// A stored message context ([`MessageContext::from_json`]).
pub(crate) fn row_context(s: String) -> rusqlite::Result<MessageContext> {
    MessageContext::from_json(&s).map_err(|_| corrupt("context", s))
}

pub(crate) fn row_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    s: String,
) -> rusqlite::Result<T> {
    serde_json::from_str(&s).map_err(|_| corrupt(what, s))
}

pub(crate) fn event_row(r: &Row<'_>) -> rusqlite::Result<StoredEvent> {
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

/// The reports of event `id`, in the order received.
pub(crate) fn reports_of(conn: &Connection, id: i64) -> Result<Vec<StoredReport>, StoreError> {
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

pub(crate) fn events(conn: &Connection, q: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
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

pub(crate) fn maintenance_row(r: &Row<'_>) -> rusqlite::Result<Maintenance> {
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
pub(crate) fn active_maintenance(
    conn: &Connection,
    after: Timestamp,
) -> Result<Vec<Maintenance>, StoreError> {
    conn.prepare_cached(&format!(
        "{MAINTENANCE_COLUMNS} WHERE end_ms > ?1 ORDER BY start_ms"
    ))
    .map_err(db)?
    .query_map([ms(after)], maintenance_row)
    .and_then(Iterator::collect)
    .map_err(db)
}

pub(crate) const MAINTENANCE_COLUMNS: &str = "SELECT id, target_kind, target, customer, start_ms, end_ms, reason, created_by FROM maintenance";
