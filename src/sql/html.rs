//! The printed briefing (`jiancha report monthly-briefing --format html
//! --out F`, and the quarterly report the same way): the 月简报 as a
//! performance office circulates it, one self-contained HTML page — inline
//! CSS and an inline SVG chart, no script, no file or font fetched — that
//! any browser prints to A4.
//!
//! In order: the title, region and period; a paragraph of the headline
//! figures; the ranking table (departments by name, rates as percentages
//! with two decimals); a bar chart of the on-time rate by department; the
//! red cards of the period; the praised (top three) and criticised
//! (bottom three) departments; and, when the report's SQL carries them
//! (`complaints`, `notices`: follow-up.md), complaints and notices.

use super::report::Params;
use super::SqlError;
use crate::reference::RefData;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::prelude::SessionContext;
use std::collections::HashMap;
use std::fmt::Write;

/// Red cards listed one by one; more are counted.
const RED_CARDS_LISTED: usize = 30;

/// One report row, by column name: numbers as `f64`, text as text.
#[derive(Default)]
struct Row {
    num: HashMap<String, f64>,
    text: HashMap<String, String>,
}

impl Row {
    fn n(&self, c: &str) -> Option<f64> {
        self.num.get(c).copied()
    }
    fn t(&self, c: &str) -> &str {
        self.text.get(c).map_or("", String::as_str)
    }
    /// The department's name (its code when it has none).
    fn name(&self) -> &str {
        match self.t("department_name") {
            "" => self.t("department"),
            n => n,
        }
    }
}

fn rows_of(batches: &[RecordBatch]) -> Result<(Vec<Row>, Vec<String>), SqlError> {
    let mut rows = Vec::new();
    let mut columns = Vec::new();
    for b in batches {
        let schema = b.schema();
        columns = schema.fields().iter().map(|f| f.name().clone()).collect();
        let mut these: Vec<Row> = (0..b.num_rows()).map(|_| Row::default()).collect();
        for (i, f) in schema.fields().iter().enumerate() {
            let col = b.column(i);
            if f.data_type().is_numeric() {
                let v = cast(col, &DataType::Float64)?;
                let v = v.as_primitive::<Float64Type>();
                for (r, row) in these.iter_mut().enumerate() {
                    if !v.is_null(r) {
                        row.num.insert(f.name().clone(), v.value(r));
                    }
                }
            } else {
                let v = cast(col, &DataType::Utf8)?;
                let v = v.as_string::<i32>();
                for (r, row) in these.iter_mut().enumerate() {
                    if !v.is_null(r) {
                        row.text.insert(f.name().clone(), v.value(r).to_string());
                    }
                }
            }
        }
        rows.extend(these);
    }
    Ok((rows, columns))
}

/// Text for HTML (and SVG) content and attributes.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A rate as a percentage with two decimals; `—` for NULL.
fn pct(v: Option<f64>) -> String {
    v.map_or("—".to_string(), |x| format!("{:.2}%", x * 100.0))
}

/// A count.
fn int(v: Option<f64>) -> String {
    v.map_or("—".to_string(), |x| format!("{}", x.round() as i64))
}

/// A score or points, two decimals.
fn dec(v: Option<f64>) -> String {
    v.map_or("—".to_string(), |x| format!("{x:.2}"))
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The period in words, and its first and next-after-last day.
fn period(name: &str, params: &Params) -> (String, chrono::NaiveDate, chrono::NaiveDate) {
    use chrono::Datelike;
    let month = params.month.as_deref().unwrap_or("1970-01");
    let first = chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").unwrap_or(chrono::NaiveDate::MIN);
    if name == "quarterly-report" {
        let q = (first.month0() / 3) as usize;
        let start = chrono::NaiveDate::from_ymd_opt(first.year(), q as u32 * 3 + 1, 1).unwrap_or(first);
        let end = start.checked_add_months(chrono::Months::new(3)).unwrap_or(start);
        let words = ["一", "二", "三", "四"][q];
        let text = format!("{}年第{words}季度（{}—{}月）", start.year(), q * 3 + 1, q * 3 + 3);
        (text, start, end)
    } else {
        let end = first.checked_add_months(chrono::Months::new(1)).unwrap_or(first);
        (format!("{}年{}月", first.year(), first.month()), first, end)
    }
}

/// One red card of the period.
struct Card {
    date: String,
    case_id: String,
    department: String,
    window: String,
    rule: String,
}

/// The red cards raised in the period in the region (not retracted): the
/// first [`RED_CARDS_LISTED`], how many there are, and how many of each
/// rule (by its label, most first).
async fn red_cards(
    ctx: &SessionContext,
    region: &str,
    start: chrono::NaiveDate,
    end: chrono::NaiveDate,
) -> Result<(Vec<Card>, u64, Vec<(String, u64)>), SqlError> {
    let scope = if region.is_empty() {
        "TRUE".to_string()
    } else {
        format!(
            "(a.region = {r} OR a.region IN (SELECT code FROM region_tree WHERE ancestor = {r}))",
            r = quote(region)
        )
    };
    let from = format!(
        "FROM alerts a LEFT JOIN departments d ON d.code = a.department
         WHERE a.level = 'red' AND NOT a.retracted AND a.raised_date >= DATE '{start}'
           AND a.raised_date < DATE '{end}' AND {scope}"
    );
    let counts = ctx
        .sql(&format!("SELECT a.rule, count(*) AS n {from} GROUP BY a.rule ORDER BY n DESC, a.rule"))
        .await?
        .collect()
        .await?;
    let (counts, _) = rows_of(&counts)?;
    let list = ctx
        .sql(&format!(
            "SELECT CAST(a.raised_date AS VARCHAR) AS date, a.case_id, COALESCE(d.name, a.department) AS department,
                    a.\"window\", a.rule {from}
             ORDER BY a.raised_at, a.alert_id LIMIT {RED_CARDS_LISTED}"
        ))
        .await?
        .collect()
        .await?;
    let (list, _) = rows_of(&list)?;
    let label = |rule: &str| {
        crate::alert::Rule::ALL.iter().find(|r| r.as_str() == rule).map_or(rule.to_string(), |r| r.label().to_string())
    };
    let by_rule: Vec<(String, u64)> =
        counts.iter().map(|r| (label(r.t("rule")), r.n("n").unwrap_or(0.0) as u64)).collect();
    let total = by_rule.iter().map(|(_, n)| n).sum();
    let cards = list
        .iter()
        .map(|r| Card {
            date: r.t("date").to_string(),
            case_id: r.t("case_id").to_string(),
            department: r.t("department").to_string(),
            window: r.t("window").to_string(),
            rule: label(r.t("rule")),
        })
        .collect();
    Ok((cards, total, by_rule))
}

/// The bar chart of on-time rates by department, as inline SVG: one
/// labelled bar a department, in the order of the ranking.
fn chart(rows: &[&Row]) -> String {
    let (label_w, bar_w, row_h, top) = (130.0, 420.0, 20.0, 24.0);
    let height = top + row_h * rows.len() as f64 + 24.0;
    let width = label_w + bar_w + 70.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="按时办结率（按部门）">"#
    );
    // Grid at 0, 25, 50, 75, 100 %.
    for k in 0..=4 {
        let x = label_w + bar_w * k as f64 / 4.0;
        let _ = write!(
            s,
            r##"<line x1="{x}" y1="{y0}" x2="{x}" y2="{y1}" stroke="#c8c8c8" stroke-width="0.6"/><text x="{x}" y="{ty}" font-size="10" text-anchor="middle" fill="#555">{p}%</text>"##,
            y0 = top - 4.0,
            y1 = height - 20.0,
            ty = height - 6.0,
            p = k * 25
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        let rate = r.n("on_time_rate");
        let w = rate.map_or(0.0, |v| bar_w * v.clamp(0.0, 1.0));
        let colour = match rate {
            Some(v) if v >= 0.95 => "#2e7d32",
            Some(v) if v >= 0.90 => "#f9a825",
            Some(_) => "#c62828",
            None => "#9e9e9e",
        };
        let _ = write!(
            s,
            r##"<text x="{lx}" y="{ty}" font-size="11" text-anchor="end" fill="#222">{name}</text><rect x="{label_w}" y="{ry}" width="{w:.1}" height="{h}" fill="{colour}"/><text x="{vx:.1}" y="{ty}" font-size="10" fill="#222">{value}</text>"##,
            lx = label_w - 6.0,
            ty = y + row_h * 0.68,
            name = esc(r.name()),
            ry = y + 3.0,
            h = row_h - 6.0,
            vx = label_w + w + 4.0,
            value = esc(&pct(rate)),
        );
    }
    s.push_str("</svg>");
    s
}

const STYLE: &str = r#"
@page { size: A4 portrait; margin: 16mm 14mm 16mm 14mm; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { margin: 0 auto; max-width: 182mm; color: #111; background: #fff;
  font-family: "Noto Serif CJK SC", "Source Han Serif SC", "SimSun", "Songti SC", "WenQuanYi Micro Hei", "Noto Sans CJK SC", serif;
  font-size: 10.5pt; line-height: 1.6; }
header { text-align: center; border-bottom: 2px solid #c00; padding-bottom: 4mm; margin-bottom: 5mm; }
header .org { color: #c00; font-size: 22pt; font-weight: bold; letter-spacing: 0.15em; margin: 0; }
header h1 { font-size: 16pt; margin: 2mm 0 1mm; }
header .meta { font-size: 10pt; color: #333; }
h2 { font-size: 12.5pt; margin: 6mm 0 2mm; padding-left: 2mm; border-left: 4px solid #c00; break-after: avoid; }
p.lead { text-indent: 2em; margin: 0 0 2mm; }
table { width: 100%; border-collapse: collapse; font-size: 8.6pt; }
th, td { border: 0.6pt solid #777; padding: 1mm 1.2mm; }
th { background: #f1e4e4; font-weight: bold; text-align: center; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.name { white-space: nowrap; }
tr { break-inside: avoid; }
thead { display: table-header-group; }
.chart { display: block; max-width: 100%; height: auto; margin: 2mm auto; font-family: inherit; }
.lists { display: flex; gap: 6mm; }
.lists section { flex: 1; }
ol { margin: 1mm 0; padding-left: 6mm; }
.praise h2 { border-left-color: #2e7d32; }
.note { color: #555; font-size: 8.5pt; }
footer { margin-top: 8mm; border-top: 1px solid #999; padding-top: 2mm; font-size: 8.5pt; color: #555; }
"#;

/// The briefing of `name` (`monthly-briefing` or `quarterly-report`) for
/// `params`, from its report rows `batches`, as one HTML page.
pub async fn briefing(
    ctx: &SessionContext,
    refdata: &RefData,
    name: &str,
    params: &Params,
    batches: &[RecordBatch],
) -> Result<Vec<u8>, SqlError> {
    if !matches!(name, "monthly-briefing" | "quarterly-report") {
        return Err(SqlError::Report(super::report::ReportError::HtmlOnlyBriefings));
    }
    let (rows, columns) = rows_of(batches)?;
    let region = params.region.as_str();
    let region_name = match refdata.regions.get(region) {
        Some(r) => r.name.clone(),
        None if region.is_empty() => "全部地区".to_string(),
        None => region.to_string(),
    };
    let (period_text, start, end) = period(name, params);
    let kind = if name == "quarterly-report" { "季度通报" } else { "月简报" };
    let title = format!("{region_name}政务服务效能电子监察{kind}");
    let (cards, red_total, by_rule) = red_cards(ctx, region, start, end).await?;

    // Headline figures, summed from the departments' counts and rates.
    let sum = |c: &str| rows.iter().filter_map(|r| r.n(c)).sum::<f64>();
    let (accepted, completed) = (sum("accepted"), sum("completed"));
    let weighted = |c: &str| {
        let n: f64 = rows.iter().filter_map(|r| Some((r.n(c)? * r.n("completed")?).round())).sum();
        (completed > 0.0).then(|| n / completed)
    };
    let ranked: Vec<&Row> = rows.iter().collect();
    let scored: Vec<&Row> = rows.iter().filter(|r| r.n("completed").unwrap_or(0.0) > 0.0).collect();
    let praise: Vec<&Row> = scored.iter().take(3).copied().collect();
    let criticise: Vec<&Row> = {
        let mut bottom: Vec<&Row> =
            scored.iter().rev().filter(|r| !praise.iter().any(|p| std::ptr::eq(*p, **r))).take(3).copied().collect();
        bottom.reverse();
        bottom
    };

    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t} {p}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        t = esc(&title),
        p = esc(&period_text)
    );
    let _ = writeln!(
        h,
        "<header><p class=\"org\">电子监察{kind}</p><h1>{t}</h1><div class=\"meta\">{r}{code}　统计期间：{p}（{start} 至 {last}）</div></header>",
        t = esc(&title),
        r = esc(&region_name),
        code = if region.is_empty() { String::new() } else { format!("（{}）", esc(region)) },
        p = esc(&period_text),
        last = end.pred_opt().unwrap_or(end),
    );

    // The headline paragraph.
    h.push_str("<h2>一、总体情况</h2>\n<p class=\"lead\">");
    let _ = write!(
        h,
        "本期{r}共受理办件 <b>{a}</b> 件，办结 <b>{c}</b> 件，按时办结率 <b>{ot}</b>，现场办结率 <b>{os}</b>；",
        r = esc(&region_name),
        a = int(Some(accepted)),
        c = int(Some(completed)),
        ot = pct(weighted("on_time_rate")),
        os = pct(weighted("onsite_rate")),
    );
    let _ = write!(
        h,
        "亮红牌 <b>{red}</b> 张、黄牌 <b>{yellow}</b> 张，超期在办件 <b>{od}</b> 件，绩效办扣分 <b>{dp}</b> 分。",
        red = int(Some(sum("red_alerts"))),
        yellow = int(Some(sum("yellow_alerts"))),
        od = int(Some(sum("overdue_open"))),
        dp = dec(Some(sum("deducted_points"))),
    );
    match (ranked.first(), ranked.last()) {
        (Some(first), Some(last)) if ranked.len() > 1 => {
            let _ = write!(
                h,
                "综合得分第一名为 <b>{}</b>（{} 分），末位为 <b>{}</b>（{} 分）。",
                esc(first.name()),
                dec(first.n("score")),
                esc(last.name()),
                dec(last.n("score"))
            );
        }
        (Some(only), _) => {
            let _ = write!(h, "参与排名的部门仅 <b>{}</b>（{} 分）。", esc(only.name()), dec(only.n("score")));
        }
        _ => h.push_str("本期没有办件。"),
    }
    h.push_str("</p>\n");

    // The ranking table.
    h.push_str("<h2>二、部门综合排名</h2>\n<table class=\"ranking\">\n<thead><tr>");
    let cols: [(&str, &str); 13] = [
        ("rank", "排名"),
        ("department_name", "部门"),
        ("accepted", "受理量"),
        ("completed", "办结量"),
        ("on_time_rate", "按时办结率"),
        ("early_rate", "提前办结率"),
        ("onsite_rate", "现场办结率"),
        ("online_rate", "网上办理率"),
        ("good_rating_rate", "好评率"),
        ("red_alerts", "红牌"),
        ("yellow_alerts", "黄牌"),
        ("deducted_points", "扣分"),
        ("score", "综合得分"),
    ];
    for (_, head) in cols {
        let _ = write!(h, "<th>{head}</th>");
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for r in &ranked {
        h.push_str("<tr>");
        for (c, _) in cols {
            let cell = match c {
                "department_name" => {
                    let _ = write!(h, "<td class=\"name\" title=\"{}\">{}</td>", esc(r.t("department")), esc(r.name()));
                    continue;
                }
                "rank" | "accepted" | "completed" | "red_alerts" | "yellow_alerts" => int(r.n(c)),
                "deducted_points" | "score" => dec(r.n(c)),
                _ => pct(r.n(c)),
            };
            let _ = write!(h, "<td class=\"num\">{}</td>", esc(&cell));
        }
        h.push_str("</tr>\n");
    }
    if ranked.is_empty() {
        h.push_str("<tr><td colspan=\"13\">本期没有办件。</td></tr>\n");
    }
    h.push_str("</tbody>\n</table>\n");
    h.push_str(
        "<p class=\"note\">综合得分 = 按时办结率×40 + 提前办结率×20 + 好评率×20 + 评议率×10 + 10×(1 − 红牌数/办结量)，减去扣分，最低为 0；\
         现场办结率为在窗口受理当日办结的办件所占比例；网上办理率为网上受理的办件所占比例。</p>\n",
    );

    // The chart: highest on-time rate first (none last).
    h.push_str("<h2>三、按时办结率（按部门）</h2>\n");
    let mut by_rate = ranked.clone();
    by_rate.sort_by(|a, b| {
        let key = |r: &Row| r.n("on_time_rate").unwrap_or(-1.0);
        key(b).total_cmp(&key(a))
    });
    h.push_str(&chart(&by_rate));
    h.push('\n');

    // Red cards.
    h.push_str("<h2>四、本期红牌</h2>\n");
    if red_total == 0 {
        h.push_str("<p class=\"lead\">本期未亮红牌。</p>\n");
    } else {
        let by_rule: Vec<String> = by_rule.iter().map(|(rule, n)| format!("{} {n} 张", esc(rule))).collect();
        let _ = writeln!(
            h,
            "<p class=\"lead\">本期共亮红牌 <b>{red_total}</b> 张（{}）{}。</p>",
            by_rule.join("、"),
            if red_total as usize > cards.len() {
                format!("，以下列出最早的 {} 张", cards.len())
            } else {
                String::new()
            }
        );
        h.push_str("<table class=\"cards\">\n<thead><tr><th>日期</th><th>办件编号</th><th>部门</th><th>窗口</th><th>事由</th></tr></thead>\n<tbody>\n");
        for c in &cards {
            let _ = writeln!(
                h,
                "<tr><td class=\"num\">{}</td><td>{}</td><td class=\"name\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.date),
                esc(&c.case_id),
                esc(&c.department),
                esc(if c.window.is_empty() { "—" } else { &c.window }),
                esc(&c.rule)
            );
        }
        h.push_str("</tbody>\n</table>\n");
    }

    // Praise and criticism.
    let list = |title: &str, class: &str, rows: &[&Row], none: &str| -> String {
        let mut s = format!("<section class=\"{class}\"><h2>{title}</h2>\n");
        if rows.is_empty() {
            let _ = write!(s, "<p>{none}</p>");
        } else {
            s.push_str("<ol>");
            for r in rows {
                let _ = write!(
                    s,
                    "<li><b>{}</b>：综合得分 {}，第 {} 名，按时办结率 {}，红牌 {} 张</li>",
                    esc(r.name()),
                    dec(r.n("score")),
                    int(r.n("rank")),
                    pct(r.n("on_time_rate")),
                    int(r.n("red_alerts"))
                );
            }
            s.push_str("</ol>");
        }
        s.push_str("</section>\n");
        s
    };
    h.push_str("<div class=\"lists\">\n");
    h.push_str(&list("五、通报表扬（前三名）", "praise", &praise, "本期没有办结办件的部门。"));
    h.push_str(&list("六、通报批评（后三名）", "criticism", &criticise, "无。"));
    h.push_str("</div>\n");
    h.push_str("<p class=\"note\">表扬与批评只在本期有办结的部门中评出。</p>\n");

    // Complaints and notices (follow-up.md), once the report carries them.
    if columns.iter().any(|c| c == "complaints" || c == "notices") {
        h.push_str("<h2>七、效能投诉与督办</h2>\n<table>\n<thead><tr><th>部门</th>");
        let extra: Vec<&String> =
            columns.iter().filter(|c| c.starts_with("complaint") || c.starts_with("notice")).collect();
        for c in &extra {
            let _ = write!(h, "<th>{}</th>", esc(super::xlsx::header(c)));
        }
        h.push_str("</tr></thead>\n<tbody>\n");
        for r in &ranked {
            let _ = write!(h, "<tr><td class=\"name\">{}</td>", esc(r.name()));
            for c in &extra {
                let v = if super::xlsx::is_rate(c) { pct(r.n(c)) } else { int(r.n(c)) };
                let _ = write!(h, "<td class=\"num\">{}</td>", esc(&v));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</tbody>\n</table>\n");
    }

    let _ = write!(
        h,
        "<footer>jiancha 电子监察 · {title} · {period} · 数据来自各部门审批系统的办件事件，按工作日计时；扣分来自绩效办的扣分记录。</footer>\n</body>\n</html>\n",
        title = esc(&title),
        period = esc(&period_text)
    );
    Ok(h.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_periods_are_named() {
        assert_eq!(esc("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        let p = Params::month("2026-03", "");
        assert_eq!(period("monthly-briefing", &p).0, "2026年3月");
        let (text, start, end) = period("quarterly-report", &Params::month("2026-05", ""));
        assert_eq!(text, "2026年第二季度（4—6月）");
        assert_eq!((start.to_string(), end.to_string()), ("2026-04-01".to_string(), "2026-07-01".to_string()));
        assert_eq!(pct(Some(10.0 / 11.0)), "90.91%");
        assert_eq!(pct(None), "—");
    }
}
