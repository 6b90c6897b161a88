//! `windows`: list maintenance window occurrences as a table, JSON or iCalendar.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use failover_core::ics;
use failover_core::listing::{self, Filter};
use jiff::{SignedDuration, Timestamp};

use crate::{load, table, time_arg};

/// Output format of `windows`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns, local and UTC times.
    Table,
    /// An array of objects sorted by start (a stable contract, see the README).
    Json,
    /// iCalendar (RFC 5545), one event per occurrence.
    Ics,
}

/// Arguments of `windows`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Inventory file.
    #[arg(long, short, env = "FAILOVER_NOTIFY_CONFIG")]
    config: PathBuf,
    /// Start of the range (RFC 3339 or a date); default: now.
    #[arg(long)]
    from: Option<String>,
    /// End of the range; default: 31 days after --from.
    #[arg(long)]
    to: Option<String>,
    /// Only windows that can make this cluster's failover planned.
    #[arg(long, conflicts_with = "node")]
    cluster: Option<String>,
    /// Only windows of this node, its cluster and its customer.
    #[arg(long)]
    node: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// Runs `windows`.
///
/// # Errors
/// Unreadable or invalid inventory, malformed times, an unknown cluster or node.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let inv = load::inventory(&args.config)?;
    let now = time_arg::now();
    let from = args
        .from
        .as_deref()
        .map_or(Ok(now), |s| time_arg::parse("--from", s))?;
    let to = match &args.to {
        Some(s) => time_arg::parse("--to", s)?,
        None => from
            .checked_add(SignedDuration::from_hours(31 * 24))
            .map_or(failover_core::limits::LATEST, |t| {
                t.min(failover_core::limits::LATEST)
            }),
    };
    if to <= from {
        bail!("--to `{to}` must be after --from `{from}`");
    }
    let filter = match (&args.cluster, &args.node) {
        (Some(c), _) => Filter::Cluster(
            inv.find_cluster(c)
                .with_context(|| format!("unknown cluster `{c}`"))?,
        ),
        (_, Some(n)) => Filter::Node(
            inv.find_node(n, None)
                .with_context(|| format!("unknown node `{n}`"))?,
        ),
        _ => Filter::All,
    };
    let rows = listing::occurrences(&inv, from, to, filter)?;
    match args.format {
        Format::Ics => print!("{}", ics::calendar(&inv, &rows, now)),
        Format::Json => {
            let out: Vec<_> = rows.iter().map(|r| r.view(&inv)).collect();
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Table => print!("{}", table(&inv, &rows)),
    }
    Ok(ExitCode::SUCCESS)
}

fn table(inv: &failover_core::inventory::Inventory, rows: &[listing::Listed]) -> String {
    let header = [
        "START (LOCAL)",
        "END (LOCAL)",
        "ZONE",
        "START (UTC)",
        "CLUSTER",
        "OWNER",
        "WINDOW",
    ];
    let fmt = |t: &jiff::ZonedDateTime| t.strftime("%a %Y-%m-%d %H:%M %Z").to_string();
    let utc = |t: Timestamp| t.strftime("%Y-%m-%d %H:%MZ").to_string();
    let body: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            let w = inv.window(r.window);
            [
                fmt(&r.occurrence.start),
                fmt(&r.occurrence.end),
                w.time_zone.iana_name().unwrap_or("UTC").to_owned(),
                utc(r.occurrence.start.timestamp()),
                inv.cluster(r.cluster).name.clone(),
                inv.owner_name(w.owner).to_owned(),
                w.name.clone(),
            ]
        })
        .collect();
    if body.is_empty() {
        return "no maintenance window occurrences in this range\n".to_owned();
    }
    table::render(&header, body.into_iter().map(Vec::from))
}
