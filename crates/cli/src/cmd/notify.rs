//! `notify test CHANNEL -c FILE`: one test message through one channel of the inventory,
//! and what the channel's peer answered, to check a channel before a failover needs it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use failover_channels::{Intent, Notifier, Outgoing};
use failover_core::inventory::{ChannelKind, MessageKind};
use failover_core::template::MessageContext;

use crate::{load, time_arg};

/// `notify` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Send a test message through one channel and say what its peer answered (exit 1
    /// when the channel did not take it).
    Test {
        /// The channel's name in the inventory.
        channel: String,
        /// Inventory file.
        #[arg(long, short, env = "FAILOVER_NOTIFY_CONFIG")]
        config: PathBuf,
    },
}

/// Runs a `notify` subcommand.
///
/// # Errors
/// Unreadable or invalid inventory, an unknown channel, or one that cannot be built (a
/// missing secret).
pub fn run(command: &Command) -> anyhow::Result<ExitCode> {
    let Command::Test { channel, config } = command;
    let inv = load::inventory(config)?;
    let Some(c) = inv.channels.iter().find(|c| c.name == *channel) else {
        let names: Vec<&str> = inv.channels.iter().map(|c| c.name.as_str()).collect();
        anyhow::bail!(
            "no channel `{channel}` in `{}`; its channels: {}",
            config.display(),
            names.join(", ")
        );
    };
    let now = time_arg::now();
    let msg = Outgoing {
        delivery: 0,
        event: format!("test-{}", now.as_second()),
        // Planned: the colour and wording of a message nobody needs to act on.
        verdict: MessageKind::Planned,
        // An alert like an event's own, keyed by the `test-...` event id.
        intent: Intent::Alert,
        subject: format!("failover-notify test message through channel {channel}"),
        body: format!(
            "This is a test of the channel `{channel}`, sent by `failover-notify notify test` at {now}. No failover happened."
        ),
        sms: format!("failover-notify test of channel {channel}, no failover"),
        // No `at_utc`: an Alertmanager stamps its own time and ends the test alert after its
        // `resolve_timeout`, once its receivers have had it. No cluster, host or window: the
        // event id (`test-...`) is what tells a receiver it is a test.
        context: MessageContext {
            verdict: MessageKind::Planned,
            version: MessageContext::VERSION,
            ..MessageContext::default()
        },
        link: None,
    };
    let timeout = std::time::Duration::try_from(inv.delivery.timeout)
        .unwrap_or(std::time::Duration::from_secs(15));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // A PagerDuty test alert is resolved again at once, so nobody is left on call for it.
    let resolve = matches!(c.kind, ChannelKind::PagerDuty { .. }).then(|| Outgoing {
        intent: Intent::Resolve { at: now },
        ..msg.clone()
    });
    let sent = runtime.block_on(async {
        let notifier = Notifier::build(c, timeout).await?;
        let mut sent = notifier.send(&msg).await;
        if let (Ok(()), Some(resolve)) = (&sent, &resolve) {
            sent = notifier.send(resolve).await;
        }
        anyhow::Ok(sent)
    })?;
    match sent {
        Ok(()) => {
            let resolved = if resolve.is_some() {
                ", and resolved the test alert"
            } else {
                ""
            };
            println!("ok: channel `{channel}` took the test message{resolved}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let kind = if e.is_retryable() {
                "a temporary failure: the service would try again"
            } else {
                "a permanent failure: the service would give the delivery up"
            };
            eprintln!("error: channel `{channel}` did not take the test message: {e} ({kind})");
            Ok(ExitCode::FAILURE)
        }
    }
}
