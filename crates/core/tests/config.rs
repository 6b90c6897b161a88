//! The inventory file: the example is valid, and every bad fixture renders a precise error.

use std::path::Path;

use failover_core::config;

#[test]
fn example_inventory_is_valid_and_complete() {
    let inv = config::parse(config::EXAMPLE).unwrap_or_else(|e| {
        panic!(
            "{}",
            config::render_errors("examples/inventory.toml", config::EXAMPLE, &e)
        )
    });
    assert_eq!(inv.clusters.len(), 3);
    assert_eq!(inv.windows.len(), 11);
    assert_eq!(inv.channels.len(), 4);
    assert_eq!(inv.keys.len(), 3);
    // The original's sample is there: cluster01-a on (2, 2), cluster01-b on (3, 2).
    assert!(inv.find_node("cluster01-a", None).is_some());
}

/// Every `fixtures/config/bad/<case>.toml` fails, and its rendered errors are pinned.
#[test]
fn bad_configs_render_line_column_and_snippet() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/bad");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixture directory")
        .map(|e| e.expect("fixture entry").path())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 15,
        "only {} bad-config fixtures",
        cases.len()
    );
    for path in cases {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 name")
            .to_owned();
        let src = std::fs::read_to_string(&path).expect("fixture is readable");
        let errors = match config::parse(&src) {
            Ok(_) => panic!("{name}: expected errors, the file was accepted"),
            Err(e) => e,
        };
        let rendered = config::render_errors(&format!("{name}.toml"), &src, &errors);
        insta::assert_snapshot!(name, rendered);
    }
}

/// `n` two-node clusters, about 75 bytes each, after a customer.
fn clusters(n: usize) -> String {
    let mut s = String::from("[[customers]]\nname = \"acme\"\ntime_zone = \"UTC\"\n\n");
    for i in 0..n {
        s.push_str(&format!(
            "[[clusters]]\nname = \"c{i}\"\ncustomer = \"acme\"\nnodes = [\"n{i}-a\", \"n{i}-b\"]\n\n"
        ));
    }
    s
}

/// Large files are parsed a piece at a time; the result must be the same as one document:
/// sub-tables stay with their array element, a string holding header-like lines is not cut,
/// and every span still points into the whole file.
#[test]
fn large_inventory_is_parsed_like_one_document() {
    let mut src = clusters(12_000); // ~900 KB: several pieces
    src.push_str(concat!(
        "[[customers]]\nname = \"late\"\n",
        "[customers.templates.unplanned]\n",
        "subject = \"late {{ host }}\"\n",
        "body = \"\"\"\n[[clusters]]\nname = \"not-a-cluster\"\n\"\"\"\n\n",
        "[[clusters]]\nname = \"last\"\ncustomer = \"late\"\nnodes = [\"z1\", \"z2\"]\n",
    ));
    let inv = config::parse(&src)
        .unwrap_or_else(|e| panic!("{}", config::render_errors("big", &src, &e)));
    assert_eq!(inv.clusters.len(), 12_001);
    assert_eq!(inv.customers.len(), 2);
    let last = inv.find_cluster("last").expect("last cluster");
    assert!(inv.find_cluster("not-a-cluster").is_none());
    let ctx =
        failover_core::template::sample_context(failover_core::inventory::MessageKind::Unplanned);
    let msg = inv
        .templates
        .render(
            &ctx,
            failover_core::inventory::MessageKind::Unplanned,
            Some(last),
            inv.cluster(last).customer,
        )
        .expect("renders");
    assert!(
        msg.body.contains("name = \"not-a-cluster\""),
        "{}",
        msg.body
    );

    // An error near the end is reported on its own line.
    let bad = src.replace("name = \"c11990\"", "name = \"c11990\"\ncolour = \"red\"");
    let errors = config::parse(&bad).expect_err("unknown field");
    let line = bad
        .lines()
        .position(|l| l == "colour = \"red\"")
        .expect("inserted")
        + 1;
    let rendered = config::render_errors("big.toml", &bad, &errors);
    assert!(
        rendered.contains(&format!("big.toml:{line}:")),
        "{rendered}"
    );
    assert!(rendered.contains("colour"), "{rendered}");
}

/// A table that TOML allows once is still allowed once when it lands in two pieces.
#[test]
fn table_defined_in_two_pieces_is_a_duplicate() {
    let src = format!(
        "[events]\nmerge_within = \"2m\"\n\n{}[events]\nflapping_count = 5\n",
        clusters(6_000)
    );
    let errors = config::parse(&src).expect_err("duplicate table");
    let rendered = config::render_errors("big.toml", &src, &errors);
    let line = src.lines().count() - 1;
    assert!(
        rendered.contains(&format!("big.toml:{line}:")),
        "{rendered}"
    );
    assert!(rendered.contains("duplicate key `events`"), "{rendered}");
}
