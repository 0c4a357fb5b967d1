//! The text table of `jiancha report`: what a person reads on a terminal.
//! Rates and shares as percentages with two decimals, other fractions with
//! two decimals, the Chinese column names of the spreadsheets, and the
//! columns split into blocks no wider than the terminal, each block
//! repeating the columns that say whose row it is (rank, department name,
//! window, staff). `--format csv|json|xlsx` keep every value as it is.

use super::xlsx::{header, is_rate};
use super::SqlError;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use unicode_width::UnicodeWidthStr;

/// Columns that say whose row it is: repeated in every block.
const KEYS: [&str; 5] = ["unit", "rank", "staff", "department_name", "window"];
/// Shown once above the table rather than on every row.
const CAPTION: [&str; 2] = ["region", "year"];
/// Columns between blocks.
const GAP: usize = 2;

/// The width a terminal gives: `$COLUMNS`, else the terminal of standard
/// output, else 100.
pub fn terminal_width() -> usize {
    if let Some(n) = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<usize>().ok()) {
        if n >= 20 {
            return n;
        }
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: TIOCGWINSZ fills the winsize it is given and reads nothing else.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
        if ok && ws.ws_col >= 20 {
            return ws.ws_col as usize;
        }
    }
    100
}

/// One column as text.
struct Column {
    title: String,
    cells: Vec<String>,
    right: bool,
    width: usize,
}

/// A value as a person reads it: a rate 0.90909 as `90.91%`, another
/// fraction with two decimals, NULL as `-`.
fn cells(name: &str, dt: &DataType, col: &dyn Array) -> Result<(Vec<String>, bool), SqlError> {
    let n = col.len();
    let mut out = Vec::with_capacity(n);
    match dt {
        DataType::Float16 | DataType::Float32 | DataType::Float64 | DataType::Decimal128(..) => {
            let f = cast(col, &DataType::Float64)?;
            let v = f.as_primitive::<Float64Type>();
            for i in 0..n {
                out.push(match (v.is_null(i), is_rate(name)) {
                    (true, _) => "-".to_string(),
                    (false, true) => format!("{:.2}%", v.value(i) * 100.0),
                    (false, false) => format!("{:.2}", v.value(i)),
                });
            }
            Ok((out, true))
        }
        t if t.is_integer() => {
            let s = cast(col, &DataType::Utf8)?;
            let v = s.as_string::<i32>();
            out.extend((0..n).map(|i| if v.is_null(i) { "-".to_string() } else { v.value(i).to_string() }));
            Ok((out, true))
        }
        _ => {
            let s = cast(col, &DataType::Utf8)?;
            let v = s.as_string::<i32>();
            out.extend((0..n).map(|i| if v.is_null(i) { "-".to_string() } else { v.value(i).replace('\n', " ") }));
            Ok((out, false))
        }
    }
}

fn pad(s: &str, width: usize, right: bool) -> String {
    let fill = " ".repeat(width.saturating_sub(s.width()));
    if right {
        format!("{fill}{s}")
    } else {
        format!("{s}{fill}")
    }
}

/// The rows as text blocks no wider than `width` (a block that cannot fit
/// holds one column besides the keys); `title` goes first, then the
/// caption columns' values.
pub fn report_table(batches: &[RecordBatch], title: &str, width: usize) -> Result<String, SqlError> {
    let mut text = String::new();
    if !title.is_empty() {
        text.push_str(title);
        text.push('\n');
    }
    let Some(schema) = batches.first().map(|b| b.schema()) else {
        text.push_str("(no rows)\n");
        return Ok(text);
    };
    let mut cols: Vec<(String, Column)> = Vec::new();
    for (i, f) in schema.fields().iter().enumerate() {
        let mut all = Vec::new();
        let mut right = false;
        for b in batches {
            let (c, r) = cells(f.name(), f.data_type(), b.column(i).as_ref())?;
            all.extend(c);
            right = r;
        }
        let title = header(f.name()).to_string();
        let width = all.iter().map(|c| c.width()).chain([title.width()]).max().unwrap_or(0);
        cols.push((f.name().clone(), Column { title, cells: all, right, width }));
    }
    let rows = cols.first().map_or(0, |c| c.1.cells.len());
    // The caption: region and year, when the same on every row.
    let mut caption = Vec::new();
    cols.retain(|(name, c)| {
        if CAPTION.contains(&name.as_str()) && c.cells.windows(2).all(|w| w[0] == w[1]) {
            let v = c.cells.first().map_or("", String::as_str);
            caption.push(format!("{}: {}", c.title, if v.is_empty() { "全部" } else { v }));
            return false;
        }
        true
    });
    if !caption.is_empty() {
        text.push_str(&caption.join("  "));
        text.push('\n');
    }
    if rows == 0 {
        text.push_str("(no rows)\n");
        return Ok(text);
    }
    let mut keys: Vec<usize> = KEYS.iter().filter_map(|k| cols.iter().position(|c| c.0 == *k)).collect();
    if keys.is_empty() {
        keys.push(0);
    }
    let rest: Vec<usize> = (0..cols.len()).filter(|i| !keys.contains(i)).collect();
    let key_width: usize = keys.iter().map(|&i| cols[i].1.width + GAP).sum();
    let mut blocks: Vec<Vec<usize>> = Vec::new();
    let mut used = key_width;
    for &i in &rest {
        let w = cols[i].1.width + GAP;
        match blocks.last_mut() {
            Some(b) if used + w <= width + GAP => {
                b.push(i);
                used += w;
            }
            _ => {
                blocks.push(vec![i]);
                used = key_width + w;
            }
        }
    }
    if blocks.is_empty() {
        blocks.push(Vec::new());
    }
    for (n, block) in blocks.iter().enumerate() {
        if n > 0 {
            text.push('\n');
        }
        let shown: Vec<&Column> = keys.iter().chain(block.iter()).map(|&i| &cols[i].1).collect();
        let line = |f: &dyn Fn(&Column) -> String| -> String {
            shown.iter().map(|c| f(c)).collect::<Vec<_>>().join(&" ".repeat(GAP)).trim_end().to_string() + "\n"
        };
        text.push_str(&line(&|c| pad(&c.title, c.width, c.right)));
        text.push_str(&line(&|c| "-".repeat(c.width)));
        for r in 0..rows {
            text.push_str(&line(&|c| pad(&c.cells[r], c.width, c.right)));
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("region", DataType::Utf8, false),
            Field::new("department", DataType::Utf8, false),
            Field::new("department_name", DataType::Utf8, false),
            Field::new("accepted", DataType::Int64, false),
            Field::new("on_time_rate", DataType::Float64, true),
            Field::new("within_10_days_rate", DataType::Float64, true),
            Field::new("score", DataType::Float64, false),
            Field::new("rank", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["220421", "220421"])),
                Arc::new(StringArray::from(vec!["tax", "culture-tourism"])),
                Arc::new(StringArray::from(vec!["税务局", "文化旅游局"])),
                Arc::new(Int64Array::from(vec![12, 3])),
                Arc::new(Float64Array::from(vec![Some(10.0 / 11.0), None])),
                Arc::new(Float64Array::from(vec![Some(1.0), Some(0.5)])),
                Arc::new(Float64Array::from(vec![62.5, 10.0])),
                Arc::new(Int64Array::from(vec![1, 2])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn rates_as_percentages_and_blocks_within_the_width() {
        let wide = report_table(&[batch()], "月简报", 200).unwrap();
        assert!(wide.contains("90.91%") && wide.contains("100.00%") && wide.contains("62.50"), "{wide}");
        assert!(!wide.contains("0.9090"), "{wide}");
        assert!(wide.contains("地区: 220421"), "{wide}");
        assert!(wide.contains("文化旅游局") && wide.contains("culture-tourism"), "{wide}");
        assert_eq!(wide.matches("排名").count(), 1, "one block:\n{wide}");
        let narrow = report_table(&[batch()], "月简报", 40).unwrap();
        for line in narrow.lines() {
            assert!(line.width() <= 40, "{:?} is {} wide:\n{narrow}", line, line.width());
        }
        assert!(narrow.matches("排名").count() >= 2, "blocks repeat the keys:\n{narrow}");
        assert!(narrow.contains("90.91%") && narrow.contains("62.50"), "{narrow}");
    }
}
