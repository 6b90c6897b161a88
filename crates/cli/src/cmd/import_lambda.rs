//! `import-lambda FILE.py`: print an inventory equivalent to the original handler's settings.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use failover_core::{config, lambda_import};

/// Arguments of `import-lambda`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The original `lambda_function.py`.
    file: PathBuf,
}

/// Runs `import-lambda`.
///
/// # Errors
/// Unreadable file, or a line that cannot be understood (named in the message).
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let py = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading `{}`", args.file.display()))?;
    let toml = lambda_import::convert(&py)
        .with_context(|| format!("converting `{}`", args.file.display()))?;
    // The output must be a valid inventory; say so loudly if the conversion ever breaks that.
    if let Err(errors) = config::parse(&toml) {
        anyhow::bail!(
            "the converted inventory does not validate (a bug; please report it):\n{}",
            config::render_errors("converted.toml", &toml, &errors)
        );
    }
    print!("{toml}");
    Ok(ExitCode::SUCCESS)
}
