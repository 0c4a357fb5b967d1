//! SQL over the history: a DataFusion session with the tables of
//! `interfaces.md` — `events`, `cases`, `alerts`, `items`, `regions` — and
//! of `follow-up.md` — `departments`, `deductions` — plus
//! `region_tree` (every region with each of its ancestors, for roll-ups) and
//! the stored tables behind the views (`event_log`, `rejected_events`,
//! `case_versions`, `alert_records`).

pub mod format;
pub mod html;
pub mod live;
pub mod refs;
pub mod report;
pub mod scope;
pub mod text;
pub mod xlsx;

use crate::history::schema;
use crate::reference::RefData;
use datafusion::arrow::array::{ArrayRef, BooleanArray, Float64Array, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::datasource::MemTable;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use std::path::Path;
use std::sync::Arc;

/// A SQL problem, with DataFusion's message.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// Planning or running a query.
    #[error("{0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// Arrow (formatting results).
    #[error("{0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// Files.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Writing a workbook.
    #[error("{0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    /// Reading results back as JSON.
    #[error("results as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A named report that cannot be run.
    #[error(transparent)]
    Report(#[from] report::ReportError),
}

/// The `events` view: the stored events that are in effect (applied and
/// not later dead-lettered, nor still held at the end of a replay).
pub const EVENTS_VIEW: &str = "CREATE VIEW events AS
SELECT event_id, case_id, type, occurred_at, occurred_date, recorded_at, source, region, department,
       \"window\", item_code, applicant, parent_case_id, reason, result, fee_yuan, rating, step,
       \"partition\", \"offset\", month, complaint_category, about_case_id, finding, deadline_days, notice_id,
       channel, staff
FROM event_log e
WHERE NOT EXISTS (SELECT 1 FROM rejected_events r WHERE r.run = e.run AND r.origin = e.origin)";

/// The `cases` view: the latest version of each case. The grouped maximum
/// comes first: DataFusion then builds its hash join on the one-row-per-case
/// side and streams the versions through it (over 10 M cases, a quarter of
/// the build time and a seventh of the memory of the other order).
pub const CASES_VIEW: &str = "CREATE VIEW cases AS
SELECT v.case_id, v.parent_case_id, v.region, v.department, v.\"window\", v.item_code, v.kind, v.applicant_hash,
       v.submitted_at, v.accepted_at, v.accepted_date, v.limit_days, v.statutory_days, v.due_date, v.status, v.result,
       v.completed_at, v.completed_date, v.closed_at, v.closed_date, v.on_time, v.early, v.used_days, v.stopped_days,
       v.overdue, v.fee_yuan, v.rating, COALESCE(v.provisional_calendar, false) AS provisional_calendar,
       v.current_step, v.step_due_date, v.step_used_days, v.late_sub_cases, v.late_departments, v.late_sub_case_ids,
       v.channel_accepted, v.channel_completed, v.staff
FROM (SELECT case_id, MAX(version) AS version FROM case_versions GROUP BY case_id) latest
JOIN case_versions v ON v.case_id = latest.case_id AND v.version = latest.version
WHERE v.kind IS DISTINCT FROM 'complaint'";

/// The `alerts` view: one row per alert, from its records.
pub const ALERTS_VIEW: &str = "CREATE VIEW alerts AS
SELECT alert_id,
       MAX(rule) AS rule,
       MAX(level) AS level,
       MAX(case_id) AS case_id,
       MAX(CASE WHEN state = 'firing' THEN region END) AS region,
       MAX(CASE WHEN state = 'firing' THEN department END) AS department,
       MAX(CASE WHEN state = 'firing' THEN \"window\" END) AS \"window\",
       MAX(CASE WHEN state = 'firing' THEN item_code END) AS item_code,
       MAX(CASE WHEN state = 'firing' THEN due_date END) AS due_date,
       MAX(CASE WHEN state = 'firing' THEN earlier_case_id END) AS earlier_case_id,
       MIN(CASE WHEN state = 'firing' THEN \"at\" END) AS raised_at,
       MIN(CASE WHEN state = 'firing' THEN at_date END) AS raised_date,
       MAX(CASE WHEN state = 'resolved' THEN \"at\" END) AS resolved_at,
       BOOL_OR(state = 'retracted') AS retracted
FROM alert_records
GROUP BY alert_id";

/// The `complaints` view: one row per complaint (效能投诉), from the latest
/// version of its case row (a complaint is a case of kind `complaint`: filed
/// at its `submitted_at`, answered at its `completed_at`) and its two events.
pub const COMPLAINTS_VIEW: &str = "CREATE VIEW complaints AS
SELECT v.case_id AS complaint_id, v.region, v.department, v.\"window\", f.complaint_category, f.about_case_id,
       v.submitted_at AS filed_at, f.occurred_date AS filed_date, v.due_date,
       v.completed_at AS answered_at, v.completed_date AS answered_date, a.finding,
       v.status, v.on_time, v.overdue, v.month
FROM (SELECT case_id, MAX(version) AS version FROM case_versions GROUP BY case_id) latest
JOIN case_versions v ON v.case_id = latest.case_id AND v.version = latest.version
LEFT JOIN events f ON f.case_id = v.case_id AND f.type = 'complaint_filed'
LEFT JOIN events a ON a.case_id = v.case_id AND a.type = 'complaint_answered'
WHERE v.kind = 'complaint'";

/// The `notices` view: one row per supervision notice (督办), as the latest
/// version of its case gives it.
pub const NOTICES_VIEW: &str = "CREATE VIEW notices AS
SELECT n.notice_id, n.case_id, n.region, n.department, n.\"window\", n.issued_at, n.issued_date, n.deadline_days,
       n.due_date, n.answered_at, n.answered_date,
       CASE WHEN n.answered_at IS NULL THEN 'open' ELSE 'answered' END AS status, n.overdue
FROM (SELECT case_id, MAX(version) AS version FROM notice_versions GROUP BY case_id) latest
JOIN notice_versions n ON n.case_id = latest.case_id AND n.version = latest.version";

/// The views SQL sees over the stored tables, in order (plain SQL, so other
/// engines — the DuckDB reference in the benchmark — can define them too).
pub const VIEWS: [&str; 5] = [EVENTS_VIEW, CASES_VIEW, ALERTS_VIEW, COMPLAINTS_VIEW, NOTICES_VIEW];

/// A new, empty session as every session here is made: catalog
/// `jiancha`, schema `public`, `information_schema` on, and no cache of
/// folder listings. DataFusion keeps a session's first listing of a table's
/// folder for the session's life by default, so a long-lived session (the
/// servers', the live figures') would never see a part written after its
/// first query.
pub fn context() -> Result<SessionContext, SqlError> {
    Ok(context_on(RuntimeEnvBuilder::new().with_object_list_cache_limit(0).build_arc()?))
}

/// A new, empty session as [`context`] makes them, executing on `runtime`
/// (its memory pool and spill files; it too should cache no listings).
pub fn context_on(runtime: Arc<RuntimeEnv>) -> SessionContext {
    let config =
        SessionConfig::new().with_information_schema(true).with_default_catalog_and_schema("jiancha", "public");
    SessionContext::new_with_config_rt(config, runtime)
}

/// Opens a session over the history under `data`.
pub async fn session(data: &Path, refdata: &RefData, zone: &str) -> Result<SessionContext, SqlError> {
    session_with(data, refdata, zone, None).await
}

/// Opens a session over the history under `data` and, when given, the
/// cases a running pipeline changed since it last flushed them (see
/// [`live`]).
pub async fn session_with(
    data: &Path,
    refdata: &RefData,
    zone: &str,
    pending: Option<Arc<crate::history::pending::PendingCases>>,
) -> Result<SessionContext, SqlError> {
    let ctx = context()?;
    // A URL is the object store of `storage.history_url`.
    let remote = match crate::history::store::is_url(data) {
        true => {
            let r = crate::history::store::Remote::open(&data.to_string_lossy())
                .map_err(|e| SqlError::Io(std::io::Error::other(e.to_string())))?;
            let (at, store) = r.registration();
            ctx.register_object_store(at.as_ref(), store);
            Some(r)
        }
        false => None,
    };
    let stored = [
        ("event_log", "events", schema::events(zone), true),
        ("alert_records", "alert_records", schema::alert_records(zone), true),
        ("case_versions", "case_versions", schema::case_versions(zone), true),
        ("rejected_events", "rejected_events", schema::rejected_events(), false),
        ("notice_versions", "notice_versions", schema::notice_versions(zone), true),
    ];
    for (name, folder, schema, by_month) in stored {
        let url = match &remote {
            Some(r) => ListingTableUrl::parse(r.table_url(folder))?,
            None => {
                let dir = data.join(folder);
                std::fs::create_dir_all(&dir)?;
                ListingTableUrl::parse(format!("{}/", dir.canonicalize()?.display()))?
            }
        };
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(if by_month { vec![("month".to_string(), DataType::Utf8)] } else { vec![] });
        let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(schema);
        let stored: Arc<dyn datafusion::catalog::TableProvider> = Arc::new(ListingTable::try_new(config)?);
        match (&pending, name) {
            (Some(p), "case_versions") => {
                ctx.register_table(name, Arc::new(live::WithPending::new(stored, p.clone())))?
            }
            _ => ctx.register_table(name, stored)?,
        };
    }
    register_reference(&ctx, refdata)?;
    for view in VIEWS {
        ctx.sql(view).await?;
    }
    scope::register_reports(&ctx, true);
    Ok(ctx)
}

fn strings<'a>(v: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(v))
}

fn register_reference(ctx: &SessionContext, rd: &RefData) -> Result<(), SqlError> {
    let items = rd.catalog.items();
    let schema = Arc::new(Schema::new(vec![
        Field::new("item_code", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("department", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("statutory_days", DataType::Int32, false),
        Field::new("promised_days", DataType::Int32, false),
        Field::new("fee_yuan", DataType::Float64, false),
        Field::new("in_hall", DataType::Boolean, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            strings(items.iter().map(|i| i.item_code.as_str())),
            strings(items.iter().map(|i| i.name.as_str())),
            strings(items.iter().map(|i| i.department.as_str())),
            strings(items.iter().map(|i| i.kind.as_str())),
            Arc::new(Int32Array::from_iter_values(items.iter().map(|i| i.statutory_days as i32))),
            Arc::new(Int32Array::from_iter_values(items.iter().map(|i| i.promised_days as i32))),
            Arc::new(Float64Array::from_iter_values(items.iter().map(|i| i.fee_yuan))),
            Arc::new(BooleanArray::from(items.iter().map(|i| i.in_hall).collect::<Vec<_>>())),
        ],
    )?;
    ctx.register_table("items", Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))?;

    let rows = rd.regions.rows();
    let schema = Arc::new(Schema::new(vec![
        Field::new("code", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("parent", DataType::Utf8, true),
    ]));
    let parents: StringArray =
        rows.iter().map(|r| if r.parent.is_empty() { None } else { Some(r.parent.as_str()) }).collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            strings(rows.iter().map(|r| r.code.as_str())),
            strings(rows.iter().map(|r| r.name.as_str())),
            Arc::new(parents),
        ],
    )?;
    ctx.register_table("regions", Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))?;

    // region_tree: (code, ancestor, depth) with depth 0 for the code itself.
    let mut code = Vec::new();
    let mut anc = Vec::new();
    let mut depth = Vec::new();
    for r in rows {
        for (d, a) in rd.regions.ancestors(&r.code).enumerate() {
            code.push(r.code.as_str());
            anc.push(a);
            depth.push(d as i32);
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("code", DataType::Utf8, false),
        Field::new("ancestor", DataType::Utf8, false),
        Field::new("depth", DataType::Int32, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![strings(code.into_iter()), strings(anc.into_iter()), Arc::new(Int32Array::from(depth))],
    )?;
    ctx.register_table("region_tree", Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))?;
    ctx.register_table("departments", Arc::new(refs::WatchedTable::new(rd.departments.clone())))?;
    ctx.register_table("deductions", Arc::new(refs::WatchedTable::new(rd.deductions.clone())))?;
    Ok(())
}
