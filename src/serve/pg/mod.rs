//! The PostgreSQL wire-protocol endpoint (`sql.listen`), on
//! `datafusion-postgres`: psql, DBeaver, Power BI and Grafana connect with
//! no extra driver.
//!
//! - **Authentication**: SCRAM-SHA-256 against the configured users'
//!   hashes; no anonymous access, unknown users and wrong passwords refused.
//! - **Scope**: each connection gets a session of its own, a copy of its
//!   user's region session ([`crate::sql::scope`]; admins: every region), so
//!   what one connection sets never reaches another.
//! - **Read-only**: a hook ahead of every statement refuses anything but
//!   queries, `EXPLAIN`, `SHOW`/`SET`, transactions and cursors, with
//!   SQLSTATE 25006; the connection and the server go on.
//! - **Limits** ([`limits`], [`settings`]): memory, statement time, cancel
//!   requests, statements at once, an allowlist of settings; a connection
//!   whose client went away is dropped at once, and its query with it.

pub mod limits;
pub mod settings;

use super::users::{Users, ITERATIONS};
use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{SetExpr, Statement};
use datafusion_postgres::auth::AuthManager;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::hooks::{HookClient, QueryHook};
use datafusion_postgres::pgwire;
use datafusion_postgres::DfSessionService;
use limits::{Limits, Stop};
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::{AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::portal::Portal;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::Response;
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireServerHandlers, Type, METADATA_USER};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use std::collections::HashMap;
use std::sync::Arc;

/// Whether a statement only reads.
pub fn read_only(s: &Statement) -> bool {
    fn body(e: &SetExpr) -> bool {
        match e {
            SetExpr::Select(_) | SetExpr::Values(_) | SetExpr::Table(_) => true,
            SetExpr::Query(q) => body(&q.body),
            SetExpr::SetOperation { left, right, .. } => body(left) && body(right),
            _ => false,
        }
    }
    match s {
        Statement::Query(q) => {
            body(&q.body) && q.with.as_ref().is_none_or(|w| w.cte_tables.iter().all(|c| body(&c.query.body)))
        }
        Statement::Explain { statement, .. } => read_only(statement),
        Statement::ExplainTable { .. }
        | Statement::Set(_)
        | Statement::Reset(_)
        | Statement::ShowFunctions { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowCreate { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowCatalogs { .. }
        | Statement::ShowDatabases { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowViews { .. }
        | Statement::ShowCollation { .. }
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Fetch { .. }
        | Statement::Close { .. }
        | Statement::Discard { .. }
        | Statement::Deallocate { .. } => true,
        Statement::Declare { stmts } => stmts.iter().all(|d| d.for_query.as_ref().is_none_or(|q| body(&q.body))),
        _ => false,
    }
}

fn refusal(s: &Statement) -> PgWireError {
    let text = s.to_string();
    let verb: String = text.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        "25006".to_owned(),
        format!("jiancha serves history read-only: {verb} … is refused (only queries, EXPLAIN, SHOW, SET, transactions and cursors)"),
    )))
}

/// Refuses every statement that would write or change the schema.
struct ReadOnlyHook;

#[async_trait]
impl QueryHook for ReadOnlyHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        (!read_only(statement)).then(|| Err(refusal(statement)))
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        (!read_only(statement)).then(|| Err(refusal(statement)))
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        (!read_only(statement)).then(|| Err(refusal(statement)))
    }
}

/// The hooks every connection's statements pass, in order.
fn hooks(limits: &Arc<Limits>, users: &Arc<Users>) -> Vec<Arc<dyn QueryHook>> {
    vec![
        Arc::new(ReadOnlyHook),
        Arc::new(settings::SettingsHook { limits: limits.clone(), users: users.clone() }),
        Arc::new(CursorStatementHook),
        Arc::new(SetShowHook),
        Arc::new(TransactionStatementHook),
    ]
}

/// A connection's cancel requests, by the key pgwire gave it at startup.
type CancelKey = (i32, Vec<u8>);

/// What every connection shares: users, each scope's template session,
/// the limits and where cancel requests are routed.
pub struct Shared {
    users: Arc<Users>,
    /// Template session by scope key (region code, "" for all), with the
    /// PostgreSQL catalog set up; each connection gets a copy.
    scopes: HashMap<String, SessionContext>,
    limits: Arc<Limits>,
    hooks: Vec<Arc<dyn QueryHook>>,
    cancels: std::sync::Mutex<HashMap<CancelKey, std::sync::Weak<Conn>>>,
    params: Arc<DefaultServerParameterProvider>,
}

impl Shared {
    /// One template session per distinct user scope, planned over `full`'s
    /// tables and executed on the limits' runtime.
    pub async fn new(users: Arc<Users>, full: &SessionContext, limits: Limits) -> Result<Shared, crate::sql::SqlError> {
        let limits = Arc::new(limits);
        let mut scopes = HashMap::new();
        for name in users.names() {
            let u = users.get(name).expect("listed");
            if scopes.contains_key(&u.region) {
                continue;
            }
            let ctx = crate::sql::scope::scoped_on(full, u.scope.as_deref(), limits.runtime.clone()).await?;
            setup_pg_catalog(&ctx, "jiancha", Arc::new(AuthManager::default())).map_err(|e| *e)?;
            scopes.insert(u.region.clone(), ctx);
        }
        let mut params = DefaultServerParameterProvider::default();
        params.server_version = "16.0 (jiancha)".to_string();
        params.default_transaction_read_only = true;
        params.scram_iterations = ITERATIONS;
        Ok(Shared {
            hooks: hooks(&limits, &users),
            users,
            scopes,
            limits,
            cancels: Default::default(),
            params: Arc::new(params),
        })
    }
}

/// The users' password hashes, for SCRAM.
#[derive(Debug)]
struct Auth(Arc<Users>);

#[async_trait]
impl AuthSource for Auth {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().and_then(|u| self.0.get(u));
        match user {
            Some(u) => Ok(Password::new(Some(u.hash.salt.clone()), u.hash.salted.clone())),
            None => Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".to_owned(),
                "28P01".to_owned(),
                format!("password authentication failed for user \"{}\"", login.user().unwrap_or("")),
            )))),
        }
    }
}

/// One connection's state: its session (made at its first statement,
/// once its user is known) and its cancel requests.
pub struct Conn {
    shared: Arc<Shared>,
    session: std::sync::OnceLock<(String, Arc<DfSessionService>)>,
    /// Moved on by each cancel request; a running statement ends when it moves.
    cancel: tokio::sync::watch::Sender<u64>,
    key: std::sync::OnceLock<CancelKey>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(key) = self.key.get() {
            self.shared.cancels.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
        }
    }
}

fn not_authenticated() -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_owned(),
        "28000".to_owned(),
        "not authenticated".to_owned(),
    )))
}

impl Conn {
    /// The connection's user and session.
    fn session<C: ClientInfo>(self: &Arc<Self>, client: &C) -> PgWireResult<&(String, Arc<DfSessionService>)> {
        if let Some(s) = self.session.get() {
            return Ok(s);
        }
        let sh = &self.shared;
        let user = client.metadata().get(METADATA_USER).and_then(|n| sh.users.get(n)).ok_or_else(not_authenticated)?;
        let template = sh.scopes.get(&user.region).ok_or_else(not_authenticated)?;
        // A copy of the template's state: its own settings, the same
        // tables, functions and runtime.
        let ctx = SessionContext::new_with_state(template.state());
        let svc = Arc::new(DfSessionService::new_with_hooks(Arc::new(ctx), sh.hooks.clone()));
        let (pid, secret) = client.pid_and_secret_key();
        let key = (pid, secret.to_bytes().to_vec());
        sh.cancels.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), Arc::downgrade(self));
        let _ = self.key.set(key);
        let _ = self.session.set((user.name.clone(), svc));
        Ok(self.session.get().expect("just set"))
    }

    /// The statement's bounds: the connection's timeout (at most the
    /// configured one) and its cancel requests.
    fn stop<C: ClientInfo>(&self, client: &C) -> Stop {
        let most = self.shared.limits.statement_timeout;
        let own = client
            .metadata()
            .get(settings::TIMEOUT_KEY)
            .and_then(|ms| ms.parse().ok())
            .map(std::time::Duration::from_millis);
        Stop::new(own.map_or(most, |t| t.min(most)), &self.cancel)
    }

    /// Bounds each response's rows by `stop`, holding `permits` with them.
    fn bound(&self, r: Response, stop: &Stop, permits: &Arc<limits::Permits>) -> Response {
        match r {
            Response::Query(mut q) => {
                let rows = std::mem::replace(&mut q.data_rows, Box::pin(futures::stream::empty()));
                q.data_rows = limits::bound_rows(rows, stop, permits.clone(), self.shared.limits.memory_limit);
                Response::Query(q)
            }
            other => other,
        }
    }
}

/// The handlers of one connection.
pub struct Connection {
    conn: Arc<Conn>,
    parser: Arc<ConnParser>,
}

impl Connection {
    /// A new connection's handlers.
    pub fn new(shared: Arc<Shared>) -> Connection {
        let conn = Arc::new(Conn {
            shared,
            session: Default::default(),
            cancel: tokio::sync::watch::channel(0).0,
            key: Default::default(),
        });
        Connection { parser: Arc::new(ConnParser { conn: conn.clone() }), conn }
    }
}

#[async_trait]
impl SimpleQueryHandler for Connection {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + futures::Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as futures::Sink<PgWireBackendMessage>>::Error>,
    {
        let (user, svc) = self.conn.session(client)?.clone();
        let permits = Arc::new(self.conn.shared.limits.admit(&user).await?);
        let stop = self.conn.stop(client);
        let memory = self.conn.shared.limits.memory_limit;
        let responses = stop
            .bound(SimpleQueryHandler::do_query(&*svc, client, query))
            .await
            .map_err(|e| limits::explain(e, memory))?;
        Ok(responses.into_iter().map(|r| self.conn.bound(r, &stop, &permits)).collect())
    }
}

type DfStatement = <DfSessionService as ExtendedQueryHandler>::Statement;

/// Parses with the connection's session.
pub struct ConnParser {
    conn: Arc<Conn>,
}

#[async_trait]
impl QueryParser for ConnParser {
    type Statement = DfStatement;

    async fn parse_sql<C>(&self, client: &C, sql: &str, types: &[Option<Type>]) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let (_, svc) = self.conn.session(client)?;
        svc.query_parser().parse_sql(client, sql, types).await
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        match self.conn.session.get() {
            Some((_, s)) => s.query_parser().get_parameter_types(stmt),
            None => Ok(vec![]),
        }
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&pgwire::api::portal::Format>,
    ) -> PgWireResult<Vec<pgwire::api::results::FieldInfo>> {
        match self.conn.session.get() {
            Some((_, s)) => s.query_parser().get_result_schema(stmt, column_format),
            None => Ok(vec![]),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for Connection {
    type Statement = DfStatement;
    type QueryParser = ConnParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + futures::Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as futures::Sink<PgWireBackendMessage>>::Error>,
    {
        let (user, svc) = self.conn.session(client)?.clone();
        let permits = Arc::new(self.conn.shared.limits.admit(&user).await?);
        let stop = self.conn.stop(client);
        let memory = self.conn.shared.limits.memory_limit;
        let response = stop
            .bound(ExtendedQueryHandler::do_query(&*svc, client, portal, max_rows))
            .await
            .map_err(|e| limits::explain(e, memory))?;
        Ok(self.conn.bound(response, &stop, &permits))
    }
}

/// Routes a cancel request to the connection it names.
struct Cancels(Arc<Shared>);

#[async_trait]
impl CancelHandler for Cancels {
    async fn on_cancel_request(&self, request: pgwire::messages::cancel::CancelRequest) {
        let key = (request.pid, request.secret_key.to_bytes().to_vec());
        let conn = self.0.cancels.lock().unwrap_or_else(|p| p.into_inner()).get(&key).and_then(|w| w.upgrade());
        if let Some(c) = conn {
            c.cancel.send_modify(|n| *n += 1);
        }
    }
}

/// Everything one connection needs.
pub struct Handlers {
    connection: Arc<Connection>,
    shared: Arc<Shared>,
}

impl Handlers {
    /// Handlers for a new connection.
    pub fn new(shared: Arc<Shared>) -> Handlers {
        Handlers { connection: Arc::new(Connection::new(shared.clone())), shared }
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.connection.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.connection.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        let mut scram = ScramAuth::new(Arc::new(Auth(self.shared.users.clone())));
        scram.set_iterations(ITERATIONS);
        Arc::new(SASLAuthStartupHandler::new(self.shared.params.clone()).with_scram(scram))
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::new(Cancels(self.shared.clone()))
    }
}

/// Resolves when the peer of `probe` has closed its end (or the socket
/// failed). Data the peer sends meanwhile is left for the protocol to read.
async fn peer_closed(probe: &tokio::net::TcpStream) {
    use tokio::io::Interest;
    loop {
        match probe.ready(Interest::READABLE).await {
            Ok(r) if r.is_read_closed() => return,
            // Readable with data: forget this readiness (the protocol
            // reads the data through its own handle) and wait for the next.
            Ok(_) => {
                let _ = probe.try_io(Interest::READABLE, || Err::<(), _>(std::io::ErrorKind::WouldBlock.into()));
            }
            Err(_) => return,
        }
    }
}

/// Serves one accepted connection until it ends, or until its client goes
/// away, even mid-query: the connection is dropped then, and the query's
/// work with it.
pub async fn serve_connection(
    socket: tokio::net::TcpStream,
    tls: Option<pgwire::tokio::TlsAcceptor>,
    shared: Arc<Shared>,
) {
    let handlers = Arc::new(Handlers::new(shared));
    // A second handle on the same socket, only to notice the peer closing.
    let probe = socket
        .into_std()
        .and_then(|s| Ok((s.try_clone()?, s)))
        .and_then(|(p, s)| Ok((tokio::net::TcpStream::from_std(p)?, tokio::net::TcpStream::from_std(s)?)));
    let Ok((probe, socket)) = probe else { return };
    tokio::select! {
        _ = pgwire::tokio::process_socket(socket, tls, handlers) => {}
        _ = peer_closed(&probe) => {}
    }
}
