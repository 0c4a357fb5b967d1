//! Pushes supervision alerts to a Prometheus Alertmanager (API v2), so a
//! bureau's existing routing, silences, inhibition and notification bridges
//! (SMS, DingTalk, WeCom) carry them unchanged.
//!
//! Every record of the feed is sent in order: a firing record as an alert
//! with no end, a resolved or retracted one with `endsAt` set, which
//! resolves it there. Firing alerts are sent again every `resend`, as
//! Alertmanager expects of its clients. Labels: `alertname`
//! (`jiancha_<rule>`), `rule`, `level`, `region`, `department`, `case_id`
//! and `alert_id` (Alertmanager is not Prometheus: a per-case label is what
//! tells two cases' cards apart there). A failed push is retried from the
//! same position, so none is skipped.

use super::Live;
use crate::alert::{AlertRecord, AlertState};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The Alertmanager form of one record.
pub fn to_alert(r: &AlertRecord, generator: &str) -> serde_json::Value {
    let mut a = serde_json::json!({
        "labels": {
            "alertname": format!("jiancha_{}", r.rule.as_str()),
            "rule": r.rule.as_str(),
            "level": r.level.as_str(),
            "region": r.region.clone().unwrap_or_default(),
            "department": r.department.clone().unwrap_or_default(),
            "case_id": r.case_id,
            "alert_id": r.alert_id,
        },
        "annotations": {
            "summary": format!("{} {} card on case {}", r.rule.as_str(), r.level.as_str(), r.case_id),
            "window": r.window.clone().unwrap_or_default(),
            "item_code": r.item_code.clone().unwrap_or_default(),
            "due_date": r.due_date.clone().unwrap_or_default(),
            "state": r.state.as_str(),
        },
        "startsAt": r.at,
        "generatorURL": format!("{generator}/#case={}", r.case_id),
    });
    if r.state != AlertState::Firing {
        a["endsAt"] = serde_json::Value::String(r.at.clone());
    }
    a
}

/// POSTs JSON to `url` (`http://host:port/path`) and checks for a 2xx.
pub async fn post_json(url: &str, body: &str) -> Result<(), String> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let connect = tokio::net::TcpStream::connect(host);
    let mut s = tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .map_err(|_| format!("{host}: connect timed out"))?
        .map_err(|e| format!("{host}: {e}"))?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut resp))
        .await
        .map_err(|_| "no answer within 10 s".to_string())?
        .map_err(|e| e.to_string())?;
    let head = String::from_utf8_lossy(&resp[..resp.len().min(200)]).to_string();
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status.starts_with('2') {
        Ok(())
    } else {
        Err(format!("answered {}", head.lines().next().unwrap_or("nothing")))
    }
}

/// Pushes forever.
/// `generator` is the board's base URL (`http://host:port`), linked from
/// each alert.
pub async fn run(live: Arc<Live>, base: String, resend: Duration, generator: String) {
    let url = format!("{}/api/v2/alerts", base.trim_end_matches('/'));
    let mut rx = live.feed.subscribe();
    let mut at = 0u64;
    let mut last_resend = tokio::time::Instant::now();
    let mut failing = false;
    let m = &live.metrics.alertmanager_pushes;
    m.with_label_values(&["sent"]);
    m.with_label_values(&["failed"]);
    loop {
        let batch = live.feed.since(at, 500);
        let resend_due = last_resend.elapsed() >= resend;
        let (records, next): (Vec<serde_json::Value>, u64) = if !batch.entries.is_empty() {
            let next = batch.entries.last().map_or(at, |e| e.seq);
            (batch.entries.iter().map(|e| to_alert(&e.record, &generator)).collect(), next)
        } else if resend_due {
            last_resend = tokio::time::Instant::now();
            (live.feed.firing().iter().map(|e| to_alert(&e.record, &generator)).collect(), at)
        } else {
            tokio::select! {
                _ = rx.changed() => {}
                _ = tokio::time::sleep(resend.saturating_sub(last_resend.elapsed()).max(Duration::from_millis(100))) => {}
            }
            continue;
        };
        if records.is_empty() {
            at = next;
            continue;
        }
        let body = serde_json::Value::Array(records.clone()).to_string();
        match post_json(&url, &body).await {
            Ok(()) => {
                m.with_label_values(&["sent"]).inc_by(records.len() as u64);
                at = next;
                if failing {
                    eprintln!("jiancha: alertmanager {base}: pushing again");
                    failing = false;
                }
            }
            Err(e) => {
                m.with_label_values(&["failed"]).inc_by(records.len() as u64);
                if !failing {
                    eprintln!("jiancha: alertmanager {base}: {e}; retrying every 5 s");
                    failing = true;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}
