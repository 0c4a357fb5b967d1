//! Named reports: SQL files in `sql/reports/NAME.sql` with the named
//! parameters `$month` (`YYYY-MM`) — or, for a report of a year such as
//! `annual-assessment`, `$year` (`YYYY`) and `$top` (how many windows it
//! honours) — and `$region` (a region code, or '' for all). A file of that
//! name under the working directory's `sql/reports/` wins over the
//! built-in copy, so an office can edit weights without a build.

use super::SqlError;
use datafusion::arrow::array::RecordBatch;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::prelude::SessionContext;
use std::collections::HashMap;

/// The reports built into the binary.
pub const BUILT_IN: [(&str, &str); 5] = [
    ("monthly-briefing", include_str!("../../sql/reports/monthly-briefing.sql")),
    ("quarterly-report", include_str!("../../sql/reports/quarterly-report.sql")),
    ("window-briefing", include_str!("../../sql/reports/window-briefing.sql")),
    ("staff-briefing", include_str!("../../sql/reports/staff-briefing.sql")),
    ("annual-assessment", include_str!("../../sql/reports/annual-assessment.sql")),
];

/// Reports only admins may run over the SQL endpoint and HTTP (they name
/// officials).
pub const ADMIN_ONLY: [&str; 1] = ["staff-briefing"];

/// How many windows the annual assessment honours by default (优秀窗口).
pub const DEFAULT_TOP: i64 = 3;

/// Whether only admins may run a report over the endpoints.
pub fn admin_only(name: &str) -> bool {
    ADMIN_ONLY.contains(&name)
}

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

/// A report asked for by a name or period that cannot be run; nothing is
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
    /// The year is not `YYYY`.
    #[error("--year {0:?} is not YYYY")]
    BadYear(String),
    /// A report of a month asked for without one.
    #[error("report {0:?} is for a month: give --month YYYY-MM")]
    NeedsMonth(String),
    /// A report of a year asked for without one.
    #[error("report {0:?} is for a year: give --year YYYY")]
    NeedsYear(String),
    /// `--top` below 1.
    #[error("--top {0} must be at least 1")]
    BadTop(i64),
    /// `--format html` of something other than a briefing.
    #[error("--format html is for `jiancha report monthly-briefing` and `quarterly-report` (with --out FILE)")]
    HtmlOnlyBriefings,
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

/// Whether a report's SQL is of a year (`$year`) rather than a month.
pub fn of_a_year(sql: &str) -> bool {
    sql.contains("$year")
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

/// Checks a `YYYY` year.
pub fn check_year(year: &str) -> Result<(), ReportError> {
    let ok = year.len() == 4 && year.bytes().all(|b| b.is_ascii_digit()) && year >= "1900";
    if ok {
        Ok(())
    } else {
        Err(ReportError::BadYear(year.to_string()))
    }
}

/// What a report is run for.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// `YYYY-MM`, for a report of a month.
    pub month: Option<String>,
    /// `YYYY`, for a report of a year.
    pub year: Option<String>,
    /// Region code, or '' for all.
    pub region: String,
    /// Windows honoured by a report of a year.
    pub top: i64,
}

impl Params {
    /// A month and region.
    pub fn month(month: &str, region: &str) -> Params {
        Params { month: Some(month.to_string()), year: None, region: region.to_string(), top: DEFAULT_TOP }
    }

    /// A year and region.
    pub fn year(year: &str, region: &str) -> Params {
        Params { month: None, year: Some(year.to_string()), region: region.to_string(), top: DEFAULT_TOP }
    }

    /// Checks the parameters against what report `name` (whose SQL is
    /// `sql`) needs.
    pub fn check(&self, name: &str, sql: &str) -> Result<(), ReportError> {
        if of_a_year(sql) {
            check_year(self.year.as_deref().ok_or_else(|| ReportError::NeedsYear(name.to_string()))?)?;
            if self.top < 1 {
                return Err(ReportError::BadTop(self.top));
            }
        } else {
            check_month(self.month.as_deref().ok_or_else(|| ReportError::NeedsMonth(name.to_string()))?)?;
        }
        Ok(())
    }

    /// The period as said in a title: the month or the year.
    pub fn period(&self) -> &str {
        self.month.as_deref().or(self.year.as_deref()).unwrap_or("")
    }

    /// The named parameters `sql` mentions.
    pub fn values(&self, sql: &str) -> ParamValues {
        let text = |s: &Option<String>| ScalarValue::Utf8(Some(s.clone().unwrap_or_default()));
        let mut m = HashMap::new();
        for (name, v) in [
            ("month", text(&self.month)),
            ("year", text(&self.year)),
            ("region", ScalarValue::Utf8(Some(self.region.clone()))),
            ("top", ScalarValue::Int64(Some(self.top))),
        ] {
            if sql.contains(&format!("${name}")) {
                m.insert(name.to_string(), v.into());
            }
        }
        ParamValues::Map(m)
    }
}

/// Runs report SQL for a month and region.
pub async fn run(ctx: &SessionContext, sql: &str, month: &str, region: &str) -> Result<Vec<RecordBatch>, SqlError> {
    run_with(ctx, sql, &Params::month(month, region)).await
}

/// Runs report SQL with its parameters.
pub async fn run_with(ctx: &SessionContext, sql: &str, params: &Params) -> Result<Vec<RecordBatch>, SqlError> {
    Ok(ctx.sql(sql).await?.with_param_values(params.values(sql))?.collect().await?)
}
