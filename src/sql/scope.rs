//! Region-scoped SQL sessions and the reports as table functions.
//!
//! A user scoped to a region gets a session of its own in which every table
//! with region data is a view restricted to that region and the regions
//! below it, planned over the full session's tables. The unrestricted tables
//! are not in the scoped session under any name, so whatever SQL the user
//! writes — joins, subqueries, CTEs, unions, catalog views — it reaches only
//! those rows. The catalog lists table names and columns, never rows.
//!
//! A scoped user (a reader) reads `staff`, the officials' codes, as NULL
//! in every table: what officials did is for admins.
//!
//! Every session also gets one table function per built-in report, named
//! after it with `_` for `-`: `SELECT * FROM monthly_briefing('2026-03', '')`
//! runs `sql/reports/monthly-briefing.sql` for that month and region;
//! `annual_assessment('2026', '', 3)` a report of a year. In a reader's
//! session the admin-only ones (`staff_briefing`) refuse to run.

use super::SqlError;
use datafusion::catalog::Session;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{plan_err, ScalarValue};
use datafusion::datasource::ViewTable;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Tables a scoped session sees, with the column holding the region
/// (`None`: not regional, shown whole).
const SCOPED: [(&str, Option<&str>); 15] = [
    ("event_log", Some("region")),
    ("alert_records", Some("region")),
    ("case_versions", Some("region")),
    ("events", Some("region")),
    ("cases", Some("region")),
    ("alerts", Some("region")),
    ("regions", Some("code")),
    ("region_tree", Some("code")),
    ("items", None),
    ("departments", None),
    ("deductions", Some("region")),
    ("rejected_events", Some("")),
    ("notice_versions", Some("region")),
    ("complaints", Some("region")),
    ("notices", Some("region")),
];

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A session over `full`'s tables restricted to `regions` (`None`: every
/// region; a separate session over the same data).
pub async fn scoped(full: &SessionContext, regions: Option<&BTreeSet<String>>) -> Result<SessionContext, SqlError> {
    let runtime = full.runtime_env();
    scoped_on(full, regions, runtime).await
}

/// [`scoped`], executing on `runtime` (the SQL endpoint's, with its memory
/// limit) rather than `full`'s.
pub async fn scoped_on(
    full: &SessionContext,
    regions: Option<&BTreeSet<String>>,
    runtime: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
) -> Result<SessionContext, SqlError> {
    let ctx = super::context_on(runtime);
    let list = regions.map(|r| r.iter().map(|r| quote(r)).collect::<Vec<_>>().join(", "));
    for (table, column) in SCOPED {
        // A reader reads every column but the officials' codes (`staff`):
        // what they did is the admins' (the staff briefing).
        let columns = match &list {
            None => "*".to_string(),
            Some(_) => {
                let schema = full.table(table).await?.schema().clone();
                let cols: Vec<String> = schema
                    .fields()
                    .iter()
                    .map(|f| match f.name().as_str() {
                        "staff" => "CAST(NULL AS VARCHAR) AS staff".to_string(),
                        n => format!("\"{}\"", n.replace('"', "\"\"")),
                    })
                    .collect();
                cols.join(", ")
            }
        };
        let sql = match (column, &list) {
            (None, _) | (_, None) => format!("SELECT {columns} FROM {table}"),
            // Not regional and not needed by a scoped user: left out.
            (Some(""), Some(_)) => continue,
            (Some(c), Some(list)) => format!("SELECT {columns} FROM {table} WHERE {c} IN ({list})"),
        };
        let plan = full.sql(&sql).await?.into_unoptimized_plan();
        ctx.register_table(table, Arc::new(Listed(ViewTable::new(plan, Some(sql)))))?;
    }
    register_reports(&ctx, regions.is_none());
    Ok(ctx)
}

/// A view that the catalog lists as a table: to a user of the endpoint
/// these are the contract's tables (`\dt` in psql lists them), whatever
/// they are built from.
#[derive(Debug)]
struct Listed(ViewTable);

#[async_trait::async_trait]
impl TableProvider for Listed {
    fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_logical_plan(&self) -> Option<std::borrow::Cow<'_, datafusion::logical_expr::LogicalPlan>> {
        self.0.get_logical_plan()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        self.0.scan(state, projection, filters, limit).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        self.0.supports_filters_pushdown(filters)
    }
}

/// Registers each built-in report as a table function; in a session of a
/// user who is not an admin, the admin-only ones refuse to run.
pub fn register_reports(ctx: &SessionContext, admin: bool) {
    for (name, _) in super::report::BUILT_IN {
        let refused = !admin && super::report::admin_only(name);
        ctx.register_udtf(&name.replace('-', "_"), Arc::new(ReportFn { name, refused }));
    }
}

/// `report_name(month, region)`, or for a report of a year
/// `report_name(year, region [, top])`.
#[derive(Debug)]
struct ReportFn {
    name: &'static str,
    /// Not for this session's user.
    refused: bool,
}

fn text_arg(e: &Expr, what: &str) -> datafusion::error::Result<String> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Ok(s.clone()),
        _ => plan_err!("{what} must be a text literal such as '2026-03'"),
    }
}

fn int_arg(e: &Expr, what: &str) -> datafusion::error::Result<i64> {
    match e {
        Expr::Literal(ScalarValue::Int64(Some(n)), _) => Ok(*n),
        Expr::Literal(ScalarValue::Int32(Some(n)), _) => Ok(i64::from(*n)),
        Expr::Literal(ScalarValue::Utf8(Some(s)), _) => {
            s.trim().parse().or_else(|_| plan_err!("{what} must be a whole number"))
        }
        _ => plan_err!("{what} must be a whole number such as 3"),
    }
}

impl TableFunctionImpl for ReportFn {
    fn call_with_args(&self, args: TableFunctionArgs) -> datafusion::error::Result<Arc<dyn TableProvider>> {
        let fname = self.name.replace('-', "_");
        if self.refused {
            return plan_err!("{fname}: for admins only (it names officials); this user may not run it");
        }
        let sql =
            super::report::text(self.name).map_err(|e| datafusion::error::DataFusionError::Plan(e.to_string()))?;
        let params = if super::report::of_a_year(&sql) {
            let (year, region, top) = match args.exprs() {
                [y] => (text_arg(y, "year")?, String::new(), super::report::DEFAULT_TOP),
                [y, r] => (text_arg(y, "year")?, text_arg(r, "region")?, super::report::DEFAULT_TOP),
                [y, r, t] => (text_arg(y, "year")?, text_arg(r, "region")?, int_arg(t, "top")?),
                _ => return plan_err!("{fname}(year 'YYYY' [, region code or '' [, top windows]])"),
            };
            super::report::Params { top, ..super::report::Params::year(&year, &region) }
        } else {
            match args.exprs() {
                [m] => super::report::Params::month(&text_arg(m, "month")?, ""),
                [m, r] => super::report::Params::month(&text_arg(m, "month")?, &text_arg(r, "region")?),
                _ => return plan_err!("{fname}(month 'YYYY-MM' [, region code or ''])"),
            }
        };
        if let Err(e) = params.check(self.name, &sql) {
            return plan_err!("{fname}: {e}");
        }
        let Some(state) = args.session().as_any().downcast_ref::<SessionState>() else {
            return plan_err!("{fname}: not callable here");
        };
        let statement = state.sql_to_statement(&sql, &datafusion::common::config::Dialect::PostgreSQL)?;
        // Planning only resolves tables from in-memory catalogs: no I/O waits.
        let plan = futures::executor::block_on(state.statement_to_plan(statement))?;
        let plan = plan.with_param_values(params.values(&sql))?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}
