//! Retention soak: `EVENTS` events spread over a simulated year (one a ~31 s), each with a
//! report and a delivered message, pruned as `serve` does (batches of 500 each simulated
//! hour) with `keep` days of history; prints the database's size at the end of each
//! simulated month.
//!
//! ```sh
//! cargo run --release -p failover-store-sqlite --example soak -- 1000000 30
//! ```

use std::sync::Arc;

use failover_store::{
    Action, Decision, Lease, NewEvent, NewReport, Outcome, Scope, Store, Verdict,
};
use failover_store_sqlite::Sqlite;
use jiff::{SignedDuration, Timestamp};

fn size(dir: &std::path::Path) -> u64 {
    ["soak.db", "soak.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let events: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let keep_days: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let keep = SignedDuration::from_hours(24 * keep_days);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Sqlite::open(dir.path().join("soak.db")).expect("opens");
    let start: Timestamp = "2026-01-01T00:00:00Z".parse().expect("instant");
    let year = SignedDuration::from_hours(365 * 24);
    let step = year / i32::try_from(events).expect("events fit");
    let started = std::time::Instant::now();
    let (mut pruned, mut next_prune, mut month) = (0u64, start, 1);
    let clusters = 1000;
    const IN_FLIGHT: u64 = 256;
    let mut i = 0;
    println!("events {events}, keep {keep_days}d, one event every {step:#}");
    println!("| month | events written | rows pruned | database (MB) |");
    println!("|---|---|---|---|");
    while i < events {
        let mut batch = tokio::task::JoinSet::new();
        for j in i..(i + IN_FLIGHT).min(events) {
            let at = start + step * i32::try_from(j).expect("fits");
            let cluster = format!("c{}", j % clusters);
            let store = store.clone();
            batch.spawn(async move {
                let report = NewReport {
                    client_id: Some(format!("r{j}")),
                    scope: Scope::from_key("acme"),
                    host: format!("{cluster}-a"),
                    action: Action::Takeover,
                    previous: None,
                    resource: Some("vip".into()),
                    source: Some("soak".into()),
                    occurred_at: at,
                    received_at: at,
                    history: Some((cluster.clone(), at - SignedDuration::from_hours(1))),
                    claim: Some(Lease {
                        owner: "soak".into(),
                        until: at + SignedDuration::from_mins(5),
                    }),
                    maintenance_after: None,
                };
                let event = Arc::new(NewEvent {
                    cluster: Some(cluster.clone()),
                    customer: Some("acme".into()),
                    active: Some(format!("{cluster}-a")),
                    previous: Some(format!("{cluster}-b")),
                    verdict: Verdict::Unplanned,
                    at,
                    flapping: false,
                    failback_of: None,
                    classification: serde_json::json!({"verdict": "unplanned", "host": format!("{cluster}-a")}),
                    context: failover_store::MessageContext {
                        cluster: cluster.clone(),
                        ..Default::default()
                    },
                    channels: vec!["sns".into()],
                    back_by: None,
                    reminders: Vec::new(),
                });
                let recorded = store
                    .record(report, Box::new(move |_, _| Decision::New(Box::new((*event).clone()))))
                    .await
                    .expect("records");
                // The message went out: the delivery is finished, as the worker leaves it.
                let done = recorded
                    .event
                    .deliveries
                    .iter()
                    .map(|d| (d.id, Outcome::Delivered))
                    .collect();
                store.finish("soak", done, at).await.expect("finishes");
            });
        }
        while let Some(r) = batch.join_next().await {
            r.expect("task");
        }
        i = (i + IN_FLIGHT).min(events);
        let now = start + step * i32::try_from(i).expect("fits");
        while next_prune <= now {
            loop {
                let p = store
                    .prune(next_prune - keep, next_prune, 500)
                    .await
                    .expect("prunes");
                pruned += p.total();
                if p.total() == 0 {
                    break;
                }
            }
            next_prune += SignedDuration::from_hours(1);
        }
        let month_end = start + year / 12 * month;
        if now >= month_end || i == events {
            println!(
                "| {month} | {i} | {pruned} | {:.1} |",
                size(dir.path()) as f64 / 1e6
            );
            month += 1;
        }
    }
    println!("took {:.0} s", started.elapsed().as_secs_f64());
}
