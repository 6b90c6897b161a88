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
    assert_eq!(inv.keys.len(), 2);
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
