//! Step limits (环节时限, follow-up.md): the step clock and `step_overdue`,
//! each expectation worked out by hand in the comment above it from the
//! contract and the shipped 2026 State Council calendar (1–5 May off, Sat
//! 9 May a make-up working day).

use crate::support::{refdata, sorted, CATALOG, H};
use jiancha::config::RulesConfig;
use jiancha::reference::Steps;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

/// Item T: promised 15 working days, three steps 承办 2, 审核 3, 批准 1.
fn h() -> H {
    let mut rd = (*refdata(&format!("{CATALOG}T,Three-step item,tax,promised,20,15,0,\n"))).clone();
    let csv = "item_code,step,limit_days\nT,承办,2\nT,审核,3\nT,批准,1\n";
    rd.steps = Steps::parse(csv.as_bytes(), Path::new("steps.csv"), &rd.catalog).unwrap();
    H::with_refdata(Arc::new(rd), RulesConfig::default())
}

fn step(h: &mut H, case: &str, at: &str, name: &str) {
    h.ev(case, "step_completed", at, json!({"step": name}));
}

#[test]
fn three_steps_with_a_stop_in_the_second_and_the_may_day_holiday() {
    // Accepted Tue 28 Apr. Step 1 承办 (2): charged days 29 Apr (1), 30 Apr
    // (2) → due 30 Apr; completed 30 Apr 15:00, on time: nothing fires.
    // Step 2 审核 (3) starts 30 Apr. 1–5 May are off; suspended Thu 7 May,
    // resumed Fri 8 May: 7–8 May uncharged. Charged: Wed 6 May (1), Sat
    // 9 May make-up (2), Mon 11 May (3) → due 11 May; step_overdue fires at
    // 12 May 00:00, resolved when 审核 completes on 13 May 10:00.
    // Step 3 批准 (1) starts 13 May → due Thu 14 May; fires again, as #2, at
    // 15 May 00:00 and resolves with the completion on 15 May 11:00.
    // The case itself (N = 15: due 25 May, due_soon 22 May) gets no other card.
    let mut h = h();
    h.ev("T1", "accepted", "2026-04-28T10:00", json!({"item_code": "T"}));
    step(&mut h, "T1", "2026-04-30T15:00", "承办");
    h.ev("T1", "suspended", "2026-05-07T09:00", json!({"reason": "expert_review"}));
    h.ev("T1", "resumed", "2026-05-08T16:00", json!({}));
    h.until("2026-05-12T00:00");
    // At 12 May 00:00: current step 审核, due 11 May; 承办 used (28 Apr,
    // 30 Apr] = 2 charged days, 审核 so far (30 Apr, 12 May] minus 7–8 May
    // = 6, 9, 11, 12 May = 4.
    let v = h.case("T1");
    assert_eq!(v.step.as_deref(), Some("审核"));
    assert_eq!(v.summary.step_due_date.unwrap().to_string(), "2026-05-11");
    assert_eq!(v.step_used_days.as_deref(), Some("承办:2,审核:4"));
    step(&mut h, "T1", "2026-05-13T10:00", "审核");
    h.ev("T1", "completed", "2026-05-15T11:00", json!({"result": "approved"}));
    assert_eq!(
        h.of("T1"),
        sorted(&[
            "T1/step_overdue firing 2026-05-12T00:00 due 2026-05-11",
            "T1/step_overdue resolved 2026-05-13T10:00 due 2026-05-11",
            "T1/step_overdue#2 firing 2026-05-15T00:00 due 2026-05-14",
            "T1/step_overdue#2 resolved 2026-05-15T11:00 due 2026-05-14",
        ])
    );
    // Completed: no current step; 审核 used (30 Apr, 13 May] minus 7–8 May
    // = 6, 9, 11, 12, 13 May = 5; 批准 (13 May, 15 May] = 14, 15 May = 2.
    let v = h.case("T1");
    assert_eq!((v.step.as_deref(), v.summary.step_due_date), (None, None));
    assert_eq!(v.step_used_days.as_deref(), Some("承办:2,审核:5,批准:2"));
}

#[test]
fn a_step_completed_naming_a_later_step_completes_every_step_up_to_it() {
    // Accepted Mon 2 Mar. 承办 alone would be due Wed 4 Mar (2nd charged
    // day) and fire at 5 Mar 00:00. A step_completed naming 审核 on 4 Mar
    // completes 承办 and 审核 that day: 批准 (1) starts 4 Mar, due Thu 5 Mar,
    // fires at 6 Mar 00:00 — and nothing at 5 Mar. A later step_completed
    // naming 承办 again, or a step not listed (登记), changes nothing: the
    // card stays live.
    let mut h = h();
    h.ev("K1", "accepted", "2026-03-02T10:00", json!({"item_code": "T"}));
    step(&mut h, "K1", "2026-03-04T10:00", "审核");
    step(&mut h, "K1", "2026-03-05T09:00", "承办");
    step(&mut h, "K1", "2026-03-05T09:30", "登记");
    h.until("2026-03-06T12:00");
    assert_eq!(h.of("K1"), sorted(&["K1/step_overdue firing 2026-03-06T00:00 due 2026-03-05"]));
    // 承办 (2 Mar, 4 Mar] = 2; 审核 (4 Mar, 4 Mar] = 0; 批准 (4 Mar, 6 Mar] = 2.
    let v = h.case("K1");
    assert_eq!(v.step.as_deref(), Some("批准"));
    assert_eq!(v.step_used_days.as_deref(), Some("承办:2,审核:0,批准:2"));
    // An item without steps has no step clock at all.
    h.ev("A1", "accepted", "2026-03-02T10:00", json!({"item_code": "A"}));
    let v = h.case("A1");
    assert_eq!((v.step, v.step_used_days, v.summary.step_due_date), (None, None, None));
}

#[test]
fn a_late_step_completed_retracts_the_step_overdue_it_disproves() {
    // Accepted Mon 2 Mar: 承办 due Wed 4 Mar, so at 5 Mar 00:00 it fires.
    // The 承办 step_completed of 4 Mar 16:00 arrives after that: the card was
    // wrong and is retracted (rules.md, late data). 审核 (3) then starts
    // 4 Mar: 5, 6, 9 Mar → due Mon 9 Mar; it fires at 10 Mar 00:00 under #2,
    // the first id being spent.
    let mut h = h();
    h.ev("L1", "accepted", "2026-03-02T10:00", json!({"item_code": "T"}));
    h.until("2026-03-05T12:00");
    assert_eq!(h.of("L1"), sorted(&["L1/step_overdue firing 2026-03-05T00:00 due 2026-03-04"]));
    step(&mut h, "L1", "2026-03-04T16:00", "承办");
    h.until("2026-03-10T08:00");
    assert_eq!(
        h.of("L1"),
        sorted(&[
            "L1/step_overdue firing 2026-03-05T00:00 due 2026-03-04",
            "L1/step_overdue retracted 2026-03-05T00:00 due 2026-03-04",
            "L1/step_overdue#2 firing 2026-03-10T00:00 due 2026-03-09",
        ])
    );
}

#[test]
fn steps_csv_is_checked_against_the_catalogue() {
    let rd = refdata(&format!("{CATALOG}T,Three-step item,tax,promised,20,15,0,\n"));
    let parse = |csv: &str| Steps::parse(csv.as_bytes(), Path::new("steps.csv"), &rd.catalog).map(|_| ());
    for (csv, needles) in [
        ("item_code,step,limit_days\nT,承办,2\nNOPE,审核,1\n", &["steps.csv:3:", "NOPE", "catalogue"][..]),
        ("item_code,step,limit_days\nT,承办,2\nT,审核,1\nT,承办,1\n", &["steps.csv:4:", "承办", "twice"][..]),
        ("item_code,step,limit_days\nT,承办,0\n", &["steps.csv:2:", "limit_days", "≥ 1"][..]),
        ("item_code,limit_days\nT,2\n", &["steps.csv:1:", "item_code,step,limit_days"][..]),
    ] {
        let msg = parse(csv).unwrap_err().to_string();
        for n in needles {
            assert!(msg.contains(n), "{msg:?} does not name {n:?}");
        }
    }
    let ok = Steps::parse(b"item_code,step,limit_days\nT,a,1\nA,a,2\n", Path::new("s.csv"), &rd.catalog).unwrap();
    assert_eq!((ok.rows(), ok.items()), (2, 2));
    // A missing file means no steps.
    let none = Steps::load(Path::new("/nonexistent/steps.csv"), &rd.catalog).unwrap();
    assert_eq!(none.rows(), 0);
}
