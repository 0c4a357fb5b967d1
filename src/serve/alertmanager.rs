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
//! Failures: a push that fails on the way (connection, TLS, timeout) or is
//! answered with anything but 2xx is retried from the same position, after
//! a delay that doubles up to a cap, with jitter — so no record is skipped
//! and a recovering Alertmanager is not hit by every instance at once. Two
//! answers are final: 400 and 422 say the alerts themselves are invalid
//! (Alertmanager has stored the valid ones of the batch), so the batch is
//! logged with the answer, counted as `rejected` and not sent again. If
//! Alertmanager stays away so long that records leave the feed's ring
//! before they are pushed, that is said on stderr, counted as `missed`, and
//! every firing alert is sent again as soon as the push is caught up — the
//! alerts missed as firing then arrive, and those missed as ended expire
//! there (Alertmanager's `resolve_timeout`) since they are no longer resent.

use super::feed::Feed;
use super::Live;
use crate::alert::{AlertRecord, AlertState};
/// Delays between failed pushes (the default: 1 s, doubling to 30 s).
pub use crate::backoff::Backoff;
use prometheus::IntCounterVec;
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

impl PushError {
    /// Whether sending the same alerts again can succeed: not when
    /// Alertmanager refused them as invalid (400, 422).
    pub fn retryable(&self) -> bool {
        match self {
            PushError::Transport { .. } => true,
            PushError::Status { status, .. } => !matches!(status.as_u16(), 400 | 422),
        }
    }
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
    push(&live.feed, &live.metrics.alertmanager_pushes, &pusher, resend, Backoff::default(), &generator).await
}

/// The push loop over `feed`, counting records in `pushes` by outcome
/// (`sent`, `failed`, `rejected`, `missed`).
pub async fn push(
    feed: &Feed,
    pushes: &IntCounterVec,
    pusher: &Pusher,
    resend: Duration,
    backoff: Backoff,
    generator: &str,
) {
    let url = pusher.url();
    let mut rx = feed.subscribe();
    let mut at = 0u64;
    let mut last_resend = tokio::time::Instant::now();
    // Resend as soon as the push is caught up, whatever the time.
    let mut resend_now = false;
    let mut failures = 0u32;
    // The last failure said on stderr (an outage is said once, and again
    // only when its cause changes).
    let mut said = String::new();
    loop {
        let batch = feed.since(at, BATCH);
        if batch.gap {
            // Gone from the ring: go on from the first record kept.
            let first = batch.entries.first().map_or(at, |e| e.seq);
            let missed = first.saturating_sub(at + 1);
            pushes.with_label_values(&["missed"]).inc_by(missed);
            tracing::warn!(
                "alertmanager {url}: {missed} alert records left the feed before they could be pushed; \
                 every firing alert will be sent again"
            );
            at = first.saturating_sub(1);
            resend_now = true;
        }
        let resend_due = resend_now || last_resend.elapsed() >= resend;
        let (records, next, resending) = if !batch.entries.is_empty() {
            let next = batch.entries.last().map_or(at, |e| e.seq);
            (batch.entries.iter().map(|e| to_alert(&e.record, generator)).collect::<Vec<_>>(), next, false)
        } else if resend_due {
            (feed.firing().iter().map(|e| to_alert(&e.record, generator)).collect(), at, true)
        } else {
            tokio::select! {
                _ = rx.changed() => {}
                _ = tokio::time::sleep(resend.saturating_sub(last_resend.elapsed()).max(Duration::from_millis(100))) => {}
            }
            continue;
        };
        let n = records.len() as u64;
        let result =
            if records.is_empty() { Ok(()) } else { pusher.post(serde_json::Value::Array(records).to_string()).await };
        match result {
            Ok(()) => {
                pushes.with_label_values(&["sent"]).inc_by(n);
                at = next;
                if resending {
                    last_resend = tokio::time::Instant::now();
                    resend_now = false;
                }
                if failures > 0 {
                    tracing::info!("alertmanager {url}: pushing again");
                    failures = 0;
                    said.clear();
                }
            }
            Err(e) if !e.retryable() => {
                pushes.with_label_values(&["rejected"]).inc_by(n);
                let what = if resending { "resent firing alerts" } else { "records" };
                tracing::error!("alertmanager {e}; these {n} {what} are not sent again");
                at = next;
                if resending {
                    last_resend = tokio::time::Instant::now();
                    resend_now = false;
                }
                failures = 0;
                said.clear();
            }
            Err(e) => {
                pushes.with_label_values(&["failed"]).inc_by(n);
                failures = failures.saturating_add(1);
                let e = e.to_string();
                if e != said {
                    tracing::warn!("alertmanager {e}; retrying with backoff, at most {:?} apart", backoff.max);
                    said = e;
                }
                tokio::time::sleep(backoff.delay(failures)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    fn record(case: &str, state: &str) -> AlertRecord {
        serde_json::from_value(serde_json::json!({
            "alert_id": format!("{case}/overdue"), "rule": "overdue", "level": "red", "state": state,
            "at": "2026-03-02T09:00:00+08:00", "case_id": case, "region": "220421",
            "department": "tax", "window": null, "item_code": "T-1", "due_date": null,
            "retracted": false, "detail": {}
        }))
        .unwrap()
    }

    /// A stand-in Alertmanager on loopback answering `script` in turn (then
    /// 200), keeping the alert ids of every request it answered 200.
    struct Fake {
        base: String,
        requests: Arc<AtomicUsize>,
        accepted: Arc<Mutex<Vec<String>>>,
    }

    async fn fake(script: Vec<u16>) -> Fake {
        let requests = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let (r, a) = (requests.clone(), accepted.clone());
        let app = axum::Router::new().route(
            "/api/v2/alerts",
            axum::routing::post(move |body: String| {
                let (r, a, script) = (r.clone(), a.clone(), script.clone());
                async move {
                    let i = r.fetch_add(1, Ordering::SeqCst);
                    let code = script.get(i).copied().unwrap_or(200);
                    if code == 200 {
                        let alerts: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
                        let mut a = a.lock().unwrap();
                        a.extend(alerts.iter().filter_map(|x| x["labels"]["alert_id"].as_str().map(String::from)));
                    }
                    (StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), "scripted answer")
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await });
        Fake { base, requests, accepted }
    }

    fn counters() -> IntCounterVec {
        IntCounterVec::new(prometheus::Opts::new("pushes", "test"), &["outcome"]).unwrap()
    }

    /// Waits (up to 10 s) for `done`.
    async fn until(mut done: impl FnMut() -> bool) -> bool {
        for _ in 0..1000 {
            if done() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    const QUICK: Backoff = Backoff { first: Duration::from_millis(20), max: Duration::from_millis(80) };

    #[test]
    fn backoff_doubles_to_its_cap_with_jitter() {
        let b = Backoff { first: Duration::from_secs(1), max: Duration::from_secs(30) };
        for (failures, full) in [(1, 1), (2, 2), (3, 4), (5, 16), (6, 30), (40, 30)] {
            let d = b.delay(failures);
            let full = Duration::from_secs(full);
            assert!(d >= full / 2 && d <= full, "failure {failures}: {d:?} not within {full:?}/2..={full:?}");
        }
    }

    /// A pusher at `base` over a feed (of `ring` records) holding
    /// `records` (case, state), pushing on a task of its own.
    fn pushing(
        base: &str,
        ring: usize,
        records: &[(&str, &str)],
    ) -> (Arc<Feed>, IntCounterVec, tokio::task::JoinHandle<()>) {
        let feed = Arc::new(Feed::new(ring));
        for (c, s) in records {
            feed.push(&record(c, s)).unwrap();
        }
        let pushes = counters();
        let pusher = Pusher::new(base, None).unwrap();
        let (f, p) = (feed.clone(), pushes.clone());
        let task =
            tokio::spawn(async move { push(&f, &p, &pusher, Duration::from_secs(3600), QUICK, "http://b").await });
        (feed, pushes, task)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_card_gets_through_after_503s_with_backoff() {
        let am = fake(vec![503, 503, 503]).await;
        let (feed, pushes, task) = pushing(&am.base, 100, &[("C1", "firing")]);
        assert!(until(|| !am.accepted.lock().unwrap().is_empty()).await, "the card never got through");
        assert_eq!(am.requests.load(Ordering::SeqCst), 4, "three 503s, then the card");
        assert_eq!(*am.accepted.lock().unwrap(), vec!["C1/overdue"]);
        assert_eq!(pushes.with_label_values(&["failed"]).get(), 3);
        assert_eq!(pushes.with_label_values(&["sent"]).get(), 1);
        // The next record goes out on its own, once.
        feed.push(&record("C1", "resolved")).unwrap();
        assert!(until(|| am.accepted.lock().unwrap().len() == 2).await);
        task.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_batch_is_not_sent_again_and_the_next_one_is() {
        let am = fake(vec![400]).await;
        let (feed, pushes, task) = pushing(&am.base, 100, &[("C1", "firing")]);
        assert!(until(|| pushes.with_label_values(&["rejected"]).get() == 1).await);
        feed.push(&record("C2", "firing")).unwrap();
        assert!(until(|| !am.accepted.lock().unwrap().is_empty()).await, "the next record never got through");
        assert_eq!(*am.accepted.lock().unwrap(), vec!["C2/overdue"], "the refused batch was sent again");
        assert_eq!(am.requests.load(Ordering::SeqCst), 2);
        task.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_lost_from_the_ring_are_counted_and_firing_alerts_resent() {
        // Nobody listens: every push fails until the fake starts.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // C1 firing, C2 firing then resolved, C3 firing: the ring of two
        // keeps the last two records only. (All in the feed before the
        // pusher starts: pushed while it runs, its batch could hold them.)
        let records = [("C1", "firing"), ("C2", "firing"), ("C2", "resolved"), ("C3", "firing")];
        let (_feed, pushes, task) = pushing(&format!("http://127.0.0.1:{port}"), 2, &records);
        assert!(until(|| pushes.with_label_values(&["failed"]).get() >= 1).await);
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
        let a = accepted.clone();
        let app = axum::Router::new().route(
            "/api/v2/alerts",
            axum::routing::post(move |body: String| {
                let a = a.clone();
                async move {
                    let alerts: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
                    let mut a = a.lock().unwrap();
                    a.extend(alerts.iter().filter_map(|x| x["labels"]["alert_id"].as_str().map(String::from)));
                    StatusCode::OK
                }
            }),
        );
        tokio::spawn(async move { axum::serve(l, app).await });
        // The two records kept, then every firing alert (C1 and C3) again.
        let want = ["C2/overdue", "C3/overdue", "C1/overdue", "C3/overdue"];
        assert!(until(|| accepted.lock().unwrap().len() >= 4).await, "{:?}", accepted.lock().unwrap());
        assert_eq!(*accepted.lock().unwrap(), want);
        assert_eq!(pushes.with_label_values(&["missed"]).get(), 2, "C1 firing and C2 firing left the ring");
        task.abort();
    }

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
