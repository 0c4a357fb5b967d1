//! The reference tables only reports read — `departments` and `deductions`
//! — as table providers that take the file's current contents at each scan
//! (see [`crate::reference::Watched`]): a running service's SQL sees an
//! edited `deductions.csv` within seconds, with no restart.

use crate::reference::{Deductions, Departments, Watched};
use datafusion::arrow::array::{ArrayRef, Date32Array, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::catalog::TableProvider;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use std::sync::Arc;

/// Rows of a reference file as one batch.
pub trait AsBatch: Send + Sync + 'static {
    /// The table's columns.
    fn schema() -> SchemaRef;
    /// The rows.
    fn batch(&self) -> Result<RecordBatch, datafusion::arrow::error::ArrowError>;
}

impl AsBatch for Departments {
    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("code", DataType::Utf8, false),
            Field::new("name", DataType::Utf8, false),
        ]))
    }

    fn batch(&self) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
        let rows = self.rows();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|d| d.code.as_str()))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|d| d.name.as_str()))),
        ];
        RecordBatch::try_new(Self::schema(), cols)
    }
}

impl AsBatch for Deductions {
    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("date", DataType::Date32, false),
            Field::new("region", DataType::Utf8, false),
            Field::new("department", DataType::Utf8, false),
            Field::new("window", DataType::Utf8, true),
            Field::new("points", DataType::Float64, false),
            Field::new("reason", DataType::Utf8, false),
        ]))
    }

    fn batch(&self) -> Result<RecordBatch, datafusion::arrow::error::ArrowError> {
        let rows = self.rows();
        let days = rows.iter().map(|d| crate::time::Day::from_date(d.date).0);
        let windows: StringArray = rows.iter().map(|d| d.window.as_deref()).collect();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Date32Array::from_iter_values(days)),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|d| d.region.as_str()))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|d| d.department.as_str()))),
            Arc::new(windows),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|d| d.points))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|d| d.reason.as_str()))),
        ];
        RecordBatch::try_new(Self::schema(), cols)
    }
}

/// A reference file as a table, read as it is at each scan.
pub struct WatchedTable<T: AsBatch> {
    file: Arc<Watched<T>>,
}

impl<T: AsBatch> WatchedTable<T> {
    /// The table over a watched file.
    pub fn new(file: Arc<Watched<T>>) -> WatchedTable<T> {
        WatchedTable { file }
    }
}

impl<T: AsBatch> std::fmt::Debug for WatchedTable<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchedTable").field("file", &self.file).finish()
    }
}

#[async_trait::async_trait]
impl<T: AsBatch + Default> TableProvider for WatchedTable<T> {
    fn schema(&self) -> SchemaRef {
        T::schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let batch = self.file.get().batch()?;
        Ok(MemorySourceConfig::try_new_exec(&[vec![batch]], T::schema(), projection.cloned())?)
    }
}
