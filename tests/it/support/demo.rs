//! A running `jiancha demo` for the endpoint tests, and small HTTP helpers
//! (curl for plain requests, a raw socket reader for server-sent events).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A demo process serving on free loopback ports.
pub struct Demo {
    child: Child,
    /// Its working directory (data under `data/`).
    pub dir: tempfile::TempDir,
    /// `host:port` of HTTP.
    pub http: String,
    /// `host:port` of the PostgreSQL endpoint.
    pub sql: Option<String>,
    lines: Arc<Mutex<Vec<String>>>,
}

fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|i| &line[i + marker.len()..])
}

impl Demo {
    /// Starts `jiancha demo ARGS` with `config` (TOML text, if any) and
    /// waits for its addresses.
    pub fn start(args: &[&str], config: Option<&str>) -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_jiancha"));
        cmd.current_dir(dir.path())
            .arg("demo")
            .args(args)
            .env("JIANCHA__HTTP__LISTEN", "127.0.0.1:0")
            .env("JIANCHA__SQL__LISTEN", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(text) = config {
            let p = dir.path().join("jiancha.toml");
            std::fs::write(&p, text).unwrap();
            cmd.arg("--config").arg(&p);
        }
        let mut child = cmd.spawn().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        let started = Instant::now();
        let (mut http, mut sql) = (None, None);
        while started.elapsed() < Duration::from_secs(30) && (http.is_none() || sql.is_none()) {
            for l in lines.lock().unwrap().iter() {
                if let Some(rest) = after(l, "board and alert feed: http://") {
                    http = Some(rest.split('/').next().unwrap().to_string());
                }
                if let Some(rest) = after(l, "@") {
                    if l.contains("PostgreSQL protocol") {
                        sql = Some(rest.split('/').next().unwrap().to_string());
                    }
                }
                if let Some(rest) = after(l, "psql -h ") {
                    let mut p = rest.split_whitespace();
                    let host = p.next().unwrap();
                    let port = p.nth(1).unwrap();
                    sql = Some(format!("{host}:{port}"));
                }
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let http = http.unwrap_or_else(|| panic!("demo printed no address: {:?}", lines.lock().unwrap()));
        Demo { child, dir, http, sql, lines }
    }

    /// Waits until the demo has printed a line containing `text`.
    pub fn wait_for_line(&self, text: &str, within: Duration) -> bool {
        super::poll_until(within, || self.lines.lock().unwrap().iter().any(|l| l.contains(text)))
    }

    /// Waits up to `within` for the demo to exit.
    pub fn wait_exit(&mut self, within: Duration) -> bool {
        let started = Instant::now();
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            if started.elapsed() >= within {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://host:port` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET with curl: (status, body). `auth` is `user:password`.
pub fn get(url: &str, auth: Option<&str>) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "--max-time", "60", "-w", "\n%{http_code}", url]);
    if let Some(a) = auth {
        c.args(["-u", a]);
    }
    let out = c.output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// POST a JSON body with curl: (status, body). `auth` is `user:password`.
pub fn post(url: &str, auth: Option<&str>, body: &str) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "--max-time", "60", "-w", "\n%{http_code}", "-H", "content-type: application/json", "-d", body, url]);
    if let Some(a) = auth {
        c.args(["-u", a]);
    }
    let out = c.output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// GET a JSON body, asserting 200.
pub fn get_json(url: &str) -> serde_json::Value {
    let (code, body) = get(url, None);
    assert_eq!(code, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
}

/// The sum over its series (whatever their labels) of metric `name` on the
/// `/metrics` page of the server at `http` (`host:port`); `None` when the
/// page does not answer or has no such series.
pub fn metric(http: &str, name: &str) -> Option<f64> {
    let (code, body) = get(&format!("http://{http}/metrics"), None);
    if code != 200 {
        return None;
    }
    let mut sum = None;
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else { continue };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *sum.get_or_insert(0.0) += v;
        }
    }
    sum
}

/// Alert records the server at `http` has published so far (the feed's
/// records: `jiancha_alert_records_total` over every label); 0 while its
/// `/metrics` does not answer.
pub fn alert_records(http: &str) -> u64 {
    metric(http, "jiancha_alert_records_total").unwrap_or(0.0) as u64
}

/// Reads a server-sent-events stream for `dur`: the (id, data) of every
/// `alert` event. `last_id` is sent as `Last-Event-ID`.
pub fn sse(host: &str, path: &str, last_id: Option<&str>, dur: Duration) -> Vec<(String, String)> {
    sse_opened(host, path, last_id, dur, || {})
}

/// As [`sse`], calling `opened` once the response head has arrived: the
/// server has fixed where the stream starts by then.
pub fn sse_opened(
    host: &str,
    path: &str,
    last_id: Option<&str>,
    dur: Duration,
    opened: impl FnOnce(),
) -> Vec<(String, String)> {
    let mut opened = Some(opened);
    let mut s = TcpStream::connect(host).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n");
    if let Some(id) = last_id {
        req.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let deadline = Instant::now() + dur;
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        s.set_read_timeout(Some(left.min(Duration::from_millis(200)))).unwrap();
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if opened.is_some() && raw.windows(4).any(|w| w == b"\r\n\r\n") {
                    opened.take().unwrap()();
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("sse read: {e}"),
        }
    }
    parse_sse(&raw)
}

/// Splits an HTTP response with a chunked SSE body into its alert events.
pub fn parse_sse(raw: &[u8]) -> Vec<(String, String)> {
    let Some(head_end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else { return vec![] };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let mut body = Vec::new();
    let mut rest = &raw[head_end + 4..];
    if head.contains("transfer-encoding: chunked") {
        // Complete chunks only: a chunk cut off at the deadline is dropped.
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16).unwrap_or(0);
            if size == 0 || rest.len() < eol + 2 + size + 2 {
                break;
            }
            body.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            rest = &rest[eol + 2 + size + 2..];
        }
    } else {
        body.extend_from_slice(rest);
    }
    let text = String::from_utf8_lossy(&body);
    let mut out = Vec::new();
    // Only complete events (ended by a blank line).
    let complete = match text.rfind("\n\n") {
        Some(i) => &text[..i],
        None => "",
    };
    for block in complete.split("\n\n") {
        let (mut id, mut data, mut event) = (None, String::new(), "message");
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id:") {
                id = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            } else if let Some(v) = line.strip_prefix("event:") {
                event = if v.trim() == "alert" { "alert" } else { "other" };
            }
        }
        if let (Some(id), "alert") = (id, event) {
            out.push((id, data));
        }
    }
    out
}

/// The sequence number of a stream id `run-seq`.
pub fn seq(id: &str) -> u64 {
    id.rsplit('-').next().unwrap().parse().unwrap()
}
