//! Who made a joint case late (follow-up.md, "Joint cases"): a sub-case made
//! its parent late when it was completed after the parent's due date, or was
//! still open at 00:00 of the day after it. Worked out by hand (shipped 2026
//! calendar; March has no holiday).

use crate::support::H;
use jiancha::engine::LateSubCases;
use serde_json::json;

fn sub(h: &mut H, case: &str, parent: &str, dept: &str, at: &str) {
    h.ev(case, "accepted", at, json!({"item_code": "S", "department": dept, "parent_case_id": parent}));
}

fn late(ids: &[&str], depts: &[&str]) -> Option<LateSubCases> {
    Some(LateSubCases {
        case_ids: ids.iter().map(|s| s.to_string()).collect(),
        departments: depts.iter().map(|s| s.to_string()).collect(),
    })
}

#[test]
fn a_joint_case_made_late_by_one_of_its_two_sub_cases() {
    // Parent P1, item J (joint, N = 5), accepted Mon 2 Mar: due the 5th
    // working day after, Mon 9 Mar. Sub-case S1 (health) completed Fri 6 Mar:
    // in time. S2 (market) completed Tue 10 Mar 09:00, after the parent's
    // due date: S2 made P1 late, and only S2.
    let mut h = H::new();
    h.ev("P1", "accepted", "2026-03-02T10:00", json!({"item_code": "J", "department": "civil"}));
    sub(&mut h, "S1", "P1", "health", "2026-03-02T11:00");
    sub(&mut h, "S2", "P1", "market", "2026-03-02T11:00");
    h.ev("S1", "completed", "2026-03-06T15:00", json!({"result": "approved"}));
    h.until("2026-03-09T23:00");
    assert_eq!(h.case("P1").late_sub_cases, late(&[], &[]));
    h.ev("S2", "completed", "2026-03-10T09:00", json!({"result": "approved"}));
    h.ev("P1", "completed", "2026-03-10T15:00", json!({"result": "approved"}));
    assert_eq!(h.case("P1").summary.due_date.unwrap().to_string(), "2026-03-09");
    assert_eq!(h.case("P1").late_sub_cases, late(&["S2"], &["market"]));
    // A case without sub-cases has no such figure.
    assert_eq!(h.case("S1").late_sub_cases, None);
}

#[test]
fn a_joint_case_made_late_by_a_sub_case_still_open() {
    // Parent P2 (due Mon 9 Mar as above) is itself completed on time, Mon
    // 9 Mar 16:00; S3 (health) completed Thu 5 Mar; S4 (market) is still
    // open. Up to 9 Mar 23:59 nobody made P2 late; at 00:00 of Tue 10 Mar S4
    // has: the parent's row changes at that instant with no event, so
    // history gets its new version.
    let mut h = H::new();
    h.ev("P2", "accepted", "2026-03-02T10:00", json!({"item_code": "J", "department": "civil"}));
    sub(&mut h, "S3", "P2", "health", "2026-03-02T11:00");
    // S4's own item A (N = 3) has its deadline (overdue at 6 Mar 00:00)
    // before, so nothing of S4's own happens at 10 Mar 00:00.
    h.ev(
        "S4",
        "accepted",
        "2026-03-02T11:00",
        json!({"item_code": "A", "department": "market", "parent_case_id": "P2"}),
    );
    h.ev("S3", "completed", "2026-03-05T15:00", json!({"result": "approved"}));
    h.ev("P2", "completed", "2026-03-09T16:00", json!({"result": "approved"}));
    h.until("2026-03-09T23:59");
    assert_eq!(h.case("P2").late_sub_cases, late(&[], &[]));
    h.engine.take_changed();
    h.until("2026-03-10T00:00");
    let changed = h.engine.take_changed();
    let p2 = changed.iter().find(|v| v.case_id == "P2").expect("P2's row is written again at 10 Mar 00:00");
    assert_eq!(p2.late_sub_cases, late(&["S4"], &["market"]));
    // When S4 completes later it stays the one that made P2 late.
    h.ev("S4", "completed", "2026-03-12T10:00", json!({"result": "approved"}));
    let changed = h.engine.take_changed();
    assert!(changed.iter().any(|v| v.case_id == "P2"), "a sub-case's change rewrites its parent's row");
    assert_eq!(h.case("P2").late_sub_cases, late(&["S4"], &["market"]));
}

#[test]
fn regression_a_parent_leaving_memory_after_its_sub_cases_kept_them_in_its_row() {
    // As in the first test: S2 made P1 late, S1 did not. The sub-cases
    // close first and leave memory before their parent; P1's row written
    // when P1 itself leaves (its last version) still names S2. It used to
    // say P1 had no sub-cases at all (NULL), so the stored row depended on
    // whether a flush came between P1's close and its leaving.
    let mut h = H::new();
    h.ev("P1", "accepted", "2026-03-02T10:00", json!({"item_code": "J", "department": "civil"}));
    sub(&mut h, "S1", "P1", "health", "2026-03-02T11:00");
    sub(&mut h, "S2", "P1", "market", "2026-03-02T11:00");
    h.ev("S1", "completed", "2026-03-06T15:00", json!({"result": "approved"}));
    h.ev("S2", "completed", "2026-03-10T09:00", json!({"result": "approved"}));
    h.ev("P1", "completed", "2026-03-20T15:00", json!({"result": "approved"}));
    let first = h.engine.take_changed();
    let p1 = first.iter().find(|v| v.case_id == "P1").expect("P1's row");
    assert_eq!(p1.late_sub_cases, late(&["S2"], &["market"]));
    h.until("2026-12-31T00:00");
    assert_eq!(h.engine.cases_in_memory(), 0, "every case left memory");
    let last = h.engine.take_changed();
    let p1 = last.iter().rev().find(|v| v.case_id == "P1").expect("P1's row as it left");
    assert_eq!(p1.late_sub_cases, late(&["S2"], &["market"]));
}
