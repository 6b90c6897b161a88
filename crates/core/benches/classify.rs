#![allow(missing_docs)] // criterion macros generate undocumented items
//! Classification and inventory speed. Results and commands: BENCHMARKS.md.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use failover_core::classify::classify;
use failover_core::config;
use jiff::{SignedDuration, Timestamp};

#[path = "../examples/gen_inventory.rs"]
mod gen_inventory;

/// One cluster whose nodes carry 10 windows of every form.
const TEN_WINDOWS: &str = r#"
[[customers]]
name = "acme"
time_zone = "Europe/Berlin"

[[clusters]]
name = "db"
customer = "acme"
nodes = ["db1.example.com", "db2.example.com"]

[[windows]]
name = "w1"
node = "db1.example.com"
week = 2
day = "wed"
start = "22:00"
duration = "4h"
[[windows]]
name = "w2"
node = "db2.example.com"
week = 3
day = 2
calendar = "monday-weeks"
[[windows]]
name = "w3"
cluster = "db"
week = 2
day = "tue"
then = "saturday"
start = "06:00"
duration = "3h"
[[windows]]
name = "w4"
cluster = "db"
week = -1
day = "fri"
start = "23:30"
duration = "2h"
[[windows]]
name = "w5"
cluster = "db"
days = ["sun"]
start = "02:30"
duration = "2h"
time_zone = "America/New_York"
[[windows]]
name = "w6"
cluster = "db"
day_of_month = -1
start = "20:00"
duration = "6h"
[[windows]]
name = "w7"
cluster = "db"
date = "2026-12-24"
[[windows]]
name = "w8"
customer = "acme"
cron = "cron(0 2 ? * TUE#2 *)"
offset_days = 3
duration = "4h"
[[windows]]
name = "w9"
customer = "acme"
cron = "15 3 * * 1-5"
duration = "20m"
[[windows]]
name = "w10"
node = "db1.example.com"
days = ["sat"]
start = "01:00"
duration = "1h"
time_zone = "Australia/Lord_Howe"
"#;

fn bench(c: &mut Criterion) {
    let inv = config::parse(TEN_WINDOWS).expect("bench inventory is valid");
    assert_eq!(
        inv.cluster(inv.find_cluster("db").expect("db"))
            .windows
            .len(),
        10
    );
    // Wednesday 2026-11-25 12:00Z: outside all ten, so every window is evaluated.
    let at: Timestamp = "2026-11-25T12:00:00Z".parse().expect("instant");
    let mut g = c.benchmark_group("classify");
    g.throughput(Throughput::Elements(1));
    g.bench_function("host_with_10_windows", |b| {
        b.iter(|| {
            classify(
                black_box(&inv),
                &[],
                black_box("db1.example.com"),
                None,
                black_box(at),
            )
        })
    });
    g.finish();

    let big_src = gen_inventory::inventory(10_000);
    let mut g = c.benchmark_group("inventory_10k_clusters_25k_nodes");
    g.sample_size(10);
    g.bench_function("parse_and_validate", |b| {
        b.iter(|| config::parse(black_box(&big_src)).expect("valid"))
    });
    let big = config::parse(&big_src).expect("valid");
    assert_eq!((big.clusters.len(), big.nodes.len()), (10_000, 25_000));
    let hosts: Vec<String> = (0..1024)
        .map(|i| format!("NODE{}-1.c{}.example", i * 9 % 10_000, i * 9 % 10_000 % 100))
        .collect();
    let mut i = 0usize;
    g.sample_size(50);
    g.throughput(Throughput::Elements(1));
    g.bench_function("lookup_and_classify", |b| {
        b.iter(|| {
            i = (i + 1) % hosts.len();
            // A different host and instant each time (spread over ~5 days).
            let when = at + SignedDuration::from_mins(7 * i as i64);
            classify(&big, &[], black_box(&hosts[i]), None, when)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
