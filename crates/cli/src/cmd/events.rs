//! `events`: recent failover events from a running service.

use std::process::ExitCode;

use failover_app::api::EventsPage;
use failover_core::text::printable as shown;
use failover_store::{EventDetail, StoredEvent};

use crate::api::Target;
use crate::table;

/// Arguments of `events`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Only this cluster.
    #[arg(long)]
    cluster: Option<String>,
    /// Only this verdict (planned, unplanned, unknown-host, cluster-start).
    #[arg(long)]
    verdict: Option<String>,
    /// Show this one event: its reports, as received, and its deliveries.
    #[arg(long, conflicts_with_all = ["cluster", "verdict", "since"])]
    id: Option<String>,
    /// Only events at or after this RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// How many.
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `events`.
///
/// # Errors
/// The service cannot be reached or refuses the request.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if let Some(id) = &args.id {
        return show(args, id);
    }
    let mut query = vec![("limit", args.limit.to_string())];
    for (k, v) in [
        ("cluster", &args.cluster),
        ("verdict", &args.verdict),
        ("since", &args.since),
    ] {
        if let Some(v) = v {
            query.push((k, v.clone()));
        }
    }
    let page: EventsPage = args
        .target
        .fetch(reqwest::Method::GET, "/v1/events", &query, None)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&page)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows = page.events.iter().map(|e| {
        let mut verdict = e.event.verdict.as_str().to_owned();
        if e.event.flapping {
            verdict.push('!');
        }
        let active = e
            .event
            .active
            .as_deref()
            .or(e.event.classification["host"].as_str())
            .unwrap_or("-");
        vec![
            e.id.to_string(),
            e.event.at.to_string(),
            verdict,
            shown(e.event.cluster.as_deref().unwrap_or("(unknown)")).into_owned(),
            shown(active).into_owned(),
            deliveries(e),
        ]
    });
    print!(
        "{}",
        table::render(
            &[
                "ID",
                "AT (UTC)",
                "VERDICT",
                "CLUSTER",
                "ACTIVE",
                "DELIVERIES"
            ],
            rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

fn deliveries(e: &StoredEvent) -> String {
    let shown: Vec<String> = e
        .deliveries
        .iter()
        .map(|d| format!("{}:{}", shown(&d.channel), d.status.as_str()))
        .collect();
    shown.join(" ")
}

/// `events --id ID`: the event, its reports and its deliveries.
fn show(args: &Args, id: &str) -> anyhow::Result<ExitCode> {
    let path = format!("/v1/events/{}", urlencoding(id));
    let d: EventDetail = args.target.fetch(reqwest::Method::GET, &path, &[], None)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
        return Ok(ExitCode::SUCCESS);
    }
    let e = &d.event;
    println!(
        "event {} at {}: {} of {}, active {}, previous {}",
        e.id,
        e.event.at,
        e.event.verdict.as_str(),
        shown(e.event.cluster.as_deref().unwrap_or("(unknown)")).into_owned(),
        shown(e.event.active.as_deref().unwrap_or("-")),
        shown(e.event.previous.as_deref().unwrap_or("-")),
    );
    println!("reports:");
    for r in &d.received {
        println!(
            "  {}  {} {}{}{} (received {})",
            r.occurred_at,
            shown(&r.host),
            r.action.as_str(),
            r.previous
                .as_deref()
                .map(|p| format!(", previous {}", shown(p)))
                .unwrap_or_default(),
            r.source
                .as_deref()
                .map(|s| format!(", from {}", shown(s)))
                .unwrap_or_default(),
            r.received_at,
        );
    }
    println!("deliveries:");
    for x in &e.deliveries {
        println!(
            "  {} {} after {} attempt(s){}",
            shown(&x.channel),
            x.status.as_str(),
            x.attempts,
            x.last_error
                .as_deref()
                .map(|e| format!("; last error: {}", shown(e)))
                .unwrap_or_default(),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `id` for a path segment (ids are digits; anything else is escaped, not interpreted).
fn urlencoding(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
