//! The briefing figures as live gauges: every `metrics.figures_interval`,
//! the monthly briefing (`sql/reports/monthly-briefing.sql`, the same file
//! and code path as `jiancha report`) runs over history for the pipeline's
//! current month, for the top regions and the level below, and each figure becomes `jiancha_briefing_<figure>{region,
//! department}`. Live and monthly figures therefore cannot disagree. With
//! them, complaints and supervision notices open and overdue
//! (`jiancha_complaints_open`, `…_overdue`, `jiancha_notices_open`,
//! `…_overdue`), from the `complaints` and `notices` tables.

use super::Live;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::prelude::SessionContext;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Regions the figures are computed for: the top regions and the level
/// below (a province and its cities; counties roll up into them).
pub fn regions(live: &Live) -> Vec<String> {
    let rd = &live.refdata.regions;
    let mut out: Vec<String> =
        rd.rows().iter().filter(|r| rd.ancestors(&r.code).count() <= 2).map(|r| r.code.clone()).collect();
    out.truncate(32);
    out
}

/// Calls `set(department, value)` for each row of `b` with a department
/// and a non-null `column` (cast to a float); nothing when either column
/// is missing.
fn by_department(
    b: &datafusion::arrow::array::RecordBatch,
    column: &str,
    mut set: impl FnMut(&str, f64),
) -> Result<(), crate::sql::SqlError> {
    let (Some(dept), Some(values)) = (b.column_by_name("department"), b.column_by_name(column)) else {
        return Ok(());
    };
    let dept = cast(dept, &DataType::Utf8)?;
    let dept = dept.as_string::<i32>();
    let values = cast(values, &DataType::Float64)?;
    let values = values.as_primitive::<Float64Type>();
    for i in 0..b.num_rows() {
        if !values.is_null(i) && !dept.is_null(i) {
            set(dept.value(i), values.value(i));
        }
    }
    Ok(())
}

/// Open complaints or notices (`{table}`), and those past their due date,
/// by department, in region `$region` and below.
const FOLLOW_UP: &str = "SELECT department,
       SUM(CASE WHEN status = 'open' THEN 1 ELSE 0 END) AS open_n,
       SUM(CASE WHEN status = 'open' AND overdue THEN 1 ELSE 0 END) AS overdue_n
FROM {table}
WHERE CAST($month AS VARCHAR) <> ''
  AND (region = CAST($region AS VARCHAR)
       OR region IN (SELECT code FROM region_tree WHERE ancestor = CAST($region AS VARCHAR)))
GROUP BY department";

/// Sets the gauges of complaints and notices open and overdue.
async fn follow_up(live: &Live, ctx: &SessionContext, month: &str) -> Result<(), crate::sql::SqlError> {
    let mut results = Vec::new();
    for (table, gauges) in [("complaints", &live.metrics.complaints), ("notices", &live.metrics.notices)] {
        let sql = FOLLOW_UP.replace("{table}", table);
        for region in regions(live) {
            results.push((gauges, region.clone(), crate::sql::report::run(ctx, &sql, month, &region).await?));
        }
    }
    for g in live.metrics.complaints.iter().chain(&live.metrics.notices) {
        g.reset();
    }
    for (gauges, region, batches) in results {
        for b in batches {
            for (gauge, column) in gauges.iter().zip(["open_n", "overdue_n"]) {
                by_department(&b, column, |dept, v| gauge.with_label_values(&[region.as_str(), dept]).set(v as i64))?;
            }
        }
    }
    Ok(())
}

/// Computes the figures once for `month` (`YYYY-MM`).
pub async fn refresh(live: &Live, ctx: &SessionContext, month: &str) -> Result<(), crate::sql::SqlError> {
    let sql = crate::sql::report::text("monthly-briefing")?;
    let mut results = Vec::new();
    for region in regions(live) {
        let batches = crate::sql::report::run(ctx, &sql, month, &region).await?;
        results.push((region, batches));
    }
    follow_up(live, ctx, month).await?;
    for (_, g) in &live.metrics.briefing {
        g.reset();
    }
    for (region, batches) in results {
        for b in batches {
            for (column, gauge) in &live.metrics.briefing {
                by_department(&b, column, |dept, v| gauge.with_label_values(&[region.as_str(), dept]).set(v))?;
            }
        }
    }
    live.metrics.set_departments(&live.refdata.departments.get());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    live.metrics.figures_updated.set(now);
    Ok(())
}

/// Refreshes forever.
pub async fn run(live: Arc<Live>, ctx: SessionContext, every: Duration) {
    let every = every.max(Duration::from_secs(1));
    let mut warned = false;
    let mut cost = Duration::ZERO;
    loop {
        // At least ten times the last run's cost apart: the figures never
        // take more than about a tenth of a core from the pipeline.
        tokio::time::sleep(every.max(cost * 10)).await;
        let clock = live.clock.load(Ordering::Relaxed);
        if clock == 0 {
            continue;
        }
        let day = live.zone.day_of(clock);
        let month = day.date().format("%Y-%m").to_string();
        let started = std::time::Instant::now();
        let result = refresh(&live, &ctx, &month).await;
        cost = started.elapsed();
        match result {
            Ok(()) => warned = false,
            // Cancelled: the process is stopping.
            Err(e) if !warned && !e.to_string().contains("cancelled") => {
                tracing::warn!(%month, error = %e, "briefing figures not computed; trying again at the next refresh");
                warned = true;
            }
            Err(_) => {}
        }
    }
}
