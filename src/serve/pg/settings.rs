//! `SET` and `RESET` over the PostgreSQL endpoint: an allowlist.
//!
//! Every connection has a session of its own, so a setting never reaches
//! another connection; still, some settings would let one connection
//! take the process down (a million target partitions plan for minutes and
//! grow without bound). So:
//!
//! - the client settings that drivers send (`DateStyle`, `TimeZone`,
//!   `application_name`, `extra_float_digits` …) are accepted, as before;
//! - `statement_timeout` is accepted up to `sql.statement_timeout`, never
//!   above it and never 0 (PostgreSQL's "no limit");
//! - `datafusion.*` settings are refused, except, for admins, the few in
//!   [`ADMIN_SETTINGS`] within their bounds;
//! - anything else is refused with PostgreSQL's error for an unknown
//!   parameter, where it used to be silently ignored.

use super::limits::{show_duration, Limits};
use crate::serve::users::Users;
use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Expr, ObjectName, Reset, Set, Statement};
use datafusion_postgres::hooks::{HookClient, QueryHook};
use datafusion_postgres::pgwire;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::Type;
use pgwire::api::{ClientInfo, METADATA_USER};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use std::sync::Arc;
use std::time::Duration;

/// The client-side settings PostgreSQL drivers and tools send, accepted
/// as they always were (they change how values are shown, not what runs).
const CLIENT_SETTINGS: [&str; 11] = [
    "datestyle",
    "intervalstyle",
    "bytea_output",
    "application_name",
    "extra_float_digits",
    "search_path",
    "client_encoding",
    "client_min_messages",
    "timezone",
    "standard_conforming_strings",
    "lc_messages",
];

/// The key under which datafusion-postgres keeps a connection's timeout
/// (so its `SHOW statement_timeout` answers it).
pub const TIMEOUT_KEY: &str = "statement_timeout_ms";

/// DataFusion settings an admin may change, with their bounds as a
/// function of the cores: (name, least, most).
pub fn admin_settings(cores: usize) -> [(&'static str, u64, u64); 2] {
    [("datafusion.execution.target_partitions", 1, 4 * cores as u64), ("datafusion.execution.batch_size", 1024, 65536)]
}

/// The bounds of [`admin_settings`] on this machine.
pub static ADMIN_SETTINGS: std::sync::LazyLock<[(&'static str, u64, u64); 2]> =
    std::sync::LazyLock::new(|| admin_settings(std::thread::available_parallelism().map_or(2, |n| n.get())));

fn error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".to_owned(), code.to_owned(), message)))
}

fn name_of(n: &ObjectName) -> String {
    n.to_string().to_ascii_lowercase()
}

/// A value as written, without quotes.
fn text(e: &Expr) -> String {
    e.to_string().trim_matches(|c| c == '\'' || c == '"').to_string()
}

/// PostgreSQL's `statement_timeout` value: a number of milliseconds or a
/// number with a unit (`ms`, `s`, `min`, `h`).
pub fn parse_timeout(v: &str) -> Option<Duration> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let n: u64 = v[..split].parse().ok()?;
    let ms = match v[split..].trim() {
        "" | "ms" => 1,
        "s" => 1000,
        "min" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(ms).map(Duration::from_millis)
}

/// Refuses what the allowlist does not hold; lets the rest through to the
/// hooks after it (datafusion-postgres's `SET`/`SHOW` and DataFusion).
pub struct SettingsHook {
    /// The endpoint's limits (the most a timeout may be).
    pub limits: Arc<Limits>,
    /// Who is an admin.
    pub users: Arc<Users>,
}

impl SettingsHook {
    fn is_admin(&self, client: &dyn HookClient) -> bool {
        client.metadata().get(METADATA_USER).and_then(|n| self.users.get(n)).is_some_and(|u| u.scope.is_none())
    }

    /// `None`: allowed, for the next hook; `Some`: answered here.
    fn check(&self, statement: &Statement, client: &mut dyn HookClient) -> Option<PgWireResult<Response>> {
        match statement {
            Statement::Set(Set::SingleAssignment { variable, values, .. }) => {
                self.assign(&name_of(variable), values.first(), client)
            }
            Statement::Set(Set::SetTimeZone { .. } | Set::SetNames { .. } | Set::SetNamesDefault {}) => None,
            // Transaction characteristics: every session here is read-only.
            Statement::Set(Set::SetTransaction { .. }) => Some(Ok(Response::Execution(Tag::new("SET")))),
            Statement::Set(other) => Some(Err(error(
                "0A000",
                format!("{other}: not supported here; set one parameter at a time (SET name = value)"),
            ))),
            Statement::Reset(r) => match &r.reset {
                Reset::ALL => Some(Err(error("0A000", "RESET ALL is not supported; reset settings one by one".into()))),
                Reset::ConfigurationParameter(name) => self.reset(&name_of(name), client),
            },
            Statement::ShowVariable { variable } if variable.len() == 1 => {
                (variable[0].value.eq_ignore_ascii_case("statement_timeout")).then(|| self.show_timeout(client))
            }
            _ => None,
        }
    }

    /// The timeout in force: the connection's, or the configured one.
    fn show_timeout(&self, client: &dyn HookClient) -> PgWireResult<Response> {
        let own = client.metadata().get(TIMEOUT_KEY).and_then(|ms| ms.parse().ok()).map(Duration::from_millis);
        let value = show_duration(own.unwrap_or(self.limits.statement_timeout));
        let fields =
            Arc::new(vec![FieldInfo::new("statement_timeout".into(), None, None, Type::VARCHAR, FieldFormat::Text)]);
        let mut row = DataRowEncoder::new(fields.clone());
        row.encode_field(&Some(value))?;
        let row = row.take_row();
        Ok(Response::Query(QueryResponse::new(fields, futures::stream::iter([Ok(row)]))))
    }

    fn assign(&self, var: &str, value: Option<&Expr>, client: &mut dyn HookClient) -> Option<PgWireResult<Response>> {
        let Some(value) = value else { return Some(Err(error("42601", format!("SET {var}: a value is needed")))) };
        let value = text(value);
        if var == "statement_timeout" {
            return Some(self.set_timeout(&value, client));
        }
        if CLIENT_SETTINGS.contains(&var) {
            return None;
        }
        if var.starts_with("datafusion.") {
            return self.datafusion(var, Some(&value), client).err().map(Err);
        }
        Some(Err(unknown(var)))
    }

    fn reset(&self, var: &str, client: &mut dyn HookClient) -> Option<PgWireResult<Response>> {
        if var == "statement_timeout" {
            client.metadata_mut().remove(TIMEOUT_KEY);
            return Some(Ok(Response::Execution(Tag::new("RESET"))));
        }
        if CLIENT_SETTINGS.contains(&var) {
            return Some(Ok(Response::Execution(Tag::new("RESET"))));
        }
        if var.starts_with("datafusion.") {
            return self.datafusion(var, None, client).err().map(Err);
        }
        Some(Err(unknown(var)))
    }

    fn set_timeout(&self, value: &str, client: &mut dyn HookClient) -> PgWireResult<Response> {
        let most = self.limits.statement_timeout;
        if value.eq_ignore_ascii_case("default") {
            client.metadata_mut().remove(TIMEOUT_KEY);
            return Ok(Response::Execution(Tag::new("SET")));
        }
        let Some(t) = parse_timeout(value) else {
            return Err(error(
                "22023",
                format!("invalid value for parameter \"statement_timeout\": {value:?} (use e.g. 30s, 5000ms or 2min)"),
            ));
        };
        if t.is_zero() || t > most {
            return Err(error(
                "22023",
                format!(
                    "statement_timeout can be at most {} here (sql.statement_timeout); {value} is refused",
                    show_duration(most)
                ),
            ));
        }
        client.metadata_mut().insert(TIMEOUT_KEY.to_string(), t.as_millis().to_string());
        Ok(Response::Execution(Tag::new("SET")))
    }

    /// `Ok`: allowed, for DataFusion to apply to the connection's session.
    fn datafusion(&self, var: &str, value: Option<&str>, client: &dyn HookClient) -> Result<(), PgWireError> {
        let refused = || {
            let allowed: Vec<String> = ADMIN_SETTINGS.iter().map(|(n, lo, hi)| format!("{n} ({lo}…{hi})")).collect();
            error(
                "42501",
                format!(
                    "permission denied to set parameter \"{var}\": DataFusion settings are for admins, and only {}",
                    allowed.join(", ")
                ),
            )
        };
        if !self.is_admin(client) {
            return Err(refused());
        }
        let Some((_, lo, hi)) = ADMIN_SETTINGS.iter().find(|(n, ..)| *n == var) else { return Err(refused()) };
        let Some(value) = value else { return Ok(()) };
        match value.parse::<u64>() {
            Ok(n) if (*lo..=*hi).contains(&n) => Ok(()),
            _ => {
                Err(error("22023", format!("{var} must be a whole number from {lo} to {hi} here; {value} is refused")))
            }
        }
    }
}

fn unknown(var: &str) -> PgWireError {
    error(
        "42704",
        format!(
            "unrecognized configuration parameter \"{var}\" (settable here: statement_timeout, {})",
            CLIENT_SETTINGS.join(", ")
        ),
    )
}

#[async_trait]
impl QueryHook for SettingsHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        self.check(statement, client)
    }

    async fn handle_extended_parse_query(
        &self,
        _statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        // Judged at execution, where the connection's settings can change.
        None
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        self.check(statement, client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_as_postgresql_writes_them() {
        assert_eq!(parse_timeout("5000"), Some(Duration::from_secs(5)));
        assert_eq!(parse_timeout("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_timeout("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout("2min"), Some(Duration::from_secs(120)));
        assert_eq!(parse_timeout("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout("0"), Some(Duration::ZERO));
        assert_eq!(parse_timeout("soon"), None);
        assert_eq!(parse_timeout("5 parsecs"), None);
    }

    #[test]
    fn admin_bounds_follow_the_cores() {
        assert_eq!(admin_settings(2)[0], ("datafusion.execution.target_partitions", 1, 8));
    }
}
