//! Query results as a text table, CSV, or one JSON array of row objects
//! (booleans as booleans, dates as `YYYY-MM-DD`, nulls as null).

use super::SqlError;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON array of row objects.
    Json,
    /// An Excel workbook (needs `--out`).
    Xlsx,
    /// A briefing to print and circulate, one self-contained HTML file
    /// (`jiancha report monthly-briefing` or `quarterly-report`; needs `--out`).
    Html,
}

impl Format {
    /// The name given to `--format`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Xlsx => "xlsx",
            Format::Html => "html",
        }
    }
}

/// Renders batches in a format.
pub fn render(batches: &[RecordBatch], format: Format) -> Result<Vec<u8>, SqlError> {
    render_named(batches, format, "query")
}

/// Renders; an xlsx workbook's sheet is called `sheet`.
pub fn render_named(batches: &[RecordBatch], format: Format, sheet: &str) -> Result<Vec<u8>, SqlError> {
    match format {
        Format::Xlsx => super::xlsx::workbook(batches, sheet),
        Format::Html => Err(SqlError::Report(super::report::ReportError::HtmlOnlyBriefings)),
        Format::Table => Ok(format!("{}\n", pretty_format_batches(batches)?).into_bytes()),
        Format::Csv => {
            let mut out = Vec::new();
            {
                let mut w = datafusion::arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
                for b in batches {
                    w.write(b)?;
                }
            }
            Ok(out)
        }
        Format::Json => {
            let mut out = Vec::new();
            {
                let mut w = datafusion::arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, datafusion::arrow::json::writer::JsonArray>(&mut out);
                for b in batches {
                    w.write(b)?;
                }
                w.finish()?;
            }
            if out.is_empty() {
                out.extend_from_slice(b"[]");
            }
            out.push(b'\n');
            Ok(out)
        }
    }
}
