//! `check HOST [--at TIME]`: classify a failover without sending anything, and say why.

use std::path::PathBuf;
use std::process::ExitCode;

use failover_core::classify::{ClassificationView, classify};
use failover_core::inventory::Inventory;

use crate::{load, time_arg};

/// Output format of `check`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Human-readable lines.
    Text,
    /// One JSON object (a stable contract, see the README).
    Json,
}

/// Arguments of `check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The host that reported taking over.
    host: String,
    /// When it happened (RFC 3339); default: now.
    #[arg(long)]
    at: Option<String>,
    /// Inventory file.
    #[arg(long, short, env = "FAILOVER_NOTIFY_CONFIG")]
    config: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// Runs `check`.
///
/// # Errors
/// Unreadable or invalid inventory, or a malformed `--at`.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let inv = load::inventory(&args.config)?;
    let at = match &args.at {
        Some(s) => time_arg::parse("--at", s)?,
        None => time_arg::now(),
    };
    let view = classify(&inv, &[], &args.host, None, at).view(&inv, &[], &args.host, at);
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&view)?),
        Format::Text => print!("{}", text(&inv, &view)),
    }
    Ok(ExitCode::SUCCESS)
}

fn text(inv: &Inventory, v: &ClassificationView) -> String {
    let mut out = format!("{}: {}\n", v.host, v.verdict.as_str());
    match &v.cluster {
        None => out.push_str(
            "  the host is not in the inventory: its report would be routed to the admin routes\n",
        ),
        Some(c) => {
            let cluster = inv.find_cluster(c).map(|id| inv.cluster(id));
            let customer = cluster
                .and_then(|c| c.customer)
                .map_or(String::new(), |cu| {
                    format!(" (customer {})", inv.customers[cu.index()].name)
                });
            out.push_str(&format!("  cluster  {c}{customer}\n"));
            if let Some(cluster) = cluster {
                let names: Vec<&str> = cluster
                    .nodes
                    .iter()
                    .map(|n| inv.node(*n).name.as_str())
                    .collect();
                out.push_str(&format!("  nodes    {}\n", names.join(", ")));
            }
        }
    }
    out.push_str(&format!("  at       {}\n", v.at));
    match &v.window {
        Some(w) => out.push_str(&format!(
            "  window   \"{}\" of {}: {} to {} ({})\n",
            w.name, w.owner, w.start, w.end, w.time_zone
        )),
        None if v.cluster.is_some() => {
            out.push_str("  no maintenance window of the cluster, its nodes or its customer is open (grace included)\n");
        }
        None => {}
    }
    out
}
