//! The Lambda entry against a Runtime API emulator (the protocol Lambda speaks to a
//! `provided.al2023` bootstrap), with DynamoDB and SNS on a moto server and a real webhook
//! receiver: REST (v1) and HTTP API (v2) events shaped like the original's curl line.

// The emulator gives each invocation a deadline on the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::{HashMap, VecDeque};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    ADMIN, KEY, Moto, Proc, Receiver, free_port, keys_toml, serve_in_thread, wait_for,
    window_around_now,
};
use serde_json::{Value, json};

/// Lambda's Runtime API: hands queued events to the function and keeps its answers.
#[derive(Clone, Default)]
struct Emulator {
    queue: Arc<Mutex<VecDeque<(String, Value)>>>,
    answers: Arc<Mutex<HashMap<String, Result<Value, String>>>>,
    next_id: Arc<Mutex<u64>>,
}

impl Emulator {
    fn start(port: u16) -> Emulator {
        use axum::extract::{Path, State};
        use axum::routing::{get, post};
        let emu = Emulator::default();
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("binds");
        let app = axum::Router::new()
                    .route(
                        "/2018-06-01/runtime/invocation/next",
                        get(|State(e): State<Emulator>| async move {
                            loop {
                                let next = e.queue.lock().expect("lock").pop_front();
                                if let Some((id, event)) = next {
                                    let deadline = jiff::Timestamp::now().as_millisecond() + 60_000;
                                    return (
                                        [
                                            ("lambda-runtime-aws-request-id", id),
                                            ("lambda-runtime-deadline-ms", deadline.to_string()),
                                            (
                                                "lambda-runtime-invoked-function-arn",
                                                "arn:aws:lambda:us-east-1:123456789012:function:failover-notify".to_owned(),
                                            ),
                                            ("lambda-runtime-trace-id", "Root=1-0-0".to_owned()),
                                        ],
                                        event.to_string(),
                                    );
                                }
                                tokio::time::sleep(Duration::from_millis(2)).await;
                            }
                        }),
                    )
                    .route(
                        "/2018-06-01/runtime/invocation/{id}/response",
                        post(|State(e): State<Emulator>, Path(id): Path<String>, body: String| async move {
                            let v = serde_json::from_str(&body).unwrap_or(Value::String(body));
                            e.answers.lock().expect("lock").insert(id, Ok(v));
                            axum::http::StatusCode::ACCEPTED
                        }),
                    )
                    .route(
                        "/2018-06-01/runtime/invocation/{id}/error",
                        post(|State(e): State<Emulator>, Path(id): Path<String>, body: String| async move {
                            e.answers.lock().expect("lock").insert(id, Err(body));
                            axum::http::StatusCode::ACCEPTED
                        }),
                    )
                    .route(
                        "/2018-06-01/runtime/init/error",
                        post(|State(e): State<Emulator>, body: String| async move {
                            e.answers.lock().expect("lock").insert("init".into(), Err(body));
                            axum::http::StatusCode::ACCEPTED
                        }),
                    )
                    .with_state(emu.clone());
        serve_in_thread(listener, app);
        emu
    }

    /// Invokes the function with `event` and waits for its answer.
    fn invoke(&self, event: Value) -> Result<Value, String> {
        let id = {
            let mut n = self.next_id.lock().expect("lock");
            *n += 1;
            format!("req-{n}")
        };
        self.queue
            .lock()
            .expect("lock")
            .push_back((id.clone(), event));
        wait_for("the function's answer", 60, || {
            self.answers.lock().expect("lock").remove(&id)
        })
    }
}

/// A REST API (v1) event for `POST {path}` through stage `prod`, as API Gateway sends it.
fn rest(path: &str, key: &str, body: &str) -> Value {
    json!({
        "resource": path, "path": path, "httpMethod": "POST",
        "headers": {"x-api-key": key, "content-type": "application/x-www-form-urlencoded", "user-agent": "curl/7.88.1"},
        "multiValueHeaders": {"x-api-key": [key], "content-type": ["application/x-www-form-urlencoded"], "user-agent": ["curl/7.88.1"]},
        "queryStringParameters": null, "multiValueQueryStringParameters": null,
        "pathParameters": null, "stageVariables": null,
        "requestContext": {
            "resourcePath": path, "httpMethod": "POST", "path": format!("/prod{path}"), "stage": "prod",
            "requestId": "r", "accountId": "123456789012", "apiId": "api",
            "identity": {"sourceIp": "192.0.2.10", "apiKey": key}, "protocol": "HTTP/1.1", "requestTimeEpoch": 0
        },
        "body": body, "isBase64Encoded": false
    })
}

/// An HTTP API (v2) event.
fn http_api(method: &str, path: &str, query: &str, key: &str, body: &str) -> Value {
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": {"x-api-key": key, "content-type": "application/json"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example", "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.10", "userAgent": "curl"},
            "requestId": "r", "routeKey": "$default", "stage": "$default", "time": "25/Nov/2026:10:00:00 +0000", "timeEpoch": 0
        },
        "body": body, "isBase64Encoded": false
    })
}

/// Status and JSON body of an API Gateway answer.
fn answer(v: Result<Value, String>) -> (u16, Value) {
    let v = v.unwrap_or_else(|e| panic!("the invocation failed: {e}"));
    let status = v["statusCode"].as_u64().expect("statusCode") as u16;
    let body = serde_json::from_str(v["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
    (status, body)
}

struct Function {
    emu: Emulator,
    _proc: Proc,
}

/// The function as Lambda runs it, in a mount namespace where `/usr/share/zoneinfo` is an
/// empty directory: `provided.al2023` may have no time-zone database, so the Lambda build
/// bundles one. (jiff looks past an empty `TZDIR` to the system's, so only hiding it tells.)
fn start_function(config: &std::path::Path, table: &str, moto: &str) -> Function {
    let port = free_port();
    let emu = Emulator::start(port);
    let child = Command::new("unshare")
        .args([
            "--mount",
            "sh",
            "-c",
            "mount -t tmpfs none /usr/share/zoneinfo && exec \"$0\"",
            env!("CARGO_BIN_EXE_failover-notify"),
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "failover-notify")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("FAILOVER_NOTIFY_CONFIG", config)
        .env("FAILOVER_NOTIFY_TABLE", table)
        .env("FAILOVER_NOTIFY_DYNAMODB_ENDPOINT", moto)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the function starts");
    Function {
        emu,
        _proc: Proc(child),
    }
}

/// The table as `deploy/cloudformation.yaml` defines it (`scripts/dynamodb-table.py`).
fn create_table(moto: &str, table: &str) {
    let python =
        std::env::var("FAILOVER_TEST_PYTHON").unwrap_or_else(|_| ".venv/bin/python".into());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = Command::new(root.join(python))
        .arg(root.join("scripts/dynamodb-table.py"))
        .args([moto, table])
        .status()
        .expect("python from the venv");
    assert!(status.success(), "creating the table from the template");
}

fn inventory(
    dir: &std::path::Path,
    topic: &str,
    moto: &str,
    hook: &str,
    pager: &str,
) -> std::path::PathBuf {
    let path = dir.join("inventory.toml");
    let routing_key = dir.join("routing-key");
    std::fs::write(&routing_key, "R0UT1NGKEY0000000000000000000000\n").expect("key written");
    std::fs::write(
        &path,
        format!(
            r#"
[delivery]
first_retry = "200ms"
max_backoff = "1s"

[[customers]]
name = "acme"
time_zone = "America/St_Johns"

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
name = "web"
customer = "acme"
nodes = ["web1", "web2"]

[[clusters]]
name = "burst"
customer = "acme"
nodes = ["burst1", "burst2"]

[[channels]]
name = "sns"
kind = "sns"
topic_arn = "{topic}"
endpoint_url = "{moto}"

[[channels]]
name = "hook"
kind = "webhook"
url = "{hook}"
format = "generic"

[[channels]]
name = "pager"
kind = "pagerduty"
url = "{pager}"
routing_key_file = "{routing_key}"

[[routes]]
channels = ["sns", "hook"]

[[routes]]
cluster = "app"
verdicts = ["unplanned"]
channels = ["pager"]

[[routes]]
verdicts = ["not-back"]
channels = ["hook"]

{keys}
"#,
            window = window_around_now("node = \"db1\""),
            keys = keys_toml(),
            routing_key = routing_key.display()
        ),
    )
    .expect("inventory written");
    path
}

#[test]
fn lambda_classifies_stores_in_dynamodb_and_delivers_within_the_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let moto = Moto::start();
    let topic = moto.topic("failovers");
    create_table(&moto.url, "failover-notify");
    // The webhook fails the first try of db1's event and of web1's (the fifth call).
    let hook = Receiver::start(&[500, 200, 200, 200, 500]);
    let pager = Receiver::start(&[]);
    let config = inventory(dir.path(), &topic, &moto.url, &hook.url, &pager.url);
    let f = start_function(&config, "failover-notify", &moto.url);
    let published = |host: &str| {
        moto.published(&topic)
            .iter()
            .filter(|(s, _)| s.contains(host))
            .count()
    };

    // The cluster's first report is its start (inside db1's window, which is shown), through
    // a REST API stage, the original's curl body on `POST /`: SNS takes it, the webhook
    // answers 500, so the reporter is told to send it again.
    let body = r#"{"hostname":"db1","id":"r-db1"}"#;
    let (status, first) = answer(f.emu.invoke(rest("/", KEY, body)));
    assert_eq!(status, 503, "{first}");
    assert_eq!(first["verdict"]["verdict"], "cluster-start", "{first}");
    assert_eq!(
        first["verdict"]["window"]["name"], "kernel-patching",
        "{first}"
    );
    assert_eq!(first["failed"][0]["channel"], "hook", "{first}");
    assert_eq!(published("db1"), 1);
    // Local time in the customer's zone, from the bundled database.
    assert!(
        moto.published(&topic)
            .iter()
            .any(|(_, body)| body.contains(" NST (America/St_Johns)")),
        "{:?}",
        moto.published(&topic)
    );
    // The retry with the same id: the same event, only the webhook is tried, SNS not again.
    let (status, retry) = answer(f.emu.invoke(rest("/", KEY, body)));
    assert_eq!(status, 200, "{retry}");
    assert_eq!(retry["event_id"], first["event_id"]);
    assert_eq!(retry["duplicate"], true);
    assert_eq!(published("db1"), 1, "SNS must not get the retry");
    assert_eq!(hook.count(), 2);

    // Another cluster's start, HTTP API, `POST /v1/reports`.
    let (status, app) = answer(f.emu.invoke(http_api(
        "POST",
        "/v1/reports",
        "",
        KEY,
        r#"{"hostname":"app1"}"#,
    )));
    assert_eq!(status, 200, "{app}");
    assert_eq!(app["verdict"]["verdict"], "cluster-start", "{app}");
    assert_eq!(published("app1"), 1);

    // Unknown host: recorded, told, answered 422. A wrong key: 401, nothing recorded.
    let (status, unknown) = answer(f.emu.invoke(rest("/", KEY, r#"{"hostname":"ghost1"}"#)));
    assert_eq!(status, 422, "{unknown}");
    assert_eq!(unknown["code"], "unknown_host");
    let (status, _) = answer(f.emu.invoke(rest("/", "wrong", r#"{"hostname":"app1"}"#)));
    assert_eq!(status, 401);

    // Its outcomes were recorded as it answered, before the function took the next event.
    let (_, listed) = answer(
        f.emu
            .invoke(http_api("GET", "/v1/events", "cluster=app", ADMIN, "")),
    );
    let app_deliveries = &listed["events"][0]["deliveries"];
    assert!(
        app_deliveries
            .as_array()
            .is_some_and(|d| !d.is_empty() && d.iter().all(|d| d["status"] == "delivered")),
        "{listed}"
    );

    // A webhook failure left pending, then the scheduled drain delivers it.
    let (status, web) = answer(
        f.emu
            .invoke(rest("/", KEY, r#"{"hostname":"web1","id":"r-web"}"#)),
    );
    assert_eq!(status, 503, "{web}");
    std::thread::sleep(Duration::from_millis(400)); // first_retry is 200ms
    let drained = f
        .emu
        .invoke(json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}));
    assert_eq!(drained.expect("drain answers")["attempted"], 1);
    let events = |query: &str| {
        answer(
            f.emu
                .invoke(http_api("GET", "/v1/events", query, ADMIN, "")),
        )
    };
    let (_, listed) = events("cluster=web");
    let statuses: Vec<&Value> = listed["events"][0]["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .map(|d| &d["status"])
        .collect();
    assert_eq!(statuses, ["delivered", "delivered"], "{listed}");

    // Its failover, in no window: unplanned, from app1.
    let (status, unplanned) = answer(f.emu.invoke(rest("/", KEY, r#"{"hostname":"app2"}"#)));
    assert_eq!(status, 200, "{unplanned}");
    assert_eq!(unplanned["verdict"]["verdict"], "unplanned", "{unplanned}");
    let (_, listed) = events("cluster=app");
    assert_eq!(listed["events"][0]["previous"], "app1", "{listed}");

    let paged = unplanned["event_id"].clone();
    let pages = || pager.received.lock().expect("lock").clone();
    assert_eq!(
        (
            pages().len(),
            &pages()[0]["event_action"],
            &pages()[0]["dedup_key"]
        ),
        (1, &json!("trigger"), &paged)
    );

    // An ad-hoc window added through one request counts for the next report at once; this
    // one began before that failover ("that was the disk swap"), so it resolves the page
    // within its own request.
    let start = (jiff::Timestamp::now() - jiff::SignedDuration::from_mins(10)).to_string();
    let (status, m) = answer(
        f.emu.invoke(http_api(
            "POST",
            "/v1/maintenance",
            "",
            ADMIN,
            &json!({"cluster": "app", "start": start, "duration": "1h", "reason": "disk swap"})
                .to_string(),
        )),
    );
    assert_eq!(status, 201, "{m}");
    assert_eq!(
        (
            pages().len(),
            &pages()[1]["event_action"],
            &pages()[1]["dedup_key"]
        ),
        (2, &json!("resolve"), &paged)
    );
    let (_, listed) = events("cluster=app");
    let resolve: Vec<&Value> = listed["events"][0]["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .filter(|d| d["resolve"] == true)
        .collect();
    assert_eq!(
        (resolve.len(), &resolve[0]["status"]),
        (1, &json!("delivered")),
        "{listed}"
    );
    let (status, planned) = answer(f.emu.invoke(rest("/", KEY, r#"{"hostname":"app1"}"#)));
    assert_eq!(status, 200, "{planned}");
    assert_eq!(planned["verdict"]["verdict"], "planned", "{planned}");

    // A planned failover away from web1 expects web back when its window ends: that
    // reminder waits in DynamoDB for its time, it is not sent within the request.
    let (status, m) = answer(f.emu.invoke(http_api(
        "POST",
        "/v1/maintenance",
        "",
        ADMIN,
        r#"{"cluster":"web","duration":"1h","reason":"kernel update"}"#,
    )));
    assert_eq!(status, 201, "{m}");
    let before = hook.count();
    let (status, away) = answer(f.emu.invoke(rest("/", KEY, r#"{"hostname":"web2"}"#)));
    assert_eq!(
        (status, &away["deliveries"]),
        (200, &json!(["sns", "hook"])),
        "{away}"
    );
    assert_eq!(hook.count(), before + 1, "the event's own message only");
    let (_, listed) = events("cluster=web");
    let reminder: Vec<&Value> = listed["events"][0]["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .filter(|d| d["reminder"] == true)
        .collect();
    assert_eq!(reminder.len(), 1, "{listed}");
    assert_eq!(
        (&reminder[0]["channel"], &reminder[0]["status"]),
        (&json!("hook"), &json!("pending"))
    );

    // A burst of 200 reports of one failover (distinct ids): all acknowledged, one event,
    // one message.
    for i in 0..200 {
        let host = if i % 2 == 0 { "burst1" } else { "burst2" };
        let action = if i % 2 == 0 { "takeover" } else { "release" };
        let body = format!(r#"{{"hostname":"{host}","action":"{action}","id":"burst-{i}"}}"#);
        let (status, b) = answer(
            f.emu
                .invoke(http_api("POST", "/v1/reports", "", KEY, &body)),
        );
        assert_eq!(status, 200, "report {i}: {b}");
    }
    let (_, listed) = events("cluster=burst");
    assert_eq!(
        listed["events"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    assert_eq!(listed["events"][0]["reports"], 200, "{listed}");
    assert_eq!(published("burst1"), 1);

    // Guessing keys from one address (API Gateway's `sourceIp`) is slowed down as on `serve`:
    // more than 10 wrong keys within a minute, and then its wrong keys wait (a valid key is
    // still accepted: a guesser must not silence the nodes that share its address). From an
    // address of its own: the wrong key sent above from the usual one may or may not still
    // be within its minute, depending on how long the steps between took.
    let from = |mut event: Value| {
        event["requestContext"]["identity"]["sourceIp"] = json!("192.0.2.66");
        event
    };
    let statuses: Vec<u16> = (0..12)
        .map(|_| {
            answer(
                f.emu
                    .invoke(from(rest("/", "guess", r#"{"hostname":"db1"}"#))),
            )
            .0
        })
        .collect();
    assert_eq!(statuses[..11], [401; 11], "{statuses:?}");
    assert_eq!(statuses[11], 429, "{statuses:?}");
    let (status, body) = answer(f.emu.invoke(from(rest("/", KEY, r#"{"hostname":"db1"}"#))));
    assert_eq!(status, 200, "{body}");
    // The usual address is not slowed down by another's guesses.
    let (status, _) = answer(f.emu.invoke(rest("/", KEY, r#"{"hostname":"db1"}"#)));
    assert_ne!(status, 429);
}

#[test]
fn broken_inventory_fails_the_cold_start_loudly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("inventory.toml");
    std::fs::write(&config, "[[clusters]]\nname = \"db\"\nnodes = [\"db1\"]\n").expect("written");
    let out = Command::new(env!("CARGO_BIN_EXE_failover-notify"))
        .env("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9")
        .env("AWS_LAMBDA_FUNCTION_NAME", "f")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("FAILOVER_NOTIFY_CONFIG", &config)
        .env("FAILOVER_NOTIFY_TABLE", "t")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("inventory.toml:3:"), "{stderr}");
    assert!(stderr.contains("at least two nodes"), "{stderr}");
}

/// Every setting the CloudFormation template passes is one the function reads.
#[test]
fn template_sets_only_settings_the_function_reads() {
    let template = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/cloudformation.yaml"),
    )
    .expect("template");
    let help = Command::new(env!("CARGO_BIN_EXE_failover-notify"))
        .args(["lambda", "--help"])
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&help.stdout);
    let set: Vec<&str> = template
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("FAILOVER_NOTIFY_"))
        .collect();
    assert!(set.contains(&"FAILOVER_NOTIFY_TABLE"), "{set:?}");
    for var in set {
        assert!(
            help.contains(&format!("[env: {var}=")),
            "`{var}` is not read by `lambda`"
        );
    }
}

/// `lambda` outside Lambda says what is missing instead of crashing.
#[test]
fn lambda_outside_lambda_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_failover-notify"))
        .env_clear()
        .args(["lambda", "--table", "t"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("AWS_LAMBDA_FUNCTION_NAME"), "{stderr}");
    assert!(stderr.contains("use `serve`"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
