//! The PostgreSQL wire-protocol endpoint (`sql.listen`), on
//! `datafusion-postgres`: psql, DBeaver, Power BI and Grafana connect with
//! no extra driver.
//!
//! - **Authentication**: SCRAM-SHA-256 against the configured users'
//!   hashes; no anonymous access, unknown users and wrong passwords refused.
//! - **Scope**: each connection is served by the session of its user's
//!   region ([`crate::sql::scope`]); an admin gets the full session.
//! - **Read-only**: a hook ahead of every statement refuses anything but
//!   queries, `EXPLAIN`, `SHOW`/`SET`, transactions and cursors, with
//!   SQLSTATE 25006; the connection and the server go on.

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
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::{AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler};
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::portal::Portal;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::Response;
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, ConnectionManager, PgWireServerHandlers, Type, METADATA_USER};
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

/// Serves one session for one scope.
fn service(ctx: SessionContext) -> Result<Arc<DfSessionService>, String> {
    setup_pg_catalog(&ctx, "jiancha", Arc::new(AuthManager::default())).map_err(|e| e.to_string())?;
    let hooks: Vec<Arc<dyn QueryHook>> = vec![
        Arc::new(ReadOnlyHook),
        Arc::new(CursorStatementHook),
        Arc::new(SetShowHook),
        Arc::new(TransactionStatementHook),
    ];
    Ok(Arc::new(DfSessionService::new_with_hooks(Arc::new(ctx), hooks)))
}

/// Routes each connection to its user's session.
pub struct Router {
    users: Arc<Users>,
    /// Session service by scope key (region code, "" for all).
    services: HashMap<String, Arc<DfSessionService>>,
    parser: Arc<RouterParser>,
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

fn service_of<'a, C: ClientInfo>(
    users: &Users,
    services: &'a HashMap<String, Arc<DfSessionService>>,
    client: &C,
) -> PgWireResult<&'a Arc<DfSessionService>> {
    client.metadata().get(METADATA_USER).and_then(|n| users.get(n)).and_then(|u| services.get(&u.region)).ok_or_else(
        || {
            PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".to_owned(),
                "28000".to_owned(),
                "not authenticated".to_owned(),
            )))
        },
    )
}

impl Router {
    /// One session per distinct user scope: `full` for admins, a scoped
    /// session per reader region.
    pub async fn new(users: Arc<Users>, full: &SessionContext) -> Result<Router, String> {
        let mut services = HashMap::new();
        for name in users.names() {
            let u = users.get(name).expect("listed");
            if services.contains_key(&u.region) {
                continue;
            }
            // A session of its own even for admins, so the pg_catalog
            // set-up does not touch the shared one.
            let ctx = crate::sql::scope::scoped(full, u.scope.as_deref()).await.map_err(|e| e.to_string())?;
            services.insert(u.region.clone(), service(ctx)?);
        }
        let services = services;
        let parser = Arc::new(RouterParser { users: users.clone(), services: services.clone() });
        Ok(Router { users, services, parser })
    }
}

#[async_trait]
impl SimpleQueryHandler for Router {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + futures::Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as futures::Sink<PgWireBackendMessage>>::Error>,
    {
        let svc = service_of(&self.users, &self.services, client)?.clone();
        SimpleQueryHandler::do_query(&*svc, client, query).await
    }
}

type DfStatement = <DfSessionService as ExtendedQueryHandler>::Statement;

/// Parses with the connection's session.
pub struct RouterParser {
    users: Arc<Users>,
    services: HashMap<String, Arc<DfSessionService>>,
}

#[async_trait]
impl QueryParser for RouterParser {
    type Statement = DfStatement;

    async fn parse_sql<C>(&self, client: &C, sql: &str, types: &[Option<Type>]) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let svc = service_of(&self.users, &self.services, client)?;
        svc.query_parser().parse_sql(client, sql, types).await
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        // Parameter and result types depend only on the plan, not the session.
        match self.services.values().next() {
            Some(s) => s.query_parser().get_parameter_types(stmt),
            None => Ok(vec![]),
        }
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&pgwire::api::portal::Format>,
    ) -> PgWireResult<Vec<pgwire::api::results::FieldInfo>> {
        match self.services.values().next() {
            Some(s) => s.query_parser().get_result_schema(stmt, column_format),
            None => Ok(vec![]),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for Router {
    type Statement = DfStatement;
    type QueryParser = RouterParser;

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
        let svc = service_of(&self.users, &self.services, client)?.clone();
        ExtendedQueryHandler::do_query(&*svc, client, portal, max_rows).await
    }
}

/// Everything a connection needs.
pub struct Handlers {
    router: Arc<Router>,
    users: Arc<Users>,
    connections: Arc<ConnectionManager>,
    params: Arc<DefaultServerParameterProvider>,
}

impl Handlers {
    /// Handlers over a router.
    pub fn new(router: Router) -> Handlers {
        let users = router.users.clone();
        let mut params = DefaultServerParameterProvider::default();
        params.server_version = "16.0 (jiancha)".to_string();
        params.default_transaction_read_only = true;
        params.scram_iterations = ITERATIONS;
        Handlers {
            router: Arc::new(router),
            users,
            connections: Arc::new(ConnectionManager::new()),
            params: Arc::new(params),
        }
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.router.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.router.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        let mut scram = ScramAuth::new(Arc::new(Auth(self.users.clone())));
        scram.set_iterations(ITERATIONS);
        Arc::new(
            SASLAuthStartupHandler::new(self.params.clone())
                .with_scram(scram)
                .with_connection_manager(self.connections.clone()),
        )
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::new(DefaultCancelHandler::new(self.connections.clone()))
    }
}
