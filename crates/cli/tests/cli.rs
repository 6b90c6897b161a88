//! The `failover-notify` binary as a user runs it: exit codes, output contracts, and the
//! iCalendar output read back by a real parser (Python's `icalendar`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_failover-notify"));
    cmd.current_dir(root()).env_remove("FAILOVER_NOTIFY_CONFIG");
    cmd
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("utf-8 stderr")
}

/// Python with `icalendar`, from the venv the test command creates.
fn python() -> PathBuf {
    let p = std::env::var_os("FAILOVER_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python"));
    assert!(
        p.exists(),
        "{} is missing: run the README's test command (scripts/test), which creates the venv",
        p.display()
    );
    p
}

fn write_temp(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("failover-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write temp file");
    path
}

#[test]
fn validate_reports_each_file_and_fails_if_any_fails() {
    let bad = write_temp("bad.toml", "[defaults]\ntime_zone = \"Europe/Pariss\"\n");
    let o = run(&[
        "validate",
        "examples/inventory.toml",
        bad.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("examples/inventory.toml: ok (3 clusters, 7 nodes, 11 windows, 4 channels)"),
        "{out}"
    );
    assert!(out.contains("bad.toml: FAILED"), "{out}");
    let err = stderr(&o);
    assert!(
        err.contains("bad.toml:2:13: failed to find time zone `Europe/Pariss`"),
        "{err}"
    );
    assert!(err.contains(" 2 | time_zone = \"Europe/Pariss\""), "{err}");

    let o = run(&["validate", "examples/inventory.toml"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn validate_example_prints_a_valid_inventory() {
    let o = run(&["validate", "--example"]);
    assert!(o.status.success());
    let printed = write_temp("example.toml", &stdout(&o));
    assert!(
        run(&["validate", printed.to_str().expect("utf-8")])
            .status
            .success()
    );
}

/// `check HOST -c examples/inventory.toml --at AT` plus `extra`.
fn check_at(host: &str, at: &str, extra: &[&str]) -> Output {
    let mut args = vec!["check", host, "-c", "examples/inventory.toml", "--at", at];
    args.extend_from_slice(extra);
    run(&args)
}

/// `check HOST --at 2026-12-16T10:00:00Z --format json` on the example inventory.
fn check_json(host: &str) -> serde_json::Value {
    let o = check_at(host, "2026-12-16T10:00:00Z", &["--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("one JSON object")
}

#[test]
fn check_json_contract() {
    assert_eq!(
        check_json("cluster01-a"),
        serde_json::json!({
            "verdict": "planned",
            "host": "cluster01-a",
            "cluster": "cluster01",
            "at": "2026-12-16T10:00:00Z",
            "window": {
                "name": "patching",
                "owner": "cluster01-a",
                "start": "2026-12-16T00:00:00+00:00",
                "end": "2026-12-17T00:00:00+00:00",
                "time_zone": "UTC"
            }
        })
    );
    // cluster01-b reporting on a's day is planned too (the original said unplanned).
    assert_eq!(check_json("cluster01-b")["verdict"], "planned");
    assert_eq!(
        check_json("who-is-this"),
        serde_json::json!({"verdict": "unknown-host", "host": "who-is-this", "cluster": null, "at": "2026-12-16T10:00:00Z", "window": null})
    );
}

#[test]
fn check_text_says_why() {
    let o = check_at("db1", "2026-12-09T22:30:00+01:00", &[]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.starts_with("db1: planned\n"), "{out}");
    assert!(out.contains("window   \"second-wednesday\" of db1.example.com: 2026-12-09T22:00:00+01:00 to 2026-12-10T02:00:00+01:00 (Europe/Berlin)"), "{out}");
}

#[test]
fn check_explain_names_the_channels_and_renders_the_message() {
    let o = check_at("db1", "2026-12-09T22:30:00+01:00", &["--explain"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("\n  channels log, acme-mail\n"), "{out}");
    assert!(
        out.contains("\n  subject  Planned failover: db is now active on db1.example.com\n"),
        "{out}"
    );
    assert!(
        out.contains("\n    | This was likely due to patching: it happened at 2026-12-09 22:30:00 CET (Europe/Berlin)"),
        "{out}"
    );
    // db1 is db's preferred node: nothing expected. db2 in the same window is expected
    // back on db1 by the window's end plus its after-grace.
    assert!(!out.contains("reminder"), "{out}");
    let o = check_at("db2", "2026-12-09T22:30:00+01:00", &["--explain"]);
    let out = stdout(&o);
    assert!(
        out.contains(
            "\n  reminder to acme-mail if not back on db1.example.com by 2026-12-10 02:30:00 CET\n"
        ),
        "{out}"
    );
    // Outside the window: the unplanned message.
    let o = check_at(
        "db1",
        "2026-12-16T10:00:00Z",
        &["--explain", "--format", "json"],
    );
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(json["verdict"], "unplanned");
    let explain = &json["explain"];
    assert!(
        explain["subject"]
            .as_str()
            .is_some_and(|s| s.starts_with("UNPLANNED failover: db")),
        "{json}"
    );
    assert!(
        explain["body"]
            .as_str()
            .is_some_and(|b| b.contains("no maintenance window of db was open")),
        "{json}"
    );
    assert!(
        explain["channels"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    );
    // An unknown host goes to the admin routes.
    let o = check_at(
        "who-is-this",
        "2026-12-16T10:00:00Z",
        &["--explain", "--format", "json"],
    );
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert!(
        json["explain"]["subject"]
            .as_str()
            .is_some_and(|s| s.contains("unknown host who-is-this")),
        "{json}"
    );
    // Without --explain the JSON contract is unchanged.
    assert!(check_json("db1").get("explain").is_none());
}

#[test]
fn errors_are_one_clear_line_and_usage_errors_exit_2() {
    let o = check_at("db1", "tomorrow", &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with("error: --at `tomorrow` is not an instant"),
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );

    let o = run(&["check", "db1", "-c", "/nonexistent/inventory.toml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o)
            .starts_with("error: reading inventory `/nonexistent/inventory.toml`: No such file"),
        "{}",
        stderr(&o)
    );

    let o = run(&[
        "windows",
        "--format",
        "yaml",
        "-c",
        "examples/inventory.toml",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
}

fn windows_json(args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec![
        "windows",
        "-c",
        "examples/inventory.toml",
        "--format",
        "json",
    ];
    all.extend_from_slice(args);
    let o = run(&all);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("a JSON array")
}

#[test]
fn windows_json_contract_sorted_by_start() {
    let rows = windows_json(&[
        "--from",
        "2026-12-01",
        "--to",
        "2027-01-01",
        "--cluster",
        "db",
    ]);
    let first = &rows[0];
    let mut keys: Vec<&str> = first
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["cluster", "end", "owner", "start", "window"]);
    let starts: Vec<jiff::Timestamp> = rows
        .iter()
        .map(|r| {
            r["start"]
                .as_str()
                .expect("start")
                .parse()
                .expect("RFC 3339")
        })
        .collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "not sorted");
    assert!(rows.iter().all(|r| r["cluster"] == "db"));
    assert!(rows.iter().any(|r| r["window"] == "second-wednesday"
        && r["start"] == "2026-12-09T22:00:00+01:00"
        && r["end"] == "2026-12-10T02:00:00+01:00"));
    // --node: only that node's own windows plus the cluster's and customer's.
    let rows = windows_json(&[
        "--from",
        "2026-12-01",
        "--to",
        "2027-01-01",
        "--node",
        "db2",
    ]);
    assert!(rows.iter().all(|r| r["owner"] != "db1.example.com"));
    assert!(rows.iter().any(|r| r["window"] == "last-friday"));
}

#[test]
fn windows_ics_is_valid_rfc5545() {
    let o = run(&[
        "windows",
        "-c",
        "examples/inventory.toml",
        "--from",
        "2026-12-01",
        "--to",
        "2027-01-01",
        "--format",
        "ics",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ics = write_temp("windows.ics", &stdout(&o));
    let expected = windows_json(&["--from", "2026-12-01", "--to", "2027-01-01"]);
    // Parse with a real iCalendar implementation and print what it understood.
    let script = r#"
import sys, icalendar
cal = icalendar.Calendar.from_ical(open(sys.argv[1], 'rb').read())
assert cal['VERSION'] == '2.0', cal['VERSION']
for ev in cal.walk('VEVENT'):
    for field in ('UID', 'DTSTAMP', 'DTSTART', 'DTEND', 'SUMMARY'):
        assert field in ev, field
    s, e = ev.decoded('DTSTART'), ev.decoded('DTEND')
    assert s < e
    print(s.isoformat(), e.isoformat(), str(ev['SUMMARY']), sep='|')
"#;
    let o = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(&ics)
        .output()
        .expect("python runs");
    assert!(
        o.status.success(),
        "icalendar rejected the file: {}",
        stderr(&o)
    );
    let lines: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), expected.len(), "one VEVENT per occurrence");
    // Same instants as the JSON, in the same order.
    for (line, row) in lines.iter().zip(&expected) {
        let mut parts = line.split('|');
        let start: jiff::Timestamp = parts.next().expect("start").parse().expect("iso");
        let json_start: jiff::Timestamp =
            row["start"].as_str().expect("start").parse().expect("iso");
        assert_eq!(start, json_start, "{line}");
        let summary = parts.nth(1).expect("summary");
        assert!(
            summary.contains(row["window"].as_str().expect("window")),
            "{summary}"
        );
    }
}

#[test]
fn import_lambda_keeps_the_originals_dates() {
    let o = run(&[
        "import-lambda",
        fixture("original_handler.py").to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let toml = stdout(&o);
    assert!(
        toml.contains("topic_arn = \"arn:aws:sns:eu-west-1:123456789012:customer-failover\""),
        "{toml}"
    );
    assert!(
        toml.contains("subject = \"Customer Failover Notification\""),
        "{toml}"
    );
    assert!(
        toml.contains("# the original's comment: Second Wednesday of the month"),
        "{toml}"
    );
    assert!(
        toml.contains(
            "# the second wednesday of the month would be: week = 2, day = \"wednesday\""
        ),
        "{toml}"
    );
    let imported = write_temp("imported.toml", &toml);
    let path = imported.to_str().expect("utf-8");
    assert!(run(&["validate", path]).status.success());

    // Every patch day of 2026-2027, compared with the original's own week arithmetic.
    for (node, week, day) in [
        ("cluster01-a", 2, 2),
        ("cluster01-b", 3, 2),
        ("db-01", 1, 6),
        ("db-02", 4, 0),
    ] {
        let o = run(&[
            "windows",
            "-c",
            path,
            "--node",
            node,
            "--from",
            "2026-01-01",
            "--to",
            "2028-01-01",
            "--format",
            "json",
        ]);
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).expect("JSON");
        let ours: Vec<String> = rows
            .iter()
            .filter(|r| r["owner"] == node)
            .map(|r| r["start"].as_str().expect("start")[..10].to_owned())
            .collect();
        let o = Command::new(python())
            .arg(fixture("original_weeks.py"))
            .args([
                week.to_string(),
                day.to_string(),
                "2026-01-01".into(),
                "2027-12-31".into(),
            ])
            .output()
            .expect("python runs");
        assert!(o.status.success(), "{}", stderr(&o));
        let original: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
        assert!(original.len() >= 20, "{node}: {original:?}");
        assert_eq!(ours, original, "{node}: week {week}, day {day}");
        // Whole UTC days, as the original's date.today() in Lambda.
        assert!(
            rows.iter()
                .filter(|r| r["owner"] == node)
                .all(|r| r["start"].as_str().expect("s").ends_with("T00:00:00+00:00"))
        );
    }
}

#[test]
fn import_lambda_names_the_line_it_cannot_read() {
    let py = write_temp(
        "broken.py",
        "x = PatchCluster(\"a\", \"b\")\nx.setPatching(\"a\", two, 2)\n",
    );
    let o = run(&["import-lambda", py.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("line 2: cannot read `setPatching(...)`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn keys_new_prints_a_key_and_a_matching_hash_line() {
    let o = run(&["keys", "new", "--customer", "acme", "--name", "acme-nodes"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let key = out
        .lines()
        .nth(1)
        .expect("key line")
        .trim_start_matches('#')
        .trim();
    assert!(key.starts_with("fn_") && key.len() == 67, "{key}");
    let hash = out
        .lines()
        .find_map(|l| l.strip_prefix("hash = \""))
        .expect("hash line")
        .trim_end_matches('"');
    let parsed = failover_core::keys::KeyHash::parse(hash).expect("valid hash");
    assert!(parsed.matches(key));
    // Two runs never print the same key.
    let again = stdout(&run(&["keys", "new", "--admin"]));
    assert!(!again.contains(key));
    assert!(again.contains("admin = true"));
    // The printed block is valid inventory.
    let inv = write_temp(
        "keys.toml",
        &format!("[[customers]]\nname = \"acme\"\n{out}"),
    );
    assert!(
        run(&["validate", inv.to_str().expect("utf-8")])
            .status
            .success()
    );
}

#[test]
#[cfg(feature = "postgres")]
fn serve_on_an_unreachable_database_names_it_without_its_password() {
    let o = run(&[
        "serve",
        "--db",
        "postgres://fn:Sup3r-s3cret@127.0.0.1:1/failover",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("database `postgres://fn@127.0.0.1:1/failover` cannot be used"),
        "{err}"
    );
    assert!(err.contains("Connection refused"), "{err}");
    assert!(!err.contains("Sup3r-s3cret"), "{err}");
    for bad in [
        ["--db-pool", "0"],
        ["--db-pool", "100000"],
        ["--db-pool", ""],
        ["--replica", ""],
    ] {
        let o = run(&["serve", "--db", "postgres://127.0.0.1:1/x", bad[0], bad[1]]);
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        assert!(stderr(&o).contains(bad[0]), "{bad:?}: {}", stderr(&o));
    }
    let o = run(&[
        "serve",
        "--db",
        "postgres://127.0.0.1:1/x?sslmode=verify-full",
    ]);
    assert!(stderr(&o).contains("sslrootcert"), "{}", stderr(&o));
    let o = run(&["serve", "--db", ""]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("`--db` is empty"), "{}", stderr(&o));
}
