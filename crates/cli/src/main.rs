//! `failover-notify`: the command-line entry point. Each command lives in its own file
//! under `cmd/`; this file only parses arguments and prints errors.

mod access;
mod api;
mod cmd;
mod load;
mod table;
mod time_arg;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tells operations teams whether a cluster failover was planned or needs a look now.
#[derive(Debug, Parser)]
#[command(name = "failover-notify", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: HTTP API, SQLite store and delivery worker.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    Serve(cmd::serve::Args),
    /// Run as an AWS Lambda function (API Gateway, function URL, EventBridge schedule)
    /// with DynamoDB; started with no arguments on Lambda, this is the default.
    #[cfg(feature = "lambda")]
    Lambda(cmd::lambda::Args),
    /// Report a failover from a cluster node (replaces the curl line): retries, and spools
    /// what cannot be sent yet; exits 0 either way so the cluster manager is never harmed.
    Report(cmd::report::Args),
    /// Show recent failover events from a running service.
    Events(cmd::events::Args),
    /// Ad-hoc maintenance windows on a running service.
    #[command(subcommand)]
    Maintenance(cmd::maintenance::Command),
    /// Check inventory files; print `ok` or every problem with its line and column.
    Validate(cmd::validate::Args),
    /// Dry run: classify a failover of HOST at an instant and say why.
    Check(cmd::check::Args),
    /// List maintenance window occurrences (table, JSON or iCalendar).
    Windows(cmd::windows::Args),
    /// Turn the original Python Lambda handler's settings into an inventory.
    ImportLambda(cmd::import_lambda::Args),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(cmd::keys::Command),
    /// Check channels: send a test message through one.
    #[command(subcommand)]
    Notify(cmd::notify::Command),
    /// Write the manual pages (failover-notify.1 and one per command) into DIR.
    #[cfg(feature = "assets")]
    Man(cmd::assets::ManArgs),
    /// Print the completion script for a shell (bash, zsh, fish, elvish, powershell).
    #[cfg(feature = "assets")]
    Completions(cmd::assets::CompletionArgs),
}

fn main() -> ExitCode {
    load::drop_inline_comments();
    #[cfg(feature = "lambda")]
    let command =
        if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() && std::env::args_os().len() == 1 {
            // Lambda's `bootstrap`: only `lambda`'s settings (from the environment) are parsed,
            // not the whole command line interface, for a shorter cold start.
            Command::Lambda(<cmd::lambda::Args as clap::Parser>::parse_from(["lambda"]))
        } else {
            Cli::parse().command
        };
    #[cfg(not(feature = "lambda"))]
    let command = Cli::parse().command;
    let result = match command {
        #[cfg(any(feature = "sqlite", feature = "postgres"))]
        Command::Serve(args) => cmd::serve::run(&args),
        #[cfg(feature = "lambda")]
        Command::Lambda(args) => cmd::lambda::run(&args),
        Command::Report(args) => cmd::report::run(&args),
        Command::Events(args) => cmd::events::run(&args),
        Command::Maintenance(command) => cmd::maintenance::run(&command),
        Command::Validate(args) => cmd::validate::run(&args),
        Command::Check(args) => cmd::check::run(&args),
        Command::Windows(args) => cmd::windows::run(&args),
        Command::ImportLambda(args) => cmd::import_lambda::run(&args),
        Command::Keys(command) => cmd::keys::run(&command),
        Command::Notify(command) => cmd::notify::run(&command),
        #[cfg(feature = "assets")]
        Command::Man(args) => cmd::assets::man(&args, <Cli as clap::CommandFactory>::command()),
        #[cfg(feature = "assets")]
        Command::Completions(args) => {
            cmd::assets::completions(&args, <Cli as clap::CommandFactory>::command())
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            match err.downcast_ref::<load::InvalidConfig>() {
                // Already rendered with file, line, column and snippet.
                Some(invalid) => eprint!("{invalid}"),
                None => eprintln!("error: {err:#}"),
            }
            ExitCode::FAILURE
        }
    }
}
