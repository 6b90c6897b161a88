//! `check HOST [--at TIME]`: classify a failover without sending anything, and say why.

use std::path::PathBuf;
use std::process::ExitCode;

use failover_core::classify::{ClassificationView, classify};
use failover_core::decide::{Decision, History, decide};
use failover_core::inventory::{ChannelKind, Inventory};
use failover_core::report::{Action, FailoverReport};
use jiff::Timestamp;
use serde::Serialize;

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
    /// Also the channels the message is routed to and its rendered subject and body (as a
    /// failover of a running cluster: flapping and failback need the stored history).
    #[arg(long)]
    explain: bool,
}

/// What `--explain` adds: where the message goes and what it says.
#[derive(Debug, Serialize)]
struct Explained {
    channels: Vec<String>,
    subject: String,
    body: String,
    /// The SMS text, when an SNS channel with `sms = true` is routed.
    #[serde(skip_serializing_if = "Option::is_none")]
    sms: Option<String>,
    /// The `not-back` reminder a planned failover away from the usual node schedules.
    #[serde(skip_serializing_if = "Option::is_none")]
    reminder: Option<Reminder>,
}

/// When and where the cluster is expected back, and who is told if it is not.
#[derive(Debug, Serialize)]
struct Reminder {
    usual: String,
    /// Local time, in the cluster's zone.
    back_by: String,
    channels: Vec<String>,
}

/// The message a failover reported by `host` at `at` would send, and to which channels.
fn explain(inv: &Inventory, host: &str, at: Timestamp) -> anyhow::Result<Explained> {
    let report = FailoverReport {
        hostname: host.to_owned(),
        occurred_at: at,
        previous: None,
        action: Action::Takeover,
        resource: None,
        source: None,
        id: None,
    };
    let c = classify(inv, &[], host, None, at);
    // A cluster with older events: a failover, not its start.
    let history = History {
        events: Vec::new(),
        older: true,
    };
    let Decision::New(event) = decide(inv, &[], &report, &c, &history) else {
        anyhow::bail!("no new event for `{host}`: nothing would be sent");
    };
    let cluster = c.cluster;
    let customer = cluster.and_then(|id| inv.cluster(id).customer);
    let msg = inv
        .templates
        .render(&event.context, event.verdict.into(), cluster, customer)
        .map_err(|e| anyhow::anyhow!("{e}: {}", e.source))?;
    let texts = event.channels.iter().any(|name| {
        inv.channels
            .iter()
            .any(|ch| ch.name == *name && matches!(ch.kind, ChannelKind::Sns { sms: true, .. }))
    });
    Ok(Explained {
        channels: event.channels.clone(),
        subject: msg.subject,
        body: msg.body,
        sms: texts.then_some(msg.sms),
        reminder: event.back_by.map(|_| Reminder {
            usual: event.context.usual.clone(),
            back_by: event.context.back_by.clone(),
            channels: event.reminders.clone(),
        }),
    })
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
    let explained = args
        .explain
        .then(|| explain(&inv, &args.host, at))
        .transpose()?;
    match args.format {
        Format::Json => {
            let mut json = serde_json::to_value(&view)?;
            if let (Some(e), Some(o)) = (&explained, json.as_object_mut()) {
                o.insert("explain".to_owned(), serde_json::to_value(e)?);
            }
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
        Format::Text => {
            print!("{}", text(&inv, &view));
            if let Some(e) = &explained {
                print!("{}", explained_text(e));
            }
        }
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

fn explained_text(e: &Explained) -> String {
    let channels = if e.channels.is_empty() {
        "none: no route carries this verdict".to_owned()
    } else {
        e.channels.join(", ")
    };
    let mut out = format!("  channels {channels}\n  subject  {}\n  body\n", e.subject);
    for line in e.body.lines() {
        out.push_str(format!("    | {line}").trim_end());
        out.push('\n');
    }
    if let Some(sms) = &e.sms {
        out.push_str(&format!("  sms      {sms}\n"));
    }
    if let Some(r) = &e.reminder {
        out.push_str(&format!(
            "  reminder to {} if not back on {} by {}\n",
            r.channels.join(", "),
            r.usual,
            r.back_by
        ));
    }
    out
}
