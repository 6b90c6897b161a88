//! Recording a report: one transaction that locks its cluster, reads its history, and writes
//! what `decide` chose.

use std::sync::Mutex;

use deadpool_postgres::Object;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use failover_store::{
    Decide, Decision, DeliveryStatus, EventId, History, HistoryEvent, NewEvent, NewReport,
    Recorded, StoreError, StoredEvent, event_number, numbered_event,
};

use crate::rows::{
    DELIVERY_COLUMNS, EVENT_COLUMNS, MAINTENANCE_SELECT, db, delivery_row, event_row, load_event,
    maintenance_row, ms, params, row_ts,
};

/// How a report's transaction ended.
pub(crate) enum Attempt {
    Done(Box<Recorded>),
    /// Another transaction recorded the same client id first: try again, and find it.
    LostRace,
}

/// Appends the report's columns after `event_id` and `merged`: scope, client id, host,
/// action, previous, resource, source, occurred, received (nine parameters).
pub(crate) fn push_report(values: &mut Vec<Box<dyn ToSql + Sync + Send>>, r: &NewReport) {
    values.push(Box::new(r.scope.key().to_owned()));
    values.push(Box::new(r.client_id.clone()));
    values.push(Box::new(r.host.clone()));
    values.push(Box::new(r.action.as_str().to_owned()));
    values.push(Box::new(r.previous.clone()));
    values.push(Box::new(r.resource.clone()));
    values.push(Box::new(r.source.clone()));
    values.push(Box::new(ms(r.occurred_at)));
    values.push(Box::new(ms(r.received_at)));
}

/// `INSERT INTO deliveries` of the event `from` returns (a CTE with its `id`): one per
/// element of the arrays `channels` and `reminder` (parameters, [`delivery_arrays`]), the
/// event's own due at `now` and held by `claim`, its reminders due at `back_by` (or `now`)
/// and held by nobody.
pub(crate) fn insert_deliveries(
    from: &str,
    now: &str,
    channels: &str,
    reminder: &str,
    claim: Option<(&str, &str)>,
    back_by: &str,
) -> String {
    let (owner, until) = claim.unwrap_or(("NULL", "NULL"));
    format!(
        "INSERT INTO deliveries (event_id, channel, created_ms, next_ms, claimed_by,
             claimed_until_ms, reminder)
         SELECT {from}.id, t.c, t.due, t.due, CASE WHEN t.r THEN NULL ELSE {owner} END,
             CASE WHEN t.r THEN NULL ELSE {until}::bigint END, t.r
         FROM {from}, LATERAL (SELECT c, r, n,
                 CASE WHEN r THEN greatest({back_by}::bigint, {now}) ELSE {now} END AS due
             FROM unnest({channels}::text[], {reminder}::bool[]) WITH ORDINALITY AS u (c, r, n)) t
         ORDER BY t.n"
    )
}

/// The channels of an event's deliveries, its own then its reminders, and which are
/// reminders.
pub(crate) fn delivery_arrays(e: &NewEvent) -> (Vec<String>, Vec<bool>) {
    let own = e.channels.iter().map(|c| (c.clone(), false));
    own.chain(e.reminders.iter().map(|c| (c.clone(), true)))
        .unzip()
}

/// Appends the event's `back_by_ms` and `reminders` columns.
pub(crate) fn push_reminders(values: &mut Vec<Box<dyn ToSql + Sync + Send>>, e: &NewEvent) {
    values.push(Box::new(e.back_by.map(ms)));
    values.push(Box::new(
        serde_json::to_string(&e.reminders).unwrap_or_else(|_| "[]".into()),
    ));
}

/// `INSERT INTO reports` of one report whose event id is `event` (an expression) and merged
/// flag `merged`, its other columns `$first` to `$first + 8` ([`push_report`]).
pub(crate) fn insert_report(event: &str, merged: bool, first: usize) -> String {
    let p: Vec<String> = (first..first + 9).map(|i| format!("${i}")).collect();
    format!(
        "INSERT INTO reports (event_id, merged, scope, client_id, host, action, previous,
             resource, source, occurred_ms, received_ms)
         SELECT {event}, {merged}, {}",
        p.join(", ")
    )
}

pub(crate) fn event_params(e: &NewEvent) -> Result<Vec<Box<dyn ToSql + Sync + Send>>, StoreError> {
    Ok(vec![
        Box::new(e.active.clone()),
        Box::new(e.previous.clone()),
        Box::new(e.verdict.as_str().to_owned()),
        Box::new(ms(e.at)),
        Box::new(e.flapping),
        Box::new(e.failback_of.as_ref().map(event_number).transpose()?),
        Box::new(e.classification.to_string()),
        Box::new(e.context.to_json()),
        Box::new(serde_json::to_string(&e.channels).unwrap_or_else(|_| "[]".into())),
    ])
}

pub(crate) fn is(e: &tokio_postgres::Error, state: &SqlState) -> bool {
    e.code() == Some(state)
}

/// One try at recording a report on `client`, which is outside any transaction and is
/// left outside one.
pub(crate) async fn try_record(
    client: &Object,
    report: &NewReport,
    decide: &Mutex<Decide>,
) -> Result<Attempt, StoreError> {
    let result = record_in_transaction(client, report, decide).await;
    if !matches!(result, Ok(Attempt::Done(_))) {
        // Harmless when the transaction already ended (a warning from the server).
        let _ = client.batch_execute("ROLLBACK").await;
    }
    result
}

pub(crate) async fn record_in_transaction(
    client: &Object,
    report: &NewReport,
    decide: &Mutex<Decide>,
) -> Result<Attempt, StoreError> {
    let head = client
        .prepare_cached(
            "INSERT INTO cluster_heads (cluster) VALUES ($1)
             ON CONFLICT (cluster) DO UPDATE SET cluster = excluded.cluster",
        )
        .await
        .map_err(db)?;
    let earlier = client
        .prepare_cached("SELECT event_id, merged FROM reports WHERE scope = $1 AND client_id = $2")
        .await
        .map_err(db)?;
    let history = client
        .prepare_cached(
            "SELECT id, active, previous, at_ms, flapping, false, back_by_ms,
                    EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id)
             FROM events WHERE cluster = $1 AND at_ms >= $2
             UNION ALL
             SELECT NULL, NULL, NULL, NULL, NULL, true, NULL, NULL
             WHERE EXISTS (SELECT 1 FROM events WHERE cluster = $1 AND at_ms < $2)
             ORDER BY 4",
        )
        .await
        .map_err(db)?;
    let windows = client
        .prepare_cached(&format!(
            "{MAINTENANCE_SELECT} WHERE end_ms > $1 ORDER BY start_ms"
        ))
        .await
        .map_err(db)?;
    let scope = report.scope.key();
    let since = report.history.as_ref().map(|(c, s)| (c, ms(*s)));
    // One pipelined round trip: the cluster's lock first, then reads on fresh snapshots.
    let (_, _, earlier, rows, windows) = tokio::try_join!(
        client.batch_execute("BEGIN"),
        async {
            match &since {
                Some((cluster, _)) => client.execute(&head, &[cluster]).await.map(|_| ()),
                None => Ok(()),
            }
        },
        async {
            match &report.client_id {
                Some(id) => client.query_opt(&earlier, &[&scope, id]).await,
                None => Ok(None),
            }
        },
        async {
            match &since {
                Some((cluster, since)) => client.query(&history, &[cluster, since]).await,
                None => Ok(Vec::new()),
            }
        },
        async {
            match report.maintenance_after {
                Some(after) => client.query(&windows, &[&ms(after)]).await,
                None => Ok(Vec::new()),
            }
        },
    )
    .map_err(db)?;
    if let Some(row) = earlier {
        client.batch_execute("ROLLBACK").await.map_err(db)?;
        return Ok(Attempt::Done(Box::new(Recorded {
            event: load_event(client, row.get(0)).await?,
            merged: row.get(1),
            duplicate: true,
        })));
    }
    let mut history_seen = History::default();
    for r in &rows {
        if r.get::<_, bool>(5) {
            history_seen.older = true;
            continue;
        }
        history_seen.events.push(HistoryEvent {
            id: numbered_event(r.get(0)),
            active: r.get(1),
            previous: r.get(2),
            at: row_ts(r.get(3))?,
            flapping: r.get(4),
            back_by: r.get::<_, Option<i64>>(6).map(row_ts).transpose()?,
            told: r.get(7),
        });
    }
    let windows = windows
        .iter()
        .map(maintenance_row)
        .collect::<Result<Vec<_>, _>>()?;
    let decision = match decide.lock() {
        Ok(decide) => decide(&history_seen, &windows),
        Err(poisoned) => poisoned.into_inner()(&history_seen, &windows),
    };
    match decision {
        Decision::New(e) => record_new(client, report, &e).await,
        Decision::Merge(into) => record_merge(client, report, &into).await,
        Decision::Complete(into, e) => record_complete(client, report, &into, &e).await,
    }
}

/// The statement's result and the `COMMIT` after it, pipelined; a failed statement ends the
/// transaction without a commit (the server answers the `COMMIT` with a rollback).
pub(crate) async fn with_commit<T>(
    client: &Object,
    statement: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, tokio_postgres::Error> {
    let (result, committed) = tokio::join!(statement, client.batch_execute("COMMIT"));
    let result = result?;
    committed?;
    Ok(result)
}

pub(crate) async fn record_new(
    client: &Object,
    report: &NewReport,
    e: &NewEvent,
) -> Result<Attempt, StoreError> {
    let sql = format!(
        "WITH e AS (
             INSERT INTO events (active, previous, verdict, at_ms, flapping, failback_of,
                 classification, context, channels, cluster, customer, received_ms, reports,
                 back_by_ms, reminders)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $20, 1, $24, $25)
             RETURNING id),
         d AS ({}
             RETURNING id),
         r AS ({})
         SELECT e.id, coalesce((SELECT array_agg(d.id ORDER BY d.id) FROM d), '{{}}')
         FROM e",
        insert_deliveries("e", "$20", "$21", "$26", Some(("$22", "$23")), "$24"),
        insert_report("e.id", false, 12) + " FROM e"
    );
    let statement = client.prepare_cached(&sql).await.map_err(db)?;
    let mut values = event_params(e)?;
    values.push(Box::new(e.cluster.clone()));
    values.push(Box::new(e.customer.clone()));
    push_report(&mut values, report);
    let (channels, reminder) = delivery_arrays(e);
    values.push(Box::new(channels));
    let (owner, until) = match &report.claim {
        Some(l) => (Some(l.owner.clone()), Some(ms(l.until))),
        None => (None, None),
    };
    values.push(Box::new(owner));
    values.push(Box::new(until));
    push_reminders(&mut values, e);
    values.push(Box::new(reminder));
    let row = match with_commit(client, client.query_one(&statement, &params(&values))).await {
        Ok(row) => row,
        Err(err) if is(&err, &SqlState::UNIQUE_VIOLATION) => return Ok(Attempt::LostRace),
        Err(err) => return Err(db(err)),
    };
    let id: i64 = row.get(0);
    let ids: Vec<i64> = row.get(1);
    Ok(Attempt::Done(Box::new(Recorded {
        event: StoredEvent {
            id: numbered_event(id),
            event: e.clone(),
            received_at: report.received_at,
            reports: 1,
            deliveries: ids
                .into_iter()
                .zip(
                    e.channels
                        .iter()
                        .map(|c| (c, false))
                        .chain(e.reminders.iter().map(|c| (c, true))),
                )
                .map(|(id, (channel, reminder))| DeliveryStatus {
                    reminder,
                    ..DeliveryStatus::new(id, channel.clone())
                })
                .collect(),
        },
        merged: false,
        duplicate: false,
    })))
}

pub(crate) async fn record_merge(
    client: &Object,
    report: &NewReport,
    into: &EventId,
) -> Result<Attempt, StoreError> {
    let id = event_number(into)?;
    let sql = format!(
        "WITH r AS ({}) UPDATE events SET reports = reports + 1 WHERE id = $1
         RETURNING {EVENT_COLUMNS}",
        insert_report("$1", true, 2)
    );
    let statement = client.prepare_cached(&sql).await.map_err(db)?;
    let deliveries = client
        .prepare_cached(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE event_id = $1 ORDER BY id"
        ))
        .await
        .map_err(db)?;
    let mut values: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(id)];
    push_report(&mut values, report);
    let merged = with_commit(client, async {
        let (values, id) = (params(&values), [&id as &(dyn ToSql + Sync)]);
        // The first statement's error, not the second's "transaction aborted".
        let (row, deliveries) = tokio::join!(
            client.query_opt(&statement, &values),
            client.query(&deliveries, &id)
        );
        Ok((row?, deliveries?))
    })
    .await;
    let (row, deliveries) = match merged {
        Ok(rows) => rows,
        Err(err) if is(&err, &SqlState::UNIQUE_VIOLATION) => return Ok(Attempt::LostRace),
        Err(err) if is(&err, &SqlState::FOREIGN_KEY_VIOLATION) => {
            return Err(StoreError::NotFound(into.clone()));
        }
        Err(err) => return Err(db(err)),
    };
    let mut event = event_row(&row.ok_or_else(|| StoreError::NotFound(into.clone()))?)?;
    for r in &deliveries {
        event.deliveries.push(delivery_row(r)?.1);
    }
    Ok(Attempt::Done(Box::new(Recorded {
        event,
        merged: true,
        duplicate: false,
    })))
}

pub(crate) async fn record_complete(
    client: &Object,
    report: &NewReport,
    into: &EventId,
    e: &NewEvent,
) -> Result<Attempt, StoreError> {
    let id = event_number(into)?;
    // Unclaimed deliveries: the caller claims a merged report's deliveries itself.
    let sql = format!(
        "WITH u AS (
             UPDATE events SET active = $1, previous = $2, verdict = $3, at_ms = $4,
                 flapping = $5, failback_of = $6, classification = $7, context = $8,
                 channels = $9, reports = reports + 1, back_by_ms = $21, reminders = $22
             WHERE id = $10 AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_id = $10)
             RETURNING id),
         d AS ({}),
         r AS ({} FROM u)
         SELECT id FROM u",
        insert_deliveries("u", "$19", "$20", "$23", None, "$21"),
        insert_report("u.id", true, 11)
    );
    let statement = client.prepare_cached(&sql).await.map_err(db)?;
    let mut values = event_params(e)?;
    values.push(Box::new(id));
    push_report(&mut values, report);
    let (channels, reminder) = delivery_arrays(e);
    values.push(Box::new(channels));
    push_reminders(&mut values, e);
    values.push(Box::new(reminder));
    match with_commit(client, client.query_opt(&statement, &params(&values))).await {
        Ok(Some(_)) => {}
        Ok(None) => return Err(StoreError::NotFound(into.clone())),
        Err(err) if is(&err, &SqlState::UNIQUE_VIOLATION) => return Ok(Attempt::LostRace),
        Err(err) => return Err(db(err)),
    }
    Ok(Attempt::Done(Box::new(Recorded {
        event: load_event(client, id).await?,
        merged: true,
        duplicate: false,
    })))
}

pub(crate) async fn record(
    client: &Object,
    report: &NewReport,
    decide: Decide,
) -> Result<Recorded, StoreError> {
    // Called between awaits only; the lock makes it shareable across them.
    let decide = Mutex::new(decide);
    // A lost race on a client id means the other report is committed: the next try finds it.
    for _ in 0..3 {
        if let Attempt::Done(recorded) = try_record(client, report, &decide).await? {
            return Ok(*recorded);
        }
    }
    Err(StoreError::Backend(
        "a client id was recorded concurrently but cannot be read back".into(),
    ))
}
