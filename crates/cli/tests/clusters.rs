//! End to end on real clusters: two keepalived, two heartbeat or two Pacemaker/Corosync
//! nodes, each in its own network, UTS, PID and mount namespaces (and its own `/run` and
//! `/dev/shm`), joined by a bridge in a third namespace where `serve` runs (addresses from
//! 192.0.2.0/24). The nodes report through the shipped hooks and `failover-notify report`.
//! keepalived and heartbeat go through the same story: a crash outside any window
//! (unplanned), a crash inside a window written into the inventory (planned, and a failback),
//! and a crash while `serve` is down (spooled, delivered later with its time). Pacemaker: a
//! node put in standby (an ad-hoc window, so the switchover is planned) and a crash.
//! Needs root and Debian's keepalived, heartbeat, pacemaker and corosync (the README's test
//! command installs them).

// Failover times are compared with the real clock.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{ADMIN, keys_toml, wait_for, window_around_now};
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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Manager {
    Keepalived,
    Heartbeat,
    Pacemaker,
}

/// The namespaces of one test: `P-br` holds the bridge and `serve`, `P-n1` and `P-n2` the
/// nodes. Dropped: every daemon killed, every namespace deleted.
struct Lab {
    manager: Manager,
    prefix: String,
    dir: tempfile::TempDir,
    nodes: Vec<Option<Child>>,
    serve: Option<Child>,
}

impl Lab {
    fn new(manager: Manager) -> Lab {
        remove_stale_labs();
        let tag = match manager {
            Manager::Keepalived => "k",
            Manager::Heartbeat => "h",
            Manager::Pacemaker => "p",
        };
        let prefix = format!("fn{tag}{}", std::process::id());
        let lab = Lab {
            manager,
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
        // Releases alone (heartbeat stopping a node's resources) are recorded without an
        // active node and without a message; the story is about what is told.
        list.retain(|e| {
            !e["active"].is_null() || e["channels"].as_array().is_some_and(|c| !c.is_empty())
        });
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
        std::fs::write(&notify, self.hook_wrapper(i, &hook)).expect("notify written");
        run(Command::new("chmod").arg("700").arg(&notify));
        let conf = dir.join("keepalived.conf");
        // A non-zero number in `fault` puts the node into FAULT (weight 0).
        let fault = dir.join("fault");
        std::fs::write(&fault, "0\n").expect("fault file written");
        std::fs::write(
            &conf,
            format!(
                "global_defs {{\n  router_id n{i}\n  enable_script_security\n  script_user root\n}}\n\
                 track_file fault {{\n  file \"{}\"\n  weight 0\n}}\n\
                 vrrp_instance VI_1 {{\n  state BACKUP\n  nopreempt\n  interface eth0\n  virtual_router_id 51\n  \
                 priority {}\n  advert_int 1\n  unicast_src_ip 192.0.2.1{i}\n  unicast_peer {{\n    192.0.2.1{peer}\n  }}\n  \
                 virtual_ipaddress {{\n    {VIP}/24\n  }}\n  track_file {{\n    fault\n  }}\n  notify {}\n}}\n",
                fault.display(),
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
        self.spawn_node(i, &script, log);
    }

    /// heartbeat v1 on node `i`, with its own `/etc/ha.d`, `/var/lib/heartbeat` (a fresh
    /// `hb_uuid`) and `/run`; `haresources` gives n1 the shipped resource script.
    fn start_heartbeat(&mut self, i: usize) {
        let dir = self.path(&format!("n{i}"));
        let (etc, lib) = (dir.join("etc"), dir.join("lib"));
        if !etc.exists() {
            std::fs::create_dir_all(&dir).expect("node dir");
            run(Command::new("cp").args(["-a", "/etc/ha.d"]).arg(&etc));
            run(Command::new("cp")
                .args(["-a", "/var/lib/heartbeat"])
                .arg(&lib));
            one_write_per_fifo_message(&etc.join("shellfuncs"));
            std::fs::write(
                etc.join("ha.cf"),
                format!(
                    "debugfile {dir}/ha-debug\nlogfile {dir}/ha-log\nkeepalive 1\nwarntime 2\ndeadtime 4\n\
                     initdead 6\nudpport 694\nucast eth0 192.0.2.1{peer}\nauto_failback off\nnode n1\nnode n2\ncrm off\n",
                    dir = dir.display(),
                    peer = 3 - i
                ),
            )
            .expect("ha.cf");
            std::fs::write(
                etc.join("authkeys"),
                "auth 1\n1 sha1 failover-notify-test\n",
            )
            .expect("authkeys");
            run(Command::new("chmod").arg("600").arg(etc.join("authkeys")));
            std::fs::write(etc.join("haresources"), "n1 failover-notify\n").expect("haresources");
            let hook =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/hooks/heartbeat-resource");
            let script = etc.join("resource.d/failover-notify");
            std::fs::write(&script, self.hook_wrapper(i, &hook)).expect("resource script");
            run(Command::new("chmod").arg("755").arg(&script));
        }
        let _ = std::fs::remove_file(dir.join("active"));
        let _ = std::fs::remove_file(dir.join("ha-log")); // `settle` reads this start's log
        let log = std::fs::File::create(dir.join("heartbeat.out")).expect("log");
        let script = format!(
            "hostname n{i} && mount --bind {etc} /etc/ha.d && mount --bind {lib} /var/lib/heartbeat && \
             mount -t tmpfs tmpfs /run && \
             for d in heartbeat heartbeat/ccm heartbeat/crm heartbeat/dopd crm; do install -d -m 750 -o hacluster -g haclient /run/$d; done && \
             install -d -m 1755 /run/heartbeat/rsctmp && /usr/libexec/heartbeat/heartbeat && exec sleep infinity",
            etc = etc.display(),
            lib = lib.display()
        );
        self.spawn_node(i, &script, log);
    }

    /// The hook as the manager runs it, with the node's `report.env` where a real node has
    /// `/etc/failover-notify/report.env` (with one inline comment, which a shell drops and
    /// systemd keeps).
    fn hook_wrapper(&self, i: usize, hook: &Path) -> String {
        let dir = self.path(&format!("n{i}"));
        let env = dir.join("report.env");
        std::fs::write(
            &env,
            format!(
                "# serve's URL\nFAILOVER_NOTIFY_URL={}\nFAILOVER_NOTIFY_KEY=secret\n\
                 FAILOVER_NOTIFY_SPOOL={}\nFAILOVER_NOTIFY_TIMEOUT=1s   # systemd keeps this in the value; report cuts it\n",
                self.url(),
                dir.join("spool").display(),
            ),
        )
        .expect("report.env written");
        format!(
            "#!/bin/sh\nset -a\n. {}\nset +a\nexport FAILOVER_NOTIFY_BIN={BIN} FAILOVER_NOTIFY_STATE={}\n\
             exec {} \"$@\"\n",
            env.display(),
            dir.join("active").display(),
            hook.display()
        )
    }

    /// Sends what node `i` has spooled the way the shipped set-up does. heartbeat: the
    /// command of `failover-notify-flush.service` with its `EnvironmentFile` read as systemd
    /// reads one (a `#` line is a comment, a value is the rest of its line). keepalived: the
    /// cron line of the hooks README, run by `sh`. The paths of a real node are this lab's.
    fn flush(&self, i: usize) {
        let env = self.path(&format!("n{i}/report.env"));
        let deployed = |text: String| {
            text.replace("/usr/local/bin/failover-notify", BIN).replace(
                "/etc/failover-notify/report.env",
                &env.display().to_string(),
            )
        };
        let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/hooks");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(&format!("n{i}"))]);
        match self.manager {
            Manager::Heartbeat => {
                let unit = deployed(
                    std::fs::read_to_string(hooks.join("failover-notify-flush.service"))
                        .expect("the unit"),
                );
                let setting = |key: &str| {
                    unit.lines()
                        .find_map(|l| l.strip_prefix(key))
                        .unwrap_or_else(|| panic!("the unit has no {key}"))
                        .to_owned()
                };
                let file = std::fs::read_to_string(setting("EnvironmentFile=")).expect("env file");
                let exec = setting("ExecStart=");
                cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
                for line in file.lines().map(str::trim) {
                    if let Some((k, v)) = line.split_once('=').filter(|_| !line.starts_with('#')) {
                        cmd.env(k.trim(), v.trim());
                    }
                }
                cmd.args(exec.split_whitespace());
            }
            Manager::Keepalived | Manager::Pacemaker => {
                let readme = deployed(
                    std::fs::read_to_string(hooks.join("README.md")).expect("the hooks README"),
                );
                let line = readme
                    .lines()
                    .find(|l| l.starts_with("* * * * *"))
                    .expect("the README's cron line");
                // minute hour day month weekday user, then the command
                let mut command = line;
                for _ in 0..6 {
                    let field = command.trim_start();
                    command = &field[field.find(char::is_whitespace).unwrap_or(field.len())..];
                }
                cmd.args(["sh", "-c", command.trim()]);
            }
        }
        run(&mut cmd);
    }

    /// Runs `script` as PID 1 of new PID, mount and UTS namespaces inside node `i`'s network
    /// namespace; killing it kills everything in there.
    fn spawn_node(&mut self, i: usize, script: &str, log: std::fs::File) {
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
                script,
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("node starts");
        self.nodes[i - 1] = Some(child);
    }

    fn start_node(&mut self, i: usize) {
        match self.manager {
            Manager::Keepalived => self.start_keepalived(i),
            Manager::Heartbeat => self.start_heartbeat(i),
            Manager::Pacemaker => self.start_pacemaker(i),
        }
    }

    /// Corosync and Pacemaker on node `i`, with its own `/etc/corosync` (both nodes, knet on
    /// the bridge, `two_node`), `/var/lib/pacemaker`, `/var/lib/corosync`, `/run` and
    /// `/dev/shm` (libqb's IPC buffers). The alert agent is the shipped hook, run by
    /// Pacemaker as `hacluster`, so the lab is readable by it and the spool its own.
    fn start_pacemaker(&mut self, i: usize) {
        let dir = self.path(&format!("n{i}"));
        let etc = dir.join("corosync");
        let lib = dir.join("pacemaker");
        for d in [&etc, &dir.join("corosync-lib"), &dir.join("log")] {
            std::fs::create_dir_all(d).expect("node dirs");
        }
        for d in ["cib", "pengine", "blackbox", "cores"] {
            std::fs::create_dir_all(lib.join(d)).expect("pacemaker dirs");
        }
        let spool = dir.join("spool");
        std::fs::create_dir_all(&spool).expect("spool");
        for d in [&lib, &dir.join("log"), &spool] {
            run(Command::new("chown")
                .args(["-R", "hacluster:haclient"])
                .arg(d));
        }
        run(Command::new("chmod")
            .arg("755")
            .arg(self.dir.path())
            .arg(&dir));
        // The alert agent: one path on both nodes (the CIB is shared), settings per node.
        let hook = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/hooks/pacemaker-alert");
        self.hook_wrapper(i, &hook);
        let env = dir.join("report.env");
        let mut settings = std::fs::read_to_string(&env).expect("report.env");
        settings.push_str("FAILOVER_NOTIFY_STANDBY_WINDOW=1h\n");
        std::fs::write(&env, settings).expect("report.env written");
        run(Command::new("chmod").arg("644").arg(&env));
        let agent = self.path("alert");
        std::fs::write(
            &agent,
            format!(
                "#!/bin/sh\nset -a\n. {}/$(uname -n)/report.env\nset +a\nexport FAILOVER_NOTIFY_BIN={BIN}\nexec {} \"$@\"\n",
                self.dir.path().display(),
                hook.display()
            ),
        )
        .expect("alert agent written");
        run(Command::new("chmod").arg("755").arg(&agent));
        let key = self.path("authkey");
        if !key.exists() {
            use std::io::Read as _;
            let mut random = vec![0u8; 256];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut random))
                .expect("random bytes");
            std::fs::write(&key, random).expect("authkey");
        }
        std::fs::copy(&key, etc.join("authkey")).expect("authkey copied");
        run(Command::new("chmod").arg("400").arg(etc.join("authkey")));
        let node = |n: usize| {
            format!(
                "  node {{\n    ring0_addr: 192.0.2.1{n}\n    name: n{n}\n    nodeid: {n}\n  }}\n"
            )
        };
        std::fs::write(
            etc.join("corosync.conf"),
            format!(
                "totem {{\n  version: 2\n  cluster_name: lab\n  transport: knet\n  crypto_cipher: none\n  crypto_hash: none\n}}\n\
                 nodelist {{\n{}{}}}\nquorum {{\n  provider: corosync_votequorum\n  two_node: 1\n}}\n\
                 logging {{\n  to_stderr: yes\n  to_syslog: no\n  to_logfile: no\n}}\n",
                node(1),
                node(2)
            ),
        )
        .expect("corosync.conf written");
        let log = std::fs::File::create(dir.join("pacemaker.log")).expect("log");
        let d = dir.display();
        let script = format!(
            "hostname n{i} && mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /dev/shm \
             && mount --bind {d}/corosync /etc/corosync && mount --bind {d}/pacemaker /var/lib/pacemaker \
             && mount --bind {d}/corosync-lib /var/lib/corosync && mount --bind {d}/log /var/log/pacemaker \
             && {{ corosync -f > {d}/corosync.log 2>&1 & }} && sleep 1 \
             && PCMK_logfile={d}/log/pacemaker.log exec pacemakerd -f"
        );
        self.spawn_node(i, &script, log);
    }

    /// Node `i` runs the cluster's resources: it holds the virtual address (keepalived), its
    /// resource script was started (heartbeat), Pacemaker locates the resource there.
    fn wait_active(&self, i: usize) {
        let dir = self.path(&format!("n{i}"));
        wait_for(&format!("n{i} to take over"), 60, || {
            let active = match self.manager {
                Manager::Keepalived => {
                    ip(&["-n", &self.ns(&format!("n{i}")), "addr", "show", "eth0"]).contains(VIP)
                }
                Manager::Heartbeat => dir.join("active").exists(),
                Manager::Pacemaker => self
                    .ask(i, "crm_resource --locate --resource vip 2>&1 || true")
                    .is_some_and(|s| s.contains(&format!("running on: n{i}"))),
            };
            active.then_some(())
        });
    }

    /// Lets restarted node `i` join as the standby, waiting for the cluster's own word, not
    /// for a time. heartbeat: the node's log says its first resource negotiation is over, and
    /// the active node's log says, after the node's latest join, that the remote resource
    /// transition completed (a peer killed before both have said so can leave the node
    /// believing it holds what it does not, and its `mach_down` acquires nothing).
    /// keepalived: the node entered BACKUP. Pacemaker: `crm_mon` shows both nodes online.
    fn settle(&self, i: usize) {
        let peer = 3 - i;
        let log = |node: usize, name: &str| {
            std::fs::read_to_string(self.path(&format!("n{node}/{name}"))).unwrap_or_default()
        };
        match self.manager {
            Manager::Heartbeat => {
                wait_for(
                    &format!("n{i} and n{peer} to agree on the resources"),
                    60,
                    || {
                        let own =
                            log(i, "ha-log").contains("Initial resource acquisition complete");
                        let theirs = log(peer, "ha-log");
                        let joined = format!("Status update for node n{i}: status active");
                        let acked = theirs.rfind(&joined).is_some_and(|at| {
                            theirs[at..].contains("remote resource transition completed")
                        });
                        (own && acked).then_some(())
                    },
                );
            }
            Manager::Keepalived => {
                wait_for(&format!("n{i} to enter BACKUP"), 60, || {
                    log(i, "keepalived.log")
                        .contains("Entering BACKUP STATE")
                        .then_some(())
                });
            }
            Manager::Pacemaker => {
                wait_for("both Pacemaker nodes online", 90, || {
                    let status = self.ask(peer, "crm_mon -1 2>&1 || true");
                    status
                        .is_some_and(|s| s.contains("Online: [ n1 n2 ]"))
                        .then_some(())
                });
            }
        }
    }

    /// Waits until heartbeat on node `i` says its takeover of a dead peer's resources is
    /// complete (the resource script's start, which `wait_active` sees, comes before it).
    fn takeover_complete(&self, i: usize) {
        if self.manager == Manager::Heartbeat {
            wait_for(&format!("n{i}'s takeover to complete"), 60, || {
                std::fs::read_to_string(self.path(&format!("n{i}/ha-log")))
                    .ok()
                    .filter(|l| l.contains("info: mach_down takeover complete."))
            });
        }
    }

    /// Runs `command` inside node `i`'s namespaces (its PID 1's), as an operator on it would.
    fn run_on(&self, i: usize, command: &str) -> String {
        self.ask(i, command).expect("the node's PID 1")
    }

    /// What `command` answers on node `i` ([`Lab::run_on`]), `None` while the node's PID 1 is
    /// not forked yet (a node just started): for polling.
    fn ask(&self, i: usize, command: &str) -> Option<String> {
        let pid = self.nodes[i - 1].as_ref().expect("node runs").id();
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
        let init = children.split_whitespace().next()?;
        Some(run(Command::new("nsenter").args([
            "-t", init, "-m", "-u", "-n", "-p", "sh", "-c", command,
        ])))
    }

    /// Kills node `i` at once (its whole PID namespace), like a crash: its PID 1 first
    /// (pacemakerd outlives `unshare --kill-child`), which takes every process of the
    /// namespace with it.
    fn crash(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i - 1].take() {
            let pid = c.id();
            if let Ok(children) =
                std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            {
                for init in children.split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", init]).status();
                }
                // `unshare` reaps its child and exits; then it is reaped here.
                for _ in 0..50 {
                    if matches!(c.try_wait(), Ok(Some(_))) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn write_inventory(&self, window: bool) {
        let window = if window {
            window_around_now("cluster = \"web\"")
        } else {
            String::new()
        };
        // keepalived sends one report per failover, nothing to merge: a short merge interval
        // keeps the standby's fault below from joining the failover just before it.
        let merge = match self.manager {
            Manager::Keepalived => "merge_within = \"5s\"",
            Manager::Heartbeat | Manager::Pacemaker => "",
        };
        std::fs::write(
            self.path("inventory.toml"),
            format!(
                r#"[events]
flapping_count = 20
{merge}

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

{keys}"#,
                log = self.path("messages.log").display(),
                keys = keys_toml()
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

/// Namespaces left by an earlier run of these tests that was killed before it could clean up
/// (named `fnk<pid>-…`, `fnh<pid>-…` or `fnp<pid>-…` for a process that no longer runs): their daemons are
/// stopped and the namespaces deleted.
fn remove_stale_labs() {
    for line in ip(&["netns", "list"]).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name
            .strip_prefix("fnk")
            .or_else(|| name.strip_prefix("fnh"))
            .or_else(|| name.strip_prefix("fnp"))
            .and_then(|rest| rest.split('-').next())
            .filter(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if Path::new("/proc").join(pid).exists() {
            continue;
        }
        for p in ip(&["netns", "pids", name]).split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", p]).status();
        }
        let _ = Command::new("ip").args(["netns", "del", name]).status();
    }
}

/// heartbeat 3.0.6's scripts tell heartbeat things through its FIFO with `ha_clustermsg`,
/// which writes a message's `>>>` line and its body in separate writes. When a peer dies,
/// `mach_down` (foreign resources taken) and `req_resource` (our own asked for) write at the
/// same moment; under load their lines interleave, heartbeat reads `>>>` inside a message
/// ("NV failure (msgfromstream)"), drops both, and the surviving node never takes the
/// resources back. That is heartbeat's race, not the service's: the lab's nodes build each
/// message first and write it at once (a FIFO write under `PIPE_BUF` is atomic).
fn one_write_per_fifo_message(shellfuncs: &Path) {
    let text = std::fs::read_to_string(shellfuncs).expect("heartbeat's shellfuncs");
    let split = "\t(echo \">>>\"; cat -; echo \"<<<\")\t| cat - >> $HA_FIFO";
    assert!(
        text.contains(split),
        "heartbeat's ha_clustermsg changed:\n{text}"
    );
    let whole = "\t_m=$(echo \">>>\"; cat -; echo \"<<<\"); printf '%s\\n' \"$_m\" >> $HA_FIFO";
    std::fs::write(shellfuncs, text.replace(split, whole)).expect("shellfuncs written");
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // What the daemons said, for whoever reads the failure.
            for name in [
                "n1/ha-log",
                "n2/ha-log",
                "n1/keepalived.log",
                "n2/keepalived.log",
                "n1/corosync.log",
                "n1/log/pacemaker.log",
                "n2/log/pacemaker.log",
                "serve.log",
            ] {
                if let Ok(text) = std::fs::read_to_string(self.path(name)) {
                    let lines: Vec<&str> = text.lines().collect();
                    let tail = &lines[lines.len().saturating_sub(40)..];
                    eprintln!(
                        "--- {name} (last {} lines)\n{}",
                        tail.len(),
                        tail.join("\n")
                    );
                }
            }
        }
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
    story(Manager::Keepalived);
}

#[test]
fn heartbeat_failovers_are_classified_and_delivered() {
    assert!(
        Path::new("/usr/libexec/heartbeat/heartbeat").exists(),
        "heartbeat is not installed (the README's test command installs it; apt-get install heartbeat)"
    );
    story(Manager::Heartbeat);
}

#[test]
fn pacemaker_standby_is_planned_and_a_crash_is_one_unplanned_failover() {
    assert!(
        Command::new("pacemakerd").arg("--version").output().is_ok()
            && Command::new("corosync").arg("-v").output().is_ok(),
        "pacemaker or corosync is not installed (the README's test command installs them; apt-get install pacemaker corosync)"
    );
    let mut lab = Lab::new(Manager::Pacemaker);
    lab.write_inventory(false);
    lab.start_serve();
    lab.start_node(1);
    lab.start_node(2);
    lab.settle(2);
    // No fencing device here; the alert (the shipped hook, which also sees the standby
    // attribute), then a resource that prefers n1.
    let agent = lab.path("alert");
    lab.run_on(
        1,
        &format!(
            "crm_attribute -t crm_config -n stonith-enabled -v false \
             && cibadmin --create -o configuration --xml-text '<alerts><alert id=\"fn\" path=\"{}\">\
             <select><select_nodes/><select_fencing/><select_resources/>\
             <select_attributes><attribute id=\"fn-standby\" name=\"standby\"/></select_attributes></select>\
             <recipient id=\"fn-r\" value=\"ops\"/></alert></alerts>' \
             && cibadmin --create -o resources --xml-text '<primitive id=\"vip\" class=\"ocf\" provider=\"pacemaker\" type=\"Dummy\">\
             <instance_attributes id=\"vip-i\"><nvpair id=\"vip-sleep\" name=\"op_sleep\" value=\"2\"/></instance_attributes>\
             <meta_attributes id=\"vip-m\"><nvpair id=\"vip-role\" name=\"target-role\" value=\"Stopped\"/></meta_attributes></primitive>' \
             && cibadmin --create -o constraints --xml-text '<rsc_location id=\"prefer-n1\" rsc=\"vip\" node=\"n1\" score=\"100\"/>' \
             && crm_resource --resource vip --meta --set-parameter target-role --parameter-value Started",
            agent.display()
        ),
    );
    let events = wait_for("the resource's start", 60, || {
        Some(lab.events()).filter(|e| !e.is_empty())
    });
    assert_eq!(
        (&events[0]["active"], &events[0]["verdict"]),
        (&Value::from("n1"), &Value::from("cluster-start")),
        "{events:?}"
    );

    // n1 put in standby: the hook opens a window for it, then Pacemaker moves the resource
    // to n2: planned.
    lab.run_on(1, "crm_standby -N n1 -v on"); // permanent, as `pcs node standby`
    let windows = wait_for("the standby's window", 30, || {
        let windows = lab.curl("/v1/maintenance").ok()?;
        let windows = windows["maintenance"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (!windows.is_empty()).then_some(windows)
    });
    assert!(
        windows.iter().all(|w| w["target"] == "n1"
            && w["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("Pacemaker standby of n1"))),
        "{windows:?}"
    );
    let events = lab.wait_events(2);
    let switchover = &events[1];
    assert_eq!(
        (&switchover["active"], &switchover["verdict"]),
        (&Value::from("n2"), &Value::from("planned")),
        "{events:?}"
    );
    // Out of standby, the resource goes back to n1: a planned failback.
    lab.run_on(1, "crm_standby -N n1 -v off");
    let events = lab.wait_events(3);
    let back = &events[2];
    assert_eq!(
        (&back["active"], &back["verdict"], &back["failback_of"]),
        (
            &Value::from("n1"),
            &Value::from("planned"),
            &switchover["id"]
        ),
        "{events:?}"
    );

    // The window ended, n1 crashes: n2 reports n1 lost and starts the resource, one
    // unplanned failover of two reports.
    for w in &windows {
        let id = w["id"].to_string();
        run(Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.ns("br"),
                BIN,
                "maintenance",
                "end",
                &id,
            ])
            .args(["--url", &lab.url(), "--key", ADMIN]));
    }
    lab.crash(1);
    let events = wait_for("n2's two reports of the crash", 60, || {
        let events = lab.events();
        (events.len() == 4 && events[3]["reports"] == 2).then_some(events)
    });
    let crash = &events[3];
    assert_eq!(
        (&crash["active"], &crash["previous"], &crash["verdict"]),
        (
            &Value::from("n2"),
            &Value::from("n1"),
            &Value::from("unplanned")
        ),
        "{events:?}"
    );
}

fn story(manager: Manager) {
    let mut lab = Lab::new(manager);
    lab.write_inventory(false);
    lab.start_serve();
    lab.start_node(1);
    if manager == Manager::Keepalived {
        lab.wait_active(1); // keepalived: the first node up takes the address
    }
    lab.start_node(2);
    lab.wait_active(1);
    let first = lab.wait_events(1);
    assert_eq!(first[0]["active"], "n1", "{first:?}");
    // The cluster's first report: its start, not a failover.
    assert_eq!(first[0]["verdict"], "cluster-start", "{first:?}");

    // The active node crashes outside any window: unplanned, naming n2 as the new active node.
    lab.crash(1);
    lab.wait_active(2);
    let events = lab.wait_events(2);
    let unplanned = &events[1];
    assert_eq!(unplanned["active"], "n2", "{events:?}");
    assert_eq!(unplanned["verdict"], "unplanned");
    // heartbeat names the departed node (HA_src); after keepalived, the last event does.
    assert_eq!(unplanned["previous"], "n1", "{unplanned}");
    let messages = wait_for("the unplanned message", 30, || {
        Some(lab.messages(&unplanned["id"])).filter(|m| !m.is_empty())
    });
    assert!(
        messages[0]["subject"]
            .as_str()
            .is_some_and(|s| s.contains("UNPLANNED") && s.contains("n2")),
        "{messages:?}"
    );
    assert!(
        messages[0]["body"]
            .as_str()
            .is_some_and(|b| b.contains("n1 has failed over")),
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
    // heartbeat: n1 rejoining before n2's takeover is complete can leave n1 unaware that it
    // must take its resources back when n2 dies next (n1's `mach_down` acquired nothing).
    lab.takeover_complete(2);
    lab.start_node(1);
    lab.settle(1); // n1 joins as the standby
    lab.crash(2);
    lab.wait_active(1);
    let events = lab.wait_events(3);
    let planned = &events[2];
    assert_eq!(planned["active"], "n1", "{events:?}");
    assert_eq!(planned["verdict"], "planned", "{planned}");
    assert_eq!(planned["failback_of"], unplanned["id"], "{planned}");

    // `serve` is down during the failover: the report is spooled on the node, and sent with its
    // original time once `serve` is back.
    lab.stop_serve();
    lab.start_node(2);
    lab.settle(2);
    let crashed_at = jiff::Timestamp::now();
    lab.crash(1);
    lab.wait_active(2);
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
    // The shipped flush: heartbeat's node runs the systemd unit the timer starts, keepalived's
    // the cron line of the hooks README.
    lab.flush(2);
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
    if manager == Manager::Keepalived {
        // The standby goes into FAULT (its tracked file says it cannot serve): told, though
        // no takeover follows; the active node stays.
        lab.start_node(1);
        lab.settle(1);
        // Past the 5 s `merge_within` of the takeover before it, so the fault is not merged
        // into that failover (a rule of the service's, hence a wait on the clock).
        let apart = at + jiff::SignedDuration::from_secs(6);
        if let Ok(d) = Duration::try_from(apart.duration_since(jiff::Timestamp::now())) {
            std::thread::sleep(d);
        }
        std::fs::write(lab.path("n1/fault"), "1\n").expect("fault written");
        let events = lab.wait_events(5);
        let fault = &events[4];
        assert_eq!(
            (&fault["active"], &fault["previous"]),
            (&Value::Null, &Value::from("n1")),
            "{events:?}"
        );
        // The window written above is still open.
        assert_eq!(fault["verdict"], "planned", "{fault}");
        let messages = wait_for("the fault's message", 30, || {
            Some(lab.messages(&fault["id"])).filter(|m| !m.is_empty())
        });
        assert_eq!(
            messages[0]["subject"], "Planned: n1 of web reports a fault",
            "{messages:?}"
        );
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(lab.events().len(), 5, "n2 stays active: {:?}", lab.events());
        return;
    }

    // A graceful switchover: `hb_standby` on n2 releases the resources (the hook reports a
    // release), then n1 takes them (a takeover). One failover: one event, one message.
    lab.start_node(1);
    lab.settle(1);
    lab.run_on(2, "/usr/share/heartbeat/hb_standby");
    lab.wait_active(1);
    let events = wait_for("the switchover's two reports", 60, || {
        let events = lab.events();
        (events.len() == 5 && events[4]["reports"] == 2).then_some(events)
    });
    let switchover = &events[4];
    assert_eq!(switchover["active"], "n1", "{events:?}");
    assert_eq!(switchover["previous"], "n2", "{switchover}");
    let messages = wait_for("the switchover's message", 30, || {
        Some(lab.messages(&switchover["id"])).filter(|m| !m.is_empty())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lab.messages(&switchover["id"]).len(), 1, "{messages:?}");
    assert_eq!(lab.events().len(), 5, "{:?}", lab.events());
}
