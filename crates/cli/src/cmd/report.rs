//! `report`: what a cluster node runs when it takes over; replaces the original's curl line.
//!
//! The report is written to the spool directory first (file and directory fsynced), then
//! everything spooled is sent oldest first with its original id and time, retrying with
//! backoff within `--timeout`. What the server has not taken stays spooled for the next run
//! (or `report --flush`), and the command still exits 0: a cluster manager must never see its
//! hook fail because the network is down. One run at a time sends (a lock in the spool
//! directory), so a report is not sent twice by concurrent runs; the server also treats a
//! repeated id as the same report.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::access::{Need, User};
use crate::time_arg;

/// Arguments of `report`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service: `serve`'s URL, or the API Gateway stage URL. The report goes to
    /// URL/v1/reports.
    #[arg(long, env = "FAILOVER_NOTIFY_URL")]
    url: String,
    #[command(flatten)]
    key: crate::api::KeyArgs,
    #[command(flatten)]
    tls: crate::api::TlsArgs,
    /// The host that took over. Default: this node's name (`uname -n`).
    #[arg(long, env = "FAILOVER_NOTIFY_HOSTNAME")]
    hostname: Option<String>,
    /// The host that was active before, when known.
    #[arg(long)]
    previous: Option<String>,
    /// `takeover`, `release`, `lost` (of --previous, or of this node itself) or `fenced`
    /// (--previous was fenced).
    #[arg(long, default_value = "takeover", value_parser = ["takeover", "release", "lost", "fenced"])]
    action: String,
    /// The cluster resource concerned.
    #[arg(long)]
    resource: Option<String>,
    /// What sent it (`heartbeat`, `pacemaker`, `keepalived`).
    #[arg(long, default_value = "failover-notify")]
    source: String,
    /// Where unsent reports wait.
    #[arg(
        long,
        env = "FAILOVER_NOTIFY_SPOOL",
        default_value = "/var/spool/failover-notify"
    )]
    spool: PathBuf,
    /// How long to keep trying before leaving reports in the spool.
    #[arg(long, env = "FAILOVER_NOTIFY_TIMEOUT", default_value = "10s")]
    timeout: jiff::SignedDuration,
    /// Send what is spooled; make no new report.
    #[arg(long)]
    flush: bool,
    /// Check the set-up instead of reporting: the spool and the key are usable by the user
    /// hooks run as (`--as`), and the service answers. Exit 1 on any problem.
    #[arg(long, conflicts_with = "flush")]
    check: bool,
    /// With `--check`: the user the cluster manager runs hooks as (`hacluster` for
    /// Pacemaker, keepalived's `script_user`); default the current user.
    #[arg(long = "as", requires = "check", value_name = "USER")]
    as_user: Option<String>,
}

/// Longest `--timeout`: a hook that blocks its cluster manager longer does harm.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// What became of one spooled report.
enum Sent {
    /// The server took it (or recorded it as from an unknown host).
    Taken,
    /// The server refused it for good; it is moved aside.
    Refused(String),
    /// Not now (unreachable, 5xx, 503 while a channel is down): try again later.
    Later(String),
}

/// Spools the report and sends everything spooled.
///
/// # Errors
/// Only for what retrying cannot fix: no usable key, or the report can be neither spooled
/// nor sent.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if args.check {
        return check(args);
    }
    let spool = Spool::open(&args.spool);
    if let (Ok(s), Some(key_file)) = (&spool, &args.key.key_file) {
        warn_if_hook_user_cannot_read(&s.dir, key_file);
    }
    if args.flush
        && let Err(e) = &spool
    {
        bail!("{e:#}");
    }
    let report = if args.flush {
        None
    } else {
        Some(new_report(args)?)
    };
    let mut unspooled = None;
    if let Some(report) = report {
        match &spool {
            Ok(s) => {
                if let Err(e) = s.add(&report) {
                    eprintln!("warning: cannot spool the report, sending it only: {e:#}");
                    unspooled = Some(report);
                }
            }
            Err(e) => {
                eprintln!("warning: {e:#}; sending the report without a spool");
                unspooled = Some(report);
            }
        }
    }
    // After spooling: a key problem then loses nothing; `report --flush` sends it once fixed.
    let key = key(args)?;
    let url = format!("{}/v1/reports", args.url.trim_end_matches('/'));
    let client = args.tls.client(Duration::from_secs(5))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let budget = Duration::try_from(args.timeout)
        .ok()
        .filter(|b| *b <= MAX_TIMEOUT)
        .with_context(|| {
            format!(
                "--timeout `{:#}` must be between 0s (one try) and 1h",
                args.timeout
            )
        })?;
    let deadline = Instant::now() + budget;
    let post = |body: &Value| runtime.block_on(send(&client, &url, &key, body));
    let mut wait = Duration::from_millis(250);
    loop {
        // A report that could not be spooled goes first, then the spool, oldest first.
        let mut pending = None;
        if let Some(report) = &unspooled {
            match post(report) {
                Sent::Taken => {
                    say_sent(report);
                    unspooled = None;
                }
                Sent::Refused(why) => bail!("the service refused the report: {why}"),
                Sent::Later(why) => pending = Some(why),
            }
        }
        if let (None, Ok(s)) = (&pending, &spool) {
            pending = s.flush(&post, deadline)?;
        }
        let Some(why) = pending else {
            return Ok(ExitCode::SUCCESS);
        };
        if Instant::now() + wait >= deadline {
            if unspooled.is_some() {
                bail!("the report could not be sent, and there is no spool to keep it: {why}");
            }
            if let Ok(s) = &spool {
                eprintln!(
                    "warning: {why}; {} report(s) wait in `{}` for the next run or `report --flush`",
                    s.len(),
                    s.dir.display()
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(wait);
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

/// The spool belongs to the user hooks run as; when someone else (root, by hand) runs
/// `report`, say so if that user could not read the key: its own runs would fail.
fn warn_if_hook_user_cannot_read(spool: &Path, key_file: &Path) {
    let (Ok(me), Ok(hook)) = (User::current(), User::owner_of(spool)) else {
        return;
    };
    if me.uid != hook.uid && key_file.exists() && !hook.can(key_file, Need::Read) {
        eprintln!(
            "warning: the spool `{}` belongs to `{}`, who cannot read the key file `{}`: reports from hooks run as `{}` will wait in the spool; give it the file's group (chgrp, chmod 640)",
            spool.display(),
            hook.name,
            key_file.display(),
            hook.name
        );
    }
}

/// `report --check [--as USER]`: one line per check, exit 1 on any problem.
fn check(args: &Args) -> anyhow::Result<ExitCode> {
    let user = match &args.as_user {
        Some(name) => User::named(name)?,
        None => User::current()?,
    };
    let mut failed = false;
    let mut say = |ok: bool, what: String| {
        failed |= !ok;
        println!("{} {what}", if ok { "ok    " } else { "FAILED" });
    };
    let spool = &args.spool;
    if !spool.is_dir() {
        say(
            false,
            format!(
                "spool `{}` does not exist: create it owned by `{}` (install -d -o {} -m 700 {})",
                spool.display(),
                user.name,
                user.name,
                spool.display()
            ),
        );
    } else {
        say(
            user.can(spool, Need::WriteDir),
            format!("`{}` can write the spool `{}`", user.name, spool.display()),
        );
        let unreadable: Vec<String> = fs::read_dir(spool)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && !user.can(p, Need::Read))
            .map(|p| p.display().to_string())
            .collect();
        say(
            unreadable.is_empty(),
            format!(
                "`{}` can read everything in the spool{}",
                user.name,
                if unreadable.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (not: {}; chown {} them)",
                        unreadable.join(", "),
                        user.name
                    )
                }
            ),
        );
    }
    match (&args.key.key, &args.key.key_file) {
        (Some(_), _) => say(true, "the key is given directly".to_owned()),
        (None, Some(path)) => {
            let readable = user.can(path, Need::Read);
            say(
                readable,
                format!("`{}` can read the key file `{}`", user.name, path.display()),
            );
            if readable {
                say(
                    key(args).is_ok(),
                    format!("the key file `{}` is private and not empty", path.display()),
                );
            }
        }
        (None, None) => say(
            false,
            "no key: give --key, FAILOVER_NOTIFY_KEY or --key-file".to_owned(),
        ),
    }
    let url = format!("{}/healthz", args.url.trim_end_matches('/'));
    let client = args.tls.client(Duration::from_secs(5));
    if let Err(e) = &client {
        say(false, format!("{e:#}"));
    }
    let answered = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()
        .zip(client.ok())
        .and_then(|(rt, client)| {
            // API Gateway wants the key on every path.
            let mut req = client.get(&url);
            if let Ok(k) = key(args) {
                req = req.header("x-api-key", k);
            }
            rt.block_on(async { req.send().await })
                .ok()
                .map(|r| r.status())
        });
    say(
        answered.is_some_and(|s| s.is_success()),
        match answered {
            Some(s) => format!("{url} answered {s}"),
            None => format!("{url} cannot be reached"),
        },
    );
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn key(args: &Args) -> anyhow::Result<String> {
    args.key.read()
}

fn new_report(args: &Args) -> anyhow::Result<Value> {
    let hostname = match &args.hostname {
        Some(h) => h.clone(),
        None => fs::read_to_string("/proc/sys/kernel/hostname")
            .context("reading this node's name; give --hostname")?
            .trim()
            .to_owned(),
    };
    let mut id = [0u8; 12];
    getrandom::fill(&mut id).context("reading random bytes from the operating system")?;
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let mut report = json!({
        "hostname": hostname,
        "action": args.action,
        "source": args.source,
        "id": id,
        "occurred_at": time_arg::now().to_string(),
    });
    if let Some(p) = &args.previous {
        report["previous"] = p.as_str().into();
    }
    if let Some(r) = &args.resource {
        report["resource"] = r.as_str().into();
    }
    Ok(report)
}

async fn send(client: &reqwest::Client, url: &str, key: &str, body: &Value) -> Sent {
    let resp = match client
        .post(url)
        .header("x-api-key", key)
        .json(body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return Sent::Later(format!("cannot reach {url}: {:#}", anyhow::Error::new(e))),
    };
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or(text);
    match status.as_u16() {
        200..=299 | 422 => Sent::Taken,
        408 | 429 | 500..=599 => Sent::Later(format!("{url} answered {status}: {message}")),
        _ => Sent::Refused(format!("{url} answered {status}: {message}")),
    }
}

/// `sent ID` on stdout; a closed stdout (a hook's logger missing) is no error.
fn say_sent(report: &Value) {
    let id = report["id"].as_str().unwrap_or_default();
    let _ = writeln!(std::io::stdout(), "sent {id}");
}

/// The spool directory: one JSON file per report, named so that names sort by time.
///
/// The directory belongs to the user the cluster manager runs hooks as (`hacluster` for
/// Pacemaker's alert agent). Whoever else writes into it (root running `report --flush` by
/// hand, or a timer) gives what it creates to the directory's owner and group, so the hook
/// can always read, lock and remove it.
struct Spool {
    dir: PathBuf,
    owner: (u32, u32),
}

impl Spool {
    fn open(dir: &Path) -> anyhow::Result<Spool> {
        fs::create_dir_all(dir)
            .with_context(|| format!("creating spool directory `{}`", dir.display()))?;
        let meta = fs::metadata(dir)
            .with_context(|| format!("reading spool directory `{}`", dir.display()))?;
        Ok(Spool {
            dir: dir.to_owned(),
            owner: (meta.uid(), meta.gid()),
        })
    }

    /// Gives `path`, just created by this run, to the directory's owner when this run is
    /// someone else (only root can; for anyone else the owners already match).
    fn adopt(&self, path: &Path) -> anyhow::Result<()> {
        let meta =
            fs::symlink_metadata(path).with_context(|| format!("reading `{}`", path.display()))?;
        if (meta.uid(), meta.gid()) != self.owner {
            std::os::unix::fs::lchown(path, Some(self.owner.0), Some(self.owner.1)).with_context(
                || {
                    format!(
                        "giving `{}` to the spool directory's owner (uid {}, gid {})",
                        path.display(),
                        self.owner.0,
                        self.owner.1
                    )
                },
            )?;
        }
        Ok(())
    }

    /// Writes the report durably: a temporary file, fsync, rename, fsync the directory.
    fn add(&self, report: &Value) -> anyhow::Result<()> {
        let at: jiff::Timestamp = report["occurred_at"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .context("the report has no time")?;
        let name = format!(
            "{:020}-{}.json",
            at.as_millisecond(),
            report["id"].as_str().unwrap_or_default()
        );
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing `{}`", tmp.display()))?;
        f.write_all(report.to_string().as_bytes())?;
        f.sync_all()?;
        self.adopt(&tmp)?;
        fs::rename(&tmp, self.dir.join(&name))?;
        File::open(&self.dir)?.sync_all()?;
        Ok(())
    }

    /// Spooled report files, oldest first.
    fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json") && p.is_file())
            .collect();
        files.sort();
        files
    }

    fn len(&self) -> usize {
        self.files().len()
    }

    /// Sends spooled reports oldest first under the lock; `Some(why)` when some remain.
    fn flush(
        &self,
        post: &dyn Fn(&Value) -> Sent,
        deadline: Instant,
    ) -> anyhow::Result<Option<String>> {
        let lock_path = self.dir.join(".lock");
        // Read-only is enough for flock, so a lock file anyone made serves everyone.
        let lock = match File::open(&lock_path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o644)
                    .open(&lock_path)
                    .with_context(|| format!("creating the lock in `{}`", self.dir.display()))?;
                self.adopt(&lock_path)?;
                File::open(&lock_path)
                    .with_context(|| format!("opening the lock in `{}`", self.dir.display()))?
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("opening the lock in `{}`", self.dir.display()));
            }
        };
        // Another run is sending: wait for it, at most until the deadline.
        while lock.try_lock().is_err() {
            if Instant::now() >= deadline {
                return Ok(Some("another `report` run is sending the spool".into()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for path in self.files() {
            let report = fs::read_to_string(&path)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .filter(|r| r.get("hostname").is_some_and(Value::is_string));
            let Some(report) = report else {
                self.set_aside(&path, "corrupt", "cannot be read as a report");
                continue;
            };
            match post(&report) {
                Sent::Taken => {
                    fs::remove_file(&path)
                        .with_context(|| format!("removing `{}`", path.display()))?;
                    say_sent(&report);
                }
                Sent::Refused(why) => self.set_aside(&path, "refused", &why),
                Sent::Later(why) => return Ok(Some(why)),
            }
        }
        File::open(&self.dir)?.sync_all()?;
        Ok(None)
    }

    /// Moves a report that can never be sent into a sub-directory, with a warning, so it
    /// neither blocks the others nor gets lost.
    fn set_aside(&self, path: &Path, kind: &str, why: &str) {
        let dir = self.dir.join(kind);
        let target = dir.join(path.file_name().unwrap_or_default());
        let made = fs::create_dir_all(&dir)
            .map_err(anyhow::Error::from)
            .and_then(|()| self.adopt(&dir))
            .and_then(|()| fs::rename(path, &target).map_err(anyhow::Error::from));
        match made {
            Ok(()) => eprintln!(
                "warning: spooled report {why}; moved to `{}`",
                target.display()
            ),
            Err(e) => eprintln!(
                "warning: spooled report `{}` {why}, and cannot be moved aside: {e:#}",
                path.display()
            ),
        }
    }
}
