//! Reading an inventory file, with errors rendered against its source.

use std::fmt;
use std::path::Path;

use anyhow::Context as _;
use failover_core::config;
use failover_core::inventory::Inventory;

/// An inventory with problems, rendered compiler-style (file:line:col, snippet, caret).
#[derive(Debug)]
pub struct InvalidConfig(pub String);

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidConfig {}

/// Reads and validates `path`.
///
/// # Errors
/// The file cannot be read, or [`InvalidConfig`] with every problem in it.
pub fn inventory(path: &Path) -> anyhow::Result<Inventory> {
    let src = std::fs::read_to_string(path)
        .with_context(|| format!("reading inventory `{}`", path.display()))?;
    config::parse(&src).map_err(|errors| {
        InvalidConfig(config::render_errors(
            &path.display().to_string(),
            &src,
            &errors,
        ))
        .into()
    })
}
