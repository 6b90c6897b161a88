//! End to end on real clusters: two keepalived nodes, each in its own network, UTS, PID and
//! mount namespaces, joined by a bridge in a third namespace where `serve` runs (addresses from
//! 192.0.2.0/24). The nodes report through the shipped hook and `failover-notify report`.
//! Needs root and Debian's keepalived (the README's test command installs it).

// Windows around the real current time, and waits on real daemons.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{ADMIN, admin_key_toml, wait_for};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_failover-notify");
const SERVE: &str = "192.0.2.1";
const VIP: &str = "192.0.2.100";

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip(args: &[&str]) -> String {
    run(Command::new("ip").args(args))
}

/// The namespaces of one test: `P-br` holds the bridge and `serve`, `P-n1` and `P-n2` the
/// nodes. Dropped: every daemon killed, every namespace deleted.
struct Lab {
    prefix: String,
    dir: tempfile::TempDir,
    nodes: Vec<Option<Child>>,
    serve: Option<Child>,
}

impl Lab {
    fn new() -> Lab {
        let prefix = format!("fn{}", std::process::id());
        let lab = Lab {
            dir: tempfile::tempdir().expect("tempdir"),
            nodes: vec![None, None],
            serve: None,
            prefix,
        };
        let br = lab.ns("br");
        for ns in [&br, &lab.ns("n1"), &lab.ns("n2")] {
            ip(&["netns", "add", ns]);
        }
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &br, "link", "set", "br0", "up"]);
        ip(&[
            "-n",
            &br,
            "addr",
            "add",
            &format!("{SERVE}/24"),
            "dev",
            "br0",
        ]);
        ip(&["-n", &br, "link", "set", "lo", "up"]);
        for i in 1..=2 {
            let (node, veth) = (lab.ns(&format!("n{i}")), format!("{}-v{i}", lab.prefix));
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &node,
            ]);
            ip(&["link", "set", &veth, "netns", &br]);
            ip(&["-n", &br, "link", "set", &veth, "master", "br0", "up"]);
            ip(&[
                "-n",
                &node,
                "addr",
                "add",
                &format!("192.0.2.1{i}/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &node, "link", "set", "eth0", "up"]);
            ip(&["-n", &node, "link", "set", "lo", "up"]);
        }
        lab
    }

    fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn url(&self) -> String {
        format!("http://{SERVE}:8080")
    }

    /// `serve` in the bridge namespace, on the inventory file `inventory.toml`.
    fn start_serve(&mut self) {
        let log = std::fs::File::create(self.path("serve.log")).expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns("br"), BIN, "serve", "--config"])
            .arg(self.path("inventory.toml"))
            .arg("--db")
            .arg(self.path("db.sqlite"))
            .args(["--listen", &format!("{SERVE}:8080")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("serve starts");
        self.serve = Some(child);
        wait_for("serve in the bridge namespace", 30, || {
            self.curl("/healthz").ok().filter(|v| v["status"] == "ok")
        });
    }

    fn stop_serve(&mut self) {
        if let Some(mut c) = self.serve.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    fn curl(&self, path: &str) -> Result<Value, String> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns("br"),
                "curl",
                "-sf",
                "-m",
                "5",
                "-H",
            ])
            .arg(format!("x-api-key: {ADMIN}"))
            .arg(format!("{}{path}", self.url()))
            .output()
            .map_err(|e| e.to_string())?;
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
    }

    /// Events, oldest first.
    fn events(&self) -> Vec<Value> {
        let mut e = self
            .curl("/v1/events?limit=100")
            .map(|v| v["events"].clone())
            .unwrap_or_default();
        let mut list = e.as_array_mut().map(std::mem::take).unwrap_or_default();
        list.reverse();
        list
    }

    fn wait_events(&self, n: usize) -> Vec<Value> {
        wait_for(&format!("{n} events"), 30, || {
            Some(self.events()).filter(|e| e.len() >= n)
        })
    }

    /// keepalived on node `i` (1 or 2) in its own PID, mount and UTS namespaces, with its own
    /// `/run`; its notify script is the shipped hook, with settings from `report.env`.
    fn start_keepalived(&mut self, i: usize) {
        let dir = self.path(&format!("n{i}"));
        std::fs::create_dir_all(&dir).expect("node dir");
        let peer = 3 - i;
        let hook =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/hooks/keepalived-notify");
        let notify = dir.join("notify");
        std::fs::write(
            &notify,
            format!(
                "#!/bin/sh\nexport FAILOVER_NOTIFY_BIN={BIN} FAILOVER_NOTIFY_URL={} FAILOVER_NOTIFY_KEY=secret \
                 FAILOVER_NOTIFY_SPOOL={} FAILOVER_NOTIFY_TIMEOUT=1s\nexec {} \"$@\"\n",
                self.url(),
                dir.join("spool").display(),
                hook.display()
            ),
        )
        .expect("notify written");
        run(Command::new("chmod").arg("700").arg(&notify));
        let conf = dir.join("keepalived.conf");
        std::fs::write(
            &conf,
            format!(
                "global_defs {{\n  router_id n{i}\n  script_user root\n}}\n\
                 vrrp_instance VI_1 {{\n  state BACKUP\n  nopreempt\n  interface eth0\n  virtual_router_id 51\n  \
                 priority {}\n  advert_int 1\n  unicast_src_ip 192.0.2.1{i}\n  unicast_peer {{\n    192.0.2.1{peer}\n  }}\n  \
                 virtual_ipaddress {{\n    {VIP}/24\n  }}\n  notify {}\n}}\n",
                200 - 50 * i,
                notify.display()
            ),
        )
        .expect("conf written");
        let log = std::fs::File::create(dir.join("keepalived.log")).expect("log");
        let script = format!(
            "hostname n{i} && mount -t tmpfs tmpfs /run && exec keepalived -n -l -f {} -p /run/keepalived.pid -r /run/vrrp.pid -c /run/checkers.pid",
            conf.display()
        );
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(&format!("n{i}"))])
            .args([
                "unshare",
                "--pid",
                "--fork",
                "--mount-proc",
                "--kill-child",
                "--uts",
                "sh",
                "-c",
                &script,
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("keepalived starts");
        self.nodes[i - 1] = Some(child);
    }

    /// Kills node `i` at once (its whole PID namespace), like a crash.
    fn crash(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i - 1].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn holds_vip(&self, i: usize) -> bool {
        ip(&["-n", &self.ns(&format!("n{i}")), "addr", "show", "eth0"]).contains(VIP)
    }

    fn wait_vip(&self, i: usize) {
        wait_for(&format!("n{i} to hold the virtual address"), 30, || {
            self.holds_vip(i).then_some(())
        });
    }

    fn write_inventory(&self, window: bool) {
        let window = if window {
            let now = jiff::Timestamp::now();
            let z = |t: jiff::Timestamp| {
                t.to_zoned_datetime(jiff::tz::TimeZone::UTC)
                    .strftime("%Y-%m-%d %H:%M")
                    .to_string()
            };
            let start = z(now - jiff::SignedDuration::from_hours(1));
            let (date, start) = start.split_once(' ').expect("date and time");
            let end = z(now + jiff::SignedDuration::from_hours(1));
            format!(
                "[[windows]]\nname = \"kernel-patching\"\ncluster = \"web\"\ndate = \"{date}\"\nstart = \"{start}\"\nend = \"{end}\"\ntime_zone = \"UTC\"\n"
            )
        } else {
            String::new()
        };
        std::fs::write(
            self.path("inventory.toml"),
            format!(
                r#"[events]
flapping_count = 20

[[customers]]
name = "acme"

[[clusters]]
name = "web"
customer = "acme"
nodes = ["n1", "n2"]

{window}
[[channels]]
name = "file"
kind = "log"
path = "{log}"

[[routes]]
channels = ["file"]

[[keys]]
name = "acme-nodes"
customer = "acme"
hash = "sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
{admin}"#,
                log = self.path("messages.log").display(),
                admin = admin_key_toml()
            ),
        )
        .expect("inventory written");
    }

    /// Lines of the log channel for event `id`.
    fn messages(&self, id: &Value) -> Vec<Value> {
        std::fs::read_to_string(self.path("messages.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|m| &m["event"] == id)
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for i in 1..=2 {
            self.crash(i);
        }
        if let Some(mut c) = self.serve.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in ["n1", "n2", "br"] {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(ns)])
                .status();
        }
    }
}

#[test]
fn keepalived_failovers_are_classified_and_delivered() {
    assert!(
        Command::new("keepalived").arg("--version").output().is_ok(),
        "keepalived is not installed (the README's test command installs it; apt-get install keepalived)"
    );
    let mut lab = Lab::new();
    lab.write_inventory(false);
    lab.start_serve();
    lab.start_keepalived(1);
    lab.wait_vip(1);
    lab.start_keepalived(2);
    let first = lab.wait_events(1);
    assert_eq!(first[0]["active"], "n1", "{first:?}");

    // The active node crashes outside any window: unplanned, naming n2 as the new active node.
    lab.crash(1);
    lab.wait_vip(2);
    let events = lab.wait_events(2);
    let unplanned = &events[1];
    assert_eq!(unplanned["active"], "n2", "{events:?}");
    assert_eq!(unplanned["verdict"], "unplanned");
    let messages = wait_for("the unplanned message", 30, || {
        Some(lab.messages(&unplanned["id"])).filter(|m| !m.is_empty())
    });
    assert!(
        messages[0]["subject"]
            .as_str()
            .is_some_and(|s| s.contains("UNPLANNED") && s.contains("n2")),
        "{messages:?}"
    );

    // Inside a window (written into the inventory, reloaded by SIGHUP): planned. n1 came back
    // as backup (nopreempt), so this is also a failback to n1.
    lab.write_inventory(true);
    let pid = lab
        .serve
        .as_ref()
        .map(|c| c.id().to_string())
        .expect("serve runs");
    run(Command::new("kill").args(["-HUP", &pid]));
    wait_for("the inventory reload", 30, || {
        std::fs::read_to_string(lab.path("serve.log"))
            .ok()
            .filter(|l| l.contains("inventory reloaded"))
    });
    lab.start_keepalived(1);
    std::thread::sleep(Duration::from_secs(2)); // n1 settles as backup
    assert!(lab.holds_vip(2) && !lab.holds_vip(1));
    lab.crash(2);
    lab.wait_vip(1);
    let events = lab.wait_events(3);
    let planned = &events[2];
    assert_eq!(planned["active"], "n1", "{events:?}");
    assert_eq!(planned["verdict"], "planned", "{planned}");
    assert_eq!(planned["failback_of"], unplanned["id"], "{planned}");

    // `serve` is down during the failover: the report is spooled on the node, and sent with its
    // original time once `serve` is back.
    lab.stop_serve();
    lab.start_keepalived(2);
    std::thread::sleep(Duration::from_secs(2));
    let crashed_at = jiff::Timestamp::now();
    lab.crash(1);
    lab.wait_vip(2);
    let spool = lab.path("n2/spool");
    wait_for("the report in n2's spool", 30, || {
        let n = std::fs::read_dir(&spool)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                    .count()
            })
            .unwrap_or(0);
        (n == 1).then_some(())
    });
    std::thread::sleep(Duration::from_secs(4));
    let restarted = jiff::Timestamp::now();
    lab.start_serve();
    // What a cron job on the node runs (and the next report does anyway).
    run(Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.ns("n2"),
            BIN,
            "report",
            "--flush",
            "--url",
            &lab.url(),
            "--key",
            "secret",
            "--spool",
        ])
        .arg(&spool));
    let events = lab.wait_events(4);
    let late = &events[3];
    assert_eq!(late["active"], "n2", "{events:?}");
    let at: jiff::Timestamp = late["at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("at");
    assert!(
        at > crashed_at && at < restarted - jiff::SignedDuration::from_secs(3),
        "recorded at {at}: the failover was after {crashed_at}, serve came back at {restarted}"
    );
    wait_for("the late message", 30, || {
        Some(lab.messages(&late["id"])).filter(|m| !m.is_empty())
    });
}
