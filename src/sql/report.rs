//! Named reports: SQL files in `sql/reports/NAME.sql` with the named
//! parameters `$month` (`YYYY-MM`) and `$region` (a region code, or '' for
//! all). A file of that name under the working directory's `sql/reports/`
//! wins over the built-in copy, so an office can edit weights without a build.

use super::SqlError;
use datafusion::arrow::array::RecordBatch;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::prelude::SessionContext;
use std::collections::HashMap;

/// The reports built into the binary.
pub const BUILT_IN: [(&str, &str); 2] = [
    ("monthly-briefing", include_str!("../../sql/reports/monthly-briefing.sql")),
    ("quarterly-report", include_str!("../../sql/reports/quarterly-report.sql")),
];

/// The Chinese title of a report, or its name.
pub fn title(name: &str) -> &str {
    match name {
        "monthly-briefing" => "月简报",
        "quarterly-report" => "季度通报",
        "window-briefing" => "窗口月简报",
        "staff-briefing" => "工作人员月简报",
        "annual-assessment" => "年终考核",
        other => other,
    }
}

/// A report asked for by a name or month that cannot be run; nothing is
/// queried.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The name has characters a file name of `sql/reports/` may not.
    #[error("report name {0:?} must be letters, digits, - and _")]
    BadName(String),
    /// No such report, built in or under `sql/reports/`.
    #[error("no report {name:?} (built in: {built_in}; or add sql/reports/{name}.sql)")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The built-in reports' names, comma separated.
        built_in: String,
    },
    /// The month is not `YYYY-MM`.
    #[error("--month {0:?} is not YYYY-MM")]
    BadMonth(String),
}

/// The SQL text of a report.
pub fn text(name: &str) -> Result<String, ReportError> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(ReportError::BadName(name.to_string()));
    }
    let local = std::path::Path::new("sql/reports").join(format!("{name}.sql"));
    if let Ok(t) = std::fs::read_to_string(&local) {
        return Ok(t);
    }
    BUILT_IN.iter().find(|(n, _)| *n == name).map(|(_, t)| t.to_string()).ok_or_else(|| {
        let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
        ReportError::Unknown { name: name.to_string(), built_in: names.join(", ") }
    })
}

/// Checks a `YYYY-MM` month.
pub fn check_month(month: &str) -> Result<(), ReportError> {
    let ok = month.len() == 7
        && month.as_bytes()[4] == b'-'
        && chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").is_ok();
    if ok {
        Ok(())
    } else {
        Err(ReportError::BadMonth(month.to_string()))
    }
}

/// Runs report SQL with its parameters.
pub async fn run(ctx: &SessionContext, sql: &str, month: &str, region: &str) -> Result<Vec<RecordBatch>, SqlError> {
    let params = ParamValues::Map(HashMap::from([
        ("month".to_string(), ScalarValue::Utf8(Some(month.to_string())).into()),
        ("region".to_string(), ScalarValue::Utf8(Some(region.to_string())).into()),
    ]));
    Ok(ctx.sql(sql).await?.with_param_values(params)?.collect().await?)
}
