//! What `run` and `demo` serve beside the pipeline: HTTP on `http.listen`
//! (`/metrics`, `/healthz`, `/readyz`, the alert feed API and the board
//! page) and the PostgreSQL wire protocol on `sql.listen`, plus the
//! optional push to Alertmanager and the periodic figures.
//!
//! The pipeline thread owns the engine; it hands what the servers need to a
//! shared [`Live`] (alert records, metrics, the clock) and never waits on
//! them. The servers run on a small tokio runtime of their own.

pub mod alertmanager;
pub mod feed;
pub mod figures;
pub mod http;
mod notices;
pub mod pg;
pub mod users;

use crate::alert::AlertRecord;
use crate::config::Config;
pub use crate::pipeline::live::Live;
use datafusion_postgres::pgwire;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The servers could not start; the service stops before it reads an event.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A listen address could not be bound.
    #[error("{key} = {addr:?}: {cause}")]
    Bind {
        /// Config key.
        key: &'static str,
        /// The address.
        addr: String,
        /// Why.
        #[source]
        cause: std::io::Error,
    },
    /// The servers' runtime (threads) could not start.
    #[error("runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The SQL endpoint's runtime could not start.
    #[error("SQL runtime: {0}")]
    SqlRuntime(#[source] std::io::Error),
    /// The history could not be opened for SQL.
    #[error("SQL session over {data}: {source}")]
    Session {
        /// The history folder.
        data: PathBuf,
        /// Why.
        #[source]
        source: crate::sql::SqlError,
    },
    /// The SQL endpoint's limits could not be set up.
    #[error(transparent)]
    Limits(#[from] pg::limits::LimitsError),
    /// The SQL endpoint's sessions could not be set up.
    #[error("SQL endpoint: {0}")]
    Endpoint(#[source] crate::sql::SqlError),
    /// The TLS certificate or key cannot be used.
    #[error("sql.tls_cert / sql.tls_key: {0}")]
    Tls(#[source] TlsError),
    /// The Alertmanager client (its CA file, its URL).
    #[error(transparent)]
    Alertmanager(#[from] alertmanager::ClientError),
}

/// What is wrong with the TLS files.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read, or is not PEM.
    #[error("{path}: {cause}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        cause: std::io::Error,
    },
    /// The key file holds no private key.
    #[error("{0}: no private key")]
    NoKey(String),
    /// rustls refused the certificate and key.
    #[error("{0}")]
    Rustls(#[from] pgwire::tokio::tokio_rustls::rustls::Error),
}

/// The running servers; dropping it stops them at once, whatever query
/// is running (the shells flush history before they drop it).
pub struct Servers {
    /// HTTP, the figures and the Alertmanager push (`None` once dropped).
    rt: Option<tokio::runtime::Runtime>,
    /// The PostgreSQL endpoint's runtime: its own threads, at a lower CPU
    /// priority, so a heavy query cannot starve the pipeline or HTTP.
    sql_rt: Option<tokio::runtime::Runtime>,
    /// Where HTTP listens.
    pub http: SocketAddr,
    /// Where the PostgreSQL protocol listens (`None`: no users, not served).
    pub sql: Option<SocketAddr>,
}

impl Servers {
    /// Runs a future on the servers' runtime (for the shells' own tasks).
    pub fn spawn<F: std::future::Future<Output = ()> + Send + 'static>(&self, f: F) {
        if let Some(rt) = &self.rt {
            rt.spawn(f);
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        // Running statements are dropped with their tasks (DataFusion's
        // work stops with them); a task busy in one poll is not waited for.
        for rt in [self.sql_rt.take(), self.rt.take()].into_iter().flatten() {
            rt.shutdown_timeout(std::time::Duration::from_millis(500));
        }
    }
}

/// The SQL endpoint's runtime: `threads` workers (and its blocking
/// threads) at nice 10, below the pipeline and HTTP.
fn sql_runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .max_blocking_threads(threads.max(2))
        .thread_name("jiancha-sql")
        .on_thread_start(lower_priority)
        .enable_all()
        .build()
}

/// Lowers the calling thread's CPU priority (nice 10), on Linux.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority take no pointers; with PRIO_PROCESS a
    // thread id names that one thread on Linux.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

/// A [`ServeError::Bind`] of `key` = `addr`.
fn bind_err(key: &'static str, addr: &str) -> impl Fn(std::io::Error) -> ServeError {
    let addr = addr.to_string();
    move |cause| ServeError::Bind { key, addr: addr.clone(), cause }
}

fn bind(key: &'static str, addr: &str) -> Result<std::net::TcpListener, ServeError> {
    let l = std::net::TcpListener::bind(addr).map_err(bind_err(key, addr))?;
    l.set_nonblocking(true).map_err(bind_err(key, addr))?;
    Ok(l)
}

fn tls(cfg: &Config) -> Result<Option<pgwire::tokio::TlsAcceptor>, ServeError> {
    use pgwire::tokio::tokio_rustls::rustls;
    let (cert, key) = (&cfg.sql.tls_cert, &cfg.sql.tls_key);
    if cert.is_empty() && key.is_empty() {
        return Ok(None);
    }
    let err = |path: &str| {
        let path = path.to_string();
        move |cause| ServeError::Tls(TlsError::Read { path, cause })
    };
    let read = |p: &str| std::fs::read(p).map_err(err(p));
    let certs = rustls_pemfile::certs(&mut &read(cert)?[..]).collect::<Result<Vec<_>, _>>().map_err(err(cert))?;
    let key = rustls_pemfile::private_key(&mut &read(key)?[..])
        .map_err(err(key))?
        .ok_or_else(|| ServeError::Tls(TlsError::NoKey(key.to_string())))?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(e.into()))?;
    Ok(Some(pgwire::tokio::TlsAcceptor::from(Arc::new(config))))
}

/// The alerts firing as history has them, latest record each: what the feed
/// starts with after a restart, so the board and `GET /api/alerts` show the
/// cards raised before it.
const FIRING_SQL: &str = "SELECT r.alert_id, r.rule, r.level, r.state, r.\"at\", r.case_id, r.region, r.department,
       r.\"window\", r.item_code, r.due_date, r.retracted, r.earlier_case_id
FROM alert_records r
JOIN (SELECT alert_id, MAX(\"at\") AS last_at FROM alert_records GROUP BY alert_id) l
  ON r.alert_id = l.alert_id AND r.\"at\" = l.last_at
WHERE r.state = 'firing'
  AND NOT EXISTS (SELECT 1 FROM alert_records x
                  WHERE x.alert_id = r.alert_id AND x.\"at\" = r.\"at\" AND x.state <> 'firing')
ORDER BY r.\"at\", r.alert_id
LIMIT 100000";

async fn seed_feed(live: &Live, ctx: &datafusion::prelude::SessionContext) -> Result<usize, crate::sql::SqlError> {
    let batches = ctx.sql(FIRING_SQL).await?.collect().await?;
    let json = crate::sql::format::render(&batches, crate::sql::format::Format::Json)?;
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&json)?;
    let mut n = 0;
    for mut row in rows {
        let earlier = row.get("earlier_case_id").cloned().unwrap_or_default();
        row["detail"] =
            if earlier.is_null() { serde_json::json!({}) } else { serde_json::json!({ "earlier_case_id": earlier }) };
        if let Some(o) = row.as_object_mut() {
            o.remove("earlier_case_id");
        }
        let Ok(mut r) = serde_json::from_value::<AlertRecord>(row) else { continue };
        r.at_ms = crate::time::parse_rfc3339(&r.at).unwrap_or(0);
        match live.alert(&r) {
            Ok(_) => n += 1,
            Err(e) => tracing::warn!(error = %e, "an alert firing in history is left off the board"),
        }
    }
    Ok(n)
}

/// Binds and starts HTTP, SQL (when users exist), the figures and the
/// Alertmanager push.
pub fn start(cfg: &Config, live: Arc<Live>) -> Result<Servers, ServeError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("jiancha-serve")
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let http_l = bind("http.listen", &cfg.http.listen)?;
    let http = http_l.local_addr().map_err(bind_err("http.listen", &cfg.http.listen))?;
    let sql_l = if live.users.is_empty() { None } else { Some(bind("sql.listen", &cfg.sql.listen)?) };
    let sql = sql_l.as_ref().and_then(|l| l.local_addr().ok());
    let acceptor = tls(cfg)?;
    let session = |source| ServeError::Session { data: live.data.clone(), source };
    let am = &cfg.alertmanager;
    let pusher = match am.url.is_empty() {
        true => None,
        false => Some(alertmanager::Pusher::new(&am.url, (!am.tls_ca.is_empty()).then(|| Path::new(&am.tls_ca)))?),
    };
    let full = rt
        .block_on(crate::sql::session_with(&live.data, &live.refdata, cfg.time.zone.name(), Some(live.pending.clone())))
        .map_err(session)?;
    let stored = rt.block_on(crate::sql::session(&live.data, &live.refdata, cfg.time.zone.name())).map_err(session)?;
    match rt.block_on(seed_feed(&live, &full)) {
        Ok(0) => {}
        Ok(n) => tracing::info!("{n} alerts firing in history are on the board"),
        Err(e) => tracing::warn!(error = %e, "the alerts firing in history could not be read; the feed starts empty"),
    }
    let sql_rt = sql_runtime(cfg.sql.threads()).map_err(ServeError::SqlRuntime)?;
    let shared = match &sql_l {
        Some(_) => {
            let limits = pg::limits::Limits::new(&cfg.sql)?;
            Some(Arc::new(
                rt.block_on(pg::Shared::new(live.users.clone(), &full, limits)).map_err(ServeError::Endpoint)?,
            ))
        }
        None => None,
    };
    {
        let _g = rt.enter();
        let listener = tokio::net::TcpListener::from_std(http_l).map_err(bind_err("http.listen", &cfg.http.listen))?;
        // The case API reads history as written: a case's row and its
        // events come together there (the pending rows would show a case
        // before its events).
        let app = http::router(live.clone(), stored.clone());
        rt.spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "http server stopped; metrics, the API and the board are not served");
            }
        });
        if let (Some(l), Some(shared)) = (sql_l, shared) {
            let _g = sql_rt.enter();
            let listener = tokio::net::TcpListener::from_std(l).map_err(bind_err("sql.listen", &cfg.sql.listen))?;
            sql_rt.spawn(async move {
                loop {
                    let Ok((socket, _)) = listener.accept().await else { continue };
                    tokio::spawn(pg::serve_connection(socket, acceptor.clone(), shared.clone()));
                }
            });
        }
        rt.spawn(figures::run(live.clone(), full, cfg.metrics.figures_interval));
        if let Some(pusher) = pusher {
            let board = format!("http://{http}");
            rt.spawn(alertmanager::run(live.clone(), pusher, am.resend, board));
        }
    }
    Ok(Servers { rt: Some(rt), sql_rt: Some(sql_rt), http, sql })
}
