//! `serve` over HTTPS (`[server] tls_cert`, `tls_key`, `tls_client_ca`), with certificates
//! made at test time by `common/certs.py` (Python's cryptography): the original's curl line
//! with `--cacert`, `report`/`events` with `--ca-file`, a renewal in place while a client
//! holds a kept-alive connection, a bad pair refused at start and at reload, mutual TLS, and
//! sslyze's verdict on the listener.

mod common;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{ADMIN, KEY, Serve, free_port, keys_toml, wait_for};
use serde_json::Value;

fn python() -> PathBuf {
    std::env::var_os("FAILOVER_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"))
        .join("bin/python")
}

/// The test CA and certificates in `dir` (see `common/certs.py`).
fn certificates(dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/certs.py");
    let made = Command::new(python())
        .arg(script)
        .arg(dir)
        .status()
        .expect("the venv's python (scripts/test makes it)");
    assert!(made.success(), "certs.py failed");
}

/// An inventory serving HTTPS with `cert`/`key` of `dir`, plus `extra` in `[server]`.
fn inventory(dir: &Path, cert: &str, key: &str, extra: &str) -> PathBuf {
    let path = dir.join("inventory.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\ntls_cert = \"{d}/{cert}\"\ntls_key = \"{d}/{key}\"\n{extra}\n\
             [[customers]]\nname = \"acme\"\ntime_zone = \"UTC\"\n\n\
             [[clusters]]\nname = \"db\"\ncustomer = \"acme\"\nnodes = [\"db1\", \"db2\"]\n\n\
             [[channels]]\nname = \"file\"\nkind = \"log\"\npath = \"{d}/messages.log\"\n\n\
             [[routes]]\nchannels = [\"file\"]\n\n{keys}",
            d = dir.display(),
            keys = keys_toml(),
        ),
    )
    .expect("writes the inventory");
    path
}

fn serve(dir: &Path, inventory: &Path) -> Serve {
    let mut s = Serve::new(inventory, &dir.join("db.sqlite"), free_port());
    s.https_ca = Some(dir.join("ca.pem"));
    s.log = Some(dir.join("serve.log"));
    s.restart();
    s
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_failover-notify"))
        .args(args)
        .output()
        .expect("runs")
}

/// The serial number of the certificate a new connection to `port` is shown.
fn served_serial(port: u16) -> String {
    let shown = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} </dev/null 2>/dev/null | openssl x509 -noout -serial"
        ))
        .output()
        .expect("openssl runs");
    String::from_utf8_lossy(&shown.stdout).trim().to_owned()
}

/// A TLS connection held open by `openssl s_client`, to send requests on one connection.
struct Held {
    child: std::process::Child,
    answers: mpsc::Receiver<String>,
}

impl Held {
    fn open(port: u16, ca: &Path) -> Held {
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-connect"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-CAfile")
            .arg(ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_client");
        let mut out = child.stdout.take().expect("stdout");
        let (tx, answers) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0
                    || tx
                        .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                        .is_err()
                {
                    break;
                }
            }
        });
        Held { child, answers }
    }

    /// `GET /healthz` on this connection; its status line.
    fn healthz(&mut self) -> String {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .expect("writes");
        stdin.flush().expect("flushes");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = String::new();
        while !got.contains("\r\n\r\n") {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.answers.recv_timeout(left) {
                Ok(s) => got.push_str(&s),
                Err(_) => panic!("no answer on the held connection: {got:?}"),
            }
        }
        // The rest of this answer's body, if it came later.
        std::thread::sleep(Duration::from_millis(100));
        while self.answers.try_recv().is_ok() {}
        got.lines().next().unwrap_or_default().to_owned()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn https_with_an_internal_ca_and_a_renewal_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    certificates(d);
    let inv = inventory(d, "live.pem", "live.key", "");
    std::fs::copy(d.join("server.pem"), d.join("live.pem")).expect("copies");
    std::fs::copy(d.join("server.key"), d.join("live.key")).expect("copies");
    let mut serve = serve(d, &inv);
    let ca = d.join("ca.pem");
    let ca = ca.to_str().expect("utf-8");
    // The original's curl line, over HTTPS with the internal CA.
    let curl = Command::new("curl")
        .args(["-sS", "--cacert", ca, "-H", &format!("x-api-key: {KEY}")])
        .args(["-d", r#"{"hostname":"db1"}"#, &format!("{}/", serve.url)])
        .output()
        .expect("curl runs");
    let answer: Value = serde_json::from_slice(&curl.stdout)
        .unwrap_or_else(|_| panic!("curl: {}", String::from_utf8_lossy(&curl.stderr)));
    assert_eq!(answer["verdict"]["host"], "db1", "{answer}");
    // Without the CA the same line is refused by curl: nothing is sent in clear.
    let untrusted = Command::new("curl")
        .args(["-sS", "-H", &format!("x-api-key: {KEY}"), "-d", "{}"])
        .arg(format!("{}/", serve.url))
        .output()
        .expect("curl runs");
    assert!(!untrusted.status.success(), "curl trusted an unknown CA");
    // `report` and `events` with --ca-file.
    let spool = d.join("spool");
    let sent = cli(&[
        "report",
        "--url",
        &serve.url,
        "--key",
        KEY,
        "--ca-file",
        ca,
        "--hostname",
        "db2",
        "--spool",
        spool.to_str().expect("utf-8"),
        "--timeout",
        "0s",
    ]);
    assert!(
        sent.status.success() && String::from_utf8_lossy(&sent.stdout).contains("sent "),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let listed = cli(&[
        "events",
        "--url",
        &serve.url,
        "--key",
        ADMIN,
        "--ca-file",
        ca,
    ]);
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(
        table.lines().count() == 3 && table.contains("db2"),
        "{table}"
    );

    // A renewal in place: a connection held open goes on, new ones get the new certificate.
    let port = serve.port;
    assert_eq!(served_serial(port), "serial=03E9");
    let mut held = Held::open(port, &d.join("ca.pem"));
    assert!(held.healthz().starts_with("HTTP/1.1 200"));
    std::fs::copy(d.join("renewed.key"), d.join("live.key")).expect("copies");
    std::fs::copy(d.join("renewed.pem"), d.join("live.pem")).expect("copies");
    wait_for("the renewed certificate on new connections", 15, || {
        (served_serial(port) == "serial=07D2").then_some(())
    });
    assert!(
        held.healthz().starts_with("HTTP/1.1 200"),
        "the held connection was dropped"
    );
    // A broken pair (the key of another certificate) is refused on SIGHUP: the renewed
    // pair goes on serving, and the log says why.
    std::fs::copy(d.join("other.key"), d.join("live.key")).expect("copies");
    serve.reload();
    let log = d.join("serve.log");
    wait_for("the refused reload in the log", 15, || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|t| t.contains("TLS certificate not reloaded"))
    });
    assert_eq!(served_serial(port), "serial=07D2");
    assert!(held.healthz().starts_with("HTTP/1.1 200"));
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("live.key"), "the log names the file: {text}");
    drop(held);
    serve.stop();
}

/// `serve` on `port` with this inventory and database, its log to `stderr`.
fn spawn_serve(inv: &Path, db: &Path, port: u16, stderr: Stdio) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_failover-notify"))
        .arg("serve")
        .arg("--config")
        .arg(inv)
        .arg("--db")
        .arg(db)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("serve runs")
}

/// `serve` with this inventory must exit at once with an error saying `says`.
#[track_caller]
fn refused_at_start(inv: &Path, db: &Path, says: &[&str]) {
    let mut child = spawn_serve(inv, db, free_port(), Stdio::piped());
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("waits").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve started with {says:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("reads");
    assert!(!child.wait().expect("waits").success());
    for s in says {
        assert!(err.contains(s), "{s:?} in {err}");
    }
}

#[test]
fn an_unusable_pair_is_refused_at_start_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    certificates(d);
    let db = d.join("db.sqlite");
    for (cert, key, says) in [
        (
            "expired.pem",
            "expired.key",
            &["expired.pem", "expired at"][..],
        ),
        (
            "server.pem",
            "other.key",
            &["other.key", "is not the key of", "server.pem"],
        ),
        ("missing.pem", "server.key", &["cannot read", "missing.pem"]),
        ("server.pem", "ca.pem", &["ca.pem", "no PEM private key"]),
        (
            "server.key",
            "server.key",
            &["server.key", "no PEM certificate"],
        ),
    ] {
        refused_at_start(&inventory(d, cert, key, ""), &db, says);
    }
}

#[test]
fn mutual_tls_wants_a_client_certificate_and_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    certificates(d);
    let extra = format!("tls_client_ca = \"{}/ca.pem\"", d.display());
    let inv = inventory(d, "server.pem", "server.key", &extra);
    // serve's own wait for /healthz would present no certificate: wait for the port.
    let port = free_port();
    let mut child = spawn_serve(&inv, &d.join("db.sqlite"), port, Stdio::null());
    wait_for("serve to listen", 30, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let url = format!("https://127.0.0.1:{port}/v1/reports");
    let (ca, client) = (d.join("ca.pem"), d.join("client.pem"));
    let curl = |cert: Option<&Path>, key: &str| {
        let mut c = Command::new("curl");
        c.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&ca)
            .args([
                "-H",
                &format!("x-api-key: {key}"),
                "-d",
                r#"{"hostname":"db1"}"#,
            ]);
        if let Some(cert) = cert {
            c.arg("--cert").arg(cert);
        }
        let out = c.arg(&url).output().expect("curl runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        curl(None, KEY),
        "000",
        "no client certificate: no TLS session"
    );
    assert_eq!(
        curl(Some(&client), "wrong"),
        "401",
        "the key is still needed"
    );
    assert_eq!(curl(Some(&client), KEY), "200");
    let spool = d.join("spool");
    let sent = cli(&[
        "report",
        "--url",
        &format!("https://127.0.0.1:{port}"),
        "--key",
        KEY,
        "--ca-file",
        ca.to_str().expect("utf-8"),
        "--client-cert",
        client.to_str().expect("utf-8"),
        "--hostname",
        "db2",
        "--spool",
        spool.to_str().expect("utf-8"),
        "--timeout",
        "0s",
    ]);
    assert!(
        String::from_utf8_lossy(&sent.stdout).contains("sent "),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[test]
fn sslyze_finds_nothing_below_tls_1_2_and_no_weak_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    certificates(d);
    let mut serve = serve(d, &inventory(d, "server.pem", "server.key", ""));
    let out = d.join("sslyze.json");
    let sslyze = python().with_file_name("sslyze");
    let ran = Command::new(&sslyze)
        .args([
            "--quiet",
            "--sslv2",
            "--sslv3",
            "--tlsv1",
            "--tlsv1_1",
            "--tlsv1_2",
            "--tlsv1_3",
            "--json_out",
        ])
        .arg(&out)
        .arg(format!("127.0.0.1:{}", serve.port))
        .status()
        .expect("sslyze from the venv (scripts/requirements-test.txt)");
    assert!(ran.success());
    let report: Value =
        serde_json::from_slice(&std::fs::read(&out).expect("sslyze's JSON")).expect("JSON");
    let result = &report["server_scan_results"][0]["scan_result"];
    let accepted = |scan: &str| -> Vec<String> {
        result[scan]["result"]["accepted_cipher_suites"]
            .as_array()
            .unwrap_or_else(|| panic!("{scan} was not scanned: {}", result[scan]))
            .iter()
            .map(|s| {
                s["cipher_suite"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    };
    for old in [
        "ssl_2_0_cipher_suites",
        "ssl_3_0_cipher_suites",
        "tls_1_0_cipher_suites",
        "tls_1_1_cipher_suites",
    ] {
        assert_eq!(accepted(old), Vec::<String>::new(), "{old}");
    }
    let tls12 = accepted("tls_1_2_cipher_suites");
    assert!(!tls12.is_empty());
    for suite in &tls12 {
        assert!(
            suite.contains("ECDHE") && (suite.contains("GCM") || suite.contains("CHACHA20")),
            "weak TLS 1.2 suite {suite}"
        );
    }
    assert!(!accepted("tls_1_3_cipher_suites").is_empty());
    println!(
        "sslyze: TLS 1.2 {tls12:?}; TLS 1.3 {:?}",
        accepted("tls_1_3_cipher_suites")
    );
    serve.stop();
}
