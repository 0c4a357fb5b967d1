//! The printed briefing (`jiancha report monthly-briefing --format html`).

use super::report::Params;
use super::SqlError;
use crate::reference::RefData;
use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;

/// The briefing as one self-contained HTML page.
pub async fn briefing(
    _ctx: &SessionContext,
    _refdata: &RefData,
    name: &str,
    _params: &Params,
    _rows: &[RecordBatch],
) -> Result<Vec<u8>, SqlError> {
    let _ = name;
    Err(SqlError::Report(super::report::ReportError::HtmlOnlyBriefings))
}
