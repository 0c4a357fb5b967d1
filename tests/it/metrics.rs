//! `/metrics` from a running demo: clean under `promtool check metrics`,
//! every metric the dashboards and rules use is there, a real Prometheus
//! scrapes it and answers the on-time rate through its query API, and a
//! real Alertmanager receives jiancha's cards and sees them resolve.

use crate::support::demo::{get, get_json, Demo};
use crate::support::free_port;
use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Metric names in a text exposition (histogram series to their base).
fn names(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_string())
        .map(|n| {
            for s in ["_bucket", "_sum", "_count"] {
                if let Some(b) = n.strip_suffix(s) {
                    if b.ends_with("_seconds") {
                        return b.to_string();
                    }
                }
            }
            n
        })
        .collect()
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn scrape_is_promtool_clean_has_every_dashboard_metric_and_prometheus_reads_the_on_time_rate() {
    let demo = Demo::start(&["--days-per-minute", "120", "--cases-per-day", "60", "--days", "40"], None);
    // Wait until every metric the dashboards and rules use has a sample.
    // Figures are computed every 15 s from history (never sooner than ten
    // times the last computation took: in a debug build on a busy machine,
    // tens of seconds apart), and a rate has no sample until its period has
    // a denominator: the good-rating rate waits for the first rating, which
    // can come a computation after the first on-time rate.
    let used = super::deploy::metric_names_used();
    assert!(!used.is_empty());
    let started = Instant::now();
    let mut scrape = String::new();
    while started.elapsed() < Duration::from_secs(240) {
        scrape = get(&demo.url("/metrics"), None).1;
        let have = names(&scrape);
        if used.iter().all(|m| have.contains(m)) {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (scripts/test.sh installs prometheus)");
    check.stdin.take().unwrap().write_all(scrape.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}");

    let have = names(&scrape);
    let missing: Vec<&String> = used.iter().filter(|m| !have.contains(*m)).collect();
    assert!(missing.is_empty(), "used by dashboards or rules but not exported: {missing:?}");

    // A real Prometheus scraping the demo every second.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: jiancha\n    static_configs:\n      - targets: ['{}']\n",
            demo.http
        ),
    )
    .unwrap();
    let _prom = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed"),
    );
    let q = format!("http://127.0.0.1:{port}/api/v1/query?query=jiancha_briefing_on_time_rate");
    let started = Instant::now();
    let mut result = serde_json::Value::Null;
    while started.elapsed() < Duration::from_secs(60) {
        let (code, body) = get(&q, None);
        if code == 200 {
            result = serde_json::from_str(&body).unwrap();
            if result["data"]["result"].as_array().is_some_and(|r| !r.is_empty()) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let series = result["data"]["result"].as_array().cloned().unwrap_or_default();
    assert!(!series.is_empty(), "Prometheus has no on-time rate: {result}");
    for s in &series {
        assert!(s["metric"]["region"].is_string() && s["metric"]["department"].is_string(), "{s}");
        let v: f64 = s["value"][1].as_str().unwrap().parse().unwrap();
        assert!((0.0..=1.0).contains(&v), "{s}");
        // The same series is in jiancha's own exposition.
        let line = format!(
            "jiancha_briefing_on_time_rate{{department=\"{}\",region=\"{}\"}}",
            s["metric"]["department"].as_str().unwrap(),
            s["metric"]["region"].as_str().unwrap()
        );
        assert!(scrape.contains(&line) || get(&demo.url("/metrics"), None).1.contains(&line), "{line}");
    }
    // The dashboard's on-time rate by department, evaluated by this
    // Prometheus as Grafana would ask: every series carries the
    // department's name (jiancha_department_info, from departments.csv).
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/dashboards/supervision-overview.json");
    let dash: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let panel = dash["panels"].as_array().unwrap().iter().find(|p| p["id"] == 10).expect("panel 10");
    assert_eq!(panel["targets"][0]["legendFormat"], "{{name}}");
    let area = series[0]["metric"]["region"].as_str().unwrap();
    let expr = panel["targets"][0]["expr"].as_str().unwrap().replace("$area", area).replace("$department", ".*");
    let encoded: String = expr
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (code, body) = get(&format!("http://127.0.0.1:{port}/api/v1/query?query={encoded}"), None);
    assert_eq!(code, 200, "{expr}: {body}");
    let named: serde_json::Value = serde_json::from_str(&body).unwrap();
    let named = named["data"]["result"].as_array().cloned().unwrap_or_default();
    assert!(!named.is_empty(), "{expr}: {body}");
    for s in &named {
        let name = s["metric"]["name"].as_str().unwrap_or_else(|| panic!("no name: {s}"));
        assert!(!name.is_ascii(), "{s}: the department's name, not its code");
    }
}

/// The live figures are the monthly report of the pipeline's month over the
/// history as it stands: once the demo's span is over and its history
/// flushed, the next computation's `jiancha_briefing_completed_cases` per
/// region and department equal `jiancha report monthly-briefing` over the
/// demo's data folder for one month of the span, and are not all zero.
#[test]
fn live_briefing_figures_equal_the_monthly_report_once_the_demo_is_over() {
    // A span longer than the first computation (at 15 s), which then reads
    // history as it stood part-way.
    let demo = Demo::start(&["--days-per-minute", "120", "--cases-per-day", "40", "--days", "40"], None);
    assert!(demo.wait_for_line("the simulated span is over", Duration::from_secs(180)), "the demo's span never ended");
    let over = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    // Figures computed after that (every 15 s, or ten times their cost).
    let started = Instant::now();
    let mut scrape = String::new();
    while started.elapsed() < Duration::from_secs(240) {
        scrape = get(&demo.url("/metrics"), None).1;
        let updated = scrape
            .lines()
            .find_map(|l| l.strip_prefix("jiancha_figures_updated_timestamp_seconds "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        if updated.is_some_and(|t| t > over + 1.0) {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    // (region, department) -> completed, from the exposition.
    let mut live = std::collections::BTreeMap::new();
    for l in scrape.lines().filter_map(|l| l.strip_prefix("jiancha_briefing_completed_cases{")) {
        let (labels, value) = l.split_once("} ").unwrap();
        let label = |k: &str| labels.split(&format!("{k}=\"")).nth(1).unwrap().split('"').next().unwrap().to_string();
        live.insert((label("region"), label("department")), value.trim().parse::<f64>().unwrap() as i64);
    }
    assert!(live.values().sum::<i64>() > 0, "the live figures count no completed case: {live:?}");
    let regions: BTreeSet<String> = live.keys().map(|(r, _)| r.clone()).collect();
    let report = |month: &str, region: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_jiancha"))
            .current_dir(demo.dir.path())
            .args(["report", "monthly-briefing", "--data", "data", "--month", month, "--region", region])
            .args(["--format", "json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        rows.into_iter()
            .map(|r| {
                ((region.to_string(), r["department"].as_str().unwrap().to_string()), r["completed"].as_i64().unwrap())
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let months = ["2026-03", "2026-04", "2026-05", "2026-06", "2026-07"];
    let mut seen = Vec::new();
    for m in months {
        let mut want = std::collections::BTreeMap::new();
        for r in &regions {
            want.extend(report(m, r));
        }
        if want == live {
            return;
        }
        seen.push((m, want));
    }
    panic!("the live figures {live:?} are no month's report: {seen:?}");
}

#[test]
fn alertmanager_receives_cards_and_sees_them_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("alertmanager.yml");
    std::fs::write(&cfg, "route:\n  receiver: 'null'\n  group_wait: 1s\nreceivers:\n  - name: 'null'\n").unwrap();
    let am = format!("http://127.0.0.1:{port}");
    let _am = Killed(
        Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.path={}", dir.path().join("am").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager is installed"),
    );
    let demo = Demo::start(
        &["--days-per-minute", "60", "--cases-per-day", "60", "--days", "60"],
        Some(&format!("[alertmanager]\nurl = \"{am}\"\nresend = \"5s\"\n")),
    );
    // Cards arrive in Alertmanager with jiancha's labels.
    let started = Instant::now();
    let mut seen_firing = BTreeSet::new();
    let mut resolved_there = None;
    while started.elapsed() < Duration::from_secs(120) && resolved_there.is_none() {
        std::thread::sleep(Duration::from_secs(1));
        let (code, body) = get(&format!("{am}/api/v2/alerts"), None);
        if code != 200 {
            continue;
        }
        let active: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
        let now_active: BTreeSet<String> =
            active.iter().filter_map(|a| a["labels"]["alert_id"].as_str().map(str::to_string)).collect();
        for a in &active {
            let l = &a["labels"];
            assert!(l["alertname"].as_str().unwrap().starts_with("jiancha_"), "{a}");
            for k in ["rule", "level", "region", "department", "case_id"] {
                assert!(l[k].is_string(), "{k} in {a}");
            }
        }
        // An alert seen active, now resolved in jiancha, and gone there.
        let resolved = get_json(&demo.url("/api/alerts?state=resolved&limit=1000"));
        for r in resolved["alerts"].as_array().unwrap() {
            let id = r["alert_id"].as_str().unwrap();
            if seen_firing.contains(id) && !now_active.contains(id) {
                resolved_there = Some(id.to_string());
            }
        }
        seen_firing.extend(now_active);
    }
    assert!(!seen_firing.is_empty(), "no jiancha alert reached Alertmanager");
    let id = resolved_there.expect("an alert resolved in jiancha was resolved in Alertmanager");
    // amtool shows what Alertmanager holds.
    let out = Command::new("amtool")
        .args(["alert", "query", "--alertmanager.url", &am, "-o", "json"])
        .output()
        .expect("amtool is installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(shown.iter().any(|a| a["labels"]["alertname"].as_str().is_some_and(|n| n.starts_with("jiancha_"))));
    assert!(!shown.iter().any(|a| a["labels"]["alert_id"] == id.as_str()), "{id} still active");
}
