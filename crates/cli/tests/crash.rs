//! Crash test: concurrent reports, `kill -9` at a random moment, restart. Every report that
//! got a 2xx is stored, and each of its deliveries to the log file happens exactly once.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{KEY, Serve, keys_toml, wait_for};
use serde_json::Value;

const REPORTS: usize = 2400;
const CLIENTS: usize = 8;

#[test]
fn kill_9_loses_no_acknowledged_report_and_duplicates_no_delivery() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("messages.log");
    // One cluster per report, so each report is its own event with one delivery.
    let mut toml = format!(
        "[[customers]]\nname = \"acme\"\n\n[[channels]]\nname = \"file\"\nkind = \"log\"\npath = \"{}\"\n\n[[routes]]\nchannels = [\"file\"]\n\n{}\n",
        log.display(),
        keys_toml()
    );
    for i in 0..REPORTS {
        toml.push_str(&format!(
            "[[clusters]]\nname = \"c{i}\"\ncustomer = \"acme\"\nnodes = [\"n{i}a\", \"n{i}b\"]\n"
        ));
    }
    let config = dir.path().join("inventory.toml");
    std::fs::write(&config, toml).expect("writes");
    let mut serve = Serve::start(&config, &dir.path().join("events.db"));

    let next = Arc::new(AtomicUsize::new(0));
    let acked: Arc<Mutex<HashMap<usize, String>>> = Arc::default();
    let kill_after = 300 + fastrand::usize(..1200);
    let send_all = |url: String| {
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            let (next, acked, url) = (Arc::clone(&next), Arc::clone(&acked), url.clone());
            clients.push(std::thread::spawn(move || {
                let http = common::http();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= REPORTS {
                        return;
                    }
                    let body = format!(r#"{{"hostname":"n{i}a","id":"crash-{i}"}}"#);
                    let resp = http
                        .post(format!("{url}/v1/reports"))
                        .header("x-api-key", KEY)
                        .body(body)
                        .send();
                    match resp {
                        Ok(r) if r.status().is_success() => {
                            let a: Value = r.json().expect("JSON");
                            acked
                                .lock()
                                .expect("lock")
                                .insert(i, a["event_id"].as_str().expect("id").to_owned());
                        }
                        // The server died: this report was not acknowledged; it is sent
                        // again after the restart with the same id (as `report` would).
                        _ => return,
                    }
                }
            }));
        }
        clients
    };

    let clients = send_all(serve.url.clone());
    wait_for("reports before the kill", 120, || {
        (acked.lock().expect("lock").len() >= kill_after).then_some(())
    });
    serve.kill9();
    for c in clients {
        c.join().expect("client thread");
    }
    let before_restart = acked.lock().expect("lock").len();
    assert!(
        before_restart >= kill_after && before_restart < REPORTS,
        "killed mid-run: {before_restart}"
    );

    serve.restart();
    // Resend everything not acknowledged (same ids), then the rest.
    let missing: Vec<usize> = (0..REPORTS)
        .filter(|i| !acked.lock().expect("lock").contains_key(i))
        .collect();
    let http = common::http();
    for i in missing {
        let body = format!(r#"{{"hostname":"n{i}a","id":"crash-{i}"}}"#);
        let r = http
            .post(format!("{}/v1/reports", serve.url))
            .header("x-api-key", KEY)
            .body(body)
            .send()
            .expect("answers");
        assert!(r.status().is_success());
        let a: Value = r.json().expect("JSON");
        let id = a["event_id"].as_str().expect("id").to_owned();
        if let Some(old) = acked.lock().expect("lock").insert(i, id.clone()) {
            assert_eq!(old, id, "a retried id keeps its event");
        }
    }
    let acked = acked.lock().expect("lock").clone();
    assert_eq!(acked.len(), REPORTS);

    // Every acknowledged report is stored ...
    let mut stored: HashMap<String, Value> = HashMap::new();
    let mut before = String::new();
    loop {
        let page = serve.get(&format!("/v1/events?limit=1000{before}"));
        for e in page["events"].as_array().expect("events") {
            stored.insert(e["id"].as_str().expect("id").to_owned(), e.clone());
        }
        match page["next"].as_str() {
            Some(n) => before = format!("&{n}"),
            None => break,
        }
    }
    assert_eq!(stored.len(), REPORTS, "one event per report");
    for (i, id) in &acked {
        assert_eq!(stored[id]["cluster"], format!("c{i}"));
    }
    // ... and each delivery is in the log file exactly once.
    wait_for("all deliveries", 120, || {
        let m = common::http()
            .get(format!("{}/metrics", serve.url))
            .send()
            .and_then(|r| r.text())
            .ok()?;
        (!m.contains("status=\"pending\"} ") || m.contains("status=\"pending\"} 0")).then_some(())
    });
    let text = std::fs::read_to_string(&log).expect("log file");
    let mut seen = HashSet::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_str(line).expect("complete JSON lines");
        let delivery = v["delivery"].as_i64().expect("delivery id");
        assert!(seen.insert(delivery), "delivery {delivery} written twice");
    }
    assert_eq!(seen.len(), REPORTS, "every event's delivery written");
}
