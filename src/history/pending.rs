//! Cases changed since their history was last flushed, for SQL to see
//! before they are written: the servers' `case_versions` is the stored
//! parts plus these rows ([`crate::sql::live`]), so an open case shows its
//! current state at once, not after the next flush.
//!
//! Each writer (the demo, or one partition of `run`) replaces its set now
//! and then, and empties it once a flush has written those cases. Its rows
//! carry the largest version, so the `cases` view takes them over any
//! stored version of the same case.

use super::month;
use super::schema::CaseRows;
use crate::engine::CaseView;
use crate::reference::RefData;
use crate::time::Zone;
use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::SchemaRef;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The version of a case row not flushed yet: above every stored one.
pub const PENDING_VERSION: u64 = u64::MAX;

/// The changed cases of every writer, not flushed yet.
pub struct PendingCases {
    zone: Zone,
    /// The configured zone's name, as the stored schema carries it.
    zone_name: String,
    refdata: Arc<RefData>,
    by_writer: Mutex<BTreeMap<String, Arc<Vec<CaseView>>>>,
}

impl std::fmt::Debug for PendingCases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PendingCases({} cases)", self.len())
    }
}

impl PendingCases {
    /// No pending case yet; `zone_name` is `time.zone` as configured.
    pub fn new(zone: Zone, zone_name: &str, refdata: Arc<RefData>) -> PendingCases {
        PendingCases { zone, zone_name: zone_name.to_string(), refdata, by_writer: Mutex::new(BTreeMap::new()) }
    }

    /// Replaces a writer's pending cases.
    pub fn set(&self, writer: &str, views: Vec<CaseView>) {
        let mut m = self.by_writer.lock().unwrap_or_else(|e| e.into_inner());
        if views.is_empty() {
            m.remove(writer);
        } else {
            m.insert(writer.to_string(), Arc::new(views));
        }
    }

    /// A writer flushed: its cases are in the stored parts now.
    pub fn clear(&self, writer: &str) {
        self.set(writer, Vec::new());
    }

    /// The pending view of a case, if it is pending.
    pub fn get(&self, case_id: &str) -> Option<CaseView> {
        let m = self.by_writer.lock().unwrap_or_else(|e| e.into_inner());
        m.values().find_map(|v| v.iter().find(|c| c.case_id == case_id).cloned())
    }

    /// How many cases are pending, over every writer.
    pub fn len(&self) -> usize {
        self.by_writer.lock().unwrap_or_else(|e| e.into_inner()).values().map(|v| v.len()).sum()
    }

    /// Whether no case is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pending rows in `schema`: the stored `case_versions` columns,
    /// then the `month` its parts are partitioned by. `None` when there
    /// are none.
    pub fn batch(&self, schema: &SchemaRef) -> Result<Option<RecordBatch>, arrow::error::ArrowError> {
        let sets: Vec<Arc<Vec<CaseView>>> =
            self.by_writer.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        let mut rows = CaseRows::new(&self.zone_name);
        let mut months = Vec::new();
        for v in sets.iter().flat_map(|s| s.iter()) {
            // As `History::case`: a case with no valid event has no row.
            let Some(t) = v.summary.accepted_at.or(v.summary.submitted_at) else { continue };
            months.push(month(&self.zone, t));
            rows.push(v, &self.refdata.catalog, PENDING_VERSION, |t| self.zone.day_of(t));
        }
        if months.is_empty() {
            return Ok(None);
        }
        let stored = rows.finish();
        let mut cols: Vec<ArrayRef> = stored.columns().to_vec();
        cols.push(Arc::new(StringArray::from(months)));
        RecordBatch::try_new(schema.clone(), cols).map(Some)
    }
}
