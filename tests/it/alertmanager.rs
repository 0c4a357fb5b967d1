//! The Alertmanager push over HTTPS: a demo posts its cards to a stand-in
//! Alertmanager behind a private CA, trusted through `alertmanager.tls_ca`
//! (and refused without it), and what a 503 turned away arrives later.
//! The real Alertmanager over plain HTTP is in `metrics.rs`.

use crate::support::demo::{get, metric, Demo};
use crate::support::fake_am::{certs, FakeAm};
use crate::support::{poll_until, wait_until};
use std::collections::BTreeSet;
use std::time::Duration;

const DEMO: [&str; 6] = ["--days-per-minute", "60", "--cases-per-day", "60", "--days", "60"];

/// The alerts as JSON text: one per record (an alert's firing and its
/// resolved record differ).
fn records(alerts: &[serde_json::Value]) -> BTreeSet<String> {
    alerts.iter().map(|a| a.to_string()).collect()
}

#[test]
fn alertmanager_over_https_gets_the_cards_trusting_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs(dir.path());
    // Two 503s first: what they turned away must arrive later, by the
    // retries (the hourly resend of firing alerts does not come into it).
    let am = FakeAm::start(Some(&certs), &[503, 503]);
    let cfg = format!("[alertmanager]\nurl = \"{}\"\nresend = \"1h\"\ntls_ca = \"{}\"\n", am.url, certs.ca.display());
    let demo = Demo::start(&DEMO, Some(&cfg));
    wait_until("three requests answered, the last with 200", Duration::from_secs(90), || {
        am.requests().len() >= 3 && !am.accepted().is_empty()
    });
    let requests = am.requests();
    assert_eq!(requests.iter().map(|r| r.status).take(3).collect::<Vec<_>>(), [503, 503, 200]);
    let accepted = am.accepted();
    for a in &accepted {
        let l = &a["labels"];
        assert!(l["alertname"].as_str().is_some_and(|n| n.starts_with("jiancha_")), "{a}");
        for k in ["rule", "level", "region", "department", "case_id", "alert_id"] {
            assert!(l[k].is_string(), "{k} in {a}");
        }
    }
    // Every card turned away by a 503 arrives (retried, never skipped).
    let turned_away = records(&requests[0].alerts);
    assert!(!turned_away.is_empty());
    let missing = || turned_away.difference(&records(&am.accepted())).cloned().collect::<Vec<_>>();
    let delivered = poll_until(Duration::from_secs(30), || missing().is_empty());
    assert!(delivered, "{} of {} never delivered, e.g. {:?}", missing().len(), turned_away.len(), missing().first());
    // One client: later pushes reuse the connection.
    wait_until("more pushes", Duration::from_secs(30), || am.requests().len() >= 5);
    assert!(
        am.connections() < am.requests().len(),
        "{} connections for {} requests",
        am.connections(),
        am.requests().len()
    );
    assert!(metric(&demo.http, "jiancha_alertmanager_pushes_total").unwrap_or(0.0) > 0.0);
}

#[test]
fn alertmanager_over_https_without_the_ca_is_refused_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs(dir.path());
    let am = FakeAm::start(Some(&certs), &[]);
    let cfg = format!("[alertmanager]\nurl = \"{}\"\nresend = \"5s\"\n", am.url);
    let demo = Demo::start(&DEMO, Some(&cfg));
    // The handshake fails (the private CA is not among the system's roots),
    // so the push counts failures and retries: a new connection each time.
    let failed = || {
        let (code, body) = get(&demo.url("/metrics"), None);
        assert_eq!(code, 200);
        body.lines()
            .find(|l| l.starts_with("jiancha_alertmanager_pushes_total{outcome=\"failed\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    wait_until("failed pushes or a request", Duration::from_secs(90), || {
        !am.requests().is_empty() || (failed() > 0.0 && am.connections() >= 2)
    });
    assert!(am.requests().is_empty(), "a request got through without trusting the CA");
}
