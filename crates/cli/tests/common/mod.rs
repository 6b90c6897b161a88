//! Real peers for the service tests: the `serve` binary, a moto server (SNS), aiosmtpd
//! (SMTP, Maildir) and a local webhook receiver. Each test starts the peers it needs from the
//! venv `scripts/test` installs (`FAILOVER_TEST_VENV`), on free loopback ports.

#![allow(dead_code)]

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The demo key of the example inventory's `acme-nodes` entry.
pub const KEY: &str = "secret";
/// An admin key for the test inventories.
pub const ADMIN: &str = "admin-test-key";

pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn venv() -> PathBuf {
    std::env::var_os("FAILOVER_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"))
}

/// Waits until `f` returns `Some`, polling; panics with `what` after `secs`.
pub fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process stopped (by PID) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Starts a peer from the venv and waits until it listens on `port`.
fn peer(command: &mut Command, port: u16, what: &str) -> Proc {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{what} from the venv (run scripts/test once to install it): {e}")
        });
    let proc = Proc(child);
    wait_for(what, 30, || port_open(port).then_some(()));
    proc
}

/// moto's SNS endpoint.
pub struct Moto {
    pub url: String,
    _proc: Proc,
}

impl Moto {
    pub fn start() -> Moto {
        let port = free_port();
        let mut command = Command::new(venv().join("bin/moto_server"));
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        Moto {
            url: format!("http://127.0.0.1:{port}"),
            _proc: peer(&mut command, port, "moto_server"),
        }
    }

    /// Creates a topic and returns its ARN.
    pub fn topic(&self, name: &str) -> String {
        let resp = http()
            .post(&self.url)
            .form(&[("Action", "CreateTopic"), ("Name", name), ("Version", "2010-03-31")])
            .header("Authorization", "AWS4-HMAC-SHA256 Credential=test/20261125/us-east-1/sns/aws4_request, SignedHeaders=host, Signature=x")
            .send()
            .expect("moto answers");
        assert!(resp.status().is_success(), "CreateTopic: {}", resp.status());
        format!("arn:aws:sns:us-east-1:123456789012:{name}")
    }

    /// (subject, message) of everything published to `arn`.
    pub fn published(&self, arn: &str) -> Vec<(String, String)> {
        // moto dumps every backend of every region here: on a loaded machine that takes
        // longer than a request to the service may (a run failed at 20 s).
        let data: Value = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("client")
            .get(format!("{}/moto-api/data.json", self.url))
            .send()
            .and_then(|r| r.json())
            .expect("moto data");
        let mut out = Vec::new();
        for t in data["sns"]["Topic"].as_array().into_iter().flatten() {
            if t["arn"] != arn {
                continue;
            }
            for n in t["sent_notifications"].as_array().into_iter().flatten() {
                // [message_id, message, subject, attributes, group id]
                out.push((
                    n[2].as_str().unwrap_or_default().to_owned(),
                    n[1].as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
        out
    }
}

/// The SMTP AUTH password `serve` finds in `FAILOVER_TEST_SMTP_PASSWORD`.
pub const SMTP_PASSWORD: &str = "s3cret-test";

/// aiosmtpd writing a Maildir.
pub struct Smtp {
    pub port: u16,
    pub maildir: PathBuf,
    _proc: Proc,
}

impl Smtp {
    /// Starts aiosmtpd on `port`.
    pub fn start(port: u16, maildir: &Path) -> Smtp {
        let mut command = Command::new(venv().join("bin/python"));
        command
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir);
        Smtp {
            port,
            maildir: maildir.to_owned(),
            _proc: peer(&mut command, port, "aiosmtpd"),
        }
    }

    /// Starts aiosmtpd on `port` requiring STARTTLS (with `cert` and `key`) before AUTH as
    /// `user` with [`SMTP_PASSWORD`].
    pub fn start_tls(port: u16, maildir: &Path, cert: &Path, key: &Path, user: &str) -> Smtp {
        let script = format!(
            "import ssl, threading\n\
             from aiosmtpd.controller import Controller\n\
             from aiosmtpd.handlers import Mailbox\n\
             from aiosmtpd.smtp import AuthResult, LoginPassword\n\
             ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)\n\
             ctx.load_cert_chain({cert:?}, {key:?})\n\
             def auth(server, session, envelope, mechanism, data):\n\
             \x20   return AuthResult(handled=False, success=isinstance(data, LoginPassword) and data.login == {user:?}.encode() and data.password == {SMTP_PASSWORD:?}.encode())\n\
             Controller(Mailbox({maildir:?}), hostname='127.0.0.1', port={port}, tls_context=ctx, require_starttls=True, authenticator=auth, auth_require_tls=True).start()\n\
             threading.Event().wait()\n",
            cert = cert.display().to_string(),
            key = key.display().to_string(),
            maildir = maildir.display().to_string(),
        );
        let mut command = Command::new(venv().join("bin/python"));
        command.args(["-c", &script]);
        Smtp {
            port,
            maildir: maildir.to_owned(),
            _proc: peer(&mut command, port, "aiosmtpd with STARTTLS and AUTH"),
        }
    }

    /// Raw messages addressed to `to`.
    pub fn mails_to(&self, to: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .filter(|m| m.lines().any(|l| l.starts_with("To:") && l.contains(to)))
            .collect()
    }
}

/// Debian's `prometheus-alertmanager` on a loopback port, clustering off, routing every
/// alert to `webhook` (firing and resolved) after a second.
pub struct Alertmanager {
    pub url: String,
    _dir: tempfile::TempDir,
    _proc: Proc,
}

impl Alertmanager {
    pub fn start(webhook: &str) -> Alertmanager {
        let binary = std::env::var("FAILOVER_ALERTMANAGER")
            .unwrap_or_else(|_| "/usr/bin/prometheus-alertmanager".into());
        assert!(
            Path::new(&binary).exists(),
            "no Alertmanager at {binary}: install Debian's prometheus-alertmanager (scripts/test does)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "route:\n  receiver: hook\n  group_by: [cluster, event]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
                 receivers:\n  - name: hook\n    webhook_configs:\n      - url: {webhook}\n        send_resolved: true\n"
            ),
        )
        .expect("writes config");
        let port = free_port();
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.path().display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=");
        Alertmanager {
            url: format!("http://127.0.0.1:{port}"),
            _proc: peer(&mut command, port, "prometheus-alertmanager"),
            _dir: dir,
        }
    }

    /// Its alerts (firing, silenced or inhibited) matching the `filter` matchers.
    pub fn alerts(&self, filter: &[&str]) -> Vec<Value> {
        let query: Vec<(&str, &str)> = filter.iter().map(|f| ("filter", *f)).collect();
        http()
            .get(format!("{}/api/v2/alerts", self.url))
            .query(&query)
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.json::<Vec<Value>>())
            .expect("Alertmanager answers")
    }
}

/// A webhook receiver answering with the queued statuses, then 200.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub statuses: Arc<Mutex<Vec<u16>>>,
    pub received: Arc<Mutex<Vec<Value>>>,
    /// The `Idempotency-Key` of each request, in order.
    pub keys: Arc<Mutex<Vec<String>>>,
    /// The query string of each request, in order.
    pub queries: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    pub fn start(statuses: &[u16]) -> Receiver {
        let listener = StdListener::bind("127.0.0.1:0").expect("binds");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let r = Receiver {
            url,
            statuses: Arc::new(Mutex::new(statuses.iter().rev().copied().collect())),
            received: Arc::new(Mutex::new(Vec::new())),
            keys: Arc::new(Mutex::new(Vec::new())),
            queries: Arc::new(Mutex::new(Vec::new())),
        };
        let state = r.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap,
                      axum::extract::RawQuery(query): axum::extract::RawQuery,
                      axum::Json(body): axum::Json<Value>| {
                    let state = state.clone();
                    async move {
                        state
                            .queries
                            .lock()
                            .expect("lock")
                            .push(query.unwrap_or_default());
                        let key = headers
                            .get("idempotency-key")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        state.keys.lock().expect("lock").push(key);
                        state.received.lock().expect("lock").push(body);
                        let status = state.statuses.lock().expect("lock").pop().unwrap_or(200);
                        axum::http::StatusCode::from_u16(status).expect("status")
                    }
                },
            ),
        );
        serve_in_thread(listener, app);
        r
    }

    pub fn count(&self) -> usize {
        self.received.lock().expect("lock").len()
    }
}

/// Serves `app` on `listener` from a thread and runtime of its own (the test peers written
/// here: the webhook receiver, the Lambda Runtime API).
pub fn serve_in_thread(listener: StdListener, app: axum::Router) {
    listener.set_nonblocking(true).expect("non-blocking");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let _ = axum::serve(listener, app).await;
        });
    });
}

pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// A client that trusts the CA in the PEM file `ca` (and keeps its connections alive).
pub fn https(ca: &Path) -> reqwest::blocking::Client {
    let pem = std::fs::read(ca).expect("reads the CA");
    reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a PEM certificate"))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// A running `failover-notify serve`.
pub struct Serve {
    pub url: String,
    pub config: PathBuf,
    pub db: PathBuf,
    pub port: u16,
    /// Where serve's stderr (its log) goes; inherited when `None`.
    pub log: Option<PathBuf>,
    /// A soft open-files limit to start serve with (`ulimit -Sn`).
    pub soft_nofile: Option<u32>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// serve speaks HTTPS (`[server] tls_cert`) with a certificate this CA signed: `url` is
    /// `https://`, and the start waits for `/healthz` over TLS.
    pub https_ca: Option<PathBuf>,
    proc: Option<Proc>,
}

impl Serve {
    pub fn start(config: &Path, db: &Path) -> Serve {
        Serve::start_on(config, db, free_port())
    }

    pub fn start_on(config: &Path, db: &Path, port: u16) -> Serve {
        let mut s = Serve::new(config, db, port);
        s.restart();
        s
    }

    /// Not started yet: set `log` or `soft_nofile`, then `restart()`.
    pub fn new(config: &Path, db: &Path, port: u16) -> Serve {
        Serve {
            url: format!("http://127.0.0.1:{port}"),
            config: config.to_owned(),
            db: db.to_owned(),
            port,
            log: None,
            soft_nofile: None,
            env: Vec::new(),
            https_ca: None,
            proc: None,
        }
    }

    pub fn restart(&mut self) {
        let bin = env!("CARGO_BIN_EXE_failover-notify");
        let mut command = match self.soft_nofile {
            Some(n) => {
                let mut c = Command::new("bash");
                c.args(["-c", &format!("ulimit -Sn {n} && exec \"$0\" \"$@\""), bin]);
                c
            }
            None => Command::new(bin),
        };
        if let Some(log) = &self.log {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .expect("log file");
            command.stderr(f);
        }
        let child = command
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .arg("--db")
            .arg(&self.db)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_LOG", "warn")
            .env("FAILOVER_TEST_SMTP_PASSWORD", SMTP_PASSWORD)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .spawn()
            .expect("serve starts");
        self.proc = Some(Proc(child));
        let client = match &self.https_ca {
            None => http(),
            Some(ca) => {
                self.url = format!("https://127.0.0.1:{}", self.port);
                https(ca)
            }
        };
        let url = format!("{}/healthz", self.url);
        wait_for("serve to answer /healthz", 30, || {
            client
                .get(&url)
                .send()
                .ok()
                .filter(|r| r.status().is_success())
        });
    }

    /// SIGTERM and wait (graceful shutdown).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let pid = p.0.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let status = p.0.wait().expect("waits");
            assert!(status.success(), "serve exited with {status} after SIGTERM");
        }
    }

    /// SIGHUP: serve reads its inventory again.
    pub fn reload(&self) {
        let pid = self.proc.as_ref().expect("serve runs").0.id().to_string();
        let status = Command::new("kill").args(["-HUP", &pid]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -HUP {pid}");
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let _ = p.0.kill();
            let _ = p.0.wait();
        }
    }

    /// POSTs the JSON `body` to `path` with `key`: the status and the answer.
    fn post(&self, path: &str, key: &str, body: String) -> (u16, Value) {
        let resp = http()
            .post(format!("{}{path}", self.url))
            .header("x-api-key", key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .expect("serve answers");
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    pub fn report(&self, key: &str, body: &str) -> (u16, Value) {
        self.post("/v1/reports", key, body.to_owned())
    }

    pub fn get(&self, path: &str) -> Value {
        http()
            .get(format!("{}{path}", self.url))
            .header("x-api-key", ADMIN)
            .send()
            .and_then(|r| r.json())
            .expect("serve answers JSON")
    }

    pub fn event(&self, id: &str) -> Value {
        let events = self.get("/v1/events?limit=1000");
        events["events"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["id"] == id))
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// `POST /v1/maintenance` with `key`: the status and the answer.
    pub fn add_maintenance(&self, key: &str, body: &Value) -> (u16, Value) {
        self.post("/v1/maintenance", key, body.to_string())
    }

    /// Waits until every delivery of the event has left `pending`; returns the event.
    pub fn settled(&self, id: &str) -> Value {
        wait_for(&format!("deliveries of event {id}"), 30, || {
            let e = self.event(id);
            let done = e["deliveries"]
                .as_array()
                .is_some_and(|d| d.iter().all(|d| d["status"] != "pending"));
            done.then_some(e)
        })
    }
}

/// The `[[keys]]` of the test inventories: `acme-nodes` for customer `acme` (the key
/// [`KEY`]) and an admin key ([`ADMIN`]).
pub fn keys_toml() -> String {
    format!(
        "[[keys]]\nname = \"acme-nodes\"\ncustomer = \"acme\"\nhash = \"{}\"\n\n\
         [[keys]]\nname = \"test-admin\"\nadmin = true\nhash = \"{}\"\n",
        failover_core::keys::KeyHash::of(KEY),
        failover_core::keys::KeyHash::of(ADMIN)
    )
}

/// A one-off `[[windows]]` block named `kernel-patching` on `owner` (`node = "db1"`,
/// `cluster = "web"`), from an hour ago to an hour from now (UTC).
#[allow(clippy::disallowed_methods)] // the window must contain the real now
pub fn window_around_now(owner: &str) -> String {
    let now = jiff::Timestamp::now();
    let z = |t: jiff::Timestamp| {
        t.to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .strftime("%Y-%m-%d %H:%M")
            .to_string()
    };
    let start = z(now - jiff::SignedDuration::from_hours(1));
    let end = z(now + jiff::SignedDuration::from_hours(1));
    let (date, start) = start.split_once(' ').expect("date and time");
    format!(
        "[[windows]]\nname = \"kernel-patching\"\n{owner}\ndate = \"{date}\"\n\
         start = \"{start}\"\nend = \"{end}\"\ntime_zone = \"UTC\"\n"
    )
}
