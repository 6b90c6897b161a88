//! `events`: recent failover events from a running service.

use std::process::ExitCode;

use serde_json::Value;

use crate::api::Target;

/// Arguments of `events`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Only this cluster.
    #[arg(long)]
    cluster: Option<String>,
    /// Only this verdict (planned, unplanned, unknown-host).
    #[arg(long)]
    verdict: Option<String>,
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
    let answer = args
        .target
        .call(reqwest::Method::GET, "/v1/events", &query, None)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<6} {:<22} {:<13} {:<16} {:<20} DELIVERIES",
        "ID", "AT (UTC)", "VERDICT", "CLUSTER", "ACTIVE"
    );
    let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    for e in answer["events"].as_array().into_iter().flatten() {
        let mut verdict = s(&e["verdict"]);
        if e["flapping"] == Value::Bool(true) {
            verdict.push('!');
        }
        let deliveries: Vec<String> = e["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| format!("{}:{}", s(&d["channel"]), s(&d["status"])))
            .collect();
        println!(
            "{:<6} {:<22} {:<13} {:<16} {:<20} {}",
            s(&e["id"]),
            s(&e["at"]),
            verdict,
            e["cluster"].as_str().unwrap_or("(unknown)"),
            e["active"]
                .as_str()
                .or(e["classification"]["host"].as_str())
                .unwrap_or("-"),
            deliveries.join(" ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
