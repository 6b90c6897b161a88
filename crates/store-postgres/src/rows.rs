//! Rows read back into the store's records, and the queries that only read.

use deadpool_postgres::Object;
use jiff::Timestamp;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use failover_store::{
    Action, DeliveryState, DeliveryStatus, EventQuery, Maintenance, MessageContext, NewEvent,
    NewMaintenance, StoreError, StoredEvent, StoredReport, TargetKind, Verdict, event_number,
    numbered_event,
};

pub(crate) fn db(e: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

pub(crate) fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Backend(Box::new(e))
}

pub(crate) fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

pub(crate) fn row_ts(ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(ms).map_err(|_| StoreError::Corrupt {
        what: "time",
        value: ms.to_string(),
    })
}

pub(crate) fn row_state(s: String) -> Result<DeliveryState, StoreError> {
    DeliveryState::from_name(&s).ok_or(StoreError::Corrupt {
        what: "status",
        value: s,
    })
}

pub(crate) fn row_verdict(s: String) -> Result<Verdict, StoreError> {
    Verdict::from_name(&s).ok_or(StoreError::Corrupt {
        what: "verdict",
        value: s,
    })
}

/// A stored message context ([`MessageContext::from_json`]).
pub(crate) fn row_context(s: String) -> Result<MessageContext, StoreError> {
    MessageContext::from_json(&s).map_err(|_| StoreError::Corrupt {
        what: "context",
        value: s,
    })
}

pub(crate) fn row_json<T: serde::de::DeserializeOwned>(
    what: &'static str,
    s: String,
) -> Result<T, StoreError> {
    serde_json::from_str(&s).map_err(|_| StoreError::Corrupt { what, value: s })
}

pub(crate) fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

/// PostgreSQL text holds no NUL character: one in a channel's error text is replaced.
pub(crate) fn text(s: &str) -> String {
    s.replace('\0', "\u{fffd}")
}

pub(crate) const EVENT_COLUMNS: &str = "id, cluster, customer, active, previous, verdict, at_ms, \
    received_ms, flapping, failback_of, classification, context, channels, reports, back_by_ms, \
    reminders";

pub(crate) fn event_row(r: &Row) -> Result<StoredEvent, StoreError> {
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

pub(crate) const DELIVERY_COLUMNS: &str =
    "event_id, id, channel, status, attempts, last_error, finished_ms, reminder, resolve";

pub(crate) fn delivery_row(r: &Row) -> Result<(i64, DeliveryStatus), StoreError> {
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
pub(crate) async fn load_events(
    client: &Object,
    ids: &[i64],
) -> Result<Vec<StoredEvent>, StoreError> {
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

pub(crate) async fn load_event(client: &Object, id: i64) -> Result<StoredEvent, StoreError> {
    load_events(client, &[id])
        .await?
        .pop()
        .ok_or_else(|| StoreError::NotFound(numbered_event(id)))
}

/// The reports of event `id`, in the order received.
pub(crate) async fn reports_of(client: &Object, id: i64) -> Result<Vec<StoredReport>, StoreError> {
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

pub(crate) async fn events(
    client: &Object,
    q: &EventQuery,
) -> Result<Vec<StoredEvent>, StoreError> {
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

pub(crate) const MAINTENANCE_SELECT: &str = "SELECT id, target_kind, target, customer, start_ms, end_ms, \
    reason, created_by FROM maintenance";

pub(crate) fn maintenance_row(r: &Row) -> Result<Maintenance, StoreError> {
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

pub(crate) fn params(values: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    values
        .iter()
        .map(|v| v.as_ref() as &(dyn ToSql + Sync))
        .collect()
}
