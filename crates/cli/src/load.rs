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

/// Gives the memory a parse freed back to the operating system.
///
/// glibc keeps freed memory that lies between live allocations, and raises its own trim
/// threshold after large frees, so `serve` stayed near its parse peak: 47 MB idle with a
/// 25,000-node inventory. `malloc_trim` returns every whole free page (BENCHMARKS.md).
#[cfg(all(
    target_os = "linux",
    target_env = "gnu",
    any(feature = "sqlite", feature = "postgres")
))]
#[allow(unsafe_code, reason = "the one foreign call: glibc's malloc_trim")]
pub fn release_freed_memory() {
    // SAFETY: malloc_trim has no preconditions: it only walks glibc's own free lists, under
    // their locks (it is MT-safe), and never touches memory that is still allocated.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Raises the soft limit of open files to the hard limit (systemd's default soft limit is
/// 1024, often lower elsewhere), so connections run into `[server] max_connections`, not
/// into `EMFILE`. Returns the limit now in force.
///
/// # Errors
/// The OS error when the limit cannot be read or set.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[allow(unsafe_code, reason = "getrlimit/setrlimit through libc")]
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: both calls only read or write the `rlimit` struct passed by pointer, which
    // lives on this stack frame for the duration of the call.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(lim.rlim_cur)
}

/// Other allocators return freed memory themselves.
#[cfg(all(
    not(all(target_os = "linux", target_env = "gnu")),
    any(feature = "sqlite", feature = "postgres")
))]
pub fn release_freed_memory() {}

/// Cuts an inline comment off every `FAILOVER_NOTIFY_*` variable, with a warning naming the
/// variable (never its value: it may be the key). systemd's `EnvironmentFile=` keeps
/// `URL=https://x   # comment` as the whole value, while a shell that sources the same file
/// drops the comment; a URL, path, name or duration never holds whitespace before a `#`.
/// Must run before any other thread starts (it sets environment variables).
#[allow(unsafe_code, reason = "set_var, before any other thread exists")]
pub fn drop_inline_comments() {
    for (name, value) in std::env::vars_os() {
        let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
            continue;
        };
        if !name.starts_with("FAILOVER_NOTIFY_") {
            continue;
        }
        let Some(cut) = inline_comment(value) else {
            continue;
        };
        eprintln!(
            "warning: {name} ends in a comment, which systemd's EnvironmentFile keeps in the \
             value; using what comes before it. Put comments on lines of their own."
        );
        // SAFETY: called first thing in `main`, while this is the only thread, so nothing
        // reads the environment concurrently.
        unsafe { std::env::set_var(name, value[..cut].trim_end()) };
    }
}

/// Where an inline comment starts: a `#` after whitespace.
fn inline_comment(value: &str) -> Option<usize> {
    value
        .char_indices()
        .find(|&(i, c)| c == '#' && i > 0 && value[..i].ends_with(char::is_whitespace))
        .map(|(i, _)| i)
}

/// Logs to stderr, filtered by `RUST_LOG` (`info` by default): `serve` and `lambda`.
pub fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let filter: Targets = std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .with(filter)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::inline_comment;

    #[test]
    fn an_inline_comment_starts_at_a_hash_after_whitespace() {
        let cut = |v: &'static str| inline_comment(v).map(|i| v[..i].trim_end());
        assert_eq!(
            cut("https://x:8080   # serve's URL"),
            Some("https://x:8080")
        );
        assert_eq!(cut("10s\t# how long"), Some("10s"));
        assert_eq!(cut("https://x/#fragment"), None);
        assert_eq!(cut("#only"), None);
        assert_eq!(cut("/var/spool/failover-notify"), None);
    }
}
