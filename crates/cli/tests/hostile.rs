//! `serve` and the CLI against a hostile client: extreme times on every endpoint and every
//! time flag, a broken window in the store, requests without keys, malformed bodies, key
//! guessing, and connections that never send a request.

// Windows and reports are placed around the real current time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ADMIN, KEY, Serve, free_port, http, keys_toml};
use serde_json::{Value, json};

/// Instants at and beyond the edges: year 0, -9999, 9999, jiff's min and max, and the first
/// instants outside the supported years on both sides.
const EDGE_INSTANTS: [&str; 7] = [
    "0000-01-01T00:00:00Z",
    "-009999-01-01T00:00:00Z",
    "9999-12-30T00:00:00Z",
    "-009999-01-02T01:59:59Z",
    "9999-12-30T22:00:00.999999999Z",
    "1899-12-31T23:59:59Z",
    "2500-01-01T00:00:00Z",
];

/// Durations that are huge, overflowing, zero or negative.
const EDGE_DURATIONS: [&str; 6] = [
    "175307616h",
    "99999999999999999999h",
    "P1000Y",
    "0s",
    "-1h",
    "8d",
];

fn inventory(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("inventory.toml");
    let toml = format!(
        r#"
[[customers]]
name = "acme"
time_zone = "Europe/Berlin"

[[clusters]]
name = "db"
customer = "acme"
nodes = ["db1", "db2"]

[[channels]]
name = "file"
kind = "log"
path = "{log}"

[[routes]]
channels = ["file"]

{keys}
{extra}
"#,
        log = dir.join("messages.log").display(),
        keys = keys_toml(),
    );
    std::fs::write(&path, toml).expect("writes inventory");
    path
}

fn send(
    serve: &Serve,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let mut req = http().request(
        method.parse().expect("method"),
        format!("{}{path}", serve.url),
    );
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_owned());
    }
    let resp = req.send().unwrap_or_else(|e| {
        panic!("{method} {path} got no answer (a panic drops the connection): {e}")
    });
    let status = resp.status().as_u16();
    let text = resp.text().expect("body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// Asserts a JSON 400 naming `field`.
#[track_caller]
fn bad(answer: (u16, Value), field: &str, what: &str) {
    let (status, body) = answer;
    assert_eq!(status, 400, "{what}: {body}");
    assert_eq!(body["field"], field, "{what}: {body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: {body}"
    );
}

/// `POST /v1/maintenance` with the admin key: a window on cluster `db` with reason, plus
/// (or instead of the defaults) the members of `body`.
fn add_window(serve: &Serve, body: Value) -> (u16, Value) {
    let mut b = json!({"cluster": "db", "reason": "edge test"});
    if let (Some(b), Some(extra)) = (b.as_object_mut(), body.as_object()) {
        for (k, v) in extra {
            b.insert(k.clone(), v.clone());
        }
    }
    send(
        serve,
        "POST",
        "/v1/maintenance",
        Some(ADMIN),
        Some(&b.to_string()),
    )
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_failover-notify"))
        .args(args)
        .output()
        .expect("runs")
}

#[test]
fn time_edges_on_every_endpoint_and_every_cli_flag_are_named_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = inventory(dir.path(), "");
    let serve = Serve::start(&config, &dir.path().join("db.sqlite"));
    let cfg = config.to_str().expect("utf-8");
    let add = [
        "maintenance",
        "add",
        "--url",
        &serve.url,
        "--key",
        ADMIN,
        "--cluster",
        "db",
        "--reason",
        "x",
    ];
    for t in EDGE_INSTANTS {
        let q = t.replace('+', "%2B");
        for endpoint in ["/v1/windows", "/v1/windows.ics"] {
            bad(
                send(
                    &serve,
                    "GET",
                    &format!("{endpoint}?from={q}"),
                    Some(ADMIN),
                    None,
                ),
                "from",
                t,
            );
            bad(
                send(
                    &serve,
                    "GET",
                    &format!("{endpoint}?to={q}"),
                    Some(ADMIN),
                    None,
                ),
                "to",
                t,
            );
        }
        bad(
            send(
                &serve,
                "GET",
                &format!("/v1/events?since={q}"),
                Some(ADMIN),
                None,
            ),
            "since",
            t,
        );
        let report = json!({"hostname": "db1", "occurred_at": t}).to_string();
        bad(
            send(&serve, "POST", "/v1/reports", Some(KEY), Some(&report)),
            "occurred_at",
            t,
        );
        bad(add_window(&serve, json!({ "end": t })), "end", t);
        bad(
            add_window(&serve, json!({ "start": t, "duration": "1h" })),
            "start",
            t,
        );
        // `--flag=VALUE`: a value starting with `-` is not taken for a flag.
        let (at, from, to) = (
            format!("--at={t}"),
            format!("--from={t}"),
            format!("--to={t}"),
        );
        let (end, start) = (format!("--end={t}"), format!("--start={t}"));
        for (flag, args) in [
            ("--at", vec!["check", "db1", "-c", cfg, &at]),
            ("--from", vec!["windows", "-c", cfg, &from]),
            ("--to", vec!["windows", "-c", cfg, &to]),
            ("--end", [&add[..], &[&end]].concat()),
            (
                "--start",
                [&add[..], &[&start, "--duration", "1h"]].concat(),
            ),
        ] {
            let out = cli(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
            assert!(
                stderr.starts_with("error: ") && stderr.contains(flag),
                "{args:?}: {stderr}"
            );
        }
    }
    // Near the edge but inside: a whole answer, not a dropped connection.
    let (status, _) = send(
        &serve,
        "GET",
        "/v1/windows?from=2499-12-01T00:00:00Z",
        Some(ADMIN),
        None,
    );
    assert_eq!(status, 200);
    for d in EDGE_DURATIONS {
        bad(add_window(&serve, json!({ "duration": d })), "duration", d);
        let duration = format!("--duration={d}");
        let out = cli(&[&add[..], &[&duration]].concat());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "--duration {d}: {stderr}");
        assert!(
            stderr.contains("--duration") || stderr.contains("`duration`"),
            "--duration {d}: {stderr}"
        );
        let out = cli(&[
            "report",
            "--url",
            &serve.url,
            "--key",
            KEY,
            "--hostname",
            "db1",
            "--spool",
            dir.path().join("spool").to_str().expect("utf-8"),
            &format!("--timeout={d}"),
        ]);
        assert_ne!(
            out.status.code(),
            Some(101),
            "report --timeout {d} panicked: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Ad-hoc windows are bounded at the door.
    let now = jiff::Timestamp::now();
    let at = |h: i64| (now + jiff::SignedDuration::from_hours(h)).to_string();
    bad(
        add_window(&serve, json!({"start": at(-25), "duration": "2h"})),
        "start",
        "a day ago",
    );
    bad(
        add_window(&serve, json!({"start": at(366 * 24), "duration": "2h"})),
        "start",
        "a year ahead",
    );
    bad(
        add_window(&serve, json!({"start": at(2), "end": at(1)})),
        "end",
        "end before start",
    );
    bad(
        add_window(&serve, json!({"start": at(-3), "duration": "1h"})),
        "end",
        "entirely in the past",
    );
    bad(
        add_window(&serve, json!({"start": at(-3), "end": at(-2)})),
        "end",
        "entirely in the past, with an end",
    );
    bad(
        add_window(&serve, json!({"end": at(8 * 24)})),
        "end",
        "longer than max_duration",
    );
    // None of that changed anything, and the service still records reports.
    let (status, listed) = send(&serve, "GET", "/v1/maintenance", Some(ADMIN), None);
    assert_eq!(
        (status, listed["maintenance"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    let (status, body) = serve.report(KEY, r#"{"hostname":"db1"}"#);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_broken_window_in_the_store_never_stops_a_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db.sqlite");
    // Written straight into the store, as an older version's door let it in.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        use failover_store::Store as _;
        let store = failover_store_sqlite::Sqlite::open(&db).expect("opens");
        store
            .add_maintenance(failover_store::NewMaintenance {
                target_kind: failover_store::TargetKind::Cluster,
                target: "db".into(),
                customer: Some("acme".into()),
                start: jiff::Timestamp::MIN,
                end: jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1),
                reason: "from the edge of time".into(),
                created_by: "old-version".into(),
            })
            .await
            .expect("stored");
    });
    let serve = Serve::start(
        &inventory(
            dir.path(),
            "[maintenance]\nmax_duration = \"2h\"\n\n[events]\nfirst_report_is_start = false\n",
        ),
        &db,
    );
    let (status, body) = serve.report(KEY, r#"{"hostname":"db1"}"#);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["verdict"]["verdict"], "unplanned", "{body}");
    let metrics = http()
        .get(format!("{}/metrics", serve.url))
        .send()
        .and_then(|r| r.text())
        .expect("metrics");
    assert!(
        metrics.contains("failover_windows_skipped_total 1\n"),
        "{metrics}"
    );
    // A good window still counts next to the broken one; `max_duration` is the config's.
    bad(
        add_window(&serve, json!({"duration": "3h"})),
        "duration",
        "over max_duration",
    );
    let (status, m) = add_window(&serve, json!({"duration": "1h"}));
    assert_eq!(status, 201, "{m}");
    let (status, body) = serve.report(KEY, r#"{"hostname":"db2"}"#);
    assert_eq!(
        (status, &body["verdict"]["verdict"]),
        (200, &json!("planned")),
        "{body}"
    );
}

#[test]
fn the_key_is_checked_before_anything_else_and_guessing_is_slowed_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("serve.log");
    let mut serve = Serve::new(
        &inventory(dir.path(), ""),
        &dir.path().join("db.sqlite"),
        free_port(),
    );
    serve.log = Some(log.clone());
    serve.restart();
    // Without a key every malformed request is the same JSON 401.
    for (method, path, body) in [
        ("DELETE", "/v1/maintenance/abc", None),
        ("GET", "/v1/windows?from=nonsense", None),
        ("GET", "/v1/events?limit=-1", None),
        ("POST", "/v1/maintenance", Some("{not json")),
        ("POST", "/v1/reports", Some("{not json")),
        ("GET", "/nonexistent", None),
        ("PUT", "/v1/reports", None),
    ] {
        let (status, answer) = send(&serve, method, path, None, body);
        assert_eq!(
            (status, &answer["code"]),
            (401, &json!("unauthorized")),
            "{method} {path}: {answer}"
        );
    }
    // With a key, an unknown path and a wrong method are JSON errors too.
    for (method, path, status) in [("GET", "/nonexistent", 404), ("PUT", "/v1/reports", 405)] {
        let (got, answer) = send(&serve, method, path, Some(ADMIN), None);
        assert_eq!(got, status, "{method} {path}: {answer}");
        assert!(answer["code"].is_string(), "{method} {path}: {answer}");
    }
    // With a key, a malformed path id is a JSON 400 naming it.
    bad(
        send(&serve, "DELETE", "/v1/maintenance/abc", Some(ADMIN), None),
        "id",
        "path id",
    );
    // And a malformed query string names its parameter.
    for (path, field) in [
        ("/v1/events?limit=-1", "limit"),
        ("/v1/events?limit=99999999999999999999", "limit"),
        ("/v1/events?limit=1&limit=2", "limit"),
        ("/v1/events?verdict=maybe", "verdict"),
        // A reminder's message kind, never an event's verdict.
        ("/v1/events?verdict=not-back", "verdict"),
        ("/v1/events?verdict=", "verdict"),
        ("/v1/windows?days=7", "days"),
    ] {
        bad(send(&serve, "GET", path, Some(ADMIN), None), field, path);
    }
    // Body errors name the field.
    for (body, field) in [
        (r#"{"cluster":"db","duration":5,"reason":"x"}"#, "duration"),
        (r#"{"cluster":5,"duration":"1h","reason":"x"}"#, "cluster"),
        (
            r#"{"cluster":"db","duration":"1h","reason":"x","colour":"red"}"#,
            "colour",
        ),
        (
            r#"{"cluster":"db","duration":"1h","reason":"x","reason":"y"}"#,
            "reason",
        ),
    ] {
        bad(
            send(&serve, "POST", "/v1/maintenance", Some(ADMIN), Some(body)),
            field,
            body,
        );
    }
    bad(
        send(
            &serve,
            "POST",
            "/v1/reports",
            Some(KEY),
            Some(r#"{"hostname":"db1","hostname":"db2"}"#),
        ),
        "hostname",
        "duplicate",
    );
    // Eleven wrong (or missing) keys within a minute are refused one by one, the seven above
    // included; from then on the address's wrong keys are answered 429, so a burst of
    // guesses learns nothing.
    for i in 0..4 {
        let (status, _) = send(
            &serve,
            "GET",
            "/v1/events",
            Some(&format!("guess-{i}")),
            None,
        );
        assert_eq!(status, 401);
    }
    // A flood of wrong keys, as a guesser behind the nodes' NAT gateway would send.
    for i in 0..200 {
        let resp = http()
            .get(format!("{}/v1/events", serve.url))
            .header("x-api-key", format!("guess-{}", 11 + i))
            .send()
            .expect("answer");
        assert_eq!(resp.status().as_u16(), 429);
        assert!(resp.headers().get("retry-after").is_some());
    }
    // A valid key from the same address is never refused: the report is recorded and a
    // dashboard sign-in opens a session, at once.
    let (status, answer) = send(
        &serve,
        "POST",
        "/v1/reports",
        Some(KEY),
        Some(r#"{"hostname":"db1"}"#),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(answer["event_id"].is_string(), "{answer}");
    let (status, _) = send(&serve, "GET", "/v1/events", Some(ADMIN), None);
    assert_eq!(status, 200);
    assert_eq!(signin(&serve, ADMIN), 303, "a valid sign-in is accepted");
    assert_eq!(signin(&serve, "guess-x"), 429, "a wrong one is slowed down");
    serve.stop();
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.contains("refused a missing or wrong API key"),
        "{text}"
    );
    assert!(
        text.contains("too many wrong API keys from this address"),
        "{text}"
    );
    assert!(
        !text.contains("guess-"),
        "a refused key appears in the log: {text}"
    );
    assert_eq!(
        text.matches("refused a missing or wrong API key").count(),
        1,
        "refusals are logged once a minute per address: {text}"
    );
}

/// Signs in to the dashboard with `key` as a browser would (the form's CSRF cookie and
/// field first); the status of the form's answer.
fn signin(serve: &Serve, key: &str) -> u16 {
    signin_at(&serve.url, &client_from("127.0.0.1"), key).0
}

/// A client whose connections come from `ip` (any address of 127.0.0.0/8 is this machine's).
fn client_from(ip: &str) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(ip.parse::<std::net::IpAddr>().expect("address"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Signs in at `base` through `client`: the form's answer status and its session cookie.
fn signin_at(base: &str, client: &reqwest::blocking::Client, key: &str) -> (u16, Option<String>) {
    let form = client
        .get(format!("{base}/ui/signin"))
        .send()
        .expect("sign-in form");
    let csrf = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("failover_signin="))
        .and_then(|c| c.split(';').next())
        .expect("the form's CSRF cookie")
        .to_owned();
    let answer = client
        .post(format!("{base}/ui/signin"))
        .header("cookie", format!("failover_signin={csrf}"))
        .form(&[("key", key), ("csrf", &csrf), ("next", "/ui/now")])
        .send()
        .expect("sign-in answer");
    let session = answer
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("failover_session="))
        .map(str::to_owned);
    (answer.status().as_u16(), session)
}

/// A report over a fresh connection; the client gives up after 5 s.
fn report_answered(serve: &Serve) -> u16 {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
        .post(format!("{}/v1/reports", serve.url))
        .header("x-api-key", KEY)
        .body(r#"{"hostname":"db1"}"#)
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or_else(|e| panic!("the report got no answer: {e}"))
}

#[test]
fn idle_and_slow_connections_cannot_starve_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = inventory(
        dir.path(),
        "[server]\nheader_timeout = \"2s\"\nidle_timeout = \"30s\"\nrequest_timeout = \"3s\"\n",
    );
    let mut serve = Serve::new(&config, &dir.path().join("db.sqlite"), free_port());
    // serve raises its soft limit to the hard one; started at 256 it would run out at once.
    serve.soft_nofile = Some(256);
    serve.restart();
    let addr = format!("127.0.0.1:{}", serve.port);
    let idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(&addr).expect("connects"))
        .collect();
    let mut slow = TcpStream::connect(&addr).expect("connects");
    slow.set_read_timeout(Some(Duration::from_millis(900)))
        .expect("timeout");
    let started = Instant::now();
    assert_eq!(report_answered(&serve), 200);
    // One header byte a second: cut off after the header timeout.
    let mut closed = None;
    for b in b"POST /v1/reports HTTP/1.1\r\nHost: x\r\n" {
        if slow.write_all(&[*b]).is_err() {
            closed = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 512];
        match slow.read(&mut buf) {
            Ok(0) => {
                closed = Some(started.elapsed());
                break;
            }
            Ok(_) => panic!("the slow client got an answer before its header was complete"),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed = Some(started.elapsed());
                break;
            }
        }
    }
    let closed = closed.expect("the slow client was never cut off");
    assert!(
        closed >= Duration::from_secs(2),
        "cut off before the header timeout: {closed:?}"
    );
    // A whole header, then the body one byte at a time: answered 408 after the request
    // timeout, not held for ever.
    let mut trickle = TcpStream::connect(&addr).expect("connects");
    trickle
        .write_all(format!("POST /v1/reports HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\ncontent-length: 64\r\n\r\n{{").as_bytes())
        .expect("writes");
    trickle
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let started = Instant::now();
    let mut answer = Vec::new();
    while started.elapsed() < Duration::from_secs(15) && !answer.ends_with(b"}") {
        let _ = trickle.write_all(b" ");
        let mut buf = [0u8; 1024];
        match trickle.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    // A declared body far over the limit is refused at once, not waited for.
    let (answer, _) = exchange(
        &addr,
        &format!(
            "POST /v1/reports HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\ncontent-length: 10485760\r\n\r\n"
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("body_too_large"), "{answer}");
    // A body that stops arriving: 408 once the header timeout has passed, then closed.
    let (answer, took) = exchange(
        &addr,
        &format!(
            "POST /v1/reports HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\ncontent-length: 64\r\n\r\n{{\"host"
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(
        took >= Duration::from_secs(2),
        "answered before the header timeout: {took:?}"
    );
    // The connections that never sent a byte were closed after the header timeout.
    for mut c in idle.into_iter().take(3) {
        c.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut buf = [0u8; 16];
        match c.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("a silent connection was kept open: {other:?}"),
        }
    }
    assert_eq!(report_answered(&serve), 200);
}

/// Sends `request` on a new connection and reads until the server closes it (at most 10 s):
/// the answer and how long it took.
fn exchange(addr: &str, request: &str) -> (String, Duration) {
    let mut c = TcpStream::connect(addr).expect("connects");
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let started = Instant::now();
    c.write_all(request.as_bytes()).expect("writes");
    let mut answer = Vec::new();
    let _ = c.read_to_end(&mut answer);
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn at_the_connection_cap_idle_connections_make_room() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = inventory(
        dir.path(),
        "[server]\nmax_connections = 20\nidle_timeout = \"1h\"\n",
    );
    let serve = Serve::start(&config, &dir.path().join("db.sqlite"));
    let addr = format!("127.0.0.1:{}", serve.port);
    let idle: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(&addr).expect("connects"))
        .collect();
    assert_eq!(report_answered(&serve), 200);
    drop(idle);
}

#[test]
fn another_customers_names_and_ids_are_answered_like_unknown_ones() {
    const GLOBEX: &str = "globex-test-key";
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = format!(
        "[[customers]]\nname = \"globex\"\ntime_zone = \"UTC\"\n\n\
         [[clusters]]\nname = \"web\"\ncustomer = \"globex\"\nnodes = [\"web1\", \"web2\"]\n\n\
         [[keys]]\nname = \"globex-nodes\"\ncustomer = \"globex\"\nhash = \"{}\"\n",
        failover_core::keys::KeyHash::of(GLOBEX)
    );
    let mut serve = Serve::new(
        &inventory(dir.path(), &extra),
        &dir.path().join("db.sqlite"),
        free_port(),
    );
    serve.restart();
    let (status, acme) = add_window(&serve, json!({"duration": "1h"}));
    assert_eq!(status, 201, "{acme}");
    let id = acme["id"].as_i64().expect("id");
    // The same answer, word for word once the name or id is taken out.
    let same = |theirs: (u16, Value), unknown: (u16, Value), name: &str, nope: &str| {
        let plain = |v: &Value| v.to_string().replace(name, "NAME").replace(nope, "NAME");
        assert_eq!(
            (theirs.0, plain(&theirs.1)),
            (unknown.0, plain(&unknown.1)),
            "{name} vs {nope}"
        );
    };
    let window = |target: &str| {
        let body = json!({"cluster": target, "duration": "1h", "reason": "x"}).to_string();
        send(&serve, "POST", "/v1/maintenance", Some(GLOBEX), Some(&body))
    };
    let theirs = window("db");
    assert_eq!(theirs.0, 400, "{}", theirs.1);
    same(theirs, window("nope"), "db", "nope");
    let end = |id: &str| {
        send(
            &serve,
            "DELETE",
            &format!("/v1/maintenance/{id}"),
            Some(GLOBEX),
            None,
        )
    };
    let theirs = end(&id.to_string());
    assert_eq!(theirs.0, 404, "{}", theirs.1);
    same(theirs, end("9999"), &id.to_string(), "9999");
    let windows = |c: &str| {
        send(
            &serve,
            "GET",
            &format!("/v1/windows?cluster={c}"),
            Some(GLOBEX),
            None,
        )
    };
    let theirs = windows("db");
    assert_eq!(theirs.0, 400, "{}", theirs.1);
    same(theirs, windows("nope"), "db", "nope");
    // A report naming acme's host is recorded as an unknown host, like any unknown name.
    let report = |host: &str| {
        let (status, answer) = send(
            &serve,
            "POST",
            "/v1/reports",
            Some(GLOBEX),
            Some(&json!({"hostname": host}).to_string()),
        );
        (status, answer["verdict"]["verdict"].clone())
    };
    let theirs = report("db1");
    assert_eq!(theirs.1, json!("unknown-host"));
    assert_eq!(theirs, report("nope1"));
    // acme's window is still open.
    let (_, listed) = send(&serve, "GET", "/v1/maintenance", Some(ADMIN), None);
    assert_eq!(listed["maintenance"][0]["id"], id, "{listed}");
    serve.stop();
}

#[test]
fn control_and_bidi_characters_are_refused_and_never_printed_raw() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db.sqlite");
    let mut serve = Serve::new(&inventory(dir.path(), ""), &db, free_port());
    serve.restart();
    // ESC (terminal colours and titles), CR/LF (forged rows), DEL, a C1 control, U+202E
    // (text turned around on the dashboard), an isolate.
    let hostile = [
        "a\u{1b}]0;pwned\u{7}b",
        "a\r\nb",
        "a\u{7f}",
        "a\u{9b}2J",
        "a\u{202e}b",
        "\u{2067}x",
    ];
    for text in hostile {
        for field in ["source", "resource", "id"] {
            let body = json!({"hostname": "db1", field: text}).to_string();
            bad(
                send(&serve, "POST", "/v1/reports", Some(KEY), Some(&body)),
                field,
                text,
            );
        }
        bad(
            add_window(&serve, json!({"duration": "1h", "reason": text})),
            "reason",
            text,
        );
    }
    let (_, events) = send(&serve, "GET", "/v1/events", Some(ADMIN), None);
    assert_eq!(events["events"], json!([]), "nothing was recorded");
    // Text stored before this rule (or by hand) is escaped wherever it is printed.
    let (status, answer) = send(
        &serve,
        "POST",
        "/v1/reports",
        Some(KEY),
        Some(r#"{"hostname":"db1","source":"hook"}"#),
    );
    assert_eq!(status, 200, "{answer}");
    let event = answer["event_id"].as_str().expect("event id").to_owned();
    assert_eq!(add_window(&serve, json!({"duration": "1h"})).0, 201);
    serve.stop();
    let sql = "UPDATE reports SET source = 'x' || char(27) || '[2J' || char(13) || char(10) || 'forged row';\
               UPDATE maintenance SET reason = 'y' || char(27) || ']0;title' || char(7) || char(8238) || 'gnp';";
    let python = std::env::var("FAILOVER_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let ran = Command::new(python)
        .args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()",
        ])
        .arg(&db)
        .arg(sql)
        .status()
        .expect("python runs");
    assert!(ran.success());
    serve.restart();
    for args in [vec!["events", "--id", &event], vec!["maintenance", "list"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_failover-notify"))
            .args(&args)
            .args(["--url", &serve.url, "--key", ADMIN])
            .output()
            .expect("runs");
        let text = String::from_utf8(out.stdout).expect("utf-8");
        assert!(out.status.success(), "{args:?}: {text}");
        assert!(
            !text
                .chars()
                .any(|c| failover_core::text::forbidden(c) && c != '\n'),
            "{args:?} printed a control character: {text:?}"
        );
        assert!(
            text.contains(r"\u{1b}") && !text.lines().any(|l| l.starts_with("forged row")),
            "{args:?}: {text}"
        );
    }
    serve.stop();
}

#[test]
fn a_request_without_exactly_one_host_is_a_400() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut serve = Serve::new(
        &inventory(dir.path(), ""),
        &dir.path().join("db.sqlite"),
        free_port(),
    );
    serve.restart();
    let addr = serve.url.trim_start_matches("http://").to_owned();
    let report = "POST /v1/reports HTTP/1.1\r\nx-api-key: secret\r\ncontent-type: application/json\r\ncontent-length: 19\r\n";
    for (request, status) in [
        (format!("{report}\r\n{{\"hostname\":\"db1\"}}"), "400"),
        (
            format!("{report}Host: a\r\nHost: b\r\n\r\n{{\"hostname\":\"db1\"}}"),
            "400",
        ),
        // HTTP/1.0 has no Host requirement.
        ("GET /v1/events HTTP/1.0\r\n\r\n".to_owned(), "401"),
    ] {
        let (answer, _) = exchange(&addr, &request);
        assert!(
            answer.split(' ').nth(1) == Some(status),
            "{request:?}: {answer}"
        );
    }
    let (_, events) = send(&serve, "GET", "/v1/events", Some(ADMIN), None);
    assert_eq!(events["events"], json!([]), "nothing was recorded");
    // The API's calendar is not sniffed or cached either.
    let ics = http()
        .get(format!("{}/v1/windows.ics", serve.url))
        .header("x-api-key", ADMIN)
        .send()
        .expect("answers");
    assert_eq!(ics.headers()["x-content-type-options"], "nosniff");
    assert_eq!(ics.headers()["cache-control"], "no-store");
    serve.stop();
}

/// nginx on a free loopback port in front of `upstream`, as the README's snippet configures
/// it (TLS is taken as ended there: it says `https` to the service).
struct Nginx {
    url: String,
    proc: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(upstream: &str) -> Nginx {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               server {{\n    listen 127.0.0.1:{port};\n    location / {{\n\
                 proxy_pass {upstream};\n      proxy_set_header Host $host;\n\
                 proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
                 proxy_set_header X-Forwarded-Proto https;\n    }}\n  }}\n}}\n",
            d = dir.path().display()
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).expect("writes nginx.conf");
        let proc = Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .spawn()
            .expect("Debian's nginx (apt-get install nginx-light; scripts/test installs it)");
        let url = format!("http://127.0.0.1:{port}");
        common::wait_for("nginx to listen", 10, || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Nginx {
            url,
            proc,
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

#[test]
fn behind_nginx_clients_are_told_apart_and_forged_headers_are_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("serve.log");
    let mut serve = Serve::new(
        &inventory(
            dir.path(),
            "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
        ),
        &dir.path().join("db.sqlite"),
        free_port(),
    );
    serve.log = Some(log.clone());
    serve.restart();
    let nginx = Nginx::start(&serve.url);
    let wrong = |client: &reqwest::blocking::Client, base: &str, forged: Option<&str>| {
        let mut req = client
            .get(format!("{base}/v1/events"))
            .header("x-api-key", "guess");
        if let Some(f) = forged {
            req = req.header("x-forwarded-for", f);
        }
        req.send().expect("answers").status().as_u16()
    };
    let (a, b) = (client_from("127.0.0.2"), client_from("127.0.0.3"));
    // A guesses through the proxy, claiming to be B: after eleven it is slowed down...
    let statuses: Vec<u16> = (0..12)
        .map(|_| wrong(&a, &nginx.url, Some("127.0.0.3")))
        .collect();
    assert_eq!(statuses[..11], [401; 11], "{statuses:?}");
    assert_eq!(statuses[11], 429, "{statuses:?}");
    // ...while B, behind the same proxy, is its own address: refused, not slowed down, and
    // its valid report and sign-in go through at once.
    assert_eq!(wrong(&b, &nginx.url, None), 401);
    let report = b
        .post(format!("{}/v1/reports", nginx.url))
        .header("x-api-key", KEY)
        .header("content-type", "application/json")
        .body(r#"{"hostname":"db1"}"#)
        .send()
        .expect("answers");
    assert_eq!(report.status().as_u16(), 200);
    // The proxy said https: the session cookie is Secure.
    let (status, cookie) = signin_at(&nginx.url, &b, ADMIN);
    assert_eq!(status, 303);
    assert!(
        cookie.as_deref().is_some_and(|c| c.contains("; Secure")),
        "{cookie:?}"
    );
    // Straight to serve, the same headers are a client's own words and are ignored: the
    // address is the peer's, the cookie is not Secure.
    let c = client_from("127.0.0.4");
    let statuses: Vec<u16> = (0..12)
        .map(|i| wrong(&c, &serve.url, Some(&format!("127.0.1.{i}"))))
        .collect();
    assert_eq!(statuses[11], 429, "{statuses:?}");
    let forged = c
        .get(format!("{}/ui/signin", serve.url))
        .header("x-forwarded-proto", "https")
        .send()
        .expect("answers");
    let csrf_cookie = forged.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(!csrf_cookie.contains("Secure"), "{csrf_cookie}");
    serve.stop();
    let text = std::fs::read_to_string(&log).expect("log");
    for from in ["from=127.0.0.2", "from=127.0.0.3", "from=127.0.0.4"] {
        assert!(text.contains(from), "{from} in {text}");
    }
    for never in ["from=127.0.0.1 ", "from=127.0.1."] {
        assert!(!text.contains(never), "{never} in {text}");
    }
}

/// schemathesis (PyPI) against a real `serve` from its own OpenAPI document: generated and
/// mutated requests on every operation, and the stateful links (a report, then its event; a
/// window, then its end), checked for server errors, undocumented statuses, content types
/// and answer schemas. Bounded in time; the summary is printed.
#[test]
fn schemathesis_finds_nothing_against_the_openapi_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut serve = Serve::new(
        &inventory(dir.path(), ""),
        &dir.path().join("db.sqlite"),
        free_port(),
    );
    serve.restart();
    let venv = std::env::var_os("FAILOVER_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv"));
    let out = Command::new(venv.join("bin/st"))
        // It keeps a cache of what it found in `.schemathesis/` under its working directory.
        .current_dir(dir.path())
        .arg("run")
        .arg(format!("{}/v1/openapi.json", serve.url))
        .args(["-H", &format!("x-api-key: {ADMIN}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            "15",
            "--max-time",
            "45",
            "--generation-deterministic",
            "--no-color",
        ])
        .output()
        .expect("schemathesis from the venv (scripts/requirements-test.txt)");
    let text = String::from_utf8_lossy(&out.stdout);
    let summary = text.rsplit("SUMMARY").next().unwrap_or(&text);
    println!("{summary}");
    assert!(out.status.success(), "schemathesis found problems:\n{text}");
    assert!(
        text.contains("API Links:") && !text.contains("0 covered"),
        "{text}"
    );
    // The service still records reports after the fuzzing.
    assert_eq!(report_answered(&serve), 200);
    serve.stop();
}
