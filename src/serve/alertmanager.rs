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
//! tells two cases' cards apart there).
//!
//! Transport: one `reqwest` client (kept connections, a timeout per
//! request) over `http://` or `https://`; TLS is rustls, trusting the
//! system's roots and, with `alertmanager.tls_ca`, a private CA.
//!
//! A failed push is retried from the same position, so none is skipped.

use super::Live;
use crate::alert::{AlertRecord, AlertState};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long one push may take, connecting included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Records sent in one request at most.
const BATCH: usize = 500;

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

/// The client could not be set up (a startup error).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The CA file could not be read.
    #[error("alertmanager.tls_ca {}: {source}", path.display())]
    ReadCa {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The CA file is not PEM certificates.
    #[error("alertmanager.tls_ca {}: {}", path.display(), causes(source))]
    ParseCa {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The CA file holds no certificate.
    #[error("alertmanager.tls_ca {}: no PEM certificate in it", path.display())]
    NoCa {
        /// The file.
        path: PathBuf,
    },
    /// The HTTP client could not be built (the system's roots unreadable).
    #[error("alertmanager client: {}", causes(.0))]
    Build(#[source] reqwest::Error),
    /// `alertmanager.url` is not a URL requests can go to.
    #[error("alertmanager.url {url:?}: {}", causes(source))]
    Url {
        /// The URL pushed to.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
}

/// One push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// No answer: connection refused, TLS handshake failed, timed out…
    #[error("{url}: {}", causes(source))]
    Transport {
        /// The URL pushed to.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// Answered, but not with 2xx.
    #[error("{url} answered {status}: {body}")]
    Status {
        /// The URL pushed to.
        url: String,
        /// The answer's status.
        status: reqwest::StatusCode,
        /// The start of the answer's body (Alertmanager says what it refused).
        body: String,
    },
}

/// An error and its causes on one line: reqwest's own message only says
/// which request failed, its sources say why.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(c) = next {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        next = c.source();
    }
    s
}

/// The HTTP client of one Alertmanager: one connection pool, reused by
/// every push.
pub struct Pusher {
    client: reqwest::Client,
    url: String,
}

impl Pusher {
    /// A client for the Alertmanager at `base` (`http[s]://host:port`, any
    /// path prefix kept), trusting the system's roots and the certificates
    /// of the PEM file `tls_ca` if given.
    pub fn new(base: &str, tls_ca: Option<&Path>) -> Result<Pusher, ClientError> {
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("jiancha/", env!("CARGO_PKG_VERSION")))
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = tls_ca {
            let pem = std::fs::read(path).map_err(|source| ClientError::ReadCa { path: path.into(), source })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|source| ClientError::ParseCa { path: path.into(), source })?;
            if certs.is_empty() {
                return Err(ClientError::NoCa { path: path.into() });
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let client = b.build().map_err(ClientError::Build)?;
        let url = format!("{}/api/v2/alerts", base.trim_end_matches('/'));
        client.post(&url).build().map_err(|source| ClientError::Url { url: url.clone(), source })?;
        Ok(Pusher { client, url })
    }

    /// The URL alerts are posted to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// POSTs a JSON list of alerts; Ok on a 2xx answer.
    pub async fn post(&self, body: String) -> Result<(), PushError> {
        let transport = |source| PushError::Transport { url: self.url.clone(), source };
        let resp = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        // The body says why; a body that does not come is no reason to
        // hide the status.
        let text = resp.text().await.unwrap_or_default();
        let mut body: String = text.trim().chars().take(300).collect();
        if body.len() < text.trim().len() {
            body.push('…');
        }
        Err(PushError::Status { url: self.url.clone(), status, body })
    }
}

/// Pushes forever.
/// `generator` is the board's base URL (`http://host:port`), linked from
/// each alert.
pub async fn run(live: Arc<Live>, pusher: Pusher, resend: Duration, generator: String) {
    let url = pusher.url();
    let mut rx = live.feed.subscribe();
    let mut at = 0u64;
    let mut last_resend = tokio::time::Instant::now();
    let mut failing = false;
    let m = &live.metrics.alertmanager_pushes;
    m.with_label_values(&["sent"]);
    m.with_label_values(&["failed"]);
    loop {
        let batch = live.feed.since(at, BATCH);
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
        let n = records.len() as u64;
        match pusher.post(serde_json::Value::Array(records).to_string()).await {
            Ok(()) => {
                m.with_label_values(&["sent"]).inc_by(n);
                at = next;
                if failing {
                    eprintln!("jiancha: alertmanager {url}: pushing again");
                    failing = false;
                }
            }
            Err(e) => {
                m.with_label_values(&["failed"]).inc_by(n);
                if !failing {
                    eprintln!("jiancha: alertmanager {e}; retrying every 5 s");
                    failing = true;
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_ca_file_is_a_setup_error_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = Pusher::new("https://127.0.0.1:9093", Some(&missing)).err().unwrap();
        assert!(matches!(e, ClientError::ReadCa { .. }), "{e}");
        assert!(e.to_string().starts_with("alertmanager.tls_ca"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = Pusher::new("https://127.0.0.1:9093", Some(&empty)).err().unwrap();
        assert!(matches!(e, ClientError::NoCa { .. } | ClientError::ParseCa { .. }), "{e}");
    }
}
