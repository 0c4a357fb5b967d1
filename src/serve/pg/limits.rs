//! What one SQL user may take from the process: memory, time and a share
//! of the statements running at once.
//!
//! - **Memory**: every session of the endpoint runs on one DataFusion
//!   runtime whose memory pool holds `sql.memory_limit`; sorts, joins and
//!   aggregations spill to disk before they fail, and a query past the limit
//!   fails with SQLSTATE 53200, freeing what it held.
//! - **Time**: a statement ends at its deadline — the connection's
//!   `statement_timeout`, at most `sql.statement_timeout` — or at a cancel
//!   request (psql's Ctrl-C), SQLSTATE 57014. Both the planning and the
//!   streaming of rows are bounded: DataFusion computes while rows are
//!   pulled, after the handler returned, so the row stream itself is
//!   wrapped ([`bound_rows`]). Dropping it stops DataFusion's tasks.
//! - **Concurrency**: a statement takes a permit of its user and one of the
//!   endpoint (`sql.max_concurrent_queries_per_user`,
//!   `sql.max_concurrent_queries`) for as long as its rows stream; the next
//!   waits up to [`QUEUE_WAIT`], then is refused with SQLSTATE 53300.

use crate::config::SqlConfig;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion_postgres::pgwire;
use futures::future::BoxFuture;
use futures::{FutureExt, Stream};
use pgwire::api::results::SendableRowStream;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// How long a statement waits for a permit before it is refused.
pub const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// The endpoint's limits, shared by every connection.
pub struct Limits {
    /// The longest a statement may run; a connection may only lower it.
    pub statement_timeout: Duration,
    /// Bytes the queries may hold together.
    pub memory_limit: usize,
    /// The runtime every endpoint session executes on (its memory pool).
    pub runtime: Arc<RuntimeEnv>,
    total: Arc<Semaphore>,
    max_total: usize,
    per_user: usize,
    users: std::sync::Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A statement's permits, held until its rows have streamed.
pub struct Permits {
    _user: OwnedSemaphorePermit,
    _total: OwnedSemaphorePermit,
}

fn error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".to_owned(), code.to_owned(), message)))
}

/// Whole seconds when whole, else milliseconds.
pub fn show_duration(d: Duration) -> String {
    if d.as_millis().is_multiple_of(1000) {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The endpoint's limits could not be set up; the SQL endpoint, and the
/// service with it, does not start.
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    /// `sql.memory_limit` is not a size.
    #[error(transparent)]
    MemoryLimit(#[from] crate::config::ValueError),
    /// DataFusion refused the runtime with that memory pool.
    #[error("SQL runtime: {0}")]
    Runtime(#[source] DataFusionError),
}

impl Limits {
    /// The limits of `cfg`.
    pub fn new(cfg: &SqlConfig) -> Result<Limits, LimitsError> {
        let memory_limit = cfg.memory_limit_bytes()?;
        // FairSpillPool: operators that can spill share the pool fairly and
        // spill rather than starve each other; the tracking wrapper names
        // the largest consumers in the error.
        let pool = TrackConsumersPool::new(FairSpillPool::new(memory_limit), NonZeroUsize::new(3).expect("3 > 0"));
        let runtime = RuntimeEnvBuilder::new()
            .with_object_list_cache_limit(0)
            .with_memory_pool(Arc::new(pool))
            .build_arc()
            .map_err(LimitsError::Runtime)?;
        Ok(Limits {
            statement_timeout: cfg.statement_timeout,
            memory_limit,
            runtime,
            total: Arc::new(Semaphore::new(cfg.max_concurrent_queries as usize)),
            max_total: cfg.max_concurrent_queries as usize,
            per_user: cfg.max_concurrent_queries_per_user as usize,
            users: Default::default(),
        })
    }

    /// Waits (up to [`QUEUE_WAIT`]) for a permit of `user` and one of the
    /// endpoint.
    pub async fn admit(&self, user: &str) -> PgWireResult<Permits> {
        let mine = {
            let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
            users.entry(user.to_string()).or_insert_with(|| Arc::new(Semaphore::new(self.per_user))).clone()
        };
        let busy = |what: &str| {
            error(
                "53300",
                format!(
                    "too many statements running {what}; tried for {}s, try again shortly \
                     (sql.max_concurrent_queries_per_user = {}, sql.max_concurrent_queries = {})",
                    QUEUE_WAIT.as_secs(),
                    self.per_user,
                    self.max_total,
                ),
            )
        };
        let deadline = tokio::time::Instant::now() + QUEUE_WAIT;
        let user_permit = match tokio::time::timeout_at(deadline, mine.acquire_owned()).await {
            Ok(Ok(p)) => p,
            _ => return Err(busy(&format!("for user {user:?}"))),
        };
        let total_permit = match tokio::time::timeout_at(deadline, self.total.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            _ => return Err(busy("on this server")),
        };
        Ok(Permits { _user: user_permit, _total: total_permit })
    }
}

/// What ends a running statement early: its deadline and the connection's
/// cancel requests (a counter that each request moves on).
#[derive(Clone)]
pub struct Stop {
    deadline: tokio::time::Instant,
    timeout: Duration,
    cancel: watch::Receiver<u64>,
}

impl Stop {
    /// A statement starting now, ending after `timeout` or at the next
    /// cancel request on `cancel`.
    pub fn new(timeout: Duration, cancel: &watch::Sender<u64>) -> Stop {
        Stop { deadline: tokio::time::Instant::now() + timeout, timeout, cancel: cancel.subscribe() }
    }

    /// Resolves with the error to answer when the statement must end.
    fn ended(&self) -> BoxFuture<'static, PgWireError> {
        let (deadline, timeout, mut cancel) = (self.deadline, self.timeout, self.cancel.clone());
        async move {
            let cancelled = async {
                // A closed channel (the connection is going) cancels nothing.
                if cancel.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => error(
                    "57014",
                    format!("canceling statement due to statement timeout ({})", show_duration(timeout)),
                ),
                _ = cancelled => PgWireError::QueryCanceled,
            }
        }
        .boxed()
    }

    /// Runs `work` until it finishes or the statement must end.
    pub async fn bound<T>(&self, work: impl std::future::Future<Output = PgWireResult<T>>) -> PgWireResult<T> {
        tokio::select! {
            r = work => r,
            e = self.ended() => Err(e),
        }
    }
}

/// `rows`, ended with an error at the statement's deadline or cancel, and
/// with a clear error when the memory pool refuses the query. The permits
/// are held until the stream is dropped.
pub fn bound_rows(
    rows: SendableRowStream,
    stop: &Stop,
    permits: Arc<Permits>,
    memory_limit: usize,
) -> SendableRowStream {
    Box::pin(Bounded { rows: Some(rows), ended: stop.ended(), _permits: permits, memory_limit })
}

struct Bounded {
    /// `None` once ended: DataFusion's work stops when it is dropped.
    rows: Option<SendableRowStream>,
    ended: BoxFuture<'static, PgWireError>,
    _permits: Arc<Permits>,
    memory_limit: usize,
}

impl Stream for Bounded {
    type Item = PgWireResult<DataRow>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(rows) = this.rows.as_mut() else { return Poll::Ready(None) };
        if let Poll::Ready(e) = this.ended.poll_unpin(cx) {
            this.rows = None;
            return Poll::Ready(Some(Err(e)));
        }
        match rows.as_mut().poll_next(cx) {
            Poll::Ready(Some(Err(e))) => {
                this.rows = None;
                Poll::Ready(Some(Err(explain(e, this.memory_limit))))
            }
            other => other,
        }
    }
}

/// DataFusion's memory refusal as PostgreSQL's out-of-memory error, naming
/// the limit; any other error as it is.
pub fn explain(e: PgWireError, memory_limit: usize) -> PgWireError {
    let exhausted = match &e {
        PgWireError::ApiError(inner) => match inner.downcast_ref::<DataFusionError>() {
            Some(df) => matches!(df.find_root(), DataFusionError::ResourcesExhausted(_)),
            None => inner.to_string().contains("Resources exhausted"),
        },
        _ => false,
    };
    if !exhausted {
        return e;
    }
    error(
        "53200",
        format!(
            "out of memory: the query needs more than sql.memory_limit ({} MiB) allows, even spilling to disk; \
             narrow it (a shorter period, fewer columns, an aggregate) or ask for a higher limit ({e})",
            memory_limit >> 20
        ),
    )
}
