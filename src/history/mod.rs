//! History: every applied event, every alert record and every version of
//! every case, appended as Parquet under the data folder, partitioned by
//! month, so that SQL (DataFusion, and any Parquet reader) sees them while
//! the pipeline runs.
//!
//! Layout: `<data>/<table>/month=YYYY-MM/part-NNNNNNNN.parquet` for the
//! tables `events` (by month of `occurred_at`), `alert_records` (month of
//! `at`), `case_versions` (month of acceptance, else submission) and
//! `notice_versions` (the notices of a case, in its case's month), and
//! `<data>/rejected_events/part-NNNNNNNN.parquet` (stored events found not in
//! effect after all; see [`schema`]). A part
//! is written to a temporary name and renamed, so readers never see half a
//! file; nothing is ever rewritten. Rows are encoded into the part being
//! written every [`BATCH_ROWS`] rows of a table and month, so memory stays
//! bounded however long the writer goes between flushes.

mod parts;
pub use parts::Flushing;
pub mod pending;
pub mod schema;
pub mod store;

use crate::alert::AlertRecord;
use crate::engine::CaseView;
use crate::event::Event;
use crate::reference::RefData;
use crate::time::{Instant, Zone};
use arrow::array::RecordBatch;

/// Columns whose values are (nearly) all different: a dictionary would
/// only cost the time of interning every value before falling back to
/// plain encoding (it was about a sixth of a replay's time). Zstd does the
/// compressing.
const UNIQUE_COLUMNS: &[&str] = &[
    "event_id",
    "case_id",
    "parent_case_id",
    "earlier_case_id",
    "alert_id",
    "applicant",
    "applicant_hash",
    "occurred_at",
    "recorded_at",
    "at",
    "submitted_at",
    "accepted_at",
    "completed_at",
    "closed_at",
    "origin",
    "offset",
];
use schema::{AlertRows, CaseRows, EventRows, NoticeRows};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Rows of one table and month collected before they are encoded into
/// the open part.
pub const BATCH_ROWS: usize = 8192;

/// Rows per Parquet row group: what the part being written holds in memory
/// (encoded) before it goes to the file.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;

/// The stored tables.
pub const TABLES: [&str; 5] = ["events", "alert_records", "case_versions", "rejected_events", "notice_versions"];

/// Writing history failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// A file or folder.
    #[error("history {path}: {cause}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        cause: std::io::Error,
    },
    /// Encoding Parquet.
    #[error("history {path}: {cause}")]
    Parquet {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        cause: parquet::errors::ParquetError,
    },
    /// The object store of `storage.history_url`.
    #[error("history store {url}: {why}")]
    Store {
        /// Its URL.
        url: String,
        /// What went wrong.
        why: String,
    },
}

/// The history writer.
pub struct History {
    zone: Zone,
    zone_name: String,
    refdata: Arc<RefData>,
    events: BTreeMap<Month, EventRows>,
    alerts: BTreeMap<Month, AlertRows>,
    cases: BTreeMap<Month, CaseRows>,
    notices: BTreeMap<Month, NoticeRows>,
    rejected: Vec<u64>,
    /// The parts being written (temporary names), on their own thread.
    parts: parts::Parts,
    /// Rows handed to them since the last flush.
    encoded: usize,
    run: u64,
    part: u64,
    version: u64,
}

/// The number of a part file of writer `writer` (see [`History::open_as`]):
/// `part-NNNNNNNN.parquet` for the unnamed writer, `part-WRITER-NNNNNNNN.parquet`
/// otherwise, and their temporary `.part-….tmp` names.
fn part_number(file_name: &str, writer: &str) -> Option<u64> {
    let rest = file_name.trim_start_matches('.').strip_prefix("part-")?;
    let rest = if writer.is_empty() { rest } else { rest.strip_prefix(writer)?.strip_prefix('-')? };
    let digits = rest.strip_suffix(".parquet").or_else(|| rest.strip_suffix(".parquet.tmp"))?;
    digits.parse().ok()
}

/// Every file of every table, in month folders or (rejected_events) the table folder.
fn table_files(dir: &Path) -> Vec<std::fs::DirEntry> {
    let mut files = Vec::new();
    for t in TABLES {
        for e in std::fs::read_dir(dir.join(t)).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                files.extend(std::fs::read_dir(e.path()).into_iter().flatten().flatten());
            } else {
                files.push(e);
            }
        }
    }
    files
}

/// Removes every part of writer `writer` numbered `next` or above, in every
/// table, here and in the history's object store if it has one: what it
/// wrote after a checkpoint that recorded `next`, and will write again when
/// the input after that checkpoint is processed again.
pub fn discard_parts_from(
    dir: &Path,
    writer: &str,
    next: u64,
    remote: Option<&store::Remote>,
) -> Result<usize, HistoryError> {
    let mut removed = 0;
    for f in table_files(dir) {
        let name = f.file_name().to_string_lossy().to_string();
        if part_number(&name, writer).is_some_and(|n| n >= next) {
            std::fs::remove_file(f.path()).map_err(|cause| HistoryError::Io { path: f.path(), cause })?;
            removed += 1;
        }
    }
    if let Some(r) = remote {
        for rel in r.list()? {
            let name = rel.rsplit('/').next().unwrap_or_default();
            if part_number(name, writer).is_some_and(|n| n >= next) {
                r.delete(&rel)?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// A calendar month, `year * 100 + month`: what history is partitioned by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Month(i32);

impl Month {
    fn of(day: crate::time::Day) -> Month {
        use chrono::Datelike;
        let d = day.date();
        Month(d.year() * 100 + d.month() as i32)
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.0.div_euclid(100), self.0.rem_euclid(100))
    }
}

/// `YYYY-MM` of an instant in the zone.
fn month(zone: &Zone, t: Instant) -> String {
    Month::of(zone.day_of(t)).to_string()
}

impl History {
    /// Opens (creating) the history under `dir`; new parts are numbered
    /// after the existing ones.
    pub fn open(dir: &Path, zone: Zone, refdata: Arc<RefData>) -> Result<History, HistoryError> {
        History::open_as(dir, zone, refdata, "", None)
    }

    /// Opens the history under `dir` for a named writer: its parts are
    /// `part-WRITER-NNNNNNNN.parquet`, numbered after its existing ones, so
    /// several writers (one per Kafka partition) share the folders. With a
    /// `remote` store, each part is moved there once complete (and
    /// numbered after the writer's parts there too).
    pub fn open_as(
        dir: &Path,
        zone: Zone,
        refdata: Arc<RefData>,
        writer: &str,
        remote: Option<Arc<store::Remote>>,
    ) -> Result<History, HistoryError> {
        for t in TABLES {
            let td = dir.join(t);
            std::fs::create_dir_all(&td).map_err(|cause| HistoryError::Io { path: td.clone(), cause })?;
        }
        let mut names: Vec<String> =
            table_files(dir).iter().map(|f| f.file_name().to_string_lossy().into_owned()).collect();
        if let Some(r) = &remote {
            names.extend(r.list()?.into_iter().map(|rel| rel.rsplit('/').next().unwrap_or_default().to_string()));
        }
        let part = names.iter().filter_map(|n| part_number(n, writer)).map(|n| n + 1).max().unwrap_or(0);
        Ok(History {
            zone_name: zone.name().to_string(),
            zone,
            refdata,
            events: BTreeMap::new(),
            alerts: BTreeMap::new(),
            cases: BTreeMap::new(),
            notices: BTreeMap::new(),
            rejected: Vec::new(),
            parts: parts::Parts::start(
                dir,
                &if writer.is_empty() { String::new() } else { format!("{writer}-") },
                remote,
            ),
            encoded: 0,
            run: part,
            part,
            version: part << 32,
        })
    }

    /// How long handing rows to the writer thread has waited for it (its
    /// queue full), in all.
    pub fn waited(&self) -> std::time::Duration {
        self.parts.waited()
    }

    /// The number the next part will carry: every part numbered from it on
    /// was written after this instant (see [`discard_parts_from`]).
    pub fn next_part(&self) -> u64 {
        self.part
    }

    /// The run that stored events are tagged with (with their input
    /// position, it identifies them for [`History::rejected`]).
    pub fn run(&self) -> u64 {
        self.run
    }

    /// Tags stored events with `run` instead of a new one: a service whose
    /// input positions stay valid across restarts (Kafka partition and
    /// offset) keeps one run, so an event stored before a restart can still
    /// be marked rejected after it.
    pub fn set_run(&mut self, run: u64) {
        self.run = run;
    }

    /// Adds an event handed to the engine (not a duplicate), with no input
    /// position: it cannot be marked rejected later. Prefer [`History::event_from`].
    pub fn event(&mut self, e: &Event, kafka: Option<(i32, i64)>) {
        self.push_event(e, kafka, None)
    }

    /// Adds an event handed to the engine (not a duplicate); `kafka` is its
    /// (partition, offset) when it came from Kafka, `origin` its input
    /// position (the one given to `Engine::apply`), unique within this
    /// writer's run. If the event turns out not to be in effect (the engine
    /// dead-letters that origin, or it is still held at the end), call
    /// [`History::rejected`] with the same origin.
    pub fn event_from(&mut self, e: &Event, kafka: Option<(i32, i64)>, origin: u64) {
        self.push_event(e, kafka, Some(origin))
    }

    fn push_event(&mut self, e: &Event, kafka: Option<(i32, i64)>, origin: Option<u64>) {
        let day = self.zone.day_of(e.occurred_at);
        let m = Month::of(day);
        let z = &self.zone_name;
        let at = origin.map(|o| (self.run, o));
        let rows = self.events.entry(m).or_insert_with(|| EventRows::new(z));
        rows.push(e, day, &self.refdata.catalog, kafka, at);
        if rows.len >= BATCH_ROWS {
            let batch = rows.finish();
            self.encode("events", Some(m), batch);
        }
    }

    /// Marks the event stored with `origin` as not in effect (dead-lettered
    /// by the engine, or still held when the run ends): SQL's `events` leaves it out.
    pub fn rejected(&mut self, origin: u64) {
        self.rejected.push(origin);
    }

    /// Adds an alert record.
    pub fn alert(&mut self, r: &AlertRecord) {
        let day = self.zone.day_of(r.at_ms);
        let m = Month::of(day);
        let z = &self.zone_name;
        let rows = self.alerts.entry(m).or_insert_with(|| AlertRows::new(z));
        rows.push(r, day);
        if rows.len >= BATCH_ROWS {
            let batch = rows.finish();
            self.encode("alert_records", Some(m), batch);
        }
    }

    /// Adds a version of a case (ignored for a case with no valid event).
    pub fn case(&mut self, v: &CaseView) {
        let Some(t) = v.summary.accepted_at.or(v.summary.submitted_at) else { return };
        let m = Month::of(self.zone.day_of(t));
        self.version += 1;
        let (z, zone, cat) = (&self.zone_name, &self.zone, &self.refdata.catalog);
        let rows = self.cases.entry(m).or_insert_with(|| CaseRows::new(z));
        rows.push(v, cat, self.version, |t| zone.day_of(t));
        if rows.len >= BATCH_ROWS {
            let batch = rows.finish();
            self.encode("case_versions", Some(m), batch);
        }
        if !v.summary.notices.is_empty() {
            let (z, zone) = (&self.zone_name, &self.zone);
            let rows = self.notices.entry(m).or_insert_with(|| NoticeRows::new(z));
            rows.push(v, self.version, |t| zone.day_of(t));
            if rows.len >= BATCH_ROWS {
                let batch = rows.finish();
                self.encode("notice_versions", Some(m), batch);
            }
        }
    }

    /// Rows waiting to be written (collected, or in parts not yet complete).
    pub fn pending(&self) -> usize {
        self.encoded
            + self.rejected.len()
            + self.events.values().map(|r| r.len).sum::<usize>()
            + self.alerts.values().map(|r| r.len).sum::<usize>()
            + self.cases.values().map(|r| r.len).sum::<usize>()
            + self.notices.values().map(|r| r.len).sum::<usize>()
    }

    /// Hands rows to the part of `table` and month `m` being written (see
    /// [`parts`]); a failure is reported by [`History::flush`].
    fn encode(&mut self, table: &'static str, m: Option<Month>, batch: RecordBatch) {
        if batch.num_rows() == 0 {
            return;
        }
        self.encoded += batch.num_rows();
        self.parts.encode(table, m, self.part, batch);
    }

    /// Writes every pending row and completes the parts being written
    /// (their final names appear only now). After a failure, returns it and
    /// writes nothing more: the parts of this flush are left under their
    /// temporary names, which the next writer of the same name removes
    /// ([`discard_parts_from`]) or numbers after.
    pub fn flush(&mut self) -> Result<(), HistoryError> {
        self.flush_in_background().wait()
    }

    /// Hands every collected row to the parts being written.
    fn encode_collected(&mut self) {
        let rejected = std::mem::take(&mut self.rejected);
        if !rejected.is_empty() {
            let n = rejected.len();
            let cols: Vec<arrow::array::ArrayRef> = vec![
                Arc::new(arrow::array::UInt64Array::from(vec![self.run; n])),
                Arc::new(arrow::array::UInt64Array::from(rejected)),
            ];
            let batch =
                RecordBatch::try_new(schema::rejected_events(), cols).expect("rejected batch matches its schema");
            self.encode("rejected_events", None, batch);
        }
        for (m, mut rows) in std::mem::take(&mut self.events) {
            self.encode("events", Some(m), rows.finish());
        }
        for (m, mut rows) in std::mem::take(&mut self.alerts) {
            self.encode("alert_records", Some(m), rows.finish());
        }
        for (m, mut rows) in std::mem::take(&mut self.cases) {
            self.encode("case_versions", Some(m), rows.finish());
        }
        for (m, mut rows) in std::mem::take(&mut self.notices) {
            self.encode("notice_versions", Some(m), rows.finish());
        }
    }

    /// [`History::flush`], but the parts complete on the writer thread
    /// while the caller goes on: rows handed in from now on go to parts of
    /// the next number ([`History::next_part`]). The returned [`Flushing`]
    /// says when this flush's parts are complete. A failure is reported
    /// there, and by every later flush (nothing more is written).
    pub fn flush_in_background(&mut self) -> Flushing {
        self.encode_collected();
        // Rows handed over since the last flush mean a part is open (or
        // failed to open): it completes, and the next flush numbers on.
        // Numbered on whether they are completed or abandoned: should one
        // fail, the next flush cannot write over the parts completed
        // before it, and numbers after the abandoned ones.
        let open = std::mem::take(&mut self.encoded) > 0;
        let flushing = self.parts.finish();
        if open {
            self.part += 1;
        }
        flushing
    }
}
