//! Two `serve` replicas on one PostgreSQL database (a throwaway cluster per test): a
//! failover reported to both at once is one event and one message; `kill -9` of one
//! replica under load loses no acknowledged report and sends no log message twice; the
//! database stopped for 10 s costs 503s, not reports; an ad-hoc window added through one
//! replica classifies the next report on the other.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use common::{ADMIN, KEY, Serve, free_port, keys_toml, wait_for};
use failover_store_postgres::throwaway::Cluster;
use serde_json::Value;

/// An inventory of `clusters` clusters `c{i}` (nodes `n{i}a`, `n{i}b`), a log channel
/// writing to `{name}.log` in `dir`, and a webhook channel when `hook` is given.
fn inventory(dir: &Path, name: &str, clusters: usize, hook: Option<&str>) -> PathBuf {
    let log = dir.join(format!("{name}.log"));
    let mut toml = format!(
        "[delivery]\nfirst_retry = \"200ms\"\nmax_backoff = \"1s\"\n\n\
         [[customers]]\nname = \"acme\"\n\n\
         [[channels]]\nname = \"file\"\nkind = \"log\"\npath = \"{}\"\n\n{}\n",
        log.display(),
        keys_toml()
    );
    match hook {
        Some(url) => toml.push_str(&format!(
            "[[channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{url}\"\n\n\
             [[routes]]\nchannels = [\"file\", \"hook\"]\n\n"
        )),
        None => toml.push_str("[[routes]]\nchannels = [\"file\"]\n\n"),
    }
    for i in 0..clusters {
        toml.push_str(&format!(
            "[[clusters]]\nname = \"c{i}\"\ncustomer = \"acme\"\nnodes = [\"n{i}a\", \"n{i}b\"]\n"
        ));
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, toml).expect("writes inventory");
    path
}

/// Replicas `a` and `b` on one database, each with its own log file.
struct Pair {
    pg: Cluster,
    dir: tempfile::TempDir,
    a: Serve,
    b: Serve,
}

impl Pair {
    fn start(clusters: usize, hook: Option<&str>) -> Pair {
        let pg = Cluster::start();
        let url = pg.create("failover");
        let dir = tempfile::tempdir().expect("temp dir");
        let replica = |name: &str| {
            let config = inventory(dir.path(), name, clusters, hook);
            let mut s = Serve::new(&config, Path::new(&url), free_port());
            s.log = Some(dir.path().join(format!("{name}.stderr")));
            s.restart();
            s
        };
        let (a, b) = (replica("a"), replica("b"));
        Pair { pg, dir, a, b }
    }

    /// The JSON lines of both replicas' log files.
    fn logged(&self) -> Vec<Value> {
        ["a.log", "b.log"]
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(self.dir.path().join(f))
                    .unwrap_or_default()
                    .lines()
                    .map(|l| serde_json::from_str(l).expect("each log line is JSON"))
                    .collect::<Vec<Value>>()
            })
            .collect()
    }

    /// Waits until no delivery is pending (the count is the database's, whichever replica
    /// answers).
    fn drained(&self, secs: u64) {
        wait_for("every delivery to leave pending", secs, || {
            let m = common::http()
                .get(format!("{}/metrics", self.b.url))
                .send()
                .and_then(|r| r.text())
                .ok()?;
            // No line for a status without deliveries.
            let pending = m
                .lines()
                .find(|l| l.starts_with("failover_deliveries{status=\"pending\"}"))
                .map_or(Some(0), |l| l.rsplit(' ').next()?.parse::<u64>().ok());
            (pending == Some(0)).then_some(())
        });
    }

    /// Every event, from replica `b`.
    fn events(&self) -> Vec<Value> {
        let mut all = Vec::new();
        let mut before = String::new();
        loop {
            let page = self.b.get(&format!("/v1/events?limit=1000{before}"));
            all.extend(page["events"].as_array().expect("events").iter().cloned());
            match page["next"].as_str() {
                Some(n) => before = format!("&{n}"),
                None => return all,
            }
        }
    }
}

fn post(url: &str, key: &str, body: &str) -> Result<(u16, Value), reqwest::Error> {
    let r = common::http()
        .post(format!("{url}/v1/reports"))
        .header("x-api-key", key)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()?;
    let status = r.status().as_u16();
    Ok((status, r.json().unwrap_or(Value::Null)))
}

#[test]
fn both_nodes_of_a_failover_reporting_to_different_replicas_make_one_event_and_one_message() {
    const CLUSTERS: usize = 24;
    let pair = Pair::start(CLUSTERS, None);
    // Each cluster starts on its first node; the starts are spread over both replicas.
    for i in 0..CLUSTERS {
        let to = if i % 2 == 0 { &pair.a } else { &pair.b };
        let (status, start) = to.report(KEY, &format!(r#"{{"hostname":"n{i}a"}}"#));
        assert_eq!(status, 200, "{start}");
        assert_eq!(start["verdict"]["verdict"], "cluster-start", "{start}");
    }
    // Then each fails over: the old node's release to one replica and the new node's
    // takeover to the other, released at the same instant.
    let mut failovers = Vec::new();
    for i in 0..CLUSTERS {
        let (to_release, to_takeover) = if i % 2 == 0 {
            (pair.a.url.clone(), pair.b.url.clone())
        } else {
            (pair.b.url.clone(), pair.a.url.clone())
        };
        let go = Arc::new(Barrier::new(2));
        let send = |url: String, body: String| {
            let go = Arc::clone(&go);
            std::thread::spawn(move || {
                go.wait();
                post(&url, KEY, &body).expect("answers")
            })
        };
        let release = send(
            to_release,
            format!(r#"{{"hostname":"n{i}a","action":"release","id":"rel-{i}"}}"#),
        );
        let takeover = send(
            to_takeover,
            format!(r#"{{"hostname":"n{i}b","action":"takeover","id":"tko-{i}"}}"#),
        );
        let (release, takeover) = (
            release.join().expect("thread"),
            takeover.join().expect("thread"),
        );
        assert_eq!(
            (release.0, takeover.0),
            (200, 200),
            "{release:?} {takeover:?}"
        );
        assert_eq!(
            release.1["event_id"], takeover.1["event_id"],
            "one event: {release:?} {takeover:?}"
        );
        failovers.push(takeover.1["event_id"].as_str().expect("id").to_owned());
    }
    pair.drained(60);
    let events = pair.events();
    assert_eq!(
        events.len(),
        2 * CLUSTERS,
        "a start and a failover per cluster"
    );
    for (i, id) in failovers.iter().enumerate() {
        let e = events.iter().find(|e| e["id"] == *id).expect("stored");
        assert_eq!(e["reports"], 2, "{e}");
        assert_eq!(e["active"], format!("n{i}b"), "{e}");
        assert_eq!(e["verdict"], "unplanned", "{e}");
    }
    // One message per event, whichever replica sent it.
    let lines = pair.logged();
    let mut per_event: HashMap<String, usize> = HashMap::new();
    for l in &lines {
        *per_event
            .entry(l["event"].as_str().expect("event").to_owned())
            .or_default() += 1;
    }
    assert_eq!(per_event.len(), 2 * CLUSTERS, "{lines:?}");
    assert!(per_event.values().all(|&n| n == 1), "{per_event:?}");
}

/// A webhook receiver that takes 50 ms per request, so sends are in flight when a replica
/// dies; counts requests per `Idempotency-Key`.
fn slow_receiver() -> (String, Arc<Mutex<HashMap<String, usize>>>) {
    let keys: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let seen = Arc::clone(&keys);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let seen = Arc::clone(&seen);
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                *seen.lock().expect("lock").entry(key).or_default() += 1;
                axum::http::StatusCode::OK
            }
        }),
    );
    common::serve_in_thread(listener, app);
    (url, keys)
}

/// Sends reports `0..total` (`{"hostname":"n{i}a","id":"{prefix}-{i}"}`) from `clients`
/// threads, alternately to the replicas in `urls`; a report that is not answered 2xx (the
/// replica died, the database is down) is sent again, to the next replica, after a pause,
/// as a node's spooling `report` would. Returns the event id of each report and how many
/// answers were 503.
fn load(
    urls: &[String],
    total: usize,
    clients: usize,
    prefix: &str,
    acked: &Arc<Mutex<HashMap<usize, String>>>,
) -> usize {
    let next = Arc::new(AtomicUsize::new(0));
    let unavailable = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (next, acked, unavailable) = (
                Arc::clone(&next),
                Arc::clone(acked),
                Arc::clone(&unavailable),
            );
            let (urls, prefix) = (urls.to_vec(), prefix.to_owned());
            std::thread::spawn(move || {
                let mut turn = c;
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= total {
                        return;
                    }
                    let body = format!(r#"{{"hostname":"n{i}a","id":"{prefix}-{i}"}}"#);
                    for attempt in 0.. {
                        assert!(attempt < 600, "report {i} never acknowledged");
                        turn += 1;
                        match post(&urls[turn % urls.len()], KEY, &body) {
                            Ok((status, answer)) if (200..300).contains(&status) => {
                                let id = answer["event_id"].as_str().expect("id").to_owned();
                                let old = acked.lock().expect("lock").insert(i, id.clone());
                                assert!(old.is_none_or(|o| o == id), "report {i} moved event");
                                break;
                            }
                            Ok((503, _)) => {
                                unavailable.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok((status, answer)) => panic!("report {i}: {status} {answer}"),
                            Err(_) => {}
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    unavailable.load(Ordering::Relaxed)
}

/// Every report in `acked` is stored once, as its own event (one cluster per report).
fn each_stored_once(pair: &Pair, acked: &HashMap<usize, String>, total: usize) -> Vec<Value> {
    assert_eq!(acked.len(), total, "every report acknowledged in the end");
    let events = pair.events();
    assert_eq!(events.len(), total, "one event per report, none twice");
    let by_id: HashMap<&str, &Value> = events
        .iter()
        .map(|e| (e["id"].as_str().expect("id"), e))
        .collect();
    for (i, id) in acked {
        let e = by_id[id.as_str()];
        assert_eq!(e["cluster"], format!("c{i}"), "{e}");
        assert_eq!(e["reports"], 1, "a retried id is one report: {e}");
    }
    events
}

#[test]
fn kill_9_of_one_replica_under_load_loses_no_report_and_sends_no_log_line_twice() {
    const REPORTS: usize = 2000;
    let (hook, keys) = slow_receiver();
    let mut pair = Pair::start(REPORTS, Some(&hook));
    let acked: Arc<Mutex<HashMap<usize, String>>> = Arc::default();
    let urls = [pair.a.url.clone(), pair.b.url.clone()];
    let kill_after = 300 + fastrand::usize(..900);
    std::thread::scope(|s| {
        let loader = s.spawn(|| load(&urls, REPORTS, 8, "kill", &acked));
        wait_for("reports before the kill", 120, || {
            (acked.lock().expect("lock").len() >= kill_after).then_some(())
        });
        pair.a.kill9();
        // The load goes on against b alone (a's turns fail and go to b), then a returns
        // under its name and takes back what it held.
        std::thread::sleep(Duration::from_millis(500));
        pair.a.restart();
        loader.join().expect("loader");
    });
    pair.drained(120);
    let acked = acked.lock().expect("lock").clone();
    let events = each_stored_once(&pair, &acked, REPORTS);
    // The log channel: each delivery written exactly once, over both replicas' files.
    let mut written = HashSet::new();
    for l in pair.logged() {
        let d = l["delivery"].as_i64().expect("delivery id");
        assert!(written.insert(d), "delivery {d} written twice");
    }
    let file: HashSet<i64> = events
        .iter()
        .flat_map(|e| e["deliveries"].as_array().expect("deliveries").iter())
        .filter(|d| d["channel"] == "file")
        .map(|d| d["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(written, file, "every log delivery written");
    // The webhook: each delivery at least once, a repeat under the same key.
    let hooks: HashSet<String> = events
        .iter()
        .flat_map(|e| {
            e["deliveries"]
                .as_array()
                .expect("deliveries")
                .iter()
                .filter(|d| d["channel"] == "hook")
                .map(|d| format!("{}-{}", e["id"].as_str().expect("id"), d["id"]))
        })
        .collect();
    let keys = keys.lock().expect("lock").clone();
    let received: HashSet<String> = keys.keys().cloned().collect();
    assert_eq!(
        received, hooks,
        "every webhook delivery received, under its own key"
    );
    for e in &events {
        for d in e["deliveries"].as_array().expect("deliveries") {
            assert_eq!(d["status"], "delivered", "{e}");
        }
    }
}

#[test]
fn the_database_stopped_for_10_s_costs_503s_and_no_report() {
    const REPORTS: usize = 1500;
    let mut pair = Pair::start(REPORTS, None);
    let acked: Arc<Mutex<HashMap<usize, String>>> = Arc::default();
    let urls = [pair.a.url.clone(), pair.b.url.clone()];
    let health = |url: &str| {
        common::http()
            .get(format!("{url}/healthz"))
            .send()
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    let (unavailable, health_during) = std::thread::scope(|s| {
        let loader = s.spawn(|| load(&urls, REPORTS, 8, "outage", &acked));
        wait_for("reports before the outage", 120, || {
            (acked.lock().expect("lock").len() >= 300).then_some(())
        });
        pair.pg.stop();
        let stopped = std::time::Instant::now();
        let during = wait_for("/healthz to say the database is gone", 10, || {
            let h = (health(&pair.a.url), health(&pair.b.url));
            (h == (503, 503)).then_some(h)
        });
        let acked_during = acked.lock().expect("lock").len();
        std::thread::sleep(Duration::from_secs(10).saturating_sub(stopped.elapsed()));
        assert_eq!(
            acked.lock().expect("lock").len(),
            acked_during,
            "nothing is acknowledged while the database is down"
        );
        pair.pg.start_again();
        (loader.join().expect("loader"), during)
    });
    assert_eq!(health_during, (503, 503));
    assert!(
        unavailable > 0,
        "reports during the outage were answered 503"
    );
    assert_eq!((health(&pair.a.url), health(&pair.b.url)), (200, 200));
    // Deliveries resume: every one sent, each once.
    pair.drained(120);
    let acked = acked.lock().expect("lock").clone();
    let events = each_stored_once(&pair, &acked, REPORTS);
    let mut written = HashSet::new();
    for l in pair.logged() {
        assert!(written.insert(l["delivery"].as_i64().expect("id")), "{l}");
    }
    assert_eq!(written.len(), events.len(), "every delivery written once");
}

#[test]
fn an_ad_hoc_window_added_on_one_replica_classifies_the_next_report_on_the_other() {
    let pair = Pair::start(2, None);
    for i in 0..2 {
        let (status, start) = pair.a.report(KEY, &format!(r#"{{"hostname":"n{i}a"}}"#));
        assert_eq!(status, 200, "{start}");
    }
    let maintenance = |url: &str, body: &str| {
        common::http()
            .post(format!("{url}/v1/maintenance"))
            .header("x-api-key", KEY)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .expect("answers")
    };
    let added = maintenance(
        &pair.a.url,
        r#"{"cluster":"c0","duration":"1h","reason":"kernel update"}"#,
    );
    assert_eq!(added.status().as_u16(), 201);
    let window: Value = added.json().expect("JSON");
    // Both replicas list it.
    let listed = pair.b.get("/v1/maintenance");
    assert_eq!(listed["maintenance"][0]["id"], window["id"], "{listed}");
    let (_, planned) = pair.b.report(KEY, r#"{"hostname":"n0b"}"#);
    assert_eq!(planned["verdict"]["verdict"], "planned", "{planned}");
    // Ended through b, the next failover reported to a is unplanned again.
    let ended = common::http()
        .delete(format!("{}/v1/maintenance/{}", pair.b.url, window["id"]))
        .header("x-api-key", ADMIN)
        .send()
        .expect("answers");
    assert_eq!(ended.status().as_u16(), 204);
    let (_, unplanned) = pair.a.report(KEY, r#"{"hostname":"n0a"}"#);
    assert_eq!(unplanned["verdict"]["verdict"], "unplanned", "{unplanned}");
    // The other cluster was never covered.
    let (_, other) = pair.a.report(KEY, r#"{"hostname":"n1b"}"#);
    assert_eq!(other["verdict"]["verdict"], "unplanned", "{other}");
}

#[test]
fn text_postgresql_cannot_store_is_a_named_400_and_changes_nothing() {
    let pair = Pair::start(1, None);
    let nul = "a\\u0000b";
    for field in ["id", "resource", "source"] {
        let (status, answer) = pair
            .a
            .report(KEY, &format!(r#"{{"hostname":"n0a","{field}":"{nul}"}}"#));
        assert_eq!(status, 400, "{field}: {answer}");
        assert_eq!(answer["field"], field, "{answer}");
    }
    let (status, answer) = pair.a.report(KEY, &format!(r#"{{"hostname":"{nul}"}}"#));
    assert_eq!(
        (status, &answer["field"]),
        (400, &Value::from("hostname")),
        "{answer}"
    );
    let r = common::http()
        .post(format!("{}/v1/maintenance", pair.b.url))
        .header("x-api-key", ADMIN)
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"cluster":"c0","duration":"1h","reason":"{nul}"}}"#
        ))
        .send()
        .expect("answers");
    assert_eq!(r.status().as_u16(), 400);
    let answer: Value = r.json().expect("JSON");
    assert_eq!(answer["field"], "reason", "{answer}");
    // A filter no stored text can match finds nothing, and is no database error.
    let listed = pair.b.get("/v1/events?cluster=c%000");
    assert_eq!(listed["events"], serde_json::json!([]), "{listed}");
    assert!(
        pair.b.get("/v1/events")["events"]
            .as_array()
            .expect("events")
            .is_empty()
    );
    assert!(
        pair.b.get("/v1/maintenance")["maintenance"]
            .as_array()
            .expect("list")
            .is_empty()
    );
    // Huge and duplicated keys are refused before the store, as on SQLite.
    let (status, answer) = pair.b.report(KEY, r#"{"hostname":"n0a","hostname":"n0b"}"#);
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = pair.b.report(
        KEY,
        &format!(r#"{{"hostname":"n0a","id":"{}"}}"#, "x".repeat(300)),
    );
    assert_eq!(
        (status, &answer["field"]),
        (400, &Value::from("id")),
        "{answer}"
    );
    let (status, answer) = pair.b.report(KEY, r#"{"hostname":"n0a","id":"fine"}"#);
    assert_eq!(status, 200, "{answer}");
}
