//! A stand-in Alertmanager: `POST /api/v2/alerts` on a loopback port, over
//! plain HTTP or TLS (rustls), answering a scripted list of statuses (then
//! 200) and keeping every request's alerts; and a throwaway CA with a
//! certificate for 127.0.0.1, made with `openssl` as the PostgreSQL TLS test
//! makes its certificate.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One request the fake answered.
#[derive(Clone, Debug)]
pub struct Request {
    /// The status it answered.
    pub status: u16,
    /// The alerts posted.
    pub alerts: Vec<serde_json::Value>,
}

/// PEM files of a CA and of a server certificate it signed for 127.0.0.1.
pub struct Certs {
    /// The CA certificate (what a client trusts).
    pub ca: PathBuf,
    /// The server's certificate.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Makes a CA and a server certificate for IP 127.0.0.1 under `dir`.
pub fn certs(dir: &Path) -> Certs {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=jiancha test CA", "-keyout", "ca.key", "-out"];
    ca.push("ca.pem");
    ca.extend(ec);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-new", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr"];
    csr.extend(ec);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "2",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ],
    );
    Certs { ca: dir.join("ca.pem"), cert: dir.join("server.pem"), key: dir.join("server.key") }
}

/// The fake, serving until dropped.
pub struct FakeAm {
    /// `http://127.0.0.1:PORT` or `https://…`.
    pub url: String,
    requests: Arc<Mutex<Vec<Request>>>,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl FakeAm {
    /// Serves with the certificate of `tls` (plain HTTP without), answering
    /// the statuses of `script` in turn, then 200.
    pub fn start(tls: Option<&Certs>, script: &[u16]) -> FakeAm {
        let config = tls.map(|c| {
            let certs = rustls_pemfile::certs(&mut &std::fs::read(&c.cert).unwrap()[..])
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = rustls_pemfile::private_key(&mut &std::fs::read(&c.key).unwrap()[..]).unwrap().unwrap();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            Arc::new(
                rustls::ServerConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .unwrap()
                    .with_no_client_auth()
                    .with_single_cert(certs, key)
                    .unwrap(),
            )
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let fake = FakeAm {
            url: format!("{scheme}://127.0.0.1:{port}"),
            requests: Arc::default(),
            connections: Arc::default(),
            stop: Arc::default(),
            port,
        };
        let (requests, connections, stop) = (fake.requests.clone(), fake.connections.clone(), fake.stop.clone());
        let script = Arc::new(script.to_vec());
        std::thread::spawn(move || {
            for s in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(s) = s else { continue };
                connections.fetch_add(1, Ordering::SeqCst);
                let (requests, script, config) = (requests.clone(), script.clone(), config.clone());
                std::thread::spawn(move || match config {
                    Some(config) => {
                        let Ok(conn) = rustls::ServerConnection::new(config) else { return };
                        serve(rustls::StreamOwned::new(conn, s), &requests, &script);
                    }
                    None => serve(s, &requests, &script),
                });
            }
        });
        fake
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// The alerts of the requests answered 200.
    pub fn accepted(&self) -> Vec<serde_json::Value> {
        self.requests().into_iter().filter(|r| r.status == 200).flat_map(|r| r.alerts).collect()
    }

    /// Connections accepted (TLS handshakes that failed included).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FakeAm {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accepting thread so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Answers the requests of one connection until the client closes it (or
/// the TLS handshake fails: the first read errs).
fn serve<S: Read + Write>(stream: S, requests: &Mutex<Vec<Request>>, script: &[u16]) {
    let mut r = BufReader::new(stream);
    loop {
        let mut len = 0usize;
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let status = {
            let mut g = requests.lock().unwrap();
            let status = script.get(g.len()).copied().unwrap_or(200);
            g.push(Request { status, alerts: serde_json::from_slice(&body).unwrap_or_default() });
            status
        };
        let answer = format!("HTTP/1.1 {status} Scripted\r\nContent-Length: 9\r\n\r\nscripted\n");
        let s = r.get_mut();
        if s.write_all(answer.as_bytes()).and_then(|()| s.flush()).is_err() {
            return;
        }
    }
}
