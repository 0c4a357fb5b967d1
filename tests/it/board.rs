//! The board page in headless Chromium (Debian's `chromium`, driven by
//! playwright-core from `tests/browser`): it loads from a running demo,
//! shows the counts, takes a new alert from the stream without a reload,
//! and opens a case. The screenshot is kept in
//! `target/test-artifacts/board.png`.

use crate::support::demo::{alert_records, get, Demo};
use crate::support::wait_until;
use std::process::Command;
use std::time::Duration;

#[test]
fn board_shows_counts_streams_a_new_alert_and_opens_a_case_in_chromium() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("tests/browser/node_modules/playwright-core").exists(),
        "playwright-core is not installed: run `npm ci --prefix tests/browser` (scripts/test.sh does)"
    );
    let demo = Demo::start(&["--days-per-minute", "20", "--cases-per-day", "120", "--days", "120"], None);
    let (code, page) = get(&demo.url("/"), None);
    assert_eq!(code, 200);
    assert!(page.contains("<html") || page.contains("<!doctype") || page.contains("<!DOCTYPE"));
    // Alerts on the board when it loads.
    wait_until("the demo's first alert record", Duration::from_secs(60), || alert_records(&demo.http) >= 1);
    let shots = root.join("target/test-artifacts");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("board.png");
    let _ = std::fs::remove_file(&shot);
    let out = Command::new("node")
        .arg(root.join("tests/browser/board.mjs"))
        .arg(demo.url("/"))
        .arg(&shot)
        .output()
        .expect("node runs");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "browser test failed: {said}");
    assert!(shot.exists(), "no screenshot: {said}");
    eprintln!("board: {said}");
}
