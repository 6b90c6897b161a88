//! Classification against an inventory: who is in a window, host matching, messages.

use failover_core::classify::{WindowRef, classify};
use failover_core::config;
use failover_core::inventory::{CustomerId, Inventory, MessageKind, Verdict};
use failover_core::template::{MessageContext, sample_context};
use failover_core::window::{Grace, Length, MaintenanceWindow, Owner, Schedule};
use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use rstest::rstest;

const INVENTORY: &str = r#"
[defaults]
grace = { before = "0m", after = "0m" }

[[customers]]
name = "acme"
time_zone = "Europe/Berlin"

[[customers]]
name = "globex"

[[clusters]]
name = "db"
customer = "acme"
nodes = ["db1.acme.example", { name = "db2.acme.example", aliases = ["olddb"] }]

[[clusters]]
name = "web"
customer = "globex"
nodes = ["web1", "web2", "web3"]

[[clusters]]
name = "db-globex"
customer = "globex"
nodes = ["db1.globex.example", "db3.globex.example"]

# Only db1 has a window: Wed 2026-12-09 22:00-02:00 Berlin (21:00Z-01:00Z).
[[windows]]
name = "db1-patch"
node = "db1.acme.example"
week = 2
day = "wed"
start = "22:00"
duration = "4h"

# Every globex cluster: Sundays, whole day, UTC.
[[windows]]
name = "globex-sunday"
customer = "globex"
days = ["sun"]
"#;

fn inv() -> Inventory {
    config::parse(INVENTORY)
        .unwrap_or_else(|e| panic!("{}", config::render_errors("t.toml", INVENTORY, &e)))
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("test instant")
}

#[rstest]
// The node in its own window reports.
#[case::node_itself("db1.acme.example", "2026-12-09T21:30:00Z", Verdict::Planned)]
// The original's bug: db1 is patched, db2 takes over and reports. Still planned.
#[case::other_node_reports("db2.acme.example", "2026-12-09T21:30:00Z", Verdict::Planned)]
#[case::outside("db2.acme.example", "2026-12-09T20:59:59Z", Verdict::Unplanned)]
#[case::end_is_exclusive("db2.acme.example", "2026-12-10T01:00:00Z", Verdict::Unplanned)]
// Customer windows cover every cluster of the customer.
#[case::customer_window("web3", "2026-12-13T12:00:00Z", Verdict::Planned)]
#[case::customer_window_other_cluster(
    "db3.globex.example",
    "2026-12-13T23:59:59Z",
    Verdict::Planned
)]
#[case::customer_window_monday("web3", "2026-12-14T00:00:00Z", Verdict::Unplanned)]
#[case::unknown("db9", "2026-12-09T21:30:00Z", Verdict::UnknownHost)]
fn verdicts(#[case] host: &str, #[case] at: &str, #[case] want: Verdict) {
    let inv = inv();
    let c = classify(&inv, &[], host, None, ts(at));
    assert_eq!(c.verdict, want, "{host} at {at}");
    assert_eq!(c.explanation.is_some(), want == Verdict::Planned);
}

#[test]
fn planned_names_the_window_and_its_owner() {
    let inv = inv();
    let at = ts("2026-12-09T21:30:00Z");
    let c = classify(&inv, &[], "db2.acme.example", None, at);
    let view = c.view(&inv, &[], "db2.acme.example", at);
    let json = serde_json_like(&view);
    assert_eq!(
        json,
        "planned db2.acme.example db 2026-12-09T21:30:00Z db1-patch db1.acme.example \
         2026-12-09T22:00:00+01:00 2026-12-10T02:00:00+01:00 Europe/Berlin"
    );
}

fn serde_json_like(v: &failover_core::classify::ClassificationView) -> String {
    let w = v.window.as_ref().expect("a window");
    format!(
        "{} {} {} {} {} {} {} {} {}",
        v.verdict.as_str(),
        v.host,
        v.cluster.as_deref().unwrap_or("-"),
        v.at,
        w.name,
        w.owner,
        w.start,
        w.end,
        w.time_zone
    )
}

#[rstest]
#[case::exact("db1.acme.example", "db")]
#[case::case_insensitive("DB1.ACME.EXAMPLE", "db")]
#[case::short_name_of_fqdn_node("db2", "db")]
#[case::alias("OldDB", "db")]
#[case::fqdn_of_short_node("web2.globex.example", "web")]
#[case::trailing_dot("web2.", "web")]
fn host_names_match(#[case] host: &str, #[case] cluster: &str) {
    let inv = inv();
    let node = inv
        .find_node(host, None)
        .unwrap_or_else(|| panic!("{host} not found"));
    assert_eq!(inv.cluster(inv.node(node).cluster).name, cluster);
}

#[test]
fn names_with_the_same_index_hash_stay_apart() {
    // `costarring` and `liquid` have the same 32-bit FNV-1a hash, which the host index is
    // keyed by: the names themselves decide.
    let inv = failover_core::config::parse(
        r#"
[[clusters]]
name = "a"
nodes = ["costarring", "other-a"]

[[clusters]]
name = "b"
nodes = ["liquid", "other-b"]
"#,
    )
    .expect("valid");
    for (host, cluster) in [
        ("LIQUID", "b"),
        ("liquid.example", "b"),
        ("costarring", "a"),
    ] {
        let node = inv.find_node(host, None).expect(host);
        assert_eq!(inv.cluster(inv.node(node).cluster).name, cluster, "{host}");
    }
    assert_eq!(inv.find_node("liquids", None), None);
}

#[test]
fn ambiguous_short_names_need_the_full_name_or_a_customer() {
    let inv = inv();
    // `db1` is db1.acme.example and db1.globex.example: not guessed.
    assert_eq!(inv.find_node("db1", None), None);
    // A customer-scoped key makes it unique.
    let acme = Some(CustomerId(0));
    let node = inv.find_node("db1", acme).expect("unique within acme");
    assert_eq!(inv.node(node).name, "db1.acme.example");
    // And a key only sees its own customer's hosts.
    assert_eq!(inv.find_node("web1", acme), None);
}

#[test]
fn ad_hoc_windows_count_at_once() {
    let inv = inv();
    let at = ts("2026-11-25T10:00:00Z");
    assert_eq!(
        classify(&inv, &[], "web1", None, at).verdict,
        Verdict::Unplanned
    );
    let web = inv.find_cluster("web").expect("web exists");
    let ad_hoc = MaintenanceWindow::new(
        "emergency kernel update",
        Owner::Cluster(web),
        TimeZone::UTC,
        Schedule::Once {
            date: jiff::civil::date(2026, 11, 25),
        },
        Some(jiff::civil::time(9, 30, 0, 0)),
        Length::Exact(SignedDuration::from_hours(2)),
        Grace::default(),
    )
    .expect("valid window");
    let c = classify(&inv, std::slice::from_ref(&ad_hoc), "web1", None, at);
    assert_eq!(c.verdict, Verdict::Planned);
    assert_eq!(
        c.explanation.expect("explained").window,
        WindowRef::AdHoc(0)
    );
}

#[test]
fn default_messages_keep_the_original_wording_corrected() {
    let inv = inv();
    let planned = inv
        .templates
        .render(
            &sample_context(MessageKind::Planned),
            MessageKind::Planned,
            None,
            None,
        )
        .expect("renders");
    insta::assert_snapshot!(format!("{}\n---\n{}", planned.subject, planned.body), @r#"
    Planned failover: cluster01 is now active on cluster01-b
    ---
    cluster01-a has failed over.  Server cluster01-b is currently the active host.

    This was likely due to patching: it happened at 2026-12-09 22:14:03 CET (Europe/Berlin), inside the maintenance window "patch-b" of cluster01-b (2026-12-09 22:00 to 2026-12-10 02:00, Europe/Berlin).  DevOps will follow up during regular business hours to verify.

    cluster01 is flapping: it failed over more than 3 times within 30m.

    This is a failback: cluster01-b was active before the failover at 2026-12-09 21:50:00 CET.

    Please reach out to your Support Team if you notice any errors or issues in the meantime.

    This is an automated message.
    "#);
    let ctx = MessageContext {
        flapping: false,
        failback: false,
        window: None,
        ..sample_context(MessageKind::Unplanned)
    };
    let unplanned = inv
        .templates
        .render(&ctx, MessageKind::Unplanned, None, None)
        .expect("renders");
    insta::assert_snapshot!(format!("{}\n---\n{}", unplanned.subject, unplanned.body), @r#"
    UNPLANNED failover: cluster01 is now active on cluster01-b
    ---
    cluster01-a has failed over.  Server cluster01-b is currently the active host.

    There was no known patching causing this event: no maintenance window of cluster01 was open at 2026-12-09 22:14:03 CET (Europe/Berlin).  DevOps will investigate.

    Please reach out to your Support Team if you notice any errors or issues in the meantime.

    This is an automated message.
    "#);
}

#[test]
fn cluster_templates_override_customer_and_global() {
    let src = format!(
        "{INVENTORY}\n[templates.unplanned]\nsubject = \"global {{{{ host }}}}\"\n"
    )
    .replace(
        "name = \"web\"\ncustomer = \"globex\"",
        "name = \"web\"\ncustomer = \"globex\"\ntemplates.unplanned.subject = \"web cluster {{ host }}\"",
    );
    let inv = config::parse(&src)
        .unwrap_or_else(|e| panic!("{}", config::render_errors("t.toml", &src, &e)));
    let web = inv.find_cluster("web");
    let db = inv.find_cluster("db");
    let ctx = sample_context(MessageKind::Unplanned);
    let subject = |c| {
        inv.templates
            .render(&ctx, MessageKind::Unplanned, c, None)
            .expect("renders")
            .subject
    };
    assert_eq!(subject(web), "web cluster cluster01-b");
    assert_eq!(subject(db), "global cluster01-b");
}
