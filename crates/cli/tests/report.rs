//! `report` against the real `serve`: sent at once when the service is up; spooled when it
//! is down and sent later with its original time, oldest first; corrupt spool files set aside;
//! concurrent runs send each report once; a key file readable by everyone refused.

// The spool test compares report times with the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use common::{ADMIN, KEY, Serve, free_port, keys_toml};
use serde_json::Value;

fn inventory(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("inventory.toml");
    let toml = format!(
        r#"
[[customers]]
name = "acme"

[[clusters]]
name = "db"
customer = "acme"
nodes = ["db1", "db2"]

[[clusters]]
name = "hb"
customer = "acme"
nodes = ["hb1", "hb2"]

[[clusters]]
name = "ka"
customer = "acme"
nodes = ["ka1", "ka2"]

[[clusters]]
name = "pm"
customer = "acme"
nodes = ["pm1", "pm2"]

[[channels]]
name = "file"
kind = "log"
path = "{log}"

[[routes]]
channels = ["file"]

{keys}"#,
        log = dir.join("messages.log").display(),
        keys = keys_toml()
    );
    std::fs::write(&path, toml).expect("inventory written");
    path
}

fn report(url: &str, spool: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_failover-notify"))
        .arg("report")
        .args(["--url", url, "--spool"])
        .arg(spool)
        .args(args)
        .env("FAILOVER_NOTIFY_KEY", KEY)
        .output()
        .expect("report runs")
}

fn spooled(spool: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(spool)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

fn events(serve: &Serve) -> Vec<Value> {
    let mut events = serve.get("/v1/events?limit=100")["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    events.reverse(); // oldest first
    events
}

#[test]
fn report_is_sent_when_the_service_is_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let serve = Serve::start(&inventory(dir.path()), &dir.path().join("db.sqlite"));
    let spool = dir.path().join("spool");
    let out = report(
        &serve.url,
        &spool,
        &[
            "--hostname",
            "db1",
            "--previous",
            "db2",
            "--source",
            "heartbeat",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("sent "));
    assert!(spooled(&spool).is_empty());
    let events = events(&serve);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["active"], "db1");
    assert_eq!(events[0]["previous"], "db2");
}

#[test]
fn service_down_spools_then_sends_with_the_original_time_oldest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let spool = dir.path().join("spool");

    // Down: each run keeps trying for its timeout, then exits 0 with the report spooled.
    let first = jiff::Timestamp::now();
    let out = report(&url, &spool, &["--hostname", "db1", "--timeout", "1s"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 report(s) wait"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = report(
        &url,
        &spool,
        &[
            "--hostname",
            "db2",
            "--previous",
            "db1",
            "--timeout",
            "500ms",
        ],
    );
    assert!(out.status.success());
    assert_eq!(spooled(&spool).len(), 2);
    // A corrupt file among them is set aside, not sent and not in the way.
    std::fs::write(spool.join("00000000000000000001-broken.json"), "{not json").expect("written");

    let serve = Serve::start_on(&inventory(dir.path()), &dir.path().join("db.sqlite"), port);
    let out = report(&url, &spool, &["--flush"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("corrupt"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(spooled(&spool).is_empty());
    assert!(
        spool
            .join("corrupt/00000000000000000001-broken.json")
            .exists()
    );

    let events = events(&serve);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["active"], "db1");
    assert_eq!(events[1]["active"], "db2");
    // Their times are when they happened, before `serve` was even started.
    let at: jiff::Timestamp = events[0]["at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("at");
    assert!(
        at.duration_since(first).abs() < jiff::SignedDuration::from_secs(1),
        "{at} vs {first}"
    );
    let second: jiff::Timestamp = events[1]["at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("at");
    assert!(second > at);
}

#[test]
fn concurrent_flushes_send_each_report_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let spool = dir.path().join("spool");
    for i in 0..20 {
        let host = if i % 2 == 0 { "db1" } else { "db2" };
        let out = report(&url, &spool, &["--hostname", host, "--timeout", "0s"]);
        assert!(out.status.success());
    }
    assert_eq!(spooled(&spool).len(), 20);
    let serve = Serve::start_on(&inventory(dir.path()), &dir.path().join("db.sqlite"), port);
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let (url, spool) = (url.clone(), spool.clone());
            std::thread::spawn(move || report(&url, &spool, &["--flush"]))
        })
        .collect();
    for r in runs {
        let out = r.join().expect("joins");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(spooled(&spool).is_empty());
    let metrics = common::http()
        .get(format!("{}/metrics", serve.url))
        .header("x-api-key", ADMIN)
        .send()
        .and_then(|r| r.text())
        .expect("metrics");
    let posted: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("failover_reports_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(posted, 20, "each spooled report posted once:\n{metrics}");
}

#[test]
fn key_file_readable_by_everyone_is_refused_and_the_report_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("key");
    std::fs::write(&key, format!("{KEY}\n")).expect("written");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let spool = dir.path().join("spool");
    let out = Command::new(env!("CARGO_BIN_EXE_failover-notify"))
        .args([
            "report",
            "--url",
            "http://127.0.0.1:9",
            "--hostname",
            "db1",
            "--key-file",
        ])
        .arg(&key)
        .arg("--spool")
        .arg(&spool)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("readable by everyone") && stderr.contains("chmod o-r"),
        "{stderr}"
    );
    assert_eq!(
        spooled(&spool).len(),
        1,
        "the report is kept for `report --flush`"
    );

    // With the file fixed, the spooled report goes out.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let serve = Serve::start(&inventory(dir.path()), &dir.path().join("db.sqlite"));
    let out = Command::new(env!("CARGO_BIN_EXE_failover-notify"))
        .args(["report", "--flush", "--url", &serve.url, "--key-file"])
        .arg(&key)
        .arg("--spool")
        .arg(&spool)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(events(&serve).len(), 1);
}

/// A hook from `deploy/hooks`, run as its cluster manager runs it.
fn hook(
    name: &str,
    dir: &Path,
    url: &str,
    host: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/hooks")
        .join(name);
    Command::new(script)
        .args(args)
        .env("FAILOVER_NOTIFY_BIN", env!("CARGO_BIN_EXE_failover-notify"))
        .env("FAILOVER_NOTIFY_URL", url)
        .env("FAILOVER_NOTIFY_KEY", KEY)
        .env("FAILOVER_NOTIFY_SPOOL", dir.join("spool"))
        .env("FAILOVER_NOTIFY_STATE", dir.join("heartbeat.state"))
        .env("FAILOVER_NOTIFY_HOSTNAME", host)
        .env("FAILOVER_NOTIFY_TIMEOUT", "1s")
        .envs(env.iter().copied())
        .output()
        .expect("hook runs")
}

fn cluster_events(serve: &Serve, cluster: &str) -> Vec<Value> {
    events(serve)
        .into_iter()
        .filter(|e| e["cluster"] == cluster)
        .collect()
}

#[test]
fn hooks_report_what_their_cluster_manager_tells_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut serve = Serve::start(&inventory(dir.path()), &dir.path().join("db.sqlite"));
    let url = serve.url.clone();
    let d = dir.path();
    let stdout = |o: &Output| String::from_utf8_lossy(&o.stdout).trim().to_owned();

    // heartbeat: status words, takeover with the departed node as previous, release on stop.
    let heartbeat =
        |args: &[&str], env: &[(&str, &str)]| hook("heartbeat-resource", d, &url, "hb1", args, env);
    let status = || stdout(&heartbeat(&["status"], &[]));
    assert_eq!(status(), "stopped");
    let start = heartbeat(&["start"], &[("HA_src", "hb2")]);
    assert!(start.status.success());
    assert_eq!(status(), "running");
    let hb = cluster_events(&serve, "hb");
    assert_eq!(hb.len(), 1, "{hb:?}");
    assert_eq!(
        (hb[0]["active"].as_str(), hb[0]["previous"].as_str()),
        (Some("hb1"), Some("hb2"))
    );
    assert!(heartbeat(&["stop"], &[]).status.success());
    assert_eq!(status(), "stopped");

    // keepalived: BACKUP says nothing, MASTER reports a takeover.
    let keepalived = |state: &str| {
        hook(
            "keepalived-notify",
            d,
            &url,
            "ka2",
            &["INSTANCE", "VI_1", state, "100"],
            &[],
        )
    };
    assert!(keepalived("BACKUP").status.success());
    assert!(cluster_events(&serve, "ka").is_empty());
    assert!(keepalived("MASTER").status.success());
    let ka = cluster_events(&serve, "ka");
    assert_eq!(ka.len(), 1, "{ka:?}");
    assert_eq!(ka[0]["active"], "ka2");

    // Pacemaker: a start on another node says nothing; a start here is a takeover, and the
    // peer lost right after is the same failover.
    let alert = |node: &str, kind: &str, extra: &[(&str, &str)]| {
        let mut env = vec![("CRM_alert_kind", kind), ("CRM_alert_node", node)];
        env.extend_from_slice(extra);
        hook("pacemaker-alert", d, &url, "pm1", &[], &env)
    };
    let start = [
        ("CRM_alert_task", "start"),
        ("CRM_alert_rc", "0"),
        ("CRM_alert_rsc", "vip"),
    ];
    assert!(alert("pm2", "resource", &start).status.success());
    assert!(cluster_events(&serve, "pm").is_empty());
    assert!(alert("pm1", "resource", &start).status.success());
    assert!(
        alert("pm2", "node", &[("CRM_alert_desc", "lost")])
            .status
            .success()
    );
    let pm = cluster_events(&serve, "pm");
    assert_eq!(pm.len(), 1, "{pm:?}");
    assert_eq!(pm[0]["active"], "pm1");
    assert_eq!(pm[0]["reports"], 2);

    // A node put in standby: nothing unless opted in; then an ad-hoc window for that node,
    // so the switchover Pacemaker makes next is planned.
    let standby = [
        ("CRM_alert_attribute_name", "standby"),
        ("CRM_alert_attribute_value", "on"),
    ];
    let windows = || -> Vec<Value> {
        common::http()
            .get(format!("{url}/v1/maintenance"))
            .header("x-api-key", KEY)
            .send()
            .and_then(|r| r.json::<Value>())
            .expect("maintenance answers")["maintenance"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    assert!(alert("pm1", "attribute", &standby).status.success());
    assert!(windows().is_empty(), "not opted in");
    let mut opted = vec![("FAILOVER_NOTIFY_STANDBY_WINDOW", "1h")];
    opted.extend_from_slice(&standby);
    let off = [
        ("FAILOVER_NOTIFY_STANDBY_WINDOW", "1h"),
        ("CRM_alert_attribute_name", "standby"),
        ("CRM_alert_attribute_value", "off"),
    ];
    assert!(alert("pm1", "attribute", &off).status.success());
    assert!(windows().is_empty(), "standby off opens nothing");
    assert!(alert("pm1", "attribute", &opted).status.success());
    let open = windows();
    assert_eq!(open.len(), 1, "{open:?}");
    // Asked again (every resource the node stops asks): still one.
    assert!(alert("pm1", "attribute", &opted).status.success());
    assert_eq!(windows().len(), 1, "one window per standby");
    assert_eq!(open[0]["target"], "pm1", "{open:?}");
    assert!(
        open[0]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("Pacemaker standby of pm1")),
        "{open:?}"
    );
    // The window starts a minute early: the switchover's report, sent at once and carrying
    // whole seconds, is inside it.
    let moved = hook(
        "pacemaker-alert",
        d,
        &url,
        "pm2",
        &[],
        &[
            ("CRM_alert_kind", "resource"),
            ("CRM_alert_node", "pm2"),
            ("CRM_alert_task", "start"),
            ("CRM_alert_rc", "0"),
            ("CRM_alert_rsc", "vip"),
        ],
    );
    assert!(moved.status.success());
    let pm = cluster_events(&serve, "pm");
    let switchover = pm
        .iter()
        .find(|e| e["active"] == "pm2")
        .expect("pm2's takeover");
    assert_eq!(switchover["verdict"], "planned", "{pm:?}");

    // A fencing of pm1 seen by pm2: its own message, naming the fenced node.
    let fencing = hook(
        "pacemaker-alert",
        d,
        &url,
        "pm2",
        &[],
        &[
            ("CRM_alert_kind", "fencing"),
            ("CRM_alert_node", "pm1"),
            ("CRM_alert_task", "reboot"),
            ("CRM_alert_rc", "0"),
        ],
    );
    assert!(fencing.status.success());
    let pm = cluster_events(&serve, "pm");
    let fenced = pm
        .iter()
        .find(|e| e["context"]["fenced"] == true)
        .expect("the fencing: {pm:?}");
    assert_eq!(
        (&fenced["active"], &fenced["previous"]),
        (&Value::Null, &Value::from("pm1")),
        "{pm:?}"
    );
    // Sent by the worker once recorded.
    common::wait_for("the fencing's message", 30, || {
        std::fs::read_to_string(d.join("messages.log"))
            .ok()
            .filter(|m| m.contains("pm1 of pm was fenced"))
    });

    // keepalived FAULT: the node's own fault, told though no takeover follows.
    assert!(keepalived("FAULT").status.success());
    let ka = cluster_events(&serve, "ka");
    let fault = ka
        .iter()
        .find(|e| e["active"].is_null())
        .expect("the fault: {ka:?}");
    assert_eq!(fault["previous"], "ka2", "{ka:?}");
    assert_eq!(fault["context"]["fault"], true, "{ka:?}");

    // With the service down, a hook still exits 0 at once and the report waits in the spool.
    serve.stop();
    let stop = hook("heartbeat-resource", d, &url, "hb1", &["stop"], &[]);
    assert!(stop.status.success());
    assert_eq!(spooled(&d.join("spool")).len(), 1);
}

#[test]
fn root_and_the_hook_user_share_one_spool() {
    // Pacemaker runs its alert agent as `hacluster`; here `nobody` plays that user and the
    // test (root) plays the operator who flushes by hand.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).expect("spool");
    std::os::unix::fs::chown(&spool, Some(65534), Some(65534)).expect("root can chown");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    // Root spools a report and flushes while the service is down: it makes the lock.
    assert!(
        report(&url, &spool, &["--hostname", "db1", "--timeout", "0s"])
            .status
            .success()
    );
    assert!(
        report(&url, &spool, &["--flush", "--timeout", "0s"])
            .status
            .success()
    );
    for entry in std::fs::read_dir(&spool).expect("lists").flatten() {
        use std::os::unix::fs::MetadataExt as _;
        let meta = entry.metadata().expect("meta");
        assert_eq!(
            (meta.uid(), meta.gid()),
            (65534, 65534),
            "{} belongs to root",
            entry.path().display()
        );
    }
    // The hook user's next run sends root's report and its own.
    let serve = Serve::start_on(&inventory(dir.path()), &dir.path().join("db.sqlite"), port);
    let out = Command::new("runuser")
        .args([
            "-u",
            "nobody",
            "--",
            env!("CARGO_BIN_EXE_failover-notify"),
            "report",
        ])
        .args(["--url", &url, "--spool"])
        .arg(&spool)
        .args(["--hostname", "db2"])
        .env("FAILOVER_NOTIFY_KEY", KEY)
        .output()
        .expect("runuser runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("Permission denied"), "{stderr}");
    assert!(spooled(&spool).is_empty(), "{:?}", spooled(&spool));
    assert_eq!(events(&serve).len(), 2);
}

#[test]
fn check_says_whether_the_hook_user_can_use_the_spool_and_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let serve = Serve::start(&inventory(dir.path()), &dir.path().join("db.sqlite"));
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).expect("spool");
    std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let key = dir.path().join("key");
    std::fs::write(&key, KEY).expect("key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_failover-notify"))
            .arg("report")
            .args(args)
            .args(["--url", &serve.url, "--spool"])
            .arg(&spool)
            .arg("--key-file")
            .arg(&key)
            .output()
            .expect("runs")
    };
    let check = |user: &str| {
        let out = run(&["--check", "--as", user]);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // Root's spool and key: fine for root, not for the hook user.
    let (ok, text) = check("root");
    assert!(ok, "{text}");
    let (ok, text) = check("nobody");
    assert!(!ok, "{text}");
    assert!(
        text.contains("FAILED `nobody` can write the spool"),
        "{text}"
    );
    assert!(
        text.contains("FAILED `nobody` can read the key file"),
        "{text}"
    );
    // Given to the hook user: fine.
    std::os::unix::fs::chown(&spool, Some(65534), Some(65534)).expect("chown");
    std::os::unix::fs::chown(&key, Some(65534), Some(65534)).expect("chown");
    let (ok, text) = check("nobody");
    assert!(ok, "{text}");
    assert!(text.contains("/healthz answered 200"), "{text}");
    // Root's own runs warn when the spool's owner could not read the key.
    std::os::unix::fs::chown(&key, Some(0), Some(0)).expect("chown");
    let out = run(&["--hostname", "db1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("belongs to `nobody`, who cannot read the key file"),
        "{stderr}"
    );
}
