//! `serve`: the HTTP API, the store (embedded SQLite, or PostgreSQL shared by several
//! replicas) and the delivery worker in one process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use failover_app::AppState;
#[cfg(feature = "postgres")]
use failover_app::state::{AdHoc, Delivery};
use failover_core::config;
use failover_core::inventory::Inventory;
use failover_store::Store;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

use crate::load;

/// How often the inventory file is checked for changes.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Inventory file; without it, the built-in example inventory (log channel on stdout).
    #[arg(short, long, env = "FAILOVER_NOTIFY_CONFIG")]
    config: Option<PathBuf>,
    /// Database: `sqlite://PATH` or a path, or `postgres://USER:PASSWORD@HOST:PORT/DB`
    /// (libpq's URL, `?sslmode=...&sslrootcert=...`) shared by several replicas. Default:
    /// `failover-notify.db` in the data directory ($FAILOVER_NOTIFY_DATA, else
    /// $XDG_DATA_HOME/failover-notify, else ~/.local/share/failover-notify).
    #[arg(long, env = "FAILOVER_NOTIFY_DB")]
    db: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "FAILOVER_NOTIFY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// PostgreSQL: most connections this replica opens (1 to 1000).
    #[arg(long, env = "FAILOVER_NOTIFY_DB_POOL", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    db_pool: u16,
    /// PostgreSQL: this replica's name on the deliveries it is sending, unique among the
    /// replicas and the same across its restarts (a restart takes back what it held).
    /// Default: HOSTNAME:PORT.
    #[arg(long, env = "FAILOVER_NOTIFY_REPLICA",
          value_parser = clap::builder::NonEmptyStringValueParser::new())]
    replica: Option<String>,
}

/// Where the events are kept.
enum Database {
    #[cfg(feature = "sqlite")]
    Sqlite(PathBuf),
    #[cfg(feature = "postgres")]
    Postgres(String),
}

fn data_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("FAILOVER_NOTIFY_DATA") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return Ok(PathBuf::from(d).join("failover-notify"));
    }
    let home = std::env::var_os("HOME").context("set --db, FAILOVER_NOTIFY_DATA or HOME")?;
    Ok(PathBuf::from(home).join(".local/share/failover-notify"))
}

fn database(db: Option<&str>) -> anyhow::Result<Database> {
    let path = match db {
        Some(url) if url.trim().is_empty() => anyhow::bail!("`--db` is empty; use {SCHEMES}"),
        Some(url) => match url.split_once("://") {
            Some(("sqlite", path)) => PathBuf::from(path),
            #[cfg(feature = "postgres")]
            Some(("postgres" | "postgresql", _)) => return Ok(Database::Postgres(url.to_owned())),
            Some((scheme, _)) => {
                anyhow::bail!("unsupported database `{scheme}://`; use {}", SCHEMES)
            }
            None => PathBuf::from(url),
        },
        None => data_dir()?.join("failover-notify.db"),
    };
    #[cfg(feature = "sqlite")]
    {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating `{}`", dir.display()))?;
        }
        Ok(Database::Sqlite(path))
    }
    #[cfg(not(feature = "sqlite"))]
    anyhow::bail!(
        "this build has no SQLite store (`{}`); use {SCHEMES}",
        path.display()
    )
}

/// The `--db` forms this build takes.
const SCHEMES: &str = match (cfg!(feature = "sqlite"), cfg!(feature = "postgres")) {
    (true, true) => "`sqlite://PATH` or `postgres://...`",
    (true, false) => "`sqlite://PATH` (this build has no PostgreSQL store)",
    _ => "`postgres://...` (this build has no SQLite store)",
};

/// This replica's default name: the host's name and the port it listens on.
#[cfg(feature = "postgres")]
fn replica_name(listen: SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", listen.port())
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Runs `serve` until SIGTERM or SIGINT.
///
/// # Errors
/// Invalid inventory, unusable database, address in use.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    load::init_logging();
    match load::raise_open_files_limit() {
        Ok(n) => tracing::debug!(open_files = n, "open file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open file limit"),
    }
    let inventory = match &args.config {
        Some(p) => load::inventory(p)?,
        None => demo_inventory()?,
    };
    load::release_freed_memory();
    let database = database(args.db.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        match database {
            #[cfg(feature = "sqlite")]
            Database::Sqlite(path) => {
                let store = failover_store_sqlite::Sqlite::open(&path)
                    .with_context(|| format!("opening database `{}`", path.display()))?;
                let state = AppState::new(store, inventory).await?;
                serve(state, args, &path.display().to_string()).await
            }
            #[cfg(feature = "postgres")]
            Database::Postgres(url) => {
                let store =
                    failover_store_postgres::Postgres::connect(&url, usize::from(args.db_pool))
                        .await?;
                // Other replicas add and end ad-hoc windows: each report reads them.
                let state =
                    AppState::with_modes(store, inventory, Delivery::Outbox, AdHoc::PerReport)
                        .await?;
                let name = args
                    .replica
                    .clone()
                    .unwrap_or_else(|| replica_name(args.listen));
                tracing::info!(replica = %name, "on a shared database");
                serve(
                    state.named(&name),
                    args,
                    &failover_store_postgres::redacted(&url),
                )
                .await
            }
        }
    })
}

/// Serves until SIGTERM or SIGINT.
async fn serve<S: Store>(state: AppState<S>, args: &Args, db: &str) -> anyhow::Result<ExitCode> {
    let tls = match &state.live().inventory.tls {
        None => None,
        Some(files) => Some(
            failover_app::tls::Tls::new(files)
                .context("[server] tls_cert, tls_key, tls_client_ca")?,
        ),
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        https = tls.is_some(),
        db = %db,
        config = %args.config.as_deref().map_or_else(|| "built-in example".into(), |p| p.display().to_string()),
        "serving"
    );
    if let Some(config) = args.config.clone() {
        tokio::spawn(watch(state.clone(), config, tls.clone()));
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down: finishing requests in flight");
    };
    failover_app::launch_with_listener(state, listener, tls, shutdown).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Reloads the inventory, and the TLS certificate pair, on SIGHUP and when their files
/// change; a broken file keeps the old one.
async fn watch<S: Store>(state: AppState<S>, path: PathBuf, tls: Option<failover_app::tls::Tls>) {
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot listen for SIGHUP; reload on file change only");
        return;
    };
    let mut seen = modified(&path);
    loop {
        let forced = tokio::select! {
            _ = hup.recv() => true,
            () = tokio::time::sleep(WATCH_EVERY) => false,
        };
        if let Some(tls) = &tls {
            tls.reload(forced);
        }
        let now = modified(&path);
        if !forced && now == seen {
            continue;
        }
        seen = now;
        // A large inventory takes a few hundred milliseconds: off the request threads.
        let loaded = tokio::task::spawn_blocking({
            let path = path.clone();
            move || load::inventory(&path)
        })
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("reading the inventory failed: {e}")));
        match loaded {
            Ok(inv) => match state.reload(inv).await {
                Ok(()) => {
                    tracing::info!(config = %path.display(), "inventory reloaded");
                    tokio::task::spawn_blocking(load::release_freed_memory);
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "inventory not reloaded; keeping the old one")
                }
            },
            Err(e) => tracing::error!("inventory not reloaded; keeping the old one:\n{e:#}"),
        }
    }
}

/// The example inventory with only its log channel delivering, so a first `serve` needs no
/// cloud account and sends nothing anywhere (its SNS, e-mail and webhook channels are
/// placeholders).
fn demo_inventory() -> anyhow::Result<Inventory> {
    use failover_core::inventory::ChannelKind;
    let mut inv = config::parse(config::EXAMPLE)
        .map_err(|_| anyhow::anyhow!("the built-in example inventory is invalid"))?;
    let log_only: Vec<bool> = inv
        .channels
        .iter()
        .map(|c| matches!(c.kind, ChannelKind::Log { .. }))
        .collect();
    for route in &mut inv.routes {
        route.channels.retain(|&i| log_only[i]);
    }
    tracing::info!(
        "no --config: serving the built-in example inventory; only its log channel delivers (stdout)"
    );
    Ok(inv)
}
