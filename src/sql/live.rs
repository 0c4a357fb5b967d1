//! `case_versions` as the servers see it: the stored parts plus the cases
//! changed since their writer last flushed ([`PendingCases`]), read at the
//! moment a query runs. So the `cases` view over it shows every open case
//! in its current state, without waiting for a flush.

use crate::history::pending::PendingCases;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::ExecutionPlan;
use std::sync::Arc;

/// The stored table, with the pending rows added at each scan.
#[derive(Debug)]
pub struct WithPending {
    stored: Arc<dyn TableProvider>,
    pending: Arc<PendingCases>,
}

impl WithPending {
    /// `stored` with `pending`'s rows (which must have its schema).
    pub fn new(stored: Arc<dyn TableProvider>, pending: Arc<PendingCases>) -> WithPending {
        WithPending { stored, pending }
    }
}

#[async_trait::async_trait]
impl TableProvider for WithPending {
    fn schema(&self) -> SchemaRef {
        self.stored.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        // The pending rows first: a case flushed between the two reads is
        // then seen twice (the `cases` view keeps the newer row), not lost.
        let pending = self.pending.batch(&self.schema())?;
        let stored = self.stored.scan(state, projection, filters, limit).await?;
        let Some(batch) = pending else { return Ok(stored) };
        let mem = MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema(), projection.cloned())?;
        UnionExec::try_new(vec![stored, mem])
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        // The stored parts may prune by them; the pending rows need them
        // applied after the scan.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }
}
