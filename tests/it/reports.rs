//! Reports and SQL through the real binary: `replay` writes history, then
//! `report` / `sql` read it.
//!
//! 1. Golden `monthly-briefing` and `quarterly-report` over a small hand-made
//!    history (tests/data/reports), every column of every row worked out BY
//!    HAND from metrics.md and rules.md below, for three regions.
//! 2. `monthly-briefing` on a simulated month against figures computed from
//!    the simulator's ground truth (`--truth`), independently of the engine.
//! 3. `sql` output formats and one-line failures of `sql` and `report`.
//!
//! Hand-made history (tests/data/reports/events.jsonl; every event from
//! `center`, every applicant distinct, no `recorded_at`, no fee, so only the
//! clock rules and `bad_rating_unrectified` can fire). Catalogue
//! (tests/data/reports/catalog.csv): T-IMM tax immediate N=0; T-PRO tax
//! promised statutory 20 / promised 10; M-PRO market 15/5; M-ONE market 2/1;
//! H-PRO health 30/10. Calendar 2026: 15–23 Feb off, Sat 14 and Sat 28 Feb
//! working, 4–6 Apr off; March has no holiday. Times are +08:00.
//! Charged day k = k-th working day after the acceptance date (no stops here);
//! due_soon fires at 00:00 of charged day max(1, N−1) (warn_days 2; N=1 → 1).
//!
//! | case | region | item | accepted | closed | due | used | on time / early | alerts (raised) | rating |
//! |---|---|---|---|---|---|---|---|---|---|
//! | K00 | 220421100 | T-PRO | Tue 10 Feb | completed 12 Feb | 2 Mar¹ | 2 | yes / yes | – | 4 on 2 Mar |
//! | K04 | 220421100 | T-PRO | Wed 25 Feb | completed 12 Mar | 10 Mar² | 12 | no / no | due_soon 9 Mar (y), overdue 11 Mar (r) | 3 on 2 Apr |
//! | K01 | 220421100 | T-PRO | Mon 2 Mar | completed 5 Mar | 16 Mar | 3 | yes / yes | – | 5 on 6 Mar |
//! | K02 | 220421101 | T-IMM | Tue 3 Mar | completed 3 Mar (onsite) | 3 Mar | 0 | yes / no (N=0) | bad_rating_unrectified 26 Mar³ (y) | 2 on 4 Mar |
//! | K03 | 220421 | T-PRO | Wed 4 Mar | completed 18 Mar | 18 Mar | 10 | yes / no | due_soon 17 Mar (y) | – |
//! | K05 | 220421101 | T-PRO | Tue 10 Mar | withdrawn 12 Mar | – | – | – | – | – |
//! | K06 | 220421100 | T-PRO | Thu 12 Mar | completed 8 Apr | 26 Mar | – | (April) | due_soon 25 Mar (y), overdue 27 Mar (r) | 1 on 20 Mar⁴ |
//! | K08 | 220421101 | M-ONE | Thu 5 Mar | completed 5 Mar (onsite) | 6 Mar | 0 | yes / yes | – | – |
//! | K09 | 220421100 | M-PRO | Mon 16 Mar | completed 19 Mar | 23 Mar | 3 | yes / yes | – | – |
//! | K10 | 220421 | M-PRO | Mon 30 Mar | open | 7 Apr | – | – | due_soon 3 Apr, overdue 8 Apr | – |
//! | K12 | 220421101 | H-PRO | Tue 31 Mar | open | 15 Apr | – | – | due_soon 14 Apr, overdue 16 Apr | – |
//! | K11 | 220421100 | T-IMM | Wed 1 Apr | completed 1 Apr | 1 Apr | 0 | yes / no | – | – |
//! | L01 | 220422100 | T-PRO | Mon 9 Mar | completed 10 Mar | 23 Mar | 1 | yes / yes | – | – |
//! | L02 | 220422 | H-PRO | Mon 2 Mar | completed 3 Mar | 16 Mar | 1 | yes / yes | – | – |
//!
//! ¹ Feb 11, 12, 13, 14 (make-up), 24, 25, 26, 27, 28 (make-up), 2 Mar.
//! ² Feb 26, 27, 28 (make-up), Mar 2, 3, 4, 5, 6, 9 (9th: due_soon), 10; used
//!   days to 12 Mar: 10 + 11, 12 = 12.
//! ³ 15th working day after 4 Mar is 25 Mar; fires 00:00 the next day; never
//!   rectified.
//! ⁴ `evaluated` on an open case: invalid at its place, held 168 h, then
//!   dead-lettered (`invalid_transition`): it is no rating at all and must not
//!   count in `good_rating_rate` (events.md; interfaces.md `events` = applied events).
//!
//! compression_rate (catalogue only): tax 1 − 10/20 = 1/2; market
//! 1 − (5+1)/(15+2) = 11/17; health 1 − 10/30 = 2/3 (T-IMM: statutory 0, left out).
//! immediate_item_share / in_hall_item_share (catalogue only): tax 1/2, 1;
//! market 0/2, 1; health 0/1, 1 (in_hall empty = true); water (no items) NULL.
//!
//! Channels: no event gives one but three: K01's acceptance is `online`,
//! K09's acceptance is `online`, K08's same-day completion is `back_office`
//! — so K08 is NOT 现场办结 (follow-up.md's redefined `onsite_rate`: the
//! completion at the window, on the acceptance day); every other
//! acceptance and completion is the centre's, so `window`.
//!
//! Deductions (tests/data/reports/deductions.csv): market 1 point on 15 Feb
//! in 220421 (Q1 only); water 3 on 5 Mar in 220421 (a department with no
//! case at all: it is listed with its deduction); tax 2.5 on 10 Mar in the
//! township 220421100; health 75 on 20 Mar in 220422 (its score floors at 0).
//! A deduction counts in its region and every region above it. Names from
//! the shipped config/departments.csv.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tempfile::TempDir;

use crate::support::root;

fn data(rel: &str) -> PathBuf {
    root().join("tests/data/reports").join(rel)
}

/// The binary in a fresh working folder (so the built-in report SQL is used),
/// no inherited `JIANCHA__…` nor `RUST_LOG`, reference data by environment: `catalog` (default
/// the shipped one), the shipped calendar and regions.
fn jiancha(cwd: &Path, catalog: Option<&Path>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_jiancha"));
    c.current_dir(cwd).env_remove("RUST_LOG");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("JIANCHA__") {
            c.env_remove(k);
        }
    }
    let cat = catalog.map(Path::to_path_buf).unwrap_or_else(|| root().join("config/catalog.csv"));
    // The hand-made history's deductions with its catalogue, the shipped ones with the shipped catalogue.
    let deductions = match catalog {
        Some(_) => data("deductions.csv"),
        None => root().join("config/deductions.csv"),
    };
    c.env("JIANCHA__REFERENCE__CATALOG", cat)
        .env("JIANCHA__REFERENCE__CALENDAR", root().join("config/calendar"))
        .env("JIANCHA__REFERENCE__REGIONS", root().join("config/regions.csv"))
        .env("JIANCHA__REFERENCE__DEPARTMENTS", root().join("config/departments.csv"))
        .env("JIANCHA__REFERENCE__DEDUCTIONS", deductions);
    c
}

fn ok(mut c: Command, what: &str) -> Output {
    let o = c.output().expect("cannot start jiancha");
    assert!(o.status.success(), "{what} failed ({}):\n{}", o.status, String::from_utf8_lossy(&o.stderr));
    o
}

/// Insists on failure with exactly one non-empty line on stderr; returns it.
fn fails_one_line(mut c: Command, what: &str) -> String {
    let o = c.output().expect("cannot start jiancha");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{what}: exit status 0; stdout {}", String::from_utf8_lossy(&o.stdout));
    let line = err.trim_end_matches('\n');
    assert!(!line.trim().is_empty(), "{what}: nothing on stderr");
    assert!(!line.contains('\n'), "{what}: more than one line on stderr:\n{err}");
    line.to_string()
}

/// Replays the hand-made history (with `--catalog`) into `<tmp>/h`.
fn hand_history() -> TempDir {
    let dir = TempDir::new().unwrap();
    let cat = data("catalog.csv");
    let mut c = jiancha(dir.path(), Some(&cat));
    c.args(["replay", "--out", "h", "--catalog"])
        .arg(&cat)
        .arg("--calendar")
        .arg(root().join("config/calendar"))
        .arg("--regions")
        .arg(root().join("config/regions.csv"))
        .args(["--until", "2026-04-30T00:00:00+08:00"])
        .arg(data("events.jsonl"));
    ok(c, "replay");
    let dead = std::fs::read_to_string(dir.path().join("h/dead-letter.jsonl")).unwrap();
    assert_eq!(dead.lines().count(), 1, "only K06's early rating is dead-lettered:\n{dead}");
    assert!(dead.contains("\"invalid_transition\"") && dead.contains("K06"), "{dead}");
    dir
}

/// `jiancha report NAME --data h --month M [--region R] --format json`.
fn report(dir: &Path, catalog: Option<&Path>, name: &str, month: &str, region: Option<&str>) -> Vec<Value> {
    let mut c = jiancha(dir, catalog);
    c.args(["report", name, "--data", "h", "--month", month, "--format", "json"]);
    if let Some(r) = region {
        c.args(["--region", r]);
    }
    let o = ok(c, &format!("report {name} {month} {region:?}"));
    match serde_json::from_slice(&o.stdout).expect("report output is JSON") {
        Value::Array(rows) => rows,
        v => panic!("not an array: {v}"),
    }
}

const COLUMNS: [&str; 23] = [
    "region",
    "department",
    "department_name",
    "accepted",
    "completed",
    "on_time_rate",
    "early_rate",
    "onsite_rate",
    "online_rate",
    "immediate_share",
    "immediate_item_share",
    "in_hall_item_share",
    "within_10_days_rate",
    "avg_used_days",
    "overdue_open",
    "compression_rate",
    "evaluation_rate",
    "good_rating_rate",
    "red_alerts",
    "yellow_alerts",
    "deducted_points",
    "score",
    "rank",
];

/// NULL in an expected row.
const N: f64 = f64::NAN;

/// An expected row: region, department, its name, then the 20 figures in
/// COLUMNS order from `accepted` on ([`N`] for NULL).
type Row = (&'static str, &'static str, &'static str, [f64; 20]);

/// Columns follow-up.md added to the monthly briefing only. The hand-made
/// history has no item outside the catalogue and no joint case, so each is 0
/// in every row.
const MONTHLY_ONLY: [&str; 2] = ["unlisted_cases", "joint_delays"];

/// Complaint and notice columns (follow-up.md), in both reports. The
/// hand-made history has no complaint and no notice: counts 0, the rate
/// NULL. `complaints_and_notices_in_the_briefing_and_the_score` checks
/// them on a history that has some.
const FOLLOW_UP: [&str; 5] =
    ["complaints", "complaints_upheld", "complaint_on_time_rate", "notices", "notices_overdue"];

/// Compares every column of every row, in order; floats within 1e-9.
fn check(what: &str, got: &[Value], want: &[Row]) {
    let depts: Vec<&str> = got.iter().map(|r| r["department"].as_str().unwrap_or("?")).collect();
    let want_depts: Vec<&str> = want.iter().map(|r| r.1).collect();
    assert_eq!(depts, want_depts, "{what}: departments in order");
    for (row, (region, dept, name, figures)) in got.iter().zip(want) {
        let mut keys: BTreeSet<&str> = row.as_object().unwrap().keys().map(String::as_str).collect();
        if what.starts_with("monthly") {
            for col in MONTHLY_ONLY {
                assert!(keys.remove(col), "{what}: no column {col}");
                assert_eq!(row[col].as_i64(), Some(0), "{what} {dept}.{col}");
            }
        }
        for col in FOLLOW_UP {
            assert!(keys.remove(col), "{what}: no column {col}");
            let want = if col.ends_with("rate") { Value::Null } else { Value::from(0) };
            assert_eq!(row[col], want, "{what} {dept}.{col}");
        }
        assert_eq!(keys, COLUMNS.iter().copied().collect(), "{what}: columns");
        assert_eq!(row["region"], *region, "{what} {dept}: region");
        assert_eq!(row["department_name"], *name, "{what} {dept}: department_name");
        for (col, want) in COLUMNS[3..].iter().zip(figures) {
            let g = &row[*col];
            if want.is_nan() {
                assert!(g.is_null(), "{what} {dept}.{col}: want NULL, got {g}");
            } else {
                let gf = g.as_f64().unwrap_or_else(|| panic!("{what} {dept}.{col}: want {want}, got {g}"));
                assert!((gf - want).abs() < 1e-9, "{what} {dept}.{col}: want {want}, got {gf}");
            }
        }
    }
}

#[test]
fn monthly_briefing_and_quarterly_report_golden() {
    let dir = hand_history();
    let d = dir.path();
    let cat = data("catalog.csv");
    let cat = Some(cat.as_path());
    // Columns from `accepted`: accepted, completed, on_time, early, onsite,
    // online, immediate_share, immediate_item_share, in_hall_item_share,
    // within_10_days, avg_used_days, overdue_open, compression, evaluation,
    // good_rating, red, yellow, deducted_points, score, rank.

    // ---- March 2026, region 220421 (东丰县 and its townships): K00–K12.
    // tax: accepted in March K01 K02 K03 K05 K06 = 5; not withdrawn 4, of them
    //   immediate K02 → 1/4, online K01 → 1/4. Completed in March K01 K02 K03
    //   K04 = 4; on time K01 K02 K03 → 3/4; N ≥ 1: K01 K03 K04, early K01 →
    //   1/3; onsite: K02, completed at the window on its acceptance day → 1/4;
    //   used 3, 0, 10, 12 → ≤ 10: 3/4, mean 25/4. Open at 1 Apr 00:00 and due
    //   before: K06 (due 26 Mar) → 1. Rated (any time): K01 K02 K04 (2 Apr) →
    //   3/4. Ratings given in March: K00 4, K02 2, K01 5 (K06's 1 was
    //   dead-lettered) → 2/3. Red raised in March: K04, K06 overdue = 2;
    //   yellow: K04 K03 K06 due_soon + K02 bad rating = 4. Deducted: 2.5
    //   (220421100 is below 220421).
    //   score = 40·3/4 + 20·1/3 + 20·2/3 + 10·3/4 + 10·(1 − 2/4) − 2.5
    //         = 30 + 20 + 7.5 + 5 − 2.5 = 60
    // market: accepted K08 K09 K10 = 3, immediate 0/3, online K09 1/3;
    //   completed K08 K09 = 2, on time 1, early 2/2; onsite 0/2: K08 was
    //   completed on its acceptance day but in the back office (before
    //   follow-up.md it counted); used 0, 3 → ≤10 1, mean 3/2; no overdue
    //   open (K10 due 7 Apr); no rating → evaluation 0/2, good NULL; no
    //   alert; nothing deducted in March. score = 40 + 20 + 0 + 0 + 10 = 70.
    // health: K12 accepted 31 Mar, open, due 15 Apr: accepted 1, immediate
    //   0/1, online 0/1, nothing completed → completion rates NULL; score = 10.
    // water: no case, 3 points deducted: every rate NULL, counts 0;
    //   score = 10 (no completions) − 3 = 7.
    let tax_21 =
        [5., 4., 0.75, 1. / 3., 0.25, 0.25, 0.25, 0.5, 1., 0.75, 6.25, 1., 0.5, 0.75, 2. / 3., 2., 4., 2.5, 60., 2.];
    let market = [3., 2., 1., 1., 0., 1. / 3., 0., 0., 1., 1., 1.5, 0., 11. / 17., 0., N, 0., 0., 0., 70., 1.];
    let health_21 = [1., 0., N, N, N, 0., 0., 0., 1., N, N, 0., 2. / 3., N, N, 0., 0., 0., 10., 3.];
    let water = [0., 0., N, N, N, N, N, N, N, N, N, 0., N, N, N, 0., 0., 3., 7., 4.];
    let want_21: Vec<Row> = vec![
        ("220421", "market", "市场监管局", market),
        ("220421", "tax", "税务局", tax_21),
        ("220421", "health", "卫生健康局", health_21),
        ("220421", "water", "水利局", water),
    ];
    check("monthly 220421", &report(d, cat, "monthly-briefing", "2026-03", Some("220421")), &want_21);

    // ---- March, city 220400 (辽源市): adds 东辽县's L01 (tax) and L02 (health).
    // tax: accepted 6, kept 5, immediate 1/5, online 1/5; completed 5 (+L01,
    //   used 1, early, completed the next day): on time 4/5, early 2/4, onsite
    //   1/5, ≤10 4/5, mean 26/5; overdue open 1; rated 3/5; good 2/3; red 2,
    //   yellow 4; deducted 2.5.
    //   score = 32 + 10 + 40/3 + 6 + 10·(1 − 2/5) − 2.5 = 64.833…
    // health: accepted K12 L02 = 2, immediate 0/2, online 0/2; completed L02
    //   (used 1, early, not onsite): 1, 1, 0, ≤10 1, mean 1; rated 0/1; good
    //   NULL; 75 points deducted in 220422: 40 + 20 + 0 + 0 + 10 − 75 < 0 → 0.
    // water: as in 220421 (7); market as in 220421 (70).
    let tax_city = [
        6.,
        5.,
        0.8,
        0.5,
        0.2,
        0.2,
        0.2,
        0.5,
        1.,
        0.8,
        5.2,
        1.,
        0.5,
        0.6,
        2. / 3.,
        2.,
        4.,
        2.5,
        32. + 10. + 40. / 3. + 6. + 6. - 2.5,
        2.,
    ];
    let health_city = [2., 1., 1., 1., 0., 0., 0., 0., 1., 1., 1., 0., 2. / 3., 0., N, 0., 0., 75., 0., 4.];
    let mut water_city = water;
    water_city[19] = 3.;
    let want_city: Vec<Row> = vec![
        ("220400", "market", "市场监管局", market),
        ("220400", "tax", "税务局", tax_city),
        ("220400", "water", "水利局", water_city),
        ("220400", "health", "卫生健康局", health_city),
    ];
    assert!((want_city[1].3[18] - 64.833_333_333).abs() < 1e-6);
    check("monthly 220400", &report(d, cat, "monthly-briefing", "2026-03", Some("220400")), &want_city);
    // No --region: every region, here the same cases and deductions as the city.
    let all: Vec<Row> = want_city.iter().map(|r| ("", r.1, r.2, r.3)).collect();
    check("monthly all", &report(d, cat, "monthly-briefing", "2026-03", None), &all);

    // ---- March, county 220422 (东辽县) alone: L01 and L02, nothing of 220421
    // (neither its cases nor its deductions).
    // tax (L01): 1 accepted (not online), 1 completed on time and early, not
    //   onsite, used 1, no rating, no alert: 40 + 20 + 0 + 0 + 10 = 70;
    // health (L02) the same less its 75 points: 0.
    let tax_22 = [1., 1., 1., 1., 0., 0., 0., 0.5, 1., 1., 1., 0., 0.5, 0., N, 0., 0., 0., 70., 1.];
    let health_22 = [1., 1., 1., 1., 0., 0., 0., 0., 1., 1., 1., 0., 2. / 3., 0., N, 0., 0., 75., 0., 2.];
    let want_22: Vec<Row> = vec![("220422", "tax", "税务局", tax_22), ("220422", "health", "卫生健康局", health_22)];
    check("monthly 220422", &report(d, cat, "monthly-briefing", "2026-03", Some("220422")), &want_22);

    // A township: 220421101 (大阳镇) has K02 K05 K08 K12 only, and no
    // deduction (those of 220421 and 220421100 are above or beside it).
    // tax: accepted K02 K05 = 2, kept 1, immediate 1/1, online 0/1; completed
    //   K02: on time, N = 0 so early NULL, onsite 1, used 0, rated 1, good:
    //   K02's 2 → 0/1; yellow 1 (bad rating). score = 40 + 0 + 0 + 10 + 10 = 60.
    // market K08: 1 accepted, 1 completed early, used 0, in the back office:
    //   onsite 0 → 70. health K12: 10.
    let tax_t = [2., 1., 1., N, 1., 0., 1., 0.5, 1., 1., 0., 0., 0.5, 1., 0., 0., 1., 0., 60., 2.];
    let market_t = [1., 1., 1., 1., 0., 0., 0., 0., 1., 1., 0., 0., 11. / 17., 0., N, 0., 0., 0., 70., 1.];
    let want_t: Vec<Row> = vec![
        ("220421101", "market", "市场监管局", market_t),
        ("220421101", "tax", "税务局", tax_t),
        ("220421101", "health", "卫生健康局", health_21),
    ];
    check("monthly 220421101", &report(d, cat, "monthly-briefing", "2026-03", Some("220421101")), &want_t);

    // ---- Q1 2026 (Jan–Mar), region 220421: --month any month of the quarter.
    // tax adds K00 (accepted 10 Feb, completed 12 Feb, used 2, early) and K04's
    //   acceptance (25 Feb): accepted 7, kept 6, immediate 1/6, online 1/6;
    //   completed 5: on time 4/5, early 2/4, onsite 1/5, ≤10 4/5, mean
    //   (2+3+0+10+12)/5 = 27/5; overdue open at 1 Apr: K06; rated K00 K01 K02
    //   K04 → 4/5; ratings in Q1 the same three → 2/3; red 2, yellow 4;
    //   deducted 2.5. score = 32 + 10 + 40/3 + 8 + 6 − 2.5 = 66.833…
    // market: as in March, less February's 1 point: 69. health 10, water 7.
    let tax_q = [
        7.,
        5.,
        0.8,
        0.5,
        0.2,
        1. / 6.,
        1. / 6.,
        0.5,
        1.,
        0.8,
        5.4,
        1.,
        0.5,
        0.8,
        2. / 3.,
        2.,
        4.,
        2.5,
        32. + 10. + 40. / 3. + 8. + 6. - 2.5,
        2.,
    ];
    let mut market_q = market;
    (market_q[17], market_q[18]) = (1., 69.);
    let want_q: Vec<Row> = vec![
        ("220421", "market", "市场监管局", market_q),
        ("220421", "tax", "税务局", tax_q),
        ("220421", "health", "卫生健康局", health_21),
        ("220421", "water", "水利局", water),
    ];
    for m in ["2026-01", "2026-02", "2026-03"] {
        check(&format!("quarterly {m}"), &report(d, cat, "quarterly-report", m, Some("220421")), &want_q);
    }
    // Q2 (April–June): K10 and K12 overdue open at 1 Jul; April's alerts; K11
    // and K06 completed. Only the set of departments and a few figures here.
    let q2 = report(d, cat, "quarterly-report", "2026-05", Some("220421"));
    let by: BTreeMap<&str, &Value> = q2.iter().map(|r| (r["department"].as_str().unwrap(), r)).collect();
    assert_eq!(by.keys().copied().collect::<Vec<_>>(), ["health", "market", "tax"]);
    // tax: accepted K11; completed K06 (late: used 18) and K11 (onsite).
    assert_eq!((by["tax"]["accepted"].as_i64(), by["tax"]["completed"].as_i64()), (Some(1), Some(2)));
    assert_eq!(by["tax"]["on_time_rate"].as_f64(), Some(0.5));
    // overdue open at 1 Jul: K10 (due 7 Apr), K12 (due 15 Apr); red: their overdue.
    assert_eq!(by["market"]["overdue_open"].as_i64(), Some(1));
    assert_eq!(by["health"]["overdue_open"].as_i64(), Some(1));
    assert_eq!(by["health"]["red_alerts"].as_i64(), Some(1));
    // April ratings: K04's 3 → good 1/1.
    assert_eq!(by["tax"]["good_rating_rate"].as_f64(), Some(1.0));
}

/// Compares rows with expected JSON rows: the same rows in the same
/// order, each with exactly the expected columns; numbers within 1e-9.
fn assert_rows(what: &str, got: &[Value], want: &[Value]) {
    let key = |r: &Value| format!("{} {} {}", r["unit"], r["department"], r["window"]);
    let g: Vec<String> = got.iter().map(key).collect();
    let w: Vec<String> = want.iter().map(key).collect();
    assert_eq!(g, w, "{what}: rows in order");
    for (row, exp) in got.iter().zip(want) {
        let (ro, eo) = (row.as_object().unwrap(), exp.as_object().unwrap());
        let rk: BTreeSet<&String> = ro.keys().collect();
        let ek: BTreeSet<&String> = eo.keys().collect();
        assert_eq!(rk, ek, "{what} {}: columns", key(exp));
        for (k, e) in eo {
            let v = &ro[k];
            match (v.as_f64(), e.as_f64()) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9, "{what} {}.{k}: want {b}, got {a}", key(exp)),
                _ => assert_eq!(v, e, "{what} {}.{k}", key(exp)),
            }
        }
    }
}

/// `jiancha report NAME --data h ARGS… --format json` with the hand-made
/// history's reference data.
fn report_args(dir: &Path, catalog: &Path, name: &str, args: &[&str]) -> Vec<Value> {
    let mut c = jiancha(dir, Some(catalog));
    c.args(["report", name, "--data", "h", "--format", "json"]).args(args);
    let o = ok(c, &format!("report {name} {args:?}"));
    match serde_json::from_slice(&o.stdout).expect("report output is JSON") {
        Value::Array(rows) => rows,
        v => panic!("not an array: {v}"),
    }
}

/// The window briefing: the monthly briefing's figures by (department,
/// window), ranked among windows, over the hand-made history. Windows
/// (on the acceptances): tax K00 K04 K01 K06 at W01, K02 K03 K05 K11 at
/// W02; market K08 K09 at W03 (K10 names none: in no row); health K12 at
/// W05; 东辽县's L01 (tax) at D01 (L02 names none). Only tax's 2.5 points
/// (10 Mar, 220421100) name a window (W01); the others are departments'.
#[test]
fn window_briefing_golden() {
    let dir = hand_history();
    let (d, cat) = (dir.path(), data("catalog.csv"));
    // March, 220421.
    // (tax, W01): accepted K01 (online) K06 = 2, immediate 0/2, online 1/2;
    //   completed K01 (used 3, early) K04 (used 12, late) = 2: on time 1/2,
    //   early 1/2, onsite 0/2, ≤10 1/2, mean 7.5; overdue open K06 = 1; rated
    //   K01 K04 = 2/2; ratings given in March K00's 4, K01's 5 → 2/2; red
    //   K04 K06 overdue = 2, yellow K04 K06 due_soon = 2; 2.5 deducted.
    //   score = 40·½ + 20·½ + 20·1 + 10·1 + 10·(1 − 2/2) − 2.5 = 57.5
    // (tax, W02): accepted K02 K03 K05 = 3, kept 2 (K05 withdrawn), immediate
    //   K02 1/2, online 0/2; completed K02 (T-IMM, same day at the window) K03
    //   (used 10 = N: on time, not early): on time 2/2, early 0/1, onsite
    //   1/2, ≤10 2/2, mean 5; rated K02 only: 1/2; March ratings K02's 2 →
    //   0/1; yellow K02 bad rating + K03 due_soon = 2.
    //   score = 40 + 0 + 0 + 10·½ + 10 = 55
    // (market, W03): K08 (same day, back office) K09 (online): accepted 2,
    //   online 1/2, completed 2 on time and early, onsite 0, ≤10 2/2, mean
    //   1.5, no rating, no card: 40 + 20 + 0 + 0 + 10 = 70.
    // (health, W05): K12 accepted, open: 10.
    let w = |dept: &str, name: &str, win: &str, f: [f64; 20]| {
        let n = |x: f64| if x.is_nan() { Value::Null } else { serde_json::json!(x) };
        let mut o = serde_json::json!({"region": "220421", "department": dept, "department_name": name, "window": win});
        for (c, x) in COLUMNS[3..].iter().zip(f) {
            o[*c] = n(x);
        }
        // follow-up.md's complaints and notices: none in this history.
        for c in FOLLOW_UP {
            o[c] = if c.ends_with("rate") { Value::Null } else { serde_json::json!(0) };
        }
        o
    };
    let w01 = [2., 2., 0.5, 0.5, 0., 0.5, 0., 0.5, 1., 0.5, 7.5, 1., 0.5, 1., 1., 2., 2., 2.5, 57.5, 2.];
    let w02 = [3., 2., 1., 0., 0.5, 0., 0.5, 0.5, 1., 1., 5., 0., 0.5, 0.5, 0., 0., 2., 0., 55., 3.];
    let w03 = [2., 2., 1., 1., 0., 0.5, 0., 0., 1., 1., 1.5, 0., 11. / 17., 0., N, 0., 0., 0., 70., 1.];
    let w05 = [1., 0., N, N, N, 0., 0., 0., 1., N, N, 0., 2. / 3., N, N, 0., 0., 0., 10., 4.];
    let want = vec![
        w("market", "市场监管局", "W03", w03),
        w("tax", "税务局", "W01", w01),
        w("tax", "税务局", "W02", w02),
        w("health", "卫生健康局", "W05", w05),
    ];
    assert_rows(
        "window 220421",
        &report_args(d, &cat, "window-briefing", &["--month", "2026-03", "--region", "220421"]),
        &want,
    );

    // March, the city 220400: adds (tax, D01), L01 (accepted 9 Mar, completed
    // the next day, early, no rating): 40 + 20 + 0 + 0 + 10 = 70, a tie with
    // (market, W03): both rank 1, the next rank is 3. 东辽县's 75 points name
    // no window: in no row here.
    let d01 = [1., 1., 1., 1., 0., 0., 0., 0.5, 1., 1., 1., 0., 0.5, 0., N, 0., 0., 0., 70., 1.];
    let city = |mut v: Value, rank: f64| {
        v["region"] = "220400".into();
        v["rank"] = serde_json::json!(rank);
        v
    };
    let want = vec![
        city(w("market", "市场监管局", "W03", w03), 1.),
        city(w("tax", "税务局", "D01", d01), 1.),
        city(w("tax", "税务局", "W01", w01), 3.),
        city(w("tax", "税务局", "W02", w02), 4.),
        city(w("health", "卫生健康局", "W05", w05), 5.),
    ];
    assert_rows(
        "window 220400",
        &report_args(d, &cat, "window-briefing", &["--month", "2026-03", "--region", "220400"]),
        &want,
    );
}

/// The staff briefing over the hand-made history, March, 220421. `staff`
/// on: K01's acceptance and completion S1, K04's completion S1, K06's
/// acceptance S1; K02's acceptance and completion S2, K03's acceptance S2;
/// K08's completion S3. A case's staff is its completion's, else its
/// acceptance's: K01 K04 K06 → S1, K02 K03 → S2, K08 → S3.
#[test]
fn staff_briefing_golden() {
    let dir = hand_history();
    let (d, cat) = (dir.path(), data("catalog.csv"));
    // S1: acceptances recorded in March K01 K06 = 2; completed K01 (on time)
    //   K04 (late) → 1/2; ratings given in March to S1's cases: K01's 5 →
    //   1/1; cards: K04 K06 due_soon and overdue → red 2, yellow 2.
    // S2: acceptances K02 K03 = 2; completed K02 K03 on time → 2/2; ratings:
    //   K02's 2 → 0/1; yellow K02 bad rating, K03 due_soon = 2.
    // S3: no acceptance (K08's names no staff); completed K08 on time; no
    //   rating (NULL), no card.
    let row = |staff: &str, dept: &str, name: &str, win: &str, f: [f64; 6]| {
        let n = |x: f64| if x.is_nan() { Value::Null } else { serde_json::json!(x) };
        serde_json::json!({"region": "220421", "staff": staff, "department": dept, "department_name": name,
            "window": win, "accepted": n(f[0]), "completed": n(f[1]), "on_time_rate": n(f[2]),
            "good_rating_rate": n(f[3]), "red_alerts": n(f[4]), "yellow_alerts": n(f[5])})
    };
    let want = vec![
        row("S3", "market", "市场监管局", "W03", [0., 1., 1., N, 0., 0.]),
        row("S1", "tax", "税务局", "W01", [2., 2., 0.5, 1., 2., 2.]),
        row("S2", "tax", "税务局", "W02", [2., 2., 1., 0., 0., 2.]),
    ];
    let got = report_args(d, &cat, "staff-briefing", &["--month", "2026-03", "--region", "220421"]);
    let by_staff = |v: &[Value]| v.iter().map(|r| r["staff"].as_str().unwrap_or("?").to_string()).collect::<Vec<_>>();
    assert_eq!(by_staff(&got), by_staff(&want), "staff in order");
    for (g, w) in got.iter().zip(&want) {
        assert_rows(&format!("staff {}", w["staff"]), std::slice::from_ref(g), std::slice::from_ref(w));
    }
}

/// The annual assessment over a hand-made year (tests/data/assessment):
/// ten cases of 2026 in 220421 (F1 in the township 220421101, the others
/// in 220421100), every one from the centre. Catalogue: T-IMM (tax, N 0),
/// T-PRO (tax, N 10), M-PRO (market, N 5), H-PRO (health, N 10), E-PRO
/// (education, N 5).
///
/// | case | dept / window | accepted | completed | used, early | rating |
/// |---|---|---|---|---|---|
/// | A1 | tax W1 | Mon 5 Jan | Wed 7 Jan | 2, early | 5 on 8 Jan |
/// | A2 | tax W1, online | Mon 2 Feb | Wed 4 Feb | 2, early | 2 on 5 Feb, rectified 6 Feb |
/// | B1 | tax W2 | Tue 3 Mar | 3 Mar, at the window | 0 (N 0) | 4 on 3 Mar |
/// | H1 | tax, no window | Wed 4 Mar | 4 Mar, back office | 0 (N 0) | – |
/// | C1 | market W3 | Wed 1 Apr | Fri 3 Apr | 2, early | 5 on 3 Apr |
/// | D1 | market W4, online | Mon 11 May | Wed 13 May | 2, early | 5 on 13 May |
/// | C2 | market W3 | Mon 1 Jun | Wed 3 Jun | 2, early | 5 on 4 Jun |
/// | E1 | health W5 | Mon 6 Jul | Wed 8 Jul | 2, early | 5 on 9 Jul |
/// | E2 | health W5 | Mon 3 Aug | Wed 5 Aug | 2, early | 2 on 6 Aug, rectified 7 Aug |
/// | F1 | education W6 | Mon 7 Sep | Wed 16 Sep | 7, late¹ | – |
///
/// ¹ due Mon 14 Sep (8, 9, 10, 11, 14); due_soon (yellow) 11 Sep 00:00,
///   overdue (red) 15 Sep 00:00; used 8–16 Sep: 7 working days.
///
/// Monthly scores (before deductions; 40 on time, 20 early, 20 good
/// ratings, 10 evaluation, 10 × (1 − red per completion)):
/// a month of one early, on-time, 5-rated completion: 100; of one rated
/// 2: 80 (good 0/1); tax's March (B1, H1; N 0 so early counts 0; good
/// 1/1; evaluated 1/2): 40 + 0 + 20 + 5 + 10 = 75; W2's March (B1 alone):
/// 80; F1's September: 0 + 0 + 0 + 0 + 10 × (1 − 1) = 0.
///
/// Deductions (tests/data/assessment/deductions.csv): 2025-12-20 tax W1 10
/// (another year: not counted); water 2 (a department with no case);
/// 2026-04-01 220422 tax W1 10 (another county: only in 220400's); tax W2
/// 1; market W3 5; market 3; health 25.
///
/// | unit | months | mean | deducted | annual | grade / rank |
/// |---|---|---|---|---|---|
/// | market | Apr 100, May 100, Jun 100 | 100 | 5 + 3 | 92 | 优秀, 1 |
/// | tax | Jan 100, Feb 80, Mar 75 | 85 | 1 | 84 | 良好, 2 |
/// | health | Jul 100, Aug 80 | 90 | 25 | 65 | 合格, 3 |
/// | education | Sep 0 | 0 | 0 | 0 | 不合格, 4 |
/// | water | – | NULL | 2 | NULL | none |
/// | W4 (market) | May 100 | 100 | 0 | 100 | 1 |
/// | W3 (market) | Apr 100, Jun 100 | 100 | 5 | 95 | 2 |
/// | W5 (health) | Jul 100, Aug 80 | 90 | 0 | 90 | 3 (tie) |
/// | W1 (tax) | Jan 100, Feb 80 | 90 | 0 | 90 | 3 (tie) |
/// | W2 (tax) | Mar 80 | 80 | 1 | 79 | 5 |
/// | W6 (education) | Sep 0 | 0 | 0 | 0 | 6 |
///
/// Top 3 windows (优秀窗口): RANK() ≤ 3, so the tie at the third place
/// gives four: W4, W3, W5, W1.
#[test]
fn annual_assessment_golden() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let cat = root().join("tests/data/assessment/catalog.csv");
    let with_refs = |c: &mut Command| {
        c.env("JIANCHA__REFERENCE__DEDUCTIONS", root().join("tests/data/assessment/deductions.csv"));
    };
    let mut c = jiancha(d, Some(&cat));
    with_refs(&mut c);
    c.args(["replay", "--out", "h", "--until", "2026-12-31"]).arg(root().join("tests/data/assessment/events.jsonl"));
    ok(c, "replay");
    let dead = std::fs::read_to_string(d.join("h/dead-letter.jsonl")).unwrap();
    assert!(dead.is_empty(), "{dead}");
    let run = |args: &[&str]| -> Vec<Value> {
        let mut c = jiancha(d, Some(&cat));
        with_refs(&mut c);
        c.args(["report", "annual-assessment", "--data", "h", "--format", "json"]).args(args);
        serde_json::from_slice(&ok(c, &format!("annual-assessment {args:?}")).stdout).unwrap()
    };
    let row =
        |unit: &str, dept: &str, name: &str, win: Option<&str>, f: [f64; 15], grade: Option<&str>, honour: bool| {
            let n = |x: f64| if x.is_nan() { Value::Null } else { serde_json::json!(x) };
            serde_json::json!({"region": "220421", "year": "2026", "unit": unit, "department": dept,
            "department_name": name, "window": win,
            "months_scored": n(f[0]), "accepted": n(f[1]), "completed": n(f[2]), "on_time_rate": n(f[3]),
            "early_rate": n(f[4]), "onsite_rate": n(f[5]), "online_rate": n(f[6]), "evaluation_rate": n(f[7]),
            "good_rating_rate": n(f[8]), "red_alerts": n(f[9]), "yellow_alerts": n(f[10]),
            "mean_monthly_score": n(f[11]), "deducted_points": n(f[12]), "annual_score": n(f[13]),
            "grade": grade, "rank": n(f[14]), "honour": if honour { Some("优秀窗口") } else { None },
            // follow-up.md's complaints and notices: none in this history.
            "complaints_upheld": 0, "notices_overdue": 0})
        };
    // months, accepted, completed, on time, early, onsite, online, evaluated,
    // good, red, yellow, mean, deducted, annual, rank.
    let dep = |dept, name, f, g| row("department", dept, name, None, f, Some(g), false);
    let win = |dept, name, w, f, honour| row("window", dept, name, Some(w), f, None, honour);
    // tax: 4 accepted (A2 online: 1/4), 4 completed on time; early A1 A2 of
    //   the two with N ≥ 1; onsite B1 (H1 was the back office's) 1/4;
    //   evaluated A1 A2 B1 3/4; ratings 5, 2, 4 → 2/3.
    let market = [3., 3., 3., 1., 1., 0., 1. / 3., 1., 1., 0., 0., 100., 8., 92., 1.];
    let tax = [3., 4., 4., 1., 1., 0.25, 0.25, 0.75, 2. / 3., 0., 0., 85., 1., 84., 2.];
    let health = [2., 2., 2., 1., 1., 0., 0., 1., 0.5, 0., 0., 90., 25., 65., 3.];
    let education = [1., 1., 1., 0., 0., 0., 0., 0., N, 1., 1., 0., 0., 0., 4.];
    let water = [0., 0., 0., N, N, N, N, N, N, 0., 0., N, 2., N, N];
    let w4 = [1., 1., 1., 1., 1., 0., 1., 1., 1., 0., 0., 100., 0., 100., 1.];
    let w3 = [2., 2., 2., 1., 1., 0., 0., 1., 1., 0., 0., 100., 5., 95., 2.];
    let w5 = [2., 2., 2., 1., 1., 0., 0., 1., 0.5, 0., 0., 90., 0., 90., 3.];
    let w1 = [2., 2., 2., 1., 1., 0., 0.5, 1., 0.5, 0., 0., 90., 0., 90., 3.];
    let w2 = [1., 1., 1., 1., N, 1., 0., 1., 1., 0., 0., 80., 1., 79., 5.];
    let w6 = [1., 1., 1., 0., 0., 0., 0., 0., N, 1., 1., 0., 0., 0., 6.];
    let mut want = vec![
        dep("market", "市场监管局", market, "优秀"),
        dep("tax", "税务局", tax, "良好"),
        dep("health", "卫生健康局", health, "合格"),
        dep("education", "教育局", education, "不合格"),
        row("department", "water", "水利局", None, water, None, false),
        win("market", "市场监管局", "W4", w4, true),
        win("market", "市场监管局", "W3", w3, true),
        win("health", "卫生健康局", "W5", w5, true),
        win("tax", "税务局", "W1", w1, true),
        win("tax", "税务局", "W2", w2, false),
        win("education", "教育局", "W6", w6, false),
    ];
    assert_rows("annual 220421", &run(&["--year", "2026", "--region", "220421"]), &want);

    // --top 2: the tie at the third place is honoured no more.
    for r in &mut want[7..9] {
        r["honour"] = Value::Null;
    }
    assert_rows("annual 220421 top 2", &run(&["--year", "2026", "--region", "220421", "--top", "2"]), &want);

    // The city 220400 takes in 东辽县's 10 points on tax W1 (1 April):
    // tax 85 − 11 = 74 (合格, still 2nd); W1 90 − 10 = 80: 4th, after W5
    // (now 3rd alone) and before W2 (79); the top 3 are W4, W3, W5.
    let city = run(&["--year", "2026", "--region", "220400"]);
    let find = |unit: &str, dept: &str, w: Option<&str>| {
        city.iter()
            .find(|r| r["unit"] == unit && r["department"] == dept && r["window"].as_str() == w)
            .unwrap_or_else(|| panic!("no {unit} {dept} {w:?} in {city:?}"))
            .clone()
    };
    let tax = find("department", "tax", None);
    assert_eq!((tax["deducted_points"].as_f64(), tax["annual_score"].as_f64()), (Some(11.0), Some(74.0)), "{tax}");
    assert_eq!((tax["grade"].as_str(), tax["rank"].as_i64()), (Some("合格"), Some(2)), "{tax}");
    let w1 = find("window", "tax", Some("W1"));
    assert_eq!((w1["annual_score"].as_f64(), w1["rank"].as_i64(), &w1["honour"]), (Some(80.0), Some(4), &Value::Null));
    let w5 = find("window", "health", Some("W5"));
    assert_eq!((w5["rank"].as_i64(), w5["honour"].as_str()), (Some(3), Some("优秀窗口")));

    // A year of its own: a month is not enough, a bad year is refused.
    let mut c = jiancha(d, Some(&cat));
    c.args(["report", "annual-assessment", "--data", "h", "--month", "2026-03"]);
    assert!(fails_one_line(c, "annual without --year").contains("--year"));
    let mut c = jiancha(d, Some(&cat));
    c.args(["report", "annual-assessment", "--data", "h", "--year", "26"]);
    assert!(fails_one_line(c, "annual --year 26").contains("--year"));
    let mut c = jiancha(d, Some(&cat));
    c.args(["report", "window-briefing", "--data", "h", "--year", "2026"]);
    assert!(fails_one_line(c, "window briefing with --year only").contains("--month"));

    // Exported to a workbook, read back by openpyxl: Chinese headers, the
    // grades and honours as text.
    let mut c = jiancha(d, Some(&cat));
    with_refs(&mut c);
    c.args(["report", "annual-assessment", "--data", "h", "--year", "2026", "--region", "220421"])
        .args(["--format", "xlsx", "--out", "a.xlsx"]);
    ok(c, "annual xlsx");
    let script = r#"
import json, sys, openpyxl
ws = openpyxl.load_workbook(sys.argv[1]).worksheets[0]
print(json.dumps({"sheet": ws.title, "rows": [[c.value for c in r] for r in ws.iter_rows()]}, default=str))
"#;
    let out = Command::new("python3").args(["-c", script]).arg(d.join("a.xlsx")).output().expect("python3 runs");
    assert!(out.status.success(), "openpyxl: {}", String::from_utf8_lossy(&out.stderr));
    let book: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(book["sheet"], "annual-assessment");
    let rows = book["rows"].as_array().unwrap();
    let head: Vec<&str> = rows[0].as_array().unwrap().iter().map(|v| v.as_str().unwrap_or("")).collect();
    for h in ["部门", "窗口", "年度得分", "考核等次", "评选结果", "排名"] {
        assert!(head.contains(&h), "{h} not in {head:?}");
    }
    let col = |h: &str| head.iter().position(|x| *x == h).unwrap();
    assert_eq!(rows.len(), 1 + want.len());
    assert_eq!(rows[1][col("部门")], "市场监管局");
    assert_eq!(rows[1][col("考核等次")], "优秀");
    assert_eq!(rows[1][col("年度得分")].as_f64(), Some(92.0));
    let honoured = rows[1..].iter().filter(|r| r[col("评选结果")] == "优秀窗口").count();
    assert_eq!(honoured, 4);
}

/// The printed briefing: `report monthly-briefing --format html` writes one
/// self-contained page; headless Chromium prints it to A4 PDF; the PDF's
/// text (pdftotext) has the title, region and period, the ranking in
/// order with names and two-decimal percentages, the chart's labels and
/// the red cards; page 1 is kept as a PNG in target/test-artifacts.
#[test]
fn monthly_briefing_as_html_prints_to_a4_in_headless_chromium() {
    let dir = hand_history();
    let (d, cat) = (dir.path(), data("catalog.csv"));
    let mut c = jiancha(d, Some(&cat));
    c.args(["report", "monthly-briefing", "--data", "h", "--month", "2026-03", "--region", "220421"]).args([
        "--format",
        "html",
        "--out",
        "briefing.html",
    ]);
    ok(c, "report html");
    let html = std::fs::read_to_string(d.join("briefing.html")).unwrap();
    // One file: no script, nothing fetched.
    for banned in ["<script", "<link", "src=", "url(", "@import", "http://", "https://"] {
        assert!(!html.contains(banned), "the page has {banned:?}");
    }
    assert!(html.contains("<svg") && html.contains("@page"), "inline SVG chart and print CSS");
    // Without --out, or as anything but a briefing: refused in one line.
    let mut c = jiancha(d, Some(&cat));
    c.args(["report", "monthly-briefing", "--data", "h", "--month", "2026-03", "--format", "html"]);
    assert!(fails_one_line(c, "html without --out").contains("--out"));
    let mut c = jiancha(d, Some(&cat));
    c.args(["report", "window-briefing", "--data", "h", "--month", "2026-03", "--format", "html", "--out", "w.html"]);
    assert!(fails_one_line(c, "html of the window briefing").contains("monthly-briefing"));

    // Print it.
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let profile = TempDir::new().unwrap();
    let pdf = d.join("briefing.pdf");
    let mut child = Command::new(&chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-pdf-header-footer"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", d.join("briefing.html").display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromium runs (scripts/test.sh installs it)");
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < std::time::Duration::from_secs(90), "chromium did not print within 90 s");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(pdf.exists(), "chromium printed no PDF");
    let tool = |name: &str, args: &[&str]| -> String {
        let o = Command::new(name).args(args).output().unwrap_or_else(|e| panic!("{name} (poppler-utils): {e}"));
        assert!(o.status.success(), "{name} {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let p = pdf.to_str().unwrap();
    let info = tool("pdfinfo", &[p]);
    assert!(info.contains("(A4)"), "not A4:\n{info}");
    let pages: u32 = info.lines().find_map(|l| l.strip_prefix("Pages:")).unwrap().trim().parse().unwrap();
    assert!((1..=3).contains(&pages), "{pages} pages");
    let text = tool("pdftotext", &["-layout", p, "-"]);
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for want in [
        "东丰县政务服务效能电子监察月简报",
        "2026年3月",
        "220421",
        "部门综合排名",
        "按时办结率",
        "通报表扬",
        "通报批评",
        // follow-up.md's complaints and notices (none in this history).
        "效能投诉与督办",
        "效能投诉件数",
        "督办超时件数",
    ] {
        assert!(flat.contains(want), "no {want:?} in the PDF:\n{text}");
    }
    // The ranking, in order, with its figures (market's online rate 1/3,
    // tax's on-time rate 3/4 and score 60, water's score 7).
    let ranking = &flat[flat.find("部门综合排名").unwrap()..];
    let order: Vec<usize> = ["市场监管局", "税务局", "卫生健康局", "水利局"]
        .iter()
        .map(|n| ranking.find(n).unwrap_or(usize::MAX))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "ranking order {order:?}:\n{text}");
    for want in ["33.33%", "75.00%", "60.00", "70.00", "7.00", "2.50"] {
        assert!(ranking.contains(want), "no {want:?} in the ranking:\n{text}");
    }
    assert!(!flat.contains("0.3333"), "raw fractions in the PDF:\n{text}");
    // The chart: each department and its on-time rate as labels.
    let start = flat.find("按时办结率（按部门）").expect("chart heading");
    let end = flat.find("本期红牌").expect("red cards heading");
    let chart = &flat[start..end];
    for want in ["市场监管局", "税务局", "卫生健康局", "水利局", "100.00%", "75.00%", "0%", "50%", "100%"]
    {
        assert!(chart.contains(want), "no {want:?} among the chart's labels: {chart}");
    }
    // March's red cards in 220421: K04's and K06's overdue.
    let cards = &flat[end..];
    assert!(cards.contains("2 张") && cards.contains("K04") && cards.contains("K06"), "{cards}");

    // Page 1 as a PNG beside the board's screenshot.
    let shots = root().join("target/test-artifacts");
    std::fs::create_dir_all(&shots).unwrap();
    let png = shots.join("briefing");
    let _ = std::fs::remove_file(png.with_extension("png"));
    tool("pdftoppm", &["-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", p, png.to_str().unwrap()]);
    assert!(png.with_extension("png").exists(), "no PNG of page 1");
}

/// Local (+08:00) date of an RFC 3339 instant.
fn local_date(s: &str) -> String {
    let t = chrono::DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    t.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap()).date_naive().to_string()
}

#[test]
fn monthly_briefing_agrees_with_the_simulators_truth() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let mut c = jiancha(d, None);
    c.args(["simulate", "--out", "ev.jsonl", "--truth", "truth.jsonl", "--cases", "3000"]).args([
        "--start",
        "2026-02-02",
        "--days",
        "60",
        "--seed",
        "5",
    ]);
    ok(c, "simulate");
    let mut c = jiancha(d, None);
    c.args(["replay", "--out", "h", "--until", "2026-07-01", "ev.jsonl"]);
    ok(c, "replay");
    let rows = report(d, None, "monthly-briefing", "2026-03", None);
    let got: BTreeMap<String, &Value> =
        rows.iter().map(|r| (r["department"].as_str().unwrap().to_string(), r)).collect();

    #[derive(Default)]
    struct Tally {
        accepted: u64,
        kept: u64,
        immediate: u64,
        online: u64,
        completed: u64,
        on_time: u64,
        limited: u64,
        early: u64,
        onsite: u64,
        within_10: u64,
        used: u64,
        rated: u64,
        ratings: u64,
        good: u64,
        overdue_open: u64,
    }
    let mut by: BTreeMap<String, Tally> = BTreeMap::new();
    let truth = std::fs::read_to_string(d.join("truth.jsonl")).unwrap();
    let march = |s: &str| s.starts_with("2026-03-");
    for line in truth.lines() {
        let t: Value = serde_json::from_str(line).unwrap();
        let g = by.entry(t["department"].as_str().unwrap().to_string()).or_default();
        let acc = t["accepted_at"].as_str().map(local_date);
        let withdrawn = t["status"] == "withdrawn";
        if acc.as_deref().is_some_and(march) {
            g.accepted += 1;
            if !withdrawn {
                g.kept += 1;
                g.immediate += (t["kind"] == "immediate") as u64;
                g.online += (t["channel_accepted"] == "online") as u64;
            }
        }
        let done = t["completed_at"].as_str().map(local_date);
        if t["status"] == "completed" && done.as_deref().is_some_and(march) {
            g.completed += 1;
            g.on_time += (t["on_time"] == true) as u64;
            // (An item outside the catalogue has no limit: null.)
            g.limited += t["limit_days"].as_u64().is_some_and(|n| n >= 1) as u64;
            g.early += (t["early"] == true) as u64;
            // 现场办结: completed at the window on the acceptance day.
            g.onsite += (done == acc && t["channel_completed"] == "window") as u64;
            let used = t["used_days"].as_u64().unwrap();
            g.within_10 += (used <= 10) as u64;
            g.used += used;
            g.rated += !t["rating"].is_null() as u64;
        }
        // Ratings given in March, under the case's department.
        if t["rated_at"].as_str().map(local_date).as_deref().is_some_and(march) {
            g.ratings += 1;
            g.good += (t["rating"].as_u64().unwrap() >= 3) as u64;
        }
        // Open at 2026-04-01 00:00 with a due date before that day.
        let end = "2026-04-01";
        let open_at_end = acc.as_deref().is_some_and(|a| a < end)
            && t["closed_at"].as_str().map(local_date).is_none_or(|c| c.as_str() >= end);
        if open_at_end && t["due_date"].as_str().is_some_and(|d| d < end) {
            g.overdue_open += 1;
        }
    }
    let rate = |n: u64, d: u64| if d == 0 { None } else { Some(n as f64 / d as f64) };
    let mut compared = 0;
    for (dept, g) in &by {
        if g.accepted == 0 && g.completed == 0 && g.ratings == 0 && g.overdue_open == 0 {
            continue;
        }
        let row = got.get(dept).unwrap_or_else(|| panic!("no row for {dept}"));
        assert_eq!(row["accepted"].as_u64(), Some(g.accepted), "{dept} accepted");
        assert_eq!(row["overdue_open"].as_u64(), Some(g.overdue_open), "{dept} overdue_open");
        assert_eq!(row["completed"].as_u64(), Some(g.completed), "{dept} completed");
        let figures = [
            ("on_time_rate", rate(g.on_time, g.completed)),
            ("early_rate", rate(g.early, g.limited)),
            ("onsite_rate", rate(g.onsite, g.completed)),
            ("online_rate", rate(g.online, g.kept)),
            ("immediate_share", rate(g.immediate, g.kept)),
            ("within_10_days_rate", rate(g.within_10, g.completed)),
            ("avg_used_days", rate(g.used, g.completed)),
            ("evaluation_rate", rate(g.rated, g.completed)),
            ("good_rating_rate", rate(g.good, g.ratings)),
        ];
        for (col, want) in figures {
            let have = row[col].as_f64();
            match (want, have) {
                (None, None) => {}
                (Some(w), Some(h)) if (w - h).abs() < 1e-9 => {}
                _ => panic!("{dept}.{col}: truth {want:?}, report {}", row[col]),
            }
        }
        compared += 1;
    }
    // Every report row with intake or completions is a department of the truth.
    for (dept, row) in &got {
        if row["accepted"].as_u64() != Some(0) || row["completed"].as_u64() != Some(0) {
            assert!(by.get(dept).is_some_and(|g| g.accepted + g.completed > 0), "{dept} not in the truth's March");
        }
    }
    assert!(compared >= 10, "only {compared} departments compared");
    // Every new figure is something in the simulated month, not 0 nor 1 everywhere.
    for col in ["onsite_rate", "online_rate"] {
        let values: Vec<f64> = got.values().filter_map(|r| r[col].as_f64()).collect();
        assert!(values.iter().any(|v| *v > 0.0 && *v < 1.0), "{col}: {values:?}");
    }
    // Deducted points: the shipped deductions.csv's rows of March (every region).
    let deductions = std::fs::read_to_string(root().join("config/deductions.csv")).unwrap();
    let mut points: BTreeMap<String, f64> = BTreeMap::new();
    for line in deductions.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if march(f[0]) {
            *points.entry(f[2].to_string()).or_default() += f[4].parse::<f64>().unwrap();
        }
    }
    assert!(!points.is_empty(), "the sample deducts something in March");
    for (dept, row) in &got {
        let want = points.get(dept).copied().unwrap_or(0.0);
        assert_eq!(row["deducted_points"].as_f64(), Some(want), "{dept} deducted_points");
    }
    for (dept, want) in &points {
        assert!(got.contains_key(dept), "{dept} has {want} points deducted in March but no row");
    }

    // The window briefing and the staff briefing against the truth: by
    // (department, window) and by official, the completions of March, on
    // time and 现场办结.
    let mut by_window: BTreeMap<(String, String), (u64, u64, u64)> = BTreeMap::new();
    let mut by_staff: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for line in truth.lines() {
        let t: Value = serde_json::from_str(line).unwrap();
        let done = t["completed_at"].as_str().map(local_date);
        if t["status"] != "completed" || !done.as_deref().is_some_and(march) {
            continue;
        }
        let acc = t["accepted_at"].as_str().map(local_date);
        let key = (t["department"].as_str().unwrap().to_string(), t["window"].as_str().unwrap().to_string());
        let w = by_window.entry(key).or_default();
        w.0 += 1;
        w.1 += (t["on_time"] == true) as u64;
        w.2 += (done == acc && t["channel_completed"] == "window") as u64;
        if let Some(st) = t["staff"].as_str() {
            let e = by_staff.entry(st.to_string()).or_default();
            e.0 += 1;
            e.1 += (t["on_time"] == true) as u64;
        }
    }
    let windows = report(d, None, "window-briefing", "2026-03", None);
    let mut seen = 0;
    for r in &windows {
        let key = (r["department"].as_str().unwrap().to_string(), r["window"].as_str().unwrap().to_string());
        let (n, on_time, onsite) = by_window.get(&key).copied().unwrap_or_default();
        assert_eq!(r["completed"].as_u64(), Some(n), "{key:?} completed");
        if n > 0 {
            seen += 1;
            assert!((r["on_time_rate"].as_f64().unwrap() - on_time as f64 / n as f64).abs() < 1e-9, "{key:?}");
            assert!((r["onsite_rate"].as_f64().unwrap() - onsite as f64 / n as f64).abs() < 1e-9, "{key:?}");
        }
    }
    assert_eq!(seen, by_window.len(), "every window with completions has its row");
    assert!(seen >= 20, "only {seen} windows");
    let staff = report(d, None, "staff-briefing", "2026-03", None);
    let got_staff: BTreeMap<String, u64> = staff
        .iter()
        .filter(|r| r["completed"].as_u64() != Some(0))
        .map(|r| (r["staff"].as_str().unwrap().to_string(), r["completed"].as_u64().unwrap()))
        .collect();
    let want_staff: BTreeMap<String, u64> = by_staff.iter().map(|(k, v)| (k.clone(), v.0)).collect();
    assert_eq!(got_staff, want_staff, "completions by official");
    assert!(want_staff.len() >= 40, "only {} officials", want_staff.len());
    assert!(by.values().map(|g| g.overdue_open).sum::<u64>() > 0, "the truth has overdue open cases to compare");
    assert!(by.values().map(|g| g.ratings).sum::<u64>() > 0, "the truth has ratings to compare");
}

#[test]
fn sql_formats_and_one_line_failures() {
    let dir = hand_history();
    let d = dir.path();
    let cat = data("catalog.csv");
    let sql = |format: &str, q: &str| {
        let mut c = jiancha(d, Some(&cat));
        c.args(["sql", "--data", "h", "--format", format, q]);
        c
    };
    // JSON: one array of row objects; booleans, dates YYYY-MM-DD, nulls.
    let q = "SELECT case_id, on_time, early, accepted_date, due_date, used_days, rating FROM cases \
             WHERE case_id IN ('K01', 'K12') ORDER BY case_id";
    let o = ok(sql("json", q), "sql json");
    let v: Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
    assert_eq!(
        v,
        serde_json::json!([
            {"case_id": "K01", "on_time": true, "early": true, "accepted_date": "2026-03-02",
             "due_date": "2026-03-16", "used_days": 3, "rating": 5},
            {"case_id": "K12", "on_time": null, "early": null, "accepted_date": "2026-03-31",
             "due_date": "2026-04-15", "used_days": null, "rating": null}
        ])
    );
    let o = ok(sql("json", "SELECT case_id FROM cases WHERE false"), "sql json empty");
    assert_eq!(serde_json::from_slice::<Value>(&o.stdout).unwrap(), serde_json::json!([]));
    // The dead-lettered rating is not an event in effect; the other 30 are.
    let o = ok(sql("json", "SELECT COUNT(*) AS n FROM events WHERE case_id = 'K06'"), "sql events");
    assert_eq!(serde_json::from_slice::<Value>(&o.stdout).unwrap(), serde_json::json!([{"n": 2}]));
    let o = ok(sql("json", "SELECT COUNT(*) AS n FROM events"), "sql events");
    assert_eq!(serde_json::from_slice::<Value>(&o.stdout).unwrap(), serde_json::json!([{"n": 30}]));
    // Alerts: timestamps in +08:00, booleans.
    let q = "SELECT alert_id, level, raised_date, retracted FROM alerts WHERE case_id = 'K04' ORDER BY alert_id";
    let o = ok(sql("json", q), "sql alerts");
    assert_eq!(
        serde_json::from_slice::<Value>(&o.stdout).unwrap(),
        serde_json::json!([
            {"alert_id": "K04/due_soon", "level": "yellow", "raised_date": "2026-03-09", "retracted": false},
            {"alert_id": "K04/overdue", "level": "red", "raised_date": "2026-03-11", "retracted": false}
        ])
    );

    // CSV with a header.
    let o = ok(
        sql("csv", "SELECT case_id, on_time, due_date FROM cases WHERE case_id IN ('K03', 'K04') ORDER BY case_id"),
        "csv",
    );
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        "case_id,on_time,due_date\nK03,true,2026-03-18\nK04,false,2026-03-10\n"
    );

    // Bad queries: non-zero, one line (DataFusion's own messages span lines).
    for q in ["SELECT nope FROM cases", "SELEC 1", "SELECT * FROM nosuch", "SELECT CAST('x' AS INT)"] {
        let line = fails_one_line(sql("json", q), q);
        assert!(line.starts_with("jiancha: "), "{q}: {line}");
    }

    // The report's table: rates as percentages with two decimals, names,
    // and lines no wider than the terminal ($COLUMNS), Chinese counted double.
    for width in [80usize, 132] {
        let mut c = jiancha(d, Some(&cat));
        c.env("COLUMNS", width.to_string()).args(["report", "monthly-briefing", "--data", "h", "--month", "2026-03"]);
        let text = String::from_utf8(ok(c, "report table").stdout).unwrap();
        for line in text.lines() {
            let w = unicode_width::UnicodeWidthStr::width(line);
            assert!(w <= width, "{w} > {width}: {line:?}\n{text}");
        }
        // market's online rate 1/3, tax's score 64.833…, health's on-time rate 1.
        for want in ["33.33%", "64.83", "100.00%", "市场监管局", "税务局", "排名", "按时办结率"] {
            assert!(text.contains(want), "no {want:?} in\n{text}");
        }
        assert!(!text.contains("0.3333") && !text.contains("64.8333"), "{text}");
    }

    // Reports: bad month, unknown region, unknown report name.
    let rep = |name: &str, month: &str, region: Option<&str>| {
        let mut c = jiancha(d, Some(&cat));
        c.args(["report", name, "--data", "h", "--month", month]);
        if let Some(r) = region {
            c.args(["--region", r]);
        }
        c
    };
    for m in ["2026-13", "2026-3", "March", "2026-03-01", ""] {
        let line = fails_one_line(rep("monthly-briefing", m, None), &format!("--month {m:?}"));
        assert!(line.contains("--month"), "{line}");
    }
    for r in ["999999", "2204", "220421999"] {
        let line = fails_one_line(rep("monthly-briefing", "2026-03", Some(r)), &format!("--region {r}"));
        assert!(line.contains(r), "{line}");
    }
    for n in ["no-such-report", "../monthly-briefing"] {
        let line = fails_one_line(rep(n, "2026-03", None), n);
        assert!(line.contains(n), "{line}");
    }
}

/// The xlsx workbook, read back by an independent reader (Python
/// openpyxl), holds the figures of the csv: Chinese headers, rates as
/// percentages.
#[test]
fn xlsx_report_opens_in_openpyxl_with_the_csv_figures() {
    let dir = hand_history();
    let d = dir.path();
    let cat = data("catalog.csv");
    let mut c = jiancha(d, Some(&cat));
    c.args(["report", "monthly-briefing", "--data", "h", "--month", "2026-03", "--format", "xlsx", "--out", "b.xlsx"]);
    ok(c, "report xlsx");
    let mut c = jiancha(d, Some(&cat));
    c.args(["report", "monthly-briefing", "--data", "h", "--month", "2026-03", "--format", "csv"]);
    let csv = String::from_utf8(ok(c, "report csv").stdout).unwrap();
    let script = r#"
import json, sys, openpyxl
wb = openpyxl.load_workbook(sys.argv[1])
ws = wb.worksheets[0]
rows = [[c.value for c in r] for r in ws.iter_rows()]
fmts = {ws.cell(row=1, column=i + 1).value: ws.cell(row=2, column=i + 1).number_format for i in range(ws.max_column)}
print(json.dumps({"sheet": ws.title, "rows": rows, "formats": fmts}, default=str))
"#;
    let out = Command::new("python3").args(["-c", script]).arg(d.join("b.xlsx")).output().expect("python3 runs");
    assert!(out.status.success(), "openpyxl (scripts/test.sh installs it): {}", String::from_utf8_lossy(&out.stderr));
    let book: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(book["sheet"], "monthly-briefing");
    let rows = book["rows"].as_array().unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let zh: Vec<&str> = rows[0].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(zh.len(), header.len());
    for (name, chinese) in [
        ("on_time_rate", "按时办结率"),
        ("department", "部门代码"),
        ("department_name", "部门"),
        ("online_rate", "网上办理率"),
        ("deducted_points", "扣分"),
        ("rank", "排名"),
        ("accepted", "受理量"),
    ] {
        let i = header.iter().position(|h| *h == name).unwrap();
        assert_eq!(zh[i], chinese);
    }
    assert_eq!(book["formats"]["按时办结率"], "0.00%");
    let body: Vec<&str> = lines.collect();
    assert_eq!(rows.len() - 1, body.len());
    assert!(!body.is_empty());
    for (row, line) in rows[1..].iter().zip(body) {
        let cells = row.as_array().unwrap();
        for (cell, want) in cells.iter().zip(line.split(',')) {
            match (cell, want) {
                (Value::Null, w) => assert_eq!(w, ""),
                (Value::String(s), w) => assert_eq!(s, w),
                (Value::Number(n), w) => {
                    let (x, y) = (n.as_f64().unwrap(), w.parse::<f64>().unwrap());
                    assert!((x - y).abs() < 1e-9, "{x} vs {y}");
                }
                (Value::Bool(b), w) => assert_eq!(b.to_string(), w),
                (other, w) => panic!("{other} vs {w}"),
            }
        }
    }
}

/// A retracted card counts in no figure (rules.md: "every figure that
/// counted it is corrected"). R1 (T-PRO, accepted Mon 2 Mar, due Mon 16
/// Mar) is completed on Fri 13 Mar, but that event arrives after R2's
/// acceptance on Wed 18 Mar has moved the watermark past R1's deadline: its
/// overdue (raised 17 Mar) fires, then is retracted. Its due_soon (00:00 of
/// 13 Mar, before the completion) stands. March, tax: red 0, yellow 1;
/// R1 on time (1 of the 2 completed: R2 is still open, so 1/1).
#[test]
fn a_retracted_card_counts_in_no_figure() {
    let dir = TempDir::new().unwrap();
    let cat = data("catalog.csv");
    let ev = |id: &str, case: &str, ty: &str, at: &str| {
        let result = if ty == "completed" { r#","result":"approved""# } else { "" };
        format!(
            r#"{{"event_id":"{id}","case_id":"{case}","type":"{ty}","occurred_at":"{at}","source":"center","region":"220421100","department":"tax","item_code":"T-PRO","applicant":"{case}"{result}}}"#
        )
    };
    let lines = [
        ev("r1", "R1", "submitted", "2026-03-02T09:00:00+08:00"),
        ev("r2", "R1", "accepted", "2026-03-02T09:30:00+08:00"),
        ev("r3", "R2", "submitted", "2026-03-18T09:00:00+08:00"),
        ev("r4", "R2", "accepted", "2026-03-18T09:30:00+08:00"),
        ev("r5", "R1", "completed", "2026-03-13T10:00:00+08:00"),
    ];
    std::fs::write(dir.path().join("in.jsonl"), lines.join("\n") + "\n").unwrap();
    let mut c = jiancha(dir.path(), Some(&cat));
    c.args(["replay", "--out", "h", "--catalog"]).arg(&cat).arg("in.jsonl");
    ok(c, "replay");
    let alerts = std::fs::read_to_string(dir.path().join("h/alerts.jsonl")).unwrap();
    assert!(
        alerts.contains(r#""alert_id":"R1/overdue""#) && alerts.contains(r#""state":"retracted""#),
        "the input must fire and retract R1's overdue:\n{alerts}"
    );
    let rows = report(dir.path(), Some(&cat), "monthly-briefing", "2026-03", None);
    // Besides tax, only the departments of tests/data/reports/deductions.csv (no case of theirs).
    assert!(rows.iter().all(|r| r["department"] == "tax" || r["completed"] == 0), "{rows:?}");
    let r = rows.iter().find(|r| r["department"] == "tax").unwrap_or_else(|| panic!("no tax row: {rows:?}"));
    assert_eq!((r["red_alerts"].as_i64(), r["yellow_alerts"].as_i64()), (Some(0), Some(1)), "{r}");
    assert_eq!((r["completed"].as_i64(), r["on_time_rate"].as_f64()), (Some(1), Some(1.0)), "{r}");
}

/// `channel` and `staff` reach history: every event keeps its channel (on
/// `accepted` and `completed` the default by source when none is given) and
/// its staff; a case's row has the channels of its acceptance and
/// completion and the staff who handled it (of the completion when given,
/// else of the acceptance); a bad channel is dead-lettered naming the field.
#[test]
fn channels_and_staff_reach_events_and_cases() {
    let dir = TempDir::new().unwrap();
    let cat = data("catalog.csv");
    let ev = |id: &str, case: &str, ty: &str, at: &str, source: &str, extra: &str| {
        let attrs = if ty == "accepted" {
            format!(r#","region":"220421100","department":"tax","item_code":"T-PRO","applicant":"{case}""#)
        } else if ty == "completed" {
            r#","result":"approved""#.to_string()
        } else {
            String::new()
        };
        format!(
            r#"{{"event_id":"{id}","case_id":"{case}","type":"{ty}","occurred_at":"2026-03-{at}+08:00","source":"{source}"{attrs}{extra}}}"#
        )
    };
    let lines = [
        // C1: the centre at the window (defaults), staff on both steps.
        ev("c1a", "C1", "accepted", "02T09:00:00", "center", r#","staff":"S-01""#),
        ev("c1c", "C1", "completed", "02T11:00:00", "center", r#","staff":"S-02""#),
        // C2: accepted online by the centre, completed in the tax system (back office), staff only on acceptance.
        ev("c2a", "C2", "accepted", "03T09:00:00", "center", r#","channel":"online","staff":"S-01""#),
        ev("c2c", "C2", "completed", "05T16:00:00", "tax-sys", ""),
        // C3: an agent's point; open; no staff at all.
        ev("c3a", "C3", "accepted", "04T09:00:00", "center", r#","channel":"agent""#),
        // A bad channel: dead-lettered, field channel.
        ev("bad", "C4", "accepted", "04T10:00:00", "center", r#","channel":"phone""#),
    ];
    std::fs::write(dir.path().join("in.jsonl"), lines.join("\n") + "\n").unwrap();
    let mut c = jiancha(dir.path(), Some(&cat));
    c.args(["replay", "--out", "h", "--catalog"]).arg(&cat).arg("in.jsonl");
    ok(c, "replay");
    let dead = std::fs::read_to_string(dir.path().join("h/dead-letter.jsonl")).unwrap();
    let dead: Vec<Value> = dead.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0]["reason"].as_str(), dead[0]["field"].as_str()), (Some("bad_value"), Some("channel")));
    let sql = |q: &str| -> Value {
        let mut c = jiancha(dir.path(), Some(&cat));
        c.args(["sql", "--data", "h", "--format", "json", q]);
        serde_json::from_slice(&ok(c, q).stdout).unwrap()
    };
    assert_eq!(
        sql("SELECT event_id, channel, staff FROM events ORDER BY event_id"),
        serde_json::json!([
            {"event_id": "c1a", "channel": "window", "staff": "S-01"},
            {"event_id": "c1c", "channel": "window", "staff": "S-02"},
            {"event_id": "c2a", "channel": "online", "staff": "S-01"},
            {"event_id": "c2c", "channel": "back_office", "staff": null},
            {"event_id": "c3a", "channel": "agent", "staff": null},
        ])
    );
    assert_eq!(
        sql("SELECT case_id, channel_accepted, channel_completed, staff FROM cases ORDER BY case_id"),
        serde_json::json!([
            {"case_id": "C1", "channel_accepted": "window", "channel_completed": "window", "staff": "S-02"},
            {"case_id": "C2", "channel_accepted": "online", "channel_completed": "back_office", "staff": "S-01"},
            {"case_id": "C3", "channel_accepted": "agent", "channel_completed": null, "staff": null},
        ])
    );
    // The three columns come last in `cases`, after the contract's.
    let cols =
        sql("SELECT column_name FROM information_schema.columns WHERE table_name = 'cases' ORDER BY ordinal_position");
    let cols: Vec<&str> = cols.as_array().unwrap().iter().map(|r| r["column_name"].as_str().unwrap()).collect();
    assert_eq!(cols[cols.len() - 3..], ["channel_accepted", "channel_completed", "staff"], "{cols:?}");
}

/// The zone of the pipeline tests below.
const ZONE: &str = "Asia/Shanghai";

/// An engine and history writer over `dir`, and a decoder, as `run` and
/// `demo` wire them, with the bundled reference data.
struct Pipeline {
    rd: std::sync::Arc<jiancha::reference::RefData>,
    zone: jiancha::time::Zone,
    core: jiancha::pipeline::Core,
    decoder: jiancha::event::Decoder,
}

fn pipeline(dir: &Path) -> Pipeline {
    use jiancha::{engine::Engine, history::History, reference::RefData};
    let zone = jiancha::time::Zone::new(ZONE).unwrap();
    let rd = std::sync::Arc::new(
        RefData::load(
            &root().join("config/catalog.csv"),
            &root().join("config/calendar"),
            &root().join("config/regions.csv"),
        )
        .unwrap(),
    );
    let engine = Engine::new(rd.clone(), zone.clone(), jiancha::config::RulesConfig::default());
    let core = jiancha::pipeline::Core::new(engine, History::open(dir, zone.clone(), rd.clone()).unwrap());
    let decoder = jiancha::event::Decoder::new(rd.clone(), zone.clone(), "k");
    Pipeline { rd, zone, core, decoder }
}

/// Event `n` of a tax case in county 220421 (`completed` ones approved).
fn one_case_event(decoder: &jiancha::event::Decoder, case: &str, n: u64, ty: &str, at: &str) -> jiancha::event::Event {
    let result = if ty == "completed" { r#","result":"approved""# } else { "" };
    let line = format!(
        r#"{{"event_id":"{case}-{n}","case_id":"{case}","type":"{ty}","occurred_at":"{at}","source":"center","region":"220421","department":"tax","item_code":"TAX-003","applicant":"a"{result}}}"#
    );
    decoder.decode(line.as_bytes()).unwrap()
}

/// Open cases are in SQL with their current state before any flush: the
/// servers' session (`session_with` and the pipeline's pending cases, as
/// `run` and `demo` wire them) against the engine and history writer of a
/// pipeline that has not flushed, then has, then has changed a case again.
#[test]
fn open_cases_are_in_sql_before_their_history_is_flushed() {
    use jiancha::history::pending::PendingCases;
    use std::sync::Arc;
    let dir = TempDir::new().unwrap();
    let zone_name = ZONE;
    let Pipeline { rd, zone, mut core, decoder } = pipeline(dir.path());
    let ev = |n: u64, ty: &str, at: &str| one_case_event(&decoder, "O1", n, ty, at);
    let pending = Arc::new(PendingCases::new(zone.clone(), zone_name, rd.clone()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ctx = rt.block_on(jiancha::sql::session_with(dir.path(), &rd, zone_name, Some(pending.clone()))).unwrap();
    let cases = || -> String {
        let q = "SELECT case_id, status, accepted_date, completed_date FROM cases ORDER BY case_id";
        let batches = rt.block_on(async { ctx.sql(q).await.unwrap().collect().await.unwrap() });
        datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string()
    };
    let stored = || walkdir(&dir.path().join("case_versions"));

    core.apply(ev(1, "submitted", "2026-03-02T09:00:00+08:00"), None, 1);
    core.apply(ev(2, "accepted", "2026-03-02T09:30:00+08:00"), None, 2);
    pending.set("t", core.engine.pending_views());
    assert_eq!(stored(), 0, "nothing flushed yet");
    let open = "+---------+--------+---------------+----------------+\n\
                | case_id | status | accepted_date | completed_date |\n\
                +---------+--------+---------------+----------------+\n\
                | O1      | open   | 2026-03-02    |                |\n\
                +---------+--------+---------------+----------------+";
    assert_eq!(cases(), open);

    // Flushed: the same row, now from the stored part (and only once, while
    // both hold it, before the writer lets go of its pending rows).
    core.flush().unwrap();
    assert_eq!(stored(), 1);
    assert_eq!(cases(), open);
    pending.clear("t");
    assert_eq!(cases(), open);

    // Completed, not flushed: the new state at once.
    core.apply(ev(3, "completed", "2026-03-04T10:00:00+08:00"), None, 3);
    pending.set("t", core.engine.pending_views());
    assert_eq!(
        cases(),
        "+---------+-----------+---------------+----------------+\n\
         | case_id | status    | accepted_date | completed_date |\n\
         +---------+-----------+---------------+----------------+\n\
         | O1      | completed | 2026-03-02    | 2026-03-04     |\n\
         +---------+-----------+---------------+----------------+"
    );
    assert_eq!(stored(), 1);
}

/// DataFusion keeps a session's first listing of a folder for the
/// session's life unless told otherwise: the live figures, the case API and
/// every SQL endpoint session then never saw a part written after their
/// first query (the live briefing showed the month's cases as of the
/// demo's first seconds). A stored-only session and a scoped session over
/// it, each queried before and after a second flush.
#[test]
fn regression_long_lived_sessions_see_parts_written_after_their_first_query() {
    let dir = TempDir::new().unwrap();
    let zone_name = ZONE;
    let Pipeline { rd, mut core, decoder, .. } = pipeline(dir.path());
    let ev = |n: u64, ty: &str, at: &str| one_case_event(&decoder, "L1", n, ty, at);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stored = rt.block_on(jiancha::sql::session(dir.path(), &rd, zone_name)).unwrap();
    let regions: std::collections::BTreeSet<String> = ["220421".to_string()].into();
    let scoped = rt.block_on(jiancha::sql::scope::scoped(&stored, Some(&regions))).unwrap();
    let ask = |ctx: &datafusion::prelude::SessionContext| -> String {
        let q = "SELECT case_id, status, (SELECT count(*) FROM events) AS events FROM cases";
        let batches = rt.block_on(async { ctx.sql(q).await.unwrap().collect().await.unwrap() });
        datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string()
    };

    core.apply(ev(1, "submitted", "2026-03-02T09:00:00+08:00"), None, 1);
    core.apply(ev(2, "accepted", "2026-03-02T09:30:00+08:00"), None, 2);
    core.flush().unwrap();
    let open = "+---------+--------+--------+\n\
                | case_id | status | events |\n\
                +---------+--------+--------+\n\
                | L1      | open   | 2      |\n\
                +---------+--------+--------+";
    assert_eq!(ask(&stored), open);
    assert_eq!(ask(&scoped), open);

    core.apply(ev(3, "completed", "2026-03-04T10:00:00+08:00"), None, 3);
    core.flush().unwrap();
    let done = "+---------+-----------+--------+\n\
                | case_id | status    | events |\n\
                +---------+-----------+--------+\n\
                | L1      | completed | 3      |\n\
                +---------+-----------+--------+";
    assert_eq!(ask(&stored), done, "the stored-only session");
    assert_eq!(ask(&scoped), done, "a scoped session over it");
}

/// Parquet files under a folder, at any depth.
/// History rows are encoded into the part being written as they come, a
/// batch at a time, not kept as rows until the flush (which held a whole
/// checkpoint interval of events in memory: 1.9 GB at the peak of a 1 M
/// event backfill); the part shows under its final name, with every row,
/// only at the flush.
#[test]
fn history_is_encoded_as_it_comes_and_shows_whole_at_the_flush() {
    let dir = TempDir::new().unwrap();
    let Pipeline { rd, core, decoder, .. } = pipeline(dir.path());
    let mut history = core.history;
    let n = jiancha::history::ROW_GROUP_ROWS + jiancha::history::BATCH_ROWS + 5;
    let mut ev = one_case_event(&decoder, "H1", 1, "submitted", "2026-03-02T09:00:00+08:00");
    for i in 0..n {
        (ev.event_id, ev.case_id) = (format!("H{i}-1"), format!("H{i}"));
        history.event(&ev, None);
    }
    let month = dir.path().join("events/month=2026-03");
    let names = || -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = std::fs::read_dir(&month)
            .unwrap()
            .flatten()
            .map(|e| (e.file_name().to_string_lossy().to_string(), e.metadata().unwrap().len()))
            .collect();
        v.sort();
        v
    };
    let before = names();
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(before[0].0.starts_with(".part-") && before[0].0.ends_with(".parquet.tmp"), "{before:?}");
    assert!(before[0].1 > 0, "rows are written to the part as they come: {before:?}");
    assert_eq!(history.pending(), n);
    assert_eq!(walkdir(dir.path()), 0, "no part shows before the flush");
    history.flush().unwrap();
    let after = names();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].0, "part-00000000.parquet");
    assert_eq!(history.pending(), 0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let count = rt.block_on(async {
        let ctx = jiancha::sql::session_with(dir.path(), &rd, ZONE, None).await.unwrap();
        let b = ctx.sql("SELECT count(*) AS n FROM events").await.unwrap().collect().await.unwrap();
        datafusion::arrow::util::pretty::pretty_format_batches(&b).unwrap().to_string()
    });
    assert!(count.contains(&format!("| {n} ")), "{count}");
}

fn walkdir(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                walkdir(&p)
            } else {
                usize::from(p.extension().is_some_and(|x| x == "parquet"))
            }
        })
        .sum()
}

#[test]
fn monthly_briefing_counts_unlisted_cases_per_department() {
    // rules.unlisted_item = "card" (the default). Region 220421, March 2026:
    // housing accepts items ZZZ-1 (2 Mar) and ZZZ-2 (31 Mar), neither in the
    // catalogue, and ZZZ-3 on 1 Apr (April: not in March's count); tax
    // accepts T-PRO (in the catalogue) on 3 Mar. unlisted_cases = cases
    // accepted in the month whose item is not in the catalogue: housing 2,
    // tax 0; housing's accepted = 2 as well.
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let ev = |id: &str, at: &str, dept: &str, item: &str| {
        format!(
            r#"{{"event_id":"{id}","case_id":"{id}","type":"accepted","occurred_at":"{at}+08:00","source":"center","region":"220421","department":"{dept}","item_code":"{item}","applicant":"a-{id}"}}"#
        )
    };
    let lines = [
        ev("U1", "2026-03-02T10:00:00", "housing", "ZZZ-1"),
        ev("T1", "2026-03-03T10:00:00", "tax", "T-PRO"),
        ev("U2", "2026-03-31T10:00:00", "housing", "ZZZ-2"),
        ev("U3", "2026-04-01T10:00:00", "housing", "ZZZ-3"),
    ];
    std::fs::write(d.join("ev.jsonl"), lines.join("\n") + "\n").unwrap();
    let cat = data("catalog.csv");
    let mut c = jiancha(d, Some(&cat));
    c.args(["replay", "--out", "h", "--catalog"]).arg(&cat).args(["--until", "2026-04-30", "ev.jsonl"]);
    ok(c, "replay");
    let dead = std::fs::read_to_string(d.join("h/dead-letter.jsonl")).unwrap();
    assert!(dead.trim().is_empty(), "{dead}");
    let rows = report(d, Some(&cat), "monthly-briefing", "2026-03", Some("220421"));
    let by: BTreeMap<&str, &Value> = rows.iter().map(|r| (r["department"].as_str().unwrap(), r)).collect();
    // (Departments with only the sample county's deductions of March have
    // a row too, with nothing accepted.)
    let active: Vec<&str> = by.iter().filter(|(_, r)| r["accepted"].as_i64() > Some(0)).map(|(d, _)| *d).collect();
    assert_eq!(active, ["housing", "tax"]);
    assert_eq!((by["housing"]["unlisted_cases"].as_i64(), by["housing"]["accepted"].as_i64()), (Some(2), Some(2)));
    assert_eq!(by["tax"]["unlisted_cases"].as_i64(), Some(0));
    let april = report(d, Some(&cat), "monthly-briefing", "2026-04", Some("220421"));
    let housing = april.iter().find(|r| r["department"] == "housing").unwrap();
    assert_eq!(housing["unlisted_cases"].as_i64(), Some(1));
}

#[test]
fn monthly_briefing_counts_joint_delays_in_the_month_of_the_parents_due_date() {
    // Catalogue: support::CATALOG (J joint, civil, N = 5; S sub item, N = 5).
    // P1 (J) accepted Mon 2 Mar → due Mon 9 Mar. Its sub-cases: S1 (health)
    //   completed Fri 6 Mar, in time; S2 (market) completed Tue 10 Mar, after
    //   the parent's due date → market +1 in March.
    // P3 (J) accepted Mon 23 Mar → 24, 25, 26, 27, 30 → due Mon 30 Mar. Its
    //   sub-case S5 (health) is never closed: open at 31 Mar 00:00 → health
    //   +1 in March.
    // P4 (J) accepted Mon 30 Mar → 31 Mar, 1, 2, 3 Apr, (4–6 Apr off) 7 Apr
    //   → due Tue 7 Apr. Its sub-case S6 (market) completed Thu 9 Apr → market
    //   +1 in April, not March.
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let cat = d.join("catalog.csv");
    std::fs::write(&cat, crate::support::CATALOG).unwrap();
    let ev = |id: &str, case: &str, ty: &str, at: &str, extra: &str| {
        format!(
            r#"{{"event_id":"{id}","case_id":"{case}","type":"{ty}","occurred_at":"{at}+08:00","source":"center"{extra}}}"#
        )
    };
    let acc = |case: &str, item: &str, dept: &str, parent: Option<&str>| {
        let p = parent.map(|p| format!(r#","parent_case_id":"{p}""#)).unwrap_or_default();
        format!(r#","region":"220421","department":"{dept}","item_code":"{item}","applicant":"a-{case}"{p}"#)
    };
    let done = r#","result":"approved""#;
    let lines = [
        ev("e1", "P1", "accepted", "2026-03-02T10:00:00", &acc("P1", "J", "civil", None)),
        ev("e2", "S1", "accepted", "2026-03-02T11:00:00", &acc("S1", "S", "health", Some("P1"))),
        ev("e3", "S2", "accepted", "2026-03-02T11:00:00", &acc("S2", "S", "market", Some("P1"))),
        ev("e4", "S1", "completed", "2026-03-06T15:00:00", done),
        ev("e5", "S2", "completed", "2026-03-10T09:00:00", done),
        ev("e6", "P1", "completed", "2026-03-10T15:00:00", done),
        ev("e7", "P3", "accepted", "2026-03-23T10:00:00", &acc("P3", "J", "civil", None)),
        ev("e8", "S5", "accepted", "2026-03-23T11:00:00", &acc("S5", "S", "health", Some("P3"))),
        ev("e9", "P4", "accepted", "2026-03-30T10:00:00", &acc("P4", "J", "civil", None)),
        ev("e10", "S6", "accepted", "2026-03-30T11:00:00", &acc("S6", "S", "market", Some("P4"))),
        ev("e11", "S6", "completed", "2026-04-09T10:00:00", done),
    ];
    std::fs::write(d.join("ev.jsonl"), lines.join("\n") + "\n").unwrap();
    let mut c = jiancha(d, Some(&cat));
    c.args(["replay", "--out", "h", "--catalog"]).arg(&cat).args(["--until", "2026-04-30", "ev.jsonl"]);
    ok(c, "replay");
    let dead = std::fs::read_to_string(d.join("h/dead-letter.jsonl")).unwrap();
    assert!(dead.trim().is_empty(), "{dead}");
    let figure = |month: &str| -> BTreeMap<String, i64> {
        report(d, Some(&cat), "monthly-briefing", month, Some("220421"))
            .iter()
            .map(|r| (r["department"].as_str().unwrap().to_string(), r["joint_delays"].as_i64().unwrap()))
            .collect()
    };
    let march = figure("2026-03");
    assert_eq!((march["market"], march["health"], march["civil"]), (1, 1, 0));
    let april = figure("2026-04");
    assert_eq!(april["market"], 1);
    assert_eq!(april.get("health").copied().unwrap_or(0), 0);
    // The parents' rows: late_sub_cases and late_departments.
    let o = ok(
        {
            let mut c = jiancha(d, Some(&cat));
            c.args(["sql", "--data", "h", "--format", "json"]).arg(
                "SELECT case_id, late_sub_cases, late_departments, late_sub_case_ids FROM cases \
                 WHERE case_id LIKE 'P%' ORDER BY case_id",
            );
            c
        },
        "sql",
    );
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    let got: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!("{} {} {} {}", r["case_id"], r["late_sub_cases"], r["late_departments"], r["late_sub_case_ids"])
        })
        .collect();
    assert_eq!(got, [r#""P1" 1 "market" "S2""#, r#""P3" 1 "health" "S5""#, r#""P4" 1 "market" "S6""#]);
}
