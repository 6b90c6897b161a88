//! A PostgreSQL cluster of its own for tests (feature `throwaway`): `initdb` in a temp
//! directory and `pg_ctl start` on a free loopback port, as the user `nobody` when run as
//! root (the server refuses root). Stopped and removed when dropped.
//!
//! The binaries are found on `PATH` or under `/usr/lib/postgresql/*/bin` (Debian's
//! `postgresql` package; the test command installs it when it is missing).

#![allow(clippy::missing_panics_doc)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A running throwaway cluster.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    /// Its loopback port.
    pub port: u16,
    running: bool,
    tls: bool,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The directory holding `initdb` and `pg_ctl`.
fn binaries() -> PathBuf {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return dir;
            }
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file())
        .collect();
    found.sort_by_key(|b| {
        b.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    found.pop().expect(
        "PostgreSQL's initdb (apt-get install postgresql; scripts/test installs it when missing)",
    )
}

fn root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

impl Cluster {
    /// Creates and starts a cluster with the superuser `postgres` trusted on loopback.
    pub fn start() -> Cluster {
        Cluster::create_cluster(None)
    }

    /// As [`Cluster::start`], but taking TLS connections only, with the certificate and
    /// key in these PEM files.
    pub fn start_tls(cert: &Path, key: &Path) -> Cluster {
        Cluster::create_cluster(Some((cert, key)))
    }

    fn create_cluster(tls: Option<(&Path, &Path)>) -> Cluster {
        let dir =
            std::env::temp_dir().join(format!("failover-pg-{}-{:08x}", std::process::id(), rand()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        if root() {
            let uid = Command::new("id")
                .args(["-u", "nobody"])
                .output()
                .expect("id -u nobody");
            let uid: u32 = String::from_utf8_lossy(&uid.stdout)
                .trim()
                .parse()
                .expect("nobody's uid");
            std::os::unix::fs::chown(&dir, Some(uid), None).expect("chown to nobody");
        }
        let mut cluster = Cluster {
            bin: binaries(),
            port: free_port(),
            dir,
            running: false,
            tls: false,
        };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "-N",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        if let Some((cert, key)) = tls {
            let data = cluster.dir.join("data");
            for (from, to) in [(cert, "server.crt"), (key, "server.key")] {
                let to = data.join(to);
                std::fs::copy(from, &to).expect("copies the TLS files");
                std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                    .expect("chmod 600");
                if root() {
                    let owner = std::fs::metadata(&data).expect("data dir").uid();
                    std::os::unix::fs::chown(&to, Some(owner), None).expect("chown");
                }
            }
            std::fs::write(
                data.join("pg_hba.conf"),
                "hostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
            )
            .expect("writes pg_hba.conf");
            cluster.tls = true;
        }
        cluster.start_again();
        cluster
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// `tool` of the server's binaries, as `nobody` when run as root.
    fn command(&self, tool: &str) -> Command {
        let program = self.bin.join(tool);
        let mut command = if root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "nobody", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        command.current_dir(&self.dir).stdin(Stdio::null());
        command
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server (again, after [`Cluster::stop`]) and waits until it accepts.
    pub fn start_again(&mut self) {
        let mut options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories='' \
             -c max_connections=200 -c fsync=on",
            self.port
        );
        if self.tls {
            options.push_str(" -c ssl=on");
        }
        let log = self.dir.join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        self.running = true;
    }

    /// Stops the server at once (`-m immediate`: as if it crashed; it recovers at start).
    pub fn stop(&mut self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
        self.running = false;
    }

    /// The URL of database `name` (created by [`Cluster::create`]): without TLS, or for a
    /// TLS cluster without `sslmode` (the caller adds its own).
    pub fn url(&self, name: &str) -> String {
        let base = format!("postgres://postgres@127.0.0.1:{}/{name}", self.port);
        if self.tls {
            base
        } else {
            format!("{base}?sslmode=disable")
        }
    }

    /// Creates an empty database `name`; returns its URL (without `sslmode`).
    pub fn create(&self, name: &str) -> String {
        let psql = self.bin.join("psql");
        let psql = if psql.is_file() {
            psql
        } else {
            PathBuf::from("psql")
        };
        let out = Command::new(psql)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc"])
            .arg(format!("CREATE DATABASE \"{name}\""))
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "CREATE DATABASE {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(name)
    }
}

/// Distinct per cluster of this process (the directory name also holds the pid).
fn rand() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let _ = self
                .command("pg_ctl")
                .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
