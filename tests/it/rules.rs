//! Every rule's firing instant and resolution, the two clocks, retraction,
//! holding, dead letters and dedupe — each expectation worked out by hand in
//! the comment above it (calendar: the shipped 2026 State Council schedule).

use crate::support::{sorted, H};
use jiancha::config::RulesConfig;
use jiancha::deadletter::DeadReason;
use jiancha::engine::Outcome;
use serde_json::json;

#[test]
fn national_day_and_its_make_up_saturday() {
    // Accepted Wed 30 Sep, N = 3. 1–7 Oct are off; Thu 8 Oct is the 1st
    // charged day, Fri 9 Oct the 2nd, Sat 10 Oct (make-up) the 3rd: due 10 Oct.
    // due_soon at charged day max(1, 3-2+1) = 2 → 9 Oct 00:00; overdue 11 Oct 00:00.
    let mut h = H::new();
    h.ev("N1", "accepted", "2026-09-30T10:00", json!({"item_code": "A"}));
    h.until("2026-10-12T00:00");
    assert_eq!(
        h.of("N1"),
        sorted(&[
            "N1/due_soon firing 2026-10-09T00:00 due 2026-10-10",
            "N1/overdue firing 2026-10-11T00:00 due 2026-10-10"
        ])
    );
    assert_eq!(h.case("N1").summary.due_date.unwrap().to_string(), "2026-10-10");
}

#[test]
fn make_up_sunday_and_warn_days_clamped_to_one() {
    // Accepted Fri 18 Sep, item B with N = 1: Sun 20 Sep is a make-up working
    // day, so it is the 1st charged day and the due date. warn_days 2 is
    // clamped to N = 1: due_soon at charged day 1 → 20 Sep 00:00; overdue 21 Sep.
    let mut h = H::new();
    h.ev("M1", "accepted", "2026-09-18T10:00", json!({"item_code": "B"}));
    h.until("2026-09-22T00:00");
    assert_eq!(
        h.of("M1"),
        sorted(&[
            "M1/due_soon firing 2026-09-20T00:00 due 2026-09-20",
            "M1/overdue firing 2026-09-21T00:00 due 2026-09-20"
        ])
    );
}

#[test]
fn immediate_case_is_due_the_day_it_is_accepted() {
    // N = 0: due date = acceptance date, no due_soon, overdue at 00:00 next day.
    let mut h = H::new();
    h.ev("I1", "accepted", "2026-03-06T16:00", json!({"item_code": "I"}));
    h.until("2026-03-09T00:00");
    assert_eq!(h.of("I1"), sorted(&["I1/overdue firing 2026-03-07T00:00 due 2026-03-06"]));
}

#[test]
fn worked_example_c2_figures() {
    // examples.md, C2: accepted 13 Feb, stopped 24–26 Feb, completed 2 Mar.
    let mut h = H::new();
    h.ev("C2", "accepted", "2026-02-13T10:00", json!({"item_code": "A"}));
    h.ev("C2", "suspended", "2026-02-24T09:00", json!({"reason": "testing"}));
    h.ev("C2", "resumed", "2026-02-26T15:00", json!({}));
    h.ev("C2", "completed", "2026-03-02T11:00", json!({"result": "approved"}));
    let s = h.case("C2").summary;
    assert_eq!(s.due_date.unwrap().to_string(), "2026-02-28");
    assert_eq!((s.on_time, s.early, s.used_days, s.stopped_days), (Some(false), Some(false), Some(4), Some(3)));
    assert!(s.overdue);
}

#[test]
fn open_stop_leaves_the_due_date_undefined() {
    // Accepted Mon 2 Mar (N = 3). Suspended on Tue 3 Mar and never resumed:
    // every date from 3 Mar on is uncharged, so there is no 1st charged day,
    // no due date and no timers.
    let mut h = H::new();
    h.ev("U1", "accepted", "2026-03-02T10:00", json!({"item_code": "A"}));
    h.ev("U1", "suspended", "2026-03-03T09:00", json!({"reason": "expert_review"}));
    h.until("2026-04-01T00:00");
    assert!(h.of("U1").is_empty(), "{:?}", h.of("U1"));
    let s = h.case("U1").summary;
    assert_eq!(s.due_date, None);
    // Stopped days run to the watermark's date, 1 Apr: working days 3–31 Mar
    // (21) and Wed 1 Apr → 22.
    assert_eq!(s.stopped_days, Some(22));
}

#[test]
fn intake_clock_counts_on_after_a_supplement_stop() {
    // Submitted Mon 2 Mar; supplement requested Tue 3 Mar, received Thu 5 Mar:
    // 3–5 Mar uncharged. Charged: Fri 6 (1), Mon 9 (2), 10 (3), 11 (4), 12 (5):
    // intake due 12 Mar, intake_overdue at 13 Mar 00:00, resolved by the
    // acceptance on 16 Mar 09:00.
    let mut h = H::new();
    h.ev("K1", "submitted", "2026-03-02T09:00", json!({"item_code": "A"}));
    h.ev("K1", "supplement_requested", "2026-03-03T10:00", json!({}));
    h.ev("K1", "supplement_received", "2026-03-05T15:00", json!({}));
    h.until("2026-03-13T00:00");
    h.ev("K1", "accepted", "2026-03-16T09:00", json!({"item_code": "A"}));
    assert_eq!(
        h.of("K1"),
        sorted(&[
            "K1/intake_overdue firing 2026-03-13T00:00 due 2026-03-12",
            "K1/intake_overdue resolved 2026-03-16T09:00 due 2026-03-12",
        ])
    );
    // Without a stop: 5th working day after Mon 2 Mar is Mon 9 Mar; a refusal
    // on 9 Mar is in time, so nothing fires.
    let mut h = H::new();
    h.ev("K2", "submitted", "2026-03-02T09:00", json!({"item_code": "A"}));
    h.ev("K2", "refused", "2026-03-09T17:00", json!({"reason": "材料不全"}));
    h.until("2026-03-20T00:00");
    assert!(h.of("K2").is_empty(), "{:?}", h.of("K2"));
}

#[test]
fn repeated_supplement_counts_both_kinds_of_request() {
    // 1st request: supplement_requested on 3 Mar; 2nd: a suspension for
    // supplement on 10 Mar → fires at 10 Mar 11:00, resolves on completion.
    let mut h = H::new();
    h.ev("S1", "submitted", "2026-03-02T09:00", json!({"item_code": "A"}));
    h.ev("S1", "supplement_requested", "2026-03-03T10:00", json!({}));
    h.ev("S1", "supplement_received", "2026-03-04T10:00", json!({}));
    h.ev("S1", "accepted", "2026-03-05T09:00", json!({"item_code": "A"}));
    h.ev("S1", "suspended", "2026-03-06T11:00", json!({"reason": "supplement"}));
    h.ev("S1", "resumed", "2026-03-09T11:00", json!({}));
    h.ev("S1", "completed", "2026-03-10T11:00", json!({"result": "approved"}));
    assert_eq!(
        h.of("S1"),
        sorted(
            &["S1/repeated_supplement firing 2026-03-06T11:00", "S1/repeated_supplement resolved 2026-03-10T11:00",]
        )
    );
}

#[test]
fn dual_intake_window_source_and_withdrawal() {
    let mut h = H::new();
    // D1 from center on 2 Mar; D2 same applicant and item from tax-sys 1 Apr:
    // 30 calendar days later → fires, naming D1.
    h.ev("D1", "accepted", "2026-03-02T10:00", json!({"item_code": "A"}));
    h.ev("D2", "accepted", "2026-04-01T10:00", json!({"item_code": "A", "source": "tax-sys"}));
    // D3 on 2 Apr from tax-sys: D1 is 31 days back (too old), D2 has the same
    // source → no alert.
    h.ev("D3", "accepted", "2026-04-02T10:00", json!({"item_code": "A", "source": "tax-sys"}));
    // D4 withdrawn before D5 is accepted from another source → no alert.
    h.ev("D4", "accepted", "2026-05-06T10:00", json!({"item_code": "A", "applicant": "p9"}));
    h.ev("D4", "withdrawn", "2026-05-06T11:00", json!({}));
    h.ev("D5", "accepted", "2026-05-07T10:00", json!({"item_code": "A", "applicant": "p9", "source": "tax-sys"}));
    assert_eq!(
        h.of("D2").iter().filter(|l| l.contains("dual")).collect::<Vec<_>>(),
        ["D2/dual_intake firing 2026-04-01T10:00 earlier D1"]
    );
    assert!(h.of("D3").iter().all(|l| !l.contains("dual")), "{:?}", h.of("D3"));
    assert!(h.of("D5").iter().all(|l| !l.contains("dual")), "{:?}", h.of("D5"));
}

#[test]
fn dual_intake_found_when_the_earlier_acceptance_arrives_late() {
    // L2 (tax-sys, 10 Mar) arrives first, L1 (center, 9 Mar) afterwards: the
    // result is the same as in order — dual_intake on L2 at its acceptance.
    let mut h = H::new();
    h.ev("L2", "accepted", "2026-03-10T10:00", json!({"item_code": "A", "source": "tax-sys", "applicant": "q"}));
    assert_eq!(
        h.ev("L1", "accepted", "2026-03-09T10:00", json!({"item_code": "A", "applicant": "q"})),
        Outcome::Applied
    );
    assert!(h.of("L2").contains(&"L2/dual_intake firing 2026-03-10T10:00 earlier L1".to_string()), "{:?}", h.of("L2"));
    assert!(h.of("L1").iter().all(|l| !l.contains("dual")));
}

#[test]
fn unregistered_case_grace_late_registration_and_sub_cases() {
    let mut h = H::new();
    // G1: only departmental events → fires at first event + 24 h.
    h.ev("G1", "accepted", "2026-03-02T10:00", json!({"item_code": "A", "source": "tax-sys"}));
    // G2: a center event 23 h after the first → registered, nothing.
    h.ev("G2", "accepted", "2026-03-02T10:00", json!({"item_code": "A", "source": "tax-sys"}));
    h.ev("G2", "step_completed", "2026-03-03T09:00", json!({"step": "登记"}));
    // G3: center event 30 h after → fires at +24 h, resolved at +30 h.
    h.ev("G3", "accepted", "2026-03-02T10:00", json!({"item_code": "A", "source": "tax-sys"}));
    // G4: item not handled in the hall → never.
    h.ev("G4", "accepted", "2026-03-02T10:00", json!({"item_code": "O", "source": "tax-sys"}));
    // Sub-case G6 of parent G5: registered through G5's center event.
    h.ev("G5", "accepted", "2026-03-02T09:00", json!({"item_code": "J"}));
    h.ev(
        "G6",
        "accepted",
        "2026-03-02T10:00",
        json!({"item_code": "S", "source": "health-sys", "parent_case_id": "G5"}),
    );
    h.ev("G3", "step_completed", "2026-03-03T16:00", json!({"step": "登记"}));
    h.until("2026-03-04T00:00");
    let unreg = |c: &str| h.of(c).into_iter().filter(|l| l.contains("unregistered")).collect::<Vec<_>>();
    assert_eq!(unreg("G1"), sorted(&["G1/unregistered_case firing 2026-03-03T10:00"]));
    assert!(unreg("G2").is_empty());
    assert_eq!(
        unreg("G3"),
        sorted(&["G3/unregistered_case firing 2026-03-03T10:00", "G3/unregistered_case resolved 2026-03-03T16:00"])
    );
    assert!(unreg("G4").is_empty());
    assert!(unreg("G6").is_empty(), "{:?}", h.of("G6"));
}

#[test]
fn late_center_event_within_grace_retracts_unregistered_case() {
    let mut h = H::new();
    h.ev("G7", "accepted", "2026-03-02T10:00", json!({"item_code": "A", "source": "tax-sys"}));
    h.until("2026-03-03T12:00");
    // A center event from 2 Mar 15:00 arrives late.
    h.ev("G7", "step_completed", "2026-03-02T15:00", json!({"step": "登记"}));
    assert_eq!(
        h.of("G7"),
        sorted(&["G7/unregistered_case firing 2026-03-03T10:00", "G7/unregistered_case retracted 2026-03-03T10:00"])
    );
}

#[test]
fn backdated_overcharge_and_denial_boundaries() {
    let mut h = H::new();
    // recorded 24 h after: allowed. 24 h + 1 s: backdated, at occurred_at.
    h.ev("B1", "accepted", "2026-03-02T10:00", json!({"item_code": "F", "recorded_at": "2026-03-03T10:00"}));
    h.ev("B2", "accepted", "2026-03-02T10:00", json!({"item_code": "F", "recorded_at": "2026-03-03T10:00:01"}));
    // Fee 10.005 on a 10-yuan item: not more than 0.005 over. 10.0051: overcharge.
    h.ev("B1", "completed", "2026-03-03T11:00", json!({"result": "approved", "fee_yuan": 10.005}));
    h.ev("B2", "completed", "2026-03-03T11:00", json!({"result": "denied", "reason": "  ", "fee_yuan": 10.0051}));
    // Refused with no reason.
    h.ev("B3", "submitted", "2026-03-03T09:00", json!({"item_code": "A"}));
    h.ev("B3", "refused", "2026-03-03T12:00", json!({}));
    assert!(h.of("B1").is_empty(), "{:?}", h.of("B1"));
    assert_eq!(
        h.of("B2"),
        sorted(&[
            "B2/backdated_entry firing 2026-03-02T10:00",
            "B2/backdated_entry resolved 2026-03-03T11:00",
            "B2/overcharge firing 2026-03-03T11:00",
            "B2/overcharge resolved 2026-03-03T11:00",
            "B2/denial_without_reason firing 2026-03-03T11:00",
            "B2/denial_without_reason resolved 2026-03-03T11:00",
        ])
    );
    assert_eq!(
        h.of("B3"),
        sorted(&[
            "B3/denial_without_reason firing 2026-03-03T12:00",
            "B3/denial_without_reason resolved 2026-03-03T12:00"
        ])
    );
}

#[test]
fn bad_rating_unrectified_after_fifteen_working_days() {
    // Rating 2 on Tue 3 Mar. Working days after: 4,5,6 (3), 9–13 (8),
    // 16–20 (13), 23 (14), 24 (15) → fires 25 Mar 00:00 unless rectified.
    let mut h = H::new();
    for c in ["R1", "R2", "R3"] {
        h.ev(c, "accepted", "2026-03-02T09:00", json!({"item_code": "A"}));
        h.ev(c, "completed", "2026-03-02T15:00", json!({"result": "approved"}));
        h.ev(c, "evaluated", "2026-03-03T10:00", json!({"rating": 2}));
    }
    h.ev("R2", "rectified", "2026-03-24T17:00", json!({}));
    h.until("2026-03-26T00:00");
    h.ev("R3", "rectified", "2026-03-26T09:00", json!({}));
    assert_eq!(h.of("R1"), sorted(&["R1/bad_rating_unrectified firing 2026-03-25T00:00"]));
    assert!(h.of("R2").is_empty());
    assert_eq!(
        h.of("R3"),
        sorted(&[
            "R3/bad_rating_unrectified firing 2026-03-25T00:00",
            "R3/bad_rating_unrectified resolved 2026-03-26T09:00"
        ])
    );
}

#[test]
fn late_completion_retracts_overdue_even_after_resolution() {
    // T1 accepted 13 Feb (N = 3, due 25 Feb). Another case moves the watermark
    // to 27 Feb: due_soon (24 Feb) and overdue (26 Feb) fire. Then T1's
    // completion on 25 Feb 16:00 arrives: overdue was wrong → retracted;
    // due_soon resolved at 25 Feb 16:00.
    let mut h = H::new();
    h.ev("T1", "accepted", "2026-02-13T10:00", json!({"item_code": "A"}));
    h.ev("X", "accepted", "2026-02-27T10:00", json!({"item_code": "A"}));
    h.ev("T1", "completed", "2026-02-25T16:00", json!({"result": "approved"}));
    assert_eq!(
        h.of("T1"),
        sorted(&[
            "T1/due_soon firing 2026-02-24T00:00 due 2026-02-25",
            "T1/due_soon resolved 2026-02-25T16:00 due 2026-02-25",
            "T1/overdue firing 2026-02-26T00:00 due 2026-02-25",
            "T1/overdue retracted 2026-02-26T00:00 due 2026-02-25",
        ])
    );
    let s = h.case("T1").summary;
    assert_eq!((s.on_time, s.overdue), (Some(true), false));
}

#[test]
fn late_stop_moves_the_deadline_and_refires_as_number_two() {
    // As C2 of examples.md, but the stop arrives after the overdue of 26 Feb
    // fired: that overdue is retracted and overdue#2 fires at 1 Mar 00:00
    // (due 28 Feb). due_soon of 24 Feb 00:00 stands (the stop began at 09:00).
    let mut h = H::new();
    h.ev("T2", "accepted", "2026-02-13T10:00", json!({"item_code": "A"}));
    h.ev("X", "accepted", "2026-02-27T10:00", json!({"item_code": "A"}));
    h.ev("T2", "suspended", "2026-02-24T09:00", json!({"reason": "testing"}));
    h.ev("T2", "resumed", "2026-02-26T15:00", json!({}));
    h.until("2026-03-01T00:00");
    assert_eq!(
        h.of("T2"),
        sorted(&[
            "T2/due_soon firing 2026-02-24T00:00 due 2026-02-25",
            "T2/overdue firing 2026-02-26T00:00 due 2026-02-25",
            "T2/overdue retracted 2026-02-26T00:00 due 2026-02-25",
            "T2/overdue#2 firing 2026-03-01T00:00 due 2026-02-28",
        ])
    );
}

#[test]
fn early_event_is_held_until_its_case_makes_it_valid() {
    let mut h = H::new();
    h.ev("H1", "accepted", "2026-03-02T10:00", json!({"item_code": "A"}));
    assert_eq!(h.ev("H1", "resumed", "2026-03-04T10:00", json!({})), Outcome::Held);
    assert_eq!(h.ev("H1", "suspended", "2026-03-03T10:00", json!({"reason": "hearing"})), Outcome::Applied);
    h.until("2026-04-30T00:00");
    assert!(h.dead.is_empty());
    assert_eq!(h.case("H1").held_events, 0);
    // Stop 3–4 Mar: charged 5 (1), 6 (2), 9 (3) → due 9 Mar.
    assert_eq!(h.case("H1").summary.due_date.unwrap().to_string(), "2026-03-09");
}

#[test]
fn orphans_and_invalid_transitions_are_dead_lettered_after_the_hold() {
    let mut h = H::new();
    assert_eq!(h.ev("O1", "completed", "2026-03-02T10:00", json!({"result": "approved"})), Outcome::Held);
    h.ev("O2", "accepted", "2026-03-02T10:00", json!({"item_code": "A"}));
    assert_eq!(h.ev("O2", "accepted", "2026-03-02T11:00", json!({"item_code": "A"})), Outcome::Held);
    h.until("2026-03-09T09:59");
    assert!(h.dead.is_empty(), "held 168 h of watermark");
    h.until("2026-03-09T11:00");
    let reasons: Vec<_> = h.dead.iter().map(|(_, r)| (r.reason, r.field.clone())).collect();
    assert_eq!(
        reasons,
        vec![
            (DeadReason::Orphan, Some("case_id".to_string())),
            (DeadReason::InvalidTransition, Some("type".to_string()))
        ]
    );
    assert!(h.engine.case_view("O1").is_none());
}

#[test]
fn late_withdrawal_undoes_an_applied_completion() {
    // W1 accepted Mon 2 Mar (N = 3: charged 3, 4, 5 Mar, due 5 Mar; due_soon
    // at charged day 2 = 4 Mar 00:00), completed on 4 Mar 10:00 with a fee of
    // 50 on a 10-yuan item. A withdrawal dated 3 Mar arrives late: in
    // occurred_at order the case closed on 3 Mar, so the due_soon of 4 Mar
    // and the overcharge are retracted, and the completion (now after a
    // withdrawal) is held, then dead-lettered as invalid_transition after 168 h.
    let mut h = H::new();
    h.ev("W1", "accepted", "2026-03-02T10:00", json!({"item_code": "F"}));
    h.ev("W1", "completed", "2026-03-04T10:00", json!({"result": "approved", "fee_yuan": 50}));
    assert_eq!(
        h.of("W1"),
        sorted(&[
            "W1/due_soon firing 2026-03-04T00:00 due 2026-03-05",
            "W1/due_soon resolved 2026-03-04T10:00 due 2026-03-05",
            "W1/overcharge firing 2026-03-04T10:00",
            "W1/overcharge resolved 2026-03-04T10:00",
        ])
    );
    assert_eq!(h.ev("W1", "withdrawn", "2026-03-03T10:00", json!({})), Outcome::Applied);
    for l in ["W1/overcharge retracted 2026-03-04T10:00", "W1/due_soon retracted 2026-03-04T00:00 due 2026-03-05"] {
        assert!(h.log().contains(&l.to_string()), "{l} not in {:?}", h.log());
    }
    assert_eq!(h.case("W1").summary.status.as_str(), "withdrawn");
    h.until("2026-03-12T00:00");
    assert_eq!(h.dead.len(), 1);
    assert_eq!(h.dead[0].1.reason, DeadReason::InvalidTransition);
}

#[test]
fn repeated_event_id_is_a_duplicate_whatever_its_content() {
    let mut h = H::new();
    let a = r#"{"event_id":"same","case_id":"Q1","type":"accepted","occurred_at":"2026-03-02T10:00:00+08:00","source":"center","region":"220421","department":"tax","item_code":"A","applicant":"p"}"#;
    let b = r#"{"event_id":"same","case_id":"Q2","type":"accepted","occurred_at":"2026-03-02T11:00:00+08:00","source":"center","region":"220421","department":"tax","item_code":"A","applicant":"p"}"#;
    assert_eq!(h.raw(a), Outcome::Applied);
    assert_eq!(h.raw(a), Outcome::Duplicate);
    assert_eq!(h.raw(b), Outcome::Duplicate);
    assert_eq!(h.engine.stats().duplicates, 2);
    assert!(h.engine.case_view("Q2").is_none());
}

#[test]
fn dead_lettered_event_id_can_be_sent_again() {
    // An orphan is dead-lettered and registers no id: the corrected resend is applied.
    let mut h = H::new();
    let orphan = r#"{"event_id":"fixme","case_id":"Z1","type":"resumed","occurred_at":"2026-03-02T10:00:00+08:00","source":"center"}"#;
    assert_eq!(h.raw(orphan), Outcome::Held);
    h.until("2026-03-10T00:00");
    assert_eq!(h.dead.len(), 1);
    let fixed = r#"{"event_id":"fixme","case_id":"Z1","type":"accepted","occurred_at":"2026-03-10T10:00:00+08:00","source":"center","region":"220421","department":"tax","item_code":"A","applicant":"p"}"#;
    assert_eq!(h.raw(fixed), Outcome::Applied);
}

#[test]
fn thresholds_come_from_configuration() {
    // warn_days 1: due_soon on charged day 3 of 3 (25 Feb); grace 2 h.
    let mut h = H::with_rules(RulesConfig { warn_days: 1, grace_hours: 2, ..RulesConfig::default() });
    h.ev("Y1", "accepted", "2026-02-13T10:00", json!({"item_code": "A", "source": "tax-sys"}));
    h.until("2026-02-26T00:00");
    assert_eq!(
        h.of("Y1"),
        sorted(&[
            "Y1/due_soon firing 2026-02-25T00:00 due 2026-02-25",
            "Y1/overdue firing 2026-02-26T00:00 due 2026-02-25",
            "Y1/unregistered_case firing 2026-02-13T12:00",
        ])
    );
}

#[test]
fn due_date_in_a_year_without_calendar_is_unknown_not_guessed() {
    // Accepted Wed 30 Dec 2026 with N = 3: Thu 31 Dec is the 1st charged day;
    // the 2nd and 3rd fall in 2027, which has no calendar file. Neither the
    // due date nor the due_soon day (charged day 2) is guessed: no card fires
    // and the missing year is reported.
    let mut h = H::new();
    h.ev("Y27", "accepted", "2026-12-30T10:00", json!({"item_code": "A"}));
    h.until("2026-12-31T23:00");
    let s = h.case("Y27").summary;
    assert_eq!(s.due_date, None);
    assert_eq!(s.missing_calendar, Some(2027));
    assert!(h.engine.stats().missing_calendar_years.contains(&2027));
    assert!(h.of("Y27").is_empty(), "{:?}", h.of("Y27"));
}
