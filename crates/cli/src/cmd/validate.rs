//! `validate FILE...`: `ok` or every problem, per file; exit 1 if any file fails.

use std::path::PathBuf;
use std::process::ExitCode;

use failover_core::config;

use crate::load;

/// Arguments of `validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Inventory files to check.
    #[arg(required_unless_present = "example")]
    files: Vec<PathBuf>,
    /// Print the documented example inventory instead.
    #[arg(long, conflicts_with = "files")]
    example: bool,
}

/// Runs `validate`.
///
/// # Errors
/// Never for problems in the files (they are printed and make the exit code 1).
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if args.example {
        print!("{}", config::EXAMPLE);
        return Ok(ExitCode::SUCCESS);
    }
    let mut failed = false;
    for path in &args.files {
        match load::inventory(path) {
            Ok(inv) => println!(
                "{}: ok ({} clusters, {} nodes, {} windows, {} channels)",
                path.display(),
                inv.clusters.len(),
                inv.nodes.len(),
                inv.windows.len(),
                inv.channels.len()
            ),
            Err(err) => {
                failed = true;
                println!("{}: FAILED", path.display());
                match err.downcast_ref::<load::InvalidConfig>() {
                    Some(rendered) => eprint!("{rendered}"),
                    None => eprintln!("error: {err:#}"),
                }
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
