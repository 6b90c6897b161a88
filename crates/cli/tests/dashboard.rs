//! The dashboard in a real browser: `tests/browser/dashboard.mjs` drives Debian's chromium
//! with playwright-core against this build's `serve` (the test command installs both; see
//! `scripts/test`). The script prints each scenario and fails on the first broken check.

use std::path::Path;
use std::process::Command;

#[test]
fn the_dashboard_works_in_a_real_browser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser");
    assert!(
        root.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed in {}: run scripts/test (or `npm ci` there)",
        root.display()
    );
    let chromium =
        std::env::var("FAILOVER_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "no browser at {chromium}: install Debian's chromium (scripts/test does)"
    );
    let shots = tempfile::tempdir().expect("tempdir");
    let out = Command::new("node")
        .arg(root.join("dashboard.mjs"))
        .env("FAILOVER_BIN", env!("CARGO_BIN_EXE_failover-notify"))
        .env("FAILOVER_CHROMIUM", &chromium)
        .env("FAILOVER_SCREENSHOTS", shots.path())
        .output()
        .expect("node runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for view in [
        "now",
        "clusters",
        "event",
        "windows-week",
        "windows-month",
        "maintenance",
    ] {
        for width in ["desktop", "phone"] {
            let shot = shots.path().join(format!("{view}-{width}.png"));
            let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
            assert!(
                size > 5_000,
                "{} is missing or blank ({size} bytes)",
                shot.display()
            );
        }
    }
}
