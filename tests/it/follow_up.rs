//! Complaints (效能投诉) and supervision notices (督办) of `follow-up.md`:
//! their decoding and dead letters, their lives and clocks, and the rules
//! `complaint_overdue` and `notice_overdue` — each expectation worked out by
//! hand in the comment above it (calendar: the shipped 2026 State Council
//! schedule; 1–7 Oct off, Sat 10 Oct a make-up working day).

use crate::support::{self, sorted, H};
use jiancha::deadletter::DeadReason;
use jiancha::engine::Outcome;
use jiancha::event::{ComplaintCategory, Decoder, EventType, Finding};
use serde_json::{json, Value};

/// A complaint about department `tax` of region 220421.
fn complaint() -> Value {
    json!({"region": "220421", "department": "tax", "complaint_category": "delay", "source": "bureau"})
}

fn notice(id: &str, days: u32) -> Value {
    json!({"notice_id": id, "deadline_days": days, "source": "bureau"})
}

#[test]
fn a_complaint_filed_the_working_day_before_national_day_is_due_after_it() {
    // Filed Wed 30 Sep. The 5 working days after it: Thu 8 Oct, Fri 9 Oct,
    // Sat 10 Oct (make-up), Mon 12 Oct, Tue 13 Oct → due 13 Oct, overdue at
    // Wed 14 Oct 00:00; answered Thu 15 Oct resolves it.
    let mut h = H::new();
    h.ev("TS1", "complaint_filed", "2026-09-30T16:00", complaint());
    h.until("2026-10-13T23:59");
    assert!(h.of("TS1").is_empty(), "{:?}", h.of("TS1"));
    h.until("2026-10-14T00:00");
    assert_eq!(h.of("TS1"), sorted(&["TS1/complaint_overdue firing 2026-10-14T00:00 due 2026-10-13"]));
    h.ev("TS1", "complaint_answered", "2026-10-15T09:00", json!({"finding": "upheld", "source": "bureau"}));
    assert_eq!(
        h.of("TS1"),
        sorted(&[
            "TS1/complaint_overdue firing 2026-10-14T00:00 due 2026-10-13",
            "TS1/complaint_overdue resolved 2026-10-15T09:00 due 2026-10-13",
        ])
    );
    let s = h.case("TS1").summary;
    assert_eq!(s.status.as_str(), "answered");
    assert_eq!(s.due_date.unwrap().to_string(), "2026-10-13");
    assert_eq!((s.on_time, s.overdue), (Some(false), true));
    assert_eq!(h.case("TS1").department.as_deref(), Some("tax"));
}

#[test]
fn a_complaint_answered_on_its_due_date_raises_nothing() {
    // Same filing; answered Tue 13 Oct 17:00, the due date: on time.
    let mut h = H::new();
    h.ev("TS2", "complaint_filed", "2026-09-30T16:00", complaint());
    h.ev("TS2", "complaint_answered", "2026-10-13T17:00", json!({"finding": "not_upheld"}));
    h.until("2026-10-20T00:00");
    assert!(h.of("TS2").is_empty(), "{:?}", h.of("TS2"));
    let s = h.case("TS2").summary;
    assert_eq!((s.on_time, s.overdue), (Some(true), false));
}

#[test]
fn a_late_answer_retracts_complaint_overdue() {
    // Filed Mon 2 Mar: due the 5th working day after, Mon 9 Mar; overdue at
    // Tue 10 Mar 00:00. An answer dated 9 Mar 16:00 arrives after that: in
    // event time the complaint was answered on its due date, so the card is
    // retracted.
    let mut h = H::new();
    h.ev("TS3", "complaint_filed", "2026-03-02T10:00", complaint());
    h.until("2026-03-10T08:00");
    assert_eq!(h.of("TS3"), sorted(&["TS3/complaint_overdue firing 2026-03-10T00:00 due 2026-03-09"]));
    h.ev("TS3", "complaint_answered", "2026-03-09T16:00", json!({"finding": "partly_upheld"}));
    assert!(h.log().contains(&"TS3/complaint_overdue retracted 2026-03-10T00:00 due 2026-03-09".to_string()));
    assert_eq!(h.case("TS3").summary.on_time, Some(true));
}

#[test]
fn a_notice_outlives_its_case_and_a_second_one_fires_as_number_two() {
    // Accepted Mon 2 Mar (item A, N = 3: due Thu 5 Mar), completed Tue 3 Mar
    // 09:00, before the notice. Notice K1 issued Tue 3 Mar with 2 working
    // days: Wed 4, Thu 5 → due 5 Mar, overdue at Fri 6 Mar 00:00 although the
    // case is closed. Answered Mon 9 Mar: resolved. Notice K2 issued Tue 10
    // Mar with 1 day: due Wed 11 Mar, overdue Thu 12 Mar 00:00 as #2.
    let mut h = H::new();
    h.ev("N1", "accepted", "2026-03-02T10:00", json!({"item_code": "A"}));
    h.ev("N1", "completed", "2026-03-03T09:00", json!({"result": "approved"}));
    assert_eq!(h.ev("N1", "notice_issued", "2026-03-03T10:00", notice("K1", 2)), Outcome::Applied);
    h.until("2026-03-06T00:00");
    assert_eq!(h.of("N1"), sorted(&["N1/notice_overdue firing 2026-03-06T00:00 due 2026-03-05"]));
    h.ev("N1", "notice_answered", "2026-03-09T09:00", json!({"notice_id": "K1"}));
    h.ev("N1", "notice_issued", "2026-03-10T10:00", notice("K2", 1));
    h.until("2026-03-12T00:00");
    assert_eq!(
        h.of("N1"),
        sorted(&[
            "N1/notice_overdue firing 2026-03-06T00:00 due 2026-03-05",
            "N1/notice_overdue resolved 2026-03-09T09:00 due 2026-03-05",
            "N1/notice_overdue#2 firing 2026-03-12T00:00 due 2026-03-11",
        ])
    );
    let v = h.case("N1");
    assert_eq!(v.summary.status.as_str(), "completed");
    let n: Vec<_> = v.summary.notices.iter().map(|n| (n.due_date.unwrap().to_string(), n.overdue)).collect();
    assert_eq!(n, vec![("2026-03-05".to_string(), true), ("2026-03-11".to_string(), true)]);
    assert_eq!(v.notices.iter().map(String::as_str).collect::<Vec<_>>(), vec!["K1", "K2"]);
}

#[test]
fn an_open_notice_keeps_its_closed_case_until_it_is_answered() {
    // retain_closed_days is 90: a completed case leaves memory 90 days after
    // its last event. With a notice open it stays, so an answer 200 days
    // later is valid, not an orphan.
    let mut h = H::new();
    h.ev("N2", "accepted", "2026-03-02T10:00", json!({"item_code": "A"}));
    h.ev("N2", "completed", "2026-03-03T09:00", json!({"result": "approved"}));
    h.ev("N2", "notice_issued", "2026-03-03T10:00", notice("K1", 2));
    h.until("2026-09-30T00:00");
    assert_eq!(h.ev("N2", "notice_answered", "2026-09-30T10:00", json!({"notice_id": "K1"})), Outcome::Applied);
    assert!(h.dead.is_empty(), "{:?}", h.dead);
    assert!(h.log().contains(&"N2/notice_overdue resolved 2026-09-30T10:00 due 2026-03-05".to_string()));
    // Answered, the case leaves memory 90 days after its last event.
    h.until("2027-01-01T00:00");
    assert!(h.engine.case_view("N2").is_none());
}

#[test]
fn a_late_notice_answer_retracts_notice_overdue() {
    // Issued Tue 3 Mar with 2 days: due Thu 5 Mar, overdue Fri 6 Mar 00:00.
    // An answer dated Thu 5 Mar 16:00 arrives after that: retracted.
    let mut h = H::new();
    h.ev("N3", "accepted", "2026-03-02T10:00", json!({"item_code": "I"}));
    h.ev("N3", "completed", "2026-03-02T11:00", json!({"result": "approved"}));
    h.ev("N3", "notice_issued", "2026-03-03T10:00", notice("K1", 2));
    h.until("2026-03-06T12:00");
    assert_eq!(h.of("N3"), sorted(&["N3/notice_overdue firing 2026-03-06T00:00 due 2026-03-05"]));
    h.ev("N3", "notice_answered", "2026-03-05T16:00", json!({"notice_id": "K1"}));
    assert_eq!(
        h.of("N3"),
        sorted(&[
            "N3/notice_overdue firing 2026-03-06T00:00 due 2026-03-05",
            "N3/notice_overdue retracted 2026-03-06T00:00 due 2026-03-05",
        ])
    );
}

#[test]
fn notices_and_complaint_events_out_of_place_are_held_then_dead_lettered() {
    // Each of these is invalid at its place: held 168 h of watermark, then
    // dead-lettered invalid_transition (orphan for the case never opened).
    let mut h = H::new();
    h.ev("X1", "accepted", "2026-03-02T10:00", json!({"item_code": "A"}));
    h.ev("X1", "notice_issued", "2026-03-02T11:00", notice("K1", 5));
    // A second notice while K1 is open.
    assert_eq!(h.ev("X1", "notice_issued", "2026-03-02T12:00", notice("K2", 5)), Outcome::Held);
    // An answer naming another notice.
    assert_eq!(h.ev("X1", "notice_answered", "2026-03-02T13:00", json!({"notice_id": "K9"})), Outcome::Held);
    // A complaint's answer on an ordinary case.
    assert_eq!(h.ev("X1", "complaint_answered", "2026-03-02T14:00", json!({"finding": "upheld"})), Outcome::Held);
    // An ordinary event on a complaint.
    h.ev("X2", "complaint_filed", "2026-03-02T10:00", complaint());
    assert_eq!(h.ev("X2", "accepted", "2026-03-02T15:00", json!({"item_code": "A"})), Outcome::Held);
    // A notice on a case never opened.
    assert_eq!(h.ev("X3", "notice_issued", "2026-03-02T16:00", notice("K1", 5)), Outcome::Held);
    h.until("2026-03-09T16:30");
    let mut reasons: Vec<_> = h.dead.iter().map(|(o, r)| (*o, r.reason)).collect();
    reasons.sort();
    use DeadReason::*;
    assert_eq!(
        reasons.iter().map(|r| r.1).collect::<Vec<_>>(),
        vec![InvalidTransition, InvalidTransition, InvalidTransition, InvalidTransition, Orphan]
    );
    // Notices on complaints are valid.
    assert_eq!(h.ev("X2", "notice_issued", "2026-03-10T10:00", notice("K1", 5)), Outcome::Applied);
}

fn decoder() -> Decoder {
    Decoder::new(support::refdata(support::CATALOG), support::zone(), "k")
}

fn line(kind: &str, set: Value) -> Vec<u8> {
    let mut v = json!({"event_id": "E-1", "case_id": "T-1", "type": kind,
                       "occurred_at": "2026-03-10T10:00:00+08:00", "source": "bureau"});
    let extra = match kind {
        "complaint_filed" => complaint(),
        "complaint_answered" => json!({"finding": "upheld"}),
        "notice_issued" => notice("K1", 5),
        "notice_answered" => json!({"notice_id": "K1"}),
        _ => json!({}),
    };
    for (k, x) in extra.as_object().unwrap().iter().chain(set.as_object().unwrap()) {
        v[k] = x.clone();
    }
    v.to_string().into_bytes()
}

#[test]
fn the_four_new_types_decode_with_their_fields() {
    let d = decoder();
    let ev = d.decode(&line("complaint_filed", json!({"about_case_id": "C-9", "window": "W3"}))).unwrap();
    assert_eq!(ev.kind, EventType::ComplaintFiled);
    assert_eq!(ev.complaint_category, Some(ComplaintCategory::Delay));
    assert_eq!(ev.about_case_id.as_deref(), Some("C-9"));
    for (f, want) in
        [("upheld", Finding::Upheld), ("partly_upheld", Finding::PartlyUpheld), ("not_upheld", Finding::NotUpheld)]
    {
        assert_eq!(d.decode(&line("complaint_answered", json!({"finding": f}))).unwrap().finding, Some(want));
    }
    for c in ComplaintCategory::ALL {
        let ev = d.decode(&line("complaint_filed", json!({"complaint_category": c.as_str()}))).unwrap();
        assert_eq!(ev.complaint_category, Some(c));
    }
    let ev = d.decode(&line("notice_issued", json!({"deadline_days": 60}))).unwrap();
    assert_eq!((ev.deadline_days, ev.notice_id.as_deref()), (Some(60), Some("K1")));
    assert_eq!(d.decode(&line("notice_answered", json!({}))).unwrap().kind, EventType::NoticeAnswered);
}

#[test]
fn every_bad_follow_up_field_is_rejected_with_its_reason_and_field() {
    let d = decoder();
    let drop = |kind: &str, field: &str| {
        let mut v: Value = serde_json::from_slice(&line(kind, json!({}))).unwrap();
        v.as_object_mut().unwrap().remove(field);
        v.to_string().into_bytes()
    };
    let table: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "complaint without category",
            drop("complaint_filed", "complaint_category"),
            "missing_field",
            "complaint_category",
        ),
        ("complaint without department", drop("complaint_filed", "department"), "missing_field", "department"),
        ("complaint without region", drop("complaint_filed", "region"), "missing_field", "region"),
        (
            "unknown category",
            line("complaint_filed", json!({"complaint_category": "rude"})),
            "bad_value",
            "complaint_category",
        ),
        (
            "category a number",
            line("complaint_filed", json!({"complaint_category": 3})),
            "bad_value",
            "complaint_category",
        ),
        (
            "about_case_id too long",
            line("complaint_filed", json!({"about_case_id": "c".repeat(129)})),
            "bad_value",
            "about_case_id",
        ),
        ("answer without finding", drop("complaint_answered", "finding"), "missing_field", "finding"),
        ("unknown finding", line("complaint_answered", json!({"finding": "true"})), "bad_value", "finding"),
        ("notice without deadline", drop("notice_issued", "deadline_days"), "missing_field", "deadline_days"),
        ("notice without id", drop("notice_issued", "notice_id"), "missing_field", "notice_id"),
        ("deadline 0", line("notice_issued", json!({"deadline_days": 0})), "bad_value", "deadline_days"),
        ("deadline 61", line("notice_issued", json!({"deadline_days": 61})), "bad_value", "deadline_days"),
        ("deadline 2.5", line("notice_issued", json!({"deadline_days": 2.5})), "bad_value", "deadline_days"),
        ("deadline a string", line("notice_issued", json!({"deadline_days": "5"})), "bad_value", "deadline_days"),
        ("blank notice id", line("notice_issued", json!({"notice_id": " "})), "bad_value", "notice_id"),
        (
            "notice id too long",
            line("notice_answered", json!({"notice_id": "n".repeat(129)})),
            "bad_value",
            "notice_id",
        ),
        ("answer without notice id", drop("notice_answered", "notice_id"), "missing_field", "notice_id"),
    ];
    let mut failures = Vec::new();
    for (what, l, reason, field) in &table {
        match d.decode(l) {
            Ok(_) => failures.push(format!("{what}: accepted")),
            Err(r) if r.reason.as_str() != *reason || r.field.as_deref() != Some(*field) => {
                failures.push(format!("{what}: got {} / {:?} ({})", r.reason.as_str(), r.field, r.detail))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `jiancha ARGS` in `dir` with catalogue `cat` and the shipped calendar
/// and regions; insists on success and returns its standard output.
fn jiancha(dir: &std::path::Path, cat: &std::path::Path, args: &[&str]) -> Vec<u8> {
    let root = support::root();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_jiancha"))
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env("JIANCHA__REFERENCE__CATALOG", cat)
        .env("JIANCHA__REFERENCE__CALENDAR", root.join("config/calendar"))
        .env("JIANCHA__REFERENCE__REGIONS", root.join("config/regions.csv"))
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

/// One event line as a departmental system or the bureau sends it.
fn event(n: &mut u32, case: &str, kind: &str, at: &str, extra: Value) -> String {
    *n += 1;
    let mut v = json!({"event_id": format!("F{n}"), "case_id": case, "type": kind,
                       "occurred_at": support::ts(at), "source": "center"});
    if kind == "accepted" {
        for (k, x) in [("region", "220421"), ("department", "tax"), ("applicant", "p1")] {
            v[k] = json!(x);
        }
    }
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v.to_string()
}

#[test]
fn complaints_and_notices_are_sql_tables_and_complaints_are_not_cases() {
    let dir = tempfile::TempDir::new().unwrap();
    let n = &mut 0;
    let market = json!({"region": "220421", "department": "market", "complaint_category": "attitude"});
    let lines = [
        // In event-time order, as a replay of a month's files has them.
        // N1 as in a_notice_outlives_its_case…: K1 due 5 Mar, answered 9
        // Mar (overdue); K2 due 11 Mar, still open.
        event(n, "N1", "accepted", "2026-03-02T10:00", json!({"item_code": "A"})),
        event(n, "N1", "completed", "2026-03-03T09:00", json!({"result": "approved"})),
        event(n, "N1", "notice_issued", "2026-03-03T10:00", notice("K1", 2)),
        event(n, "N1", "notice_answered", "2026-03-09T09:00", json!({"notice_id": "K1"})),
        event(n, "N1", "notice_issued", "2026-03-10T10:00", notice("K2", 1)),
        // TS1: due Tue 13 Oct (see above), answered 15 Oct, upheld: late.
        event(n, "TS1", "complaint_filed", "2026-09-30T16:00", complaint()),
        event(n, "TS1", "complaint_answered", "2026-10-15T09:00", json!({"finding": "upheld"})),
        // TS2: same due date, answered on it.
        event(n, "TS2", "complaint_filed", "2026-09-30T16:00", market),
        event(n, "TS2", "complaint_answered", "2026-10-13T17:00", json!({"finding": "not_upheld"})),
        // TS3: filed Fri 9 Oct; Sat 10 (make-up), Mon 12, Tue 13, Wed 14,
        // Thu 15 Oct → due 15 Oct, overdue at 16 Oct 00:00, still open.
        event(n, "TS3", "complaint_filed", "2026-10-09T10:00", json!({"about_case_id": "N1"})).replace(
            "\"source\":\"center\"",
            "\"source\":\"bureau\",\"region\":\"220421\",\"department\":\"tax\",\"complaint_category\":\"delay\"",
        ),
    ];
    let mut input = lines.join("\n");
    input.push('\n');
    std::fs::write(dir.path().join("in.jsonl"), input).unwrap();
    let cat = dir.path().join("catalog.csv");
    std::fs::write(&cat, support::CATALOG).unwrap();
    let run = |args: &[&str]| jiancha(dir.path(), &cat, args);
    run(&["replay", "--out", "h", "--until", "2026-10-20T00:00:00+08:00", "in.jsonl"]);
    let dead = std::fs::read_to_string(dir.path().join("h/dead-letter.jsonl")).unwrap();
    assert!(dead.is_empty(), "{dead}");
    let sql =
        |q: &str| -> Value { serde_json::from_slice(&run(&["sql", "--data", "h", "--format", "json", q])).unwrap() };
    assert_eq!(
        sql("SELECT complaint_id, department, complaint_category, about_case_id, filed_date, due_date, \
             answered_date, finding, status, on_time, overdue FROM complaints ORDER BY complaint_id"),
        json!([
            {"complaint_id": "TS1", "department": "tax", "complaint_category": "delay", "about_case_id": null,
             "filed_date": "2026-09-30", "due_date": "2026-10-13", "answered_date": "2026-10-15",
             "finding": "upheld", "status": "answered", "on_time": false, "overdue": true},
            {"complaint_id": "TS2", "department": "market", "complaint_category": "attitude", "about_case_id": null,
             "filed_date": "2026-09-30", "due_date": "2026-10-13", "answered_date": "2026-10-13",
             "finding": "not_upheld", "status": "answered", "on_time": true, "overdue": false},
            {"complaint_id": "TS3", "department": "tax", "complaint_category": "delay", "about_case_id": "N1",
             "filed_date": "2026-10-09", "due_date": "2026-10-15", "answered_date": null,
             "finding": null, "status": "open", "on_time": null, "overdue": true},
        ])
    );
    assert_eq!(
        sql("SELECT notice_id, case_id, department, issued_date, deadline_days, due_date, answered_date, status, \
             overdue FROM notices ORDER BY notice_id"),
        json!([
            {"notice_id": "K1", "case_id": "N1", "department": "tax", "issued_date": "2026-03-03",
             "deadline_days": 2, "due_date": "2026-03-05", "answered_date": "2026-03-09", "status": "answered",
             "overdue": true},
            {"notice_id": "K2", "case_id": "N1", "department": "tax", "issued_date": "2026-03-10",
             "deadline_days": 1, "due_date": "2026-03-11", "answered_date": null, "status": "open",
             "overdue": true},
        ])
    );
    assert_eq!(sql("SELECT case_id, status FROM cases"), json!([{"case_id": "N1", "status": "completed"}]));
    assert_eq!(
        sql("SELECT count(*) AS n FROM events WHERE notice_id IS NOT NULL OR finding IS NOT NULL"),
        json!([{"n": 5}])
    );
    assert_eq!(
        sql("SELECT alert_id, retracted FROM alerts WHERE rule IN ('complaint_overdue', 'notice_overdue') \
             ORDER BY alert_id"),
        // TS2 is read after TS1's answer of 15 Oct moved the watermark past
        // its due date: its card fires, and its answer of 13 Oct, read
        // next, retracts it.
        json!([
            {"alert_id": "N1/notice_overdue", "retracted": false},
            {"alert_id": "N1/notice_overdue#2", "retracted": false},
            {"alert_id": "TS1/complaint_overdue", "retracted": false},
            {"alert_id": "TS2/complaint_overdue", "retracted": true},
            {"alert_id": "TS3/complaint_overdue", "retracted": false},
        ])
    );
}

#[test]
fn check_config_refuses_complaint_days_0_and_a_supervisor_without_region() {
    let dir = tempfile::TempDir::new().unwrap();
    let root = support::root();
    let check = |toml: &str| {
        std::fs::write(dir.path().join("j.toml"), toml).unwrap();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_jiancha"))
            .current_dir(dir.path())
            .env("JIANCHA__REFERENCE__CATALOG", root.join("config/catalog.csv"))
            .env("JIANCHA__REFERENCE__CALENDAR", root.join("config/calendar"))
            .env("JIANCHA__REFERENCE__REGIONS", root.join("config/regions.csv"))
            .args(["check-config", "--config", "j.toml"])
            .output()
            .unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    let (ok, err) = check("[rules]\ncomplaint_days = 0\n");
    assert!(!ok && err.contains("rules.complaint_days must be at least 1"), "{err}");
    let user =
        format!("[[users]]\nname = \"sup\"\npassword = \"{}\"\nrole = \"supervisor\"\n", super::pgwire::hash("pw"));
    let (ok, err) = check(&user);
    assert!(!ok && err.contains("\"sup\" needs a region"), "{err}");
    let (ok, err) = check(&format!("{user}region = \"220421\"\n"));
    assert!(ok, "{err}");
}

#[test]
fn a_snapshot_written_before_notices_existed_still_restores() {
    // A checkpoint of the previous version has no `notice` on its events:
    // restored, the case goes on as if nothing had changed.
    let mut h = H::new();
    h.ev("S1", "accepted", "2026-03-02T10:00", json!({"item_code": "A"}));
    let snap = String::from_utf8(h.engine.snapshot_json()).unwrap();
    let old = snap.replace(&format!(",\"notice\":{}", u32::MAX), "");
    assert_ne!(old, snap, "the snapshot names the notice field");
    let e = jiancha::engine::Engine::restore(
        support::refdata(support::CATALOG),
        support::zone(),
        jiancha::config::RulesConfig::default(),
        old.as_bytes(),
    )
    .unwrap();
    assert_eq!(e.snapshot_json(), snap.into_bytes());
}

#[test]
fn complaints_and_notices_in_the_briefing_and_the_score() {
    // October 2026, region 220421; catalogue support::CATALOG; worked by
    // hand on the 2026 calendar (1–7 Oct off, Sat 10 Oct a working day).
    // tax:    TS1 filed 30 Sep (September), due 13 Oct, answered 15 Oct,
    //         upheld, late. TS3 filed Fri 9 Oct, open. TS4 filed Mon 12
    //         Oct, due 19 Oct (13, 14, 15, 16, 19), answered 14 Oct, partly
    //         upheld, on time. → complaints 2 (TS3, TS4), answered 2 (TS1,
    //         TS4), upheld 2, on time 1 → rate 0.5.
    //         N1 (item A) accepted 12 Oct; notice K1 issued 13 Oct with 1
    //         day: due 14 Oct, card at 15 Oct 00:00, answered 20 Oct →
    //         notices 1, notices_overdue 1.
    // market: TS2 filed 30 Sep, answered 13 Oct (its due date), not upheld
    //         → complaints 0, answered 1, upheld 0, rate 1.0. N2 (item B)
    //         accepted 12 Oct; notice K2 issued 14 Oct with 5 days: due 21
    //         Oct (15, 16, 19, 20, 21), answered 16 Oct → notices 1, overdue 0.
    // N1 (item A, N = 3: charged 13, 14, 15 Oct → due 15 Oct) is completed
    // 14 Oct: on time and early; its notice's card (15 Oct) is a red card.
    // Score, tax: 40 × 1 on time + 20 × 1 early + 20 × 0 good ratings + 10
    // × 0 evaluated + 10 × max(0, 1 − 1 red / 1 completed) = 60, less 2 × 2
    // upheld + 1 overdue notice = 55. market: nothing completed, rates
    // NULL (0), the 10 points of no completions → 10.
    // (N1 and TS4 name window W9.)
    // Annual assessment 2026, tax: one month with completions, its score
    // before deductions 60; less 2 × 2 + 1 → 55, 不合格 (< 60).
    let dir = tempfile::TempDir::new().unwrap();
    let n = &mut 0;
    let market = json!({"region": "220421", "department": "market", "complaint_category": "attitude"});
    let mut lines = vec![
        event(n, "TS1", "complaint_filed", "2026-09-30T16:00", complaint()),
        event(n, "TS2", "complaint_filed", "2026-09-30T16:00", market),
        event(n, "TS3", "complaint_filed", "2026-10-09T10:00", complaint()),
        event(n, "N1", "accepted", "2026-10-12T10:00", json!({"item_code": "A", "window": "W9"})),
        event(n, "N2", "accepted", "2026-10-12T10:00", json!({"item_code": "B", "department": "market"})),
        event(n, "TS4", "complaint_filed", "2026-10-12T11:00", {
            let mut c = complaint();
            c["window"] = json!("W9");
            c
        }),
        event(n, "N1", "notice_issued", "2026-10-13T10:00", notice("K1", 1)),
        event(n, "TS2", "complaint_answered", "2026-10-13T17:00", json!({"finding": "not_upheld"})),
        event(n, "N2", "notice_issued", "2026-10-14T10:00", notice("K2", 5)),
        event(n, "TS4", "complaint_answered", "2026-10-14T15:00", json!({"finding": "partly_upheld"})),
        event(n, "N1", "completed", "2026-10-14T16:00", json!({"result": "approved"})),
        event(n, "TS1", "complaint_answered", "2026-10-15T09:00", json!({"finding": "upheld"})),
        event(n, "N2", "notice_answered", "2026-10-16T09:00", json!({"notice_id": "K2"})),
        event(n, "N1", "notice_answered", "2026-10-20T09:00", json!({"notice_id": "K1"})),
    ];
    lines.push(String::new());
    std::fs::write(dir.path().join("in.jsonl"), lines.join("\n")).unwrap();
    let cat = dir.path().join("catalog.csv");
    std::fs::write(&cat, support::CATALOG).unwrap();
    let run = |args: &[&str]| jiancha(dir.path(), &cat, args);
    run(&["replay", "--out", "h", "--until", "2026-11-01T00:00:00+08:00", "in.jsonl"]);
    let dead = std::fs::read_to_string(dir.path().join("h/dead-letter.jsonl")).unwrap();
    assert!(dead.is_empty(), "{dead}");
    let pick = |r: &Value| {
        json!({"department": r["department"], "complaints": r["complaints"], "complaints_upheld": r["complaints_upheld"],
               "complaint_on_time_rate": r["complaint_on_time_rate"], "notices": r["notices"],
               "notices_overdue": r["notices_overdue"], "score": r["score"], "rank": r["rank"]})
    };
    let want = json!([
        {"department": "tax", "complaints": 2, "complaints_upheld": 2, "complaint_on_time_rate": 0.5,
         "notices": 1, "notices_overdue": 1, "score": 55.0, "rank": 1},
        {"department": "market", "complaints": 0, "complaints_upheld": 0, "complaint_on_time_rate": 1.0,
         "notices": 1, "notices_overdue": 0, "score": 10.0, "rank": 2},
    ]);
    for report in ["monthly-briefing", "quarterly-report"] {
        let out =
            run(&["report", report, "--data", "h", "--month", "2026-10", "--region", "220421", "--format", "json"]);
        let rows: Vec<Value> = serde_json::from_slice(&out).unwrap();
        assert_eq!(Value::from(rows.iter().map(pick).collect::<Vec<_>>()), want, "{report}");
    }
    let out = run(&[
        "report",
        "annual-assessment",
        "--data",
        "h",
        "--year",
        "2026",
        "--region",
        "220421",
        "--format",
        "json",
    ]);
    let rows: Vec<Value> = serde_json::from_slice(&out).unwrap();
    let tax = rows.iter().find(|r| r["unit"] == "department" && r["department"] == "tax").unwrap();
    assert_eq!(
        (
            &tax["mean_monthly_score"],
            &tax["complaints_upheld"],
            &tax["notices_overdue"],
            &tax["annual_score"],
            &tax["grade"]
        ),
        (&json!(60.0), &json!(2), &json!(1), &json!(55.0), &json!("不合格")),
        "{tax}"
    );
}
