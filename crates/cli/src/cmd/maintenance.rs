//! `maintenance add|list|end`: ad-hoc windows on a running service.

use std::process::ExitCode;

use failover_app::api::{AddedMaintenance, MaintenanceList};
use failover_core::text::printable as shown;
use serde_json::{Value, json};

use crate::api::Target;
use crate::table;
use crate::time_arg;

/// `maintenance` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Open an ad-hoc window now (or at --start) on a node, cluster or customer.
    Add {
        #[command(flatten)]
        target: Target,
        /// A node.
        #[arg(long, group = "what", required = true)]
        node: Option<String>,
        /// A cluster.
        #[arg(long, group = "what")]
        cluster: Option<String>,
        /// A customer.
        #[arg(long, group = "what")]
        customer: Option<String>,
        /// Start (RFC 3339); default now.
        #[arg(long)]
        start: Option<String>,
        /// How long: `2h`, `90m`.
        #[arg(long, group = "until", required = true)]
        duration: Option<String>,
        /// End (RFC 3339).
        #[arg(long, group = "until")]
        end: Option<String>,
        /// Why (shown in messages).
        #[arg(long)]
        reason: String,
    },
    /// List ad-hoc windows that have not ended.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// End an ad-hoc window now.
    End {
        #[command(flatten)]
        target: Target,
        /// Its id.
        id: i64,
    },
}

/// Runs a `maintenance` subcommand.
///
/// # Errors
/// The service cannot be reached or refuses the request.
pub fn run(command: &Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Add {
            target,
            node,
            cluster,
            customer,
            start,
            duration,
            end,
            reason,
        } => {
            // Checked here too, so a typo fails before the request and dates or zone
            // annotations work as for every other time flag.
            let instant = |flag, s: &Option<String>| {
                s.as_deref()
                    .map(|s| time_arg::parse(flag, s).map(|t| t.to_string()))
                    .transpose()
            };
            let (start, end) = (instant("--start", start)?, instant("--end", end)?);
            if let Some(d) = duration {
                time_arg::duration("--duration", d)?;
            }
            let body = json!({
                "node": node, "cluster": cluster, "customer": customer,
                "start": start, "duration": duration, "end": end, "reason": reason,
            });
            let body: Value = body
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(_, v)| !v.is_null())
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            let added: AddedMaintenance =
                target.fetch(reqwest::Method::POST, "/v1/maintenance", &[], Some(body))?;
            let (m, w) = (&added.window, &added.window.window);
            println!(
                "added maintenance window #{} on {} `{}` from {} to {}",
                m.id,
                w.target_kind,
                shown(&w.target),
                w.start,
                w.end
            );
            for id in &added.resolves {
                println!(
                    "it covers unplanned failover {id}: its alerts are resolved (pagerduty, alertmanager)"
                );
            }
        }
        Command::List { target } => {
            let answer: MaintenanceList =
                target.fetch(reqwest::Method::GET, "/v1/maintenance", &[], None)?;
            let rows = answer.maintenance.iter().map(|m| {
                let w = &m.window;
                vec![
                    m.id.to_string(),
                    w.target_kind.as_str().to_owned(),
                    shown(&w.target).into_owned(),
                    w.start.to_string(),
                    w.end.to_string(),
                    shown(&w.reason).into_owned(),
                ]
            });
            print!(
                "{}",
                table::render(
                    &["ID", "ON", "TARGET", "START (UTC)", "END (UTC)", "REASON"],
                    rows
                )
            );
        }
        Command::End { target, id } => {
            target.call(
                reqwest::Method::DELETE,
                &format!("/v1/maintenance/{id}"),
                &[],
                None,
            )?;
            println!("ended maintenance window #{id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
