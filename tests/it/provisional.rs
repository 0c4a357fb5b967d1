//! Provisional calendars: a year whose holiday notice is not out yet is
//! judged on its statutory holidays, its cards marked provisional, and every
//! case is judged again when its `YYYY.json` lands — only the cards the
//! official calendar changes are retracted and fired anew.

use crate::support::{root, sorted, H};
use jiancha::config::RulesConfig;
use jiancha::reference::{Calendar, Catalog, RefData, Regions};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

pub const CATALOG: &str = "item_code,name,department,kind,statutory_days,promised_days,fee_yuan,in_hall
P15,Fifteen-day item,tax,promised,20,15,0,
P10,Ten-day item,tax,promised,20,10,0,
";

/// A 2027 notice as it might come: 元旦 1 January; 春节 5–9 February, one
/// bridging day (Tuesday 9 February) more than the statutory 5 and 8
/// February, and a make-up Saturday, 20 February.
pub const NOTICE_2027: &str = r#"{"year": 2027, "papers": [], "days": [
  {"name": "元旦", "date": "2027-01-01", "isOffDay": true},
  {"name": "春节", "date": "2027-02-05", "isOffDay": true},
  {"name": "春节", "date": "2027-02-06", "isOffDay": true},
  {"name": "春节", "date": "2027-02-07", "isOffDay": true},
  {"name": "春节", "date": "2027-02-08", "isOffDay": true},
  {"name": "春节", "date": "2027-02-09", "isOffDay": true},
  {"name": "春节", "date": "2027-02-20", "isOffDay": false}
]}"#;

fn files(with_2027: bool) -> Calendar {
    let y2026 = std::fs::read_to_string(root().join("config/calendar/2026.json")).unwrap();
    let mut f = vec![(2026, Path::new("2026.json"), y2026.as_str())];
    if with_2027 {
        f.push((2027, Path::new("2027.json"), NOTICE_2027));
    }
    Calendar::from_json_files(&f).unwrap()
}

/// Reference data as on 6 December 2026: 2026's file, 2027 provisional
/// unless its notice is there.
fn refdata(with_2027: bool) -> Arc<RefData> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("catalog.csv");
    std::fs::write(&p, CATALOG).unwrap();
    Arc::new(
        RefData {
            catalog: Catalog::load(&p).unwrap(),
            calendar: files(with_2027),
            regions: Regions::load(&root().join("config/regions.csv")).unwrap(),
            steps: Default::default(),
            departments: Default::default(),
            deductions: Default::default(),
        }
        .with_provisional_calendar(chrono::NaiveDate::from_ymd_opt(2026, 12, 6).unwrap()),
    )
}

fn accepted(h: &mut H, case: &str, at: &str, item: &str) {
    h.ev(case, "accepted", at, json!({"item_code": item}));
}

#[test]
fn a_case_accepted_on_21_december_with_15_days_gets_a_due_date_and_provisional_cards() {
    let mut h = H::with_refdata(refdata(false), RulesConfig::default());
    accepted(&mut h, "P", "2026-12-21T10:00", "P15");
    h.until("2027-01-14T00:00");
    // Charged days: 22–25, 28–31 December, then 元旦 (1 January) off and
    // 4–8, 11–12 January: the 15th is 12 January.
    let v = h.case("P");
    assert_eq!(v.summary.due_date.map(|d| d.to_string()).as_deref(), Some("2027-01-12"));
    assert!(v.provisional_calendar);
    assert_eq!(
        h.of("P"),
        sorted(&[
            "P/due_soon firing 2027-01-11T00:00 due 2027-01-12 provisional",
            "P/overdue firing 2027-01-13T00:00 due 2027-01-12 provisional",
        ])
    );
    // The same case on an official calendar carries no mark.
    let mut h = H::with_refdata(refdata(true), RulesConfig::default());
    accepted(&mut h, "P", "2026-12-21T10:00", "P15");
    h.until("2027-01-14T00:00");
    assert!(!h.case("P").provisional_calendar);
    assert_eq!(
        h.of("P"),
        sorted(&[
            "P/due_soon firing 2027-01-11T00:00 due 2027-01-12",
            "P/overdue firing 2027-01-13T00:00 due 2027-01-12",
        ])
    );
}

/// Three cases: P's clock ends before anything the notice changes; Q's
/// crosses the bridging day; R's the make-up Saturday.
fn three_cases(h: &mut H) {
    accepted(h, "P", "2026-12-21T10:00", "P15");
    accepted(h, "Q", "2027-01-20T10:00", "P15");
    accepted(h, "R", "2027-02-10T10:00", "P10");
}

#[test]
fn the_notice_landing_retracts_and_refires_exactly_the_cards_that_change() {
    let mut h = H::with_refdata(refdata(false), RulesConfig::default());
    three_cases(&mut h);
    h.until("2027-02-13T12:00");
    // Provisional: Q's 15th charged day is 12 February (5 and 8 February
    // off); R has no card yet.
    assert_eq!(
        h.of("Q"),
        sorted(&[
            "Q/due_soon firing 2027-02-11T00:00 due 2027-02-12 provisional",
            "Q/overdue firing 2027-02-13T00:00 due 2027-02-12 provisional",
        ])
    );
    let before = h.records.len();
    h.set_refdata(refdata(true));
    let dropped: Vec<String> = h.log()[before..].to_vec();
    // Official: 5–9 February off, so Q's 15th day is 15 February. Its two
    // cards are retracted; its due_soon (day 14, 12 February) is already
    // due and fires at once; its overdue waits for 16 February. P and R:
    // nothing.
    assert_eq!(
        sorted(&dropped.iter().map(String::as_str).collect::<Vec<_>>()),
        sorted(&[
            "Q/due_soon retracted 2027-02-11T00:00 due 2027-02-12 provisional",
            "Q/overdue retracted 2027-02-13T00:00 due 2027-02-12 provisional",
            "Q/due_soon#2 firing 2027-02-12T00:00 due 2027-02-15",
        ])
    );
    assert_eq!(h.case("Q").summary.due_date.map(|d| d.to_string()).as_deref(), Some("2027-02-15"));
    assert!(!h.case("Q").provisional_calendar);
    // R: with the make-up Saturday its 10th charged day is 23 February.
    h.until("2027-03-01T00:00");
    assert_eq!(
        h.of("R"),
        sorted(&[
            "R/due_soon firing 2027-02-22T00:00 due 2027-02-23",
            "R/overdue firing 2027-02-24T00:00 due 2027-02-23",
        ])
    );
}

/// Records as (case, rule, state, at, due), without the instance number
/// and the provisional mark.
fn plain(h: &H) -> Vec<String> {
    h.records
        .iter()
        .map(|r| {
            let case_rule = r.alert_id.split('#').next().unwrap();
            format!("{case_rule} {} {} {:?}", r.state.as_str(), &r.at[..16], r.due_date)
        })
        .collect()
}

#[test]
fn replay_into_2027_then_the_notice_equals_the_notice_from_the_start_apart_from_the_retractions() {
    // Replayed to 13 February on the provisional calendar, then the notice
    // lands, then on to 1 March…
    let mut late = H::with_refdata(refdata(false), RulesConfig::default());
    three_cases(&mut late);
    late.until("2027-02-13T12:00");
    late.set_refdata(refdata(true));
    late.until("2027-03-01T00:00");
    // …against the same replay with the notice from the start.
    let mut early = H::with_refdata(refdata(true), RulesConfig::default());
    three_cases(&mut early);
    early.until("2027-02-13T12:00");
    early.until("2027-03-01T00:00");
    assert!(early.records.iter().all(|r| !r.detail.provisional_calendar));

    // Take away from the late replay what the notice retracted: the
    // retractions and the firings they retract.
    let retracted: Vec<&str> =
        late.records.iter().filter(|r| r.state.as_str() == "retracted").map(|r| r.alert_id.as_str()).collect();
    assert_eq!(retracted, ["Q/due_soon", "Q/overdue"]);
    let kept: Vec<String> = late
        .records
        .iter()
        .zip(plain(&late))
        .filter(|(r, _)| !retracted.contains(&r.alert_id.as_str()))
        .map(|(_, p)| p)
        .collect();
    // Record for record, in order (P's cards keep their provisional mark in
    // the late replay: the notice did not change them, so they were not
    // published again).
    assert_eq!(kept, plain(&early));
}

#[test]
fn the_shipped_lunar_table_agrees_with_the_lunar_python_library() {
    let out = std::process::Command::new("python3")
        .arg(root().join("scripts/check-lunar-holidays.py"))
        .arg(root().join("config/lunar-holidays.csv"))
        .output()
        .expect("python3 runs (scripts/test.sh installs lunar-python)");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("rows checked"), "{text}");
}
