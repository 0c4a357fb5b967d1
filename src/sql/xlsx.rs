//! Query results as an Excel workbook: one sheet, Chinese column headers
//! for the figures of `metrics.md`, rates and shares as percentages, numbers
//! as numbers (so offices can sum and chart them), everything else as text.

use super::SqlError;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use rust_xlsxwriter::{Format as Cell, Workbook};

/// The Chinese header of a column, or the name itself.
pub fn header(column: &str) -> &str {
    match column {
        "region" => "地区",
        "department" => "部门代码",
        "department_name" => "部门",
        "window" => "窗口",
        "staff" => "工作人员",
        "year" => "年度",
        "unit" => "考核对象",
        "month" => "月份",
        "quarter" => "季度",
        "accepted" => "受理量",
        "completed" => "办结量",
        "on_time_rate" => "按时办结率",
        "early_rate" => "提前办结率",
        "onsite_rate" => "现场办结率",
        "online_rate" => "网上办理率",
        "immediate_share" => "即办件比率",
        "immediate_item_share" => "即办事项比率",
        "in_hall_item_share" => "进厅事项比率",
        "within_10_days_rate" => "10个工作日内办结率",
        "avg_used_days" => "平均办理时长（工作日）",
        "overdue_open" => "超期在办件",
        "compression_rate" => "承诺时限压缩率",
        "evaluation_rate" => "评议率",
        "good_rating_rate" => "好评率",
        "red_alerts" => "红牌",
        "yellow_alerts" => "黄牌",
        "deducted_points" => "扣分",
        "unlisted_cases" => "清单外办件数",
        "joint_delays" => "联办拖延件数",
        "complaints" => "效能投诉件数",
        "complaints_upheld" => "投诉属实件数",
        "complaint_on_time_rate" => "投诉按时办结率",
        "notices" => "督办件数",
        "notices_overdue" => "督办超时件数",
        "score" => "综合得分",
        "rank" => "排名",
        "months_scored" => "计分月数",
        "mean_monthly_score" => "月均得分",
        "annual_score" => "年度得分",
        "grade" => "考核等次",
        "honour" => "评选结果",
        other => other,
    }
}

/// Whether a column is a 0–1 fraction shown as a percentage.
pub fn is_rate(column: &str) -> bool {
    column.ends_with("_rate") || column.ends_with("_share")
}

/// A workbook with one sheet named `sheet` holding `batches`.
pub fn workbook(batches: &[RecordBatch], sheet: &str) -> Result<Vec<u8>, SqlError> {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    // Sheet names: at most 31 characters, none of []:*?/\ .
    let name: String = sheet.chars().filter(|c| !"[]:*?/\\".contains(*c)).take(31).collect();
    ws.set_name(if name.is_empty() { "report" } else { &name })?;
    let bold = Cell::new().set_bold();
    let pct = Cell::new().set_num_format("0.00%");
    let num = Cell::new().set_num_format("0.####");
    let Some(schema) = batches.first().map(|b| b.schema()) else {
        return Ok(wb.save_to_buffer()?);
    };
    for (c, f) in schema.fields().iter().enumerate() {
        ws.write_string_with_format(0, c as u16, header(f.name()), &bold)?;
        ws.set_column_width(c as u16, 14)?;
    }
    let mut row = 1u32;
    for b in batches {
        for (c, f) in schema.fields().iter().enumerate() {
            let col = b.column(c);
            let numeric = f.data_type().is_numeric();
            let as_f64;
            let as_text;
            if numeric {
                as_f64 = cast(col, &DataType::Float64)?;
                let v = as_f64.as_primitive::<Float64Type>();
                for i in 0..b.num_rows() {
                    if v.is_null(i) {
                        continue;
                    }
                    let fmt = if is_rate(f.name()) { &pct } else { &num };
                    ws.write_number_with_format(row + i as u32, c as u16, v.value(i), fmt)?;
                }
            } else if *f.data_type() == DataType::Boolean {
                let v = col.as_boolean();
                for i in 0..b.num_rows() {
                    if !v.is_null(i) {
                        ws.write_boolean(row + i as u32, c as u16, v.value(i))?;
                    }
                }
            } else {
                as_text = cast(col, &DataType::Utf8)?;
                let v = as_text.as_string::<i32>();
                for i in 0..b.num_rows() {
                    if !v.is_null(i) {
                        ws.write_string(row + i as u32, c as u16, v.value(i))?;
                    }
                }
            }
        }
        row += b.num_rows() as u32;
    }
    ws.set_freeze_panes(1, 0)?;
    Ok(wb.save_to_buffer()?)
}
