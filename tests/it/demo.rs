//! `jiancha demo` from a folder with no configuration (the built-in
//! reference data): within a minute SQL over its data folder sees cases and
//! alerts; Ctrl-C stops it cleanly with the history flushed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn count(dir: &std::path::Path, data: &std::path::Path, query: &str) -> Option<u64> {
    let out = Command::new(env!("CARGO_BIN_EXE_jiancha"))
        .current_dir(dir)
        .args(["sql", "--format", "csv", "--data"])
        .arg(data)
        .arg(query)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).lines().nth(1)?.trim().parse().ok()
}

#[test]
fn demo_fills_the_data_folder_within_a_minute_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let child = Command::new(env!("CARGO_BIN_EXE_jiancha"))
        .current_dir(dir.path())
        .args(["demo", "--days-per-minute", "300", "--cases-per-day", "30", "--days", "30"])
        .env("JIANCHA__HTTP__LISTEN", "127.0.0.1:0")
        .env("JIANCHA__SQL__LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut seen = (0, 0);
    while started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(500));
        let cases = count(dir.path(), &data, "SELECT count(*) FROM cases").unwrap_or(0);
        let alerts = count(dir.path(), &data, "SELECT count(*) FROM alerts").unwrap_or(0);
        seen = (cases, alerts);
        if cases > 0 && alerts > 0 {
            break;
        }
    }
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-INT", &pid]).status();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(seen.0 > 0 && seen.1 > 0, "after {:?}: {seen:?} (cases, alerts)\n{stdout}", started.elapsed());
    assert!(out.status.success(), "exit {:?}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("jiancha sql --data"), "{stdout}");
    assert!(data.join(".jiancha-demo").exists());
}

#[test]
fn demo_refuses_a_data_folder_it_did_not_write() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/precious.txt"), "keep me").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_jiancha"))
        .current_dir(dir.path())
        .arg("demo")
        .env("JIANCHA__HTTP__LISTEN", "127.0.0.1:0")
        .env("JIANCHA__SQL__LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not written by `jiancha demo`"));
    assert!(dir.path().join("data/precious.txt").exists());
}
