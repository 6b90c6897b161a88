//! `keys new`: a random API key and the `[[keys]]` entry that stores only its hash.

use std::process::ExitCode;

use anyhow::Context as _;
use failover_core::keys::KeyHash;

/// `keys` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print a new random API key and the inventory lines for it.
    New {
        /// Label for the key (shown in logs instead of the key).
        #[arg(long, default_value = "cluster-nodes")]
        name: String,
        /// The customer whose hosts the key may report for.
        #[arg(long, conflicts_with = "admin", required_unless_present = "admin")]
        customer: Option<String>,
        /// A key for every customer and the admin API.
        #[arg(long)]
        admin: bool,
    },
}

/// Runs a `keys` subcommand.
///
/// # Errors
/// The system's random number generator failed.
pub fn run(command: &Command) -> anyhow::Result<ExitCode> {
    let Command::New {
        name,
        customer,
        admin,
    } = command;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).context("reading random bytes from the operating system")?;
    let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let key = format!("fn_{key}");
    let owner = match customer {
        Some(c) => format!("customer = {}", toml_string(c)),
        None if *admin => "admin = true".to_owned(),
        None => unreachable!("clap requires --customer or --admin"),
    };
    println!("# API key (give it to the reporters; it is shown only now and stored nowhere):");
    println!("#   {key}");
    println!("# Add this to the inventory:");
    println!(
        "[[keys]]\nname = {}\n{owner}\nhash = \"{}\"",
        toml_string(name),
        KeyHash::of(&key)
    );
    Ok(ExitCode::SUCCESS)
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
