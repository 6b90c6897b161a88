//! `man DIR` and `completions SHELL`: what a package installs besides the binary, made
//! from the same command-line definition, so they never drift from `--help`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap_complete::Shell;

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Directory to write the pages into (created if missing).
    pub dir: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct CompletionArgs {
    /// The shell.
    pub shell: Shell,
}

/// Writes `failover-notify.1` and `failover-notify-COMMAND.1` for every command (and
/// `failover-notify-COMMAND-SUB.1` for their subcommands).
///
/// # Errors
/// The directory or a page cannot be written.
pub fn man(args: &ManArgs, cli: clap::Command) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating `{}`", args.dir.display()))?;
    clap_mangen::generate_to(cli, &args.dir)
        .with_context(|| format!("writing the manual pages into `{}`", args.dir.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// Prints the completion script for `args.shell`.
///
/// # Errors
/// Never; the signature matches the other commands.
pub fn completions(args: &CompletionArgs, mut cli: clap::Command) -> anyhow::Result<ExitCode> {
    clap_complete::generate(
        args.shell,
        &mut cli,
        "failover-notify",
        &mut std::io::stdout(),
    );
    Ok(ExitCode::SUCCESS)
}
