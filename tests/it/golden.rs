//! Golden scenarios: `jiancha replay` on hand-made input, against alert records
//! and dead letters worked out BY HAND from /work/shared/spec (never by running
//! the engine). Calendar facts used below (2026, official notice of 2025-11-04):
//! off 1–3 Jan, 15–23 Feb (春节), 4–6 Apr, 1–5 May, 19–21 Jun, 25–27 Sep,
//! 1–7 Oct; make-up working days Sun 4 Jan, Sat 14 Feb, Sat 28 Feb, Sat 9 May,
//! Sun 20 Sep, Sat 10 Oct.
//!
//! Readings of the spec used throughout (see also the notes on each case):
//! - "charged day k" counts working days strictly after the start date that no
//!   stop covers; a stop covers both its start and end dates.
//! - Timers fire at T with the events whose occurred_at < T; an event at exactly
//!   T is applied after the timer (rules.md "Time").
//! - `due_date` of a firing record is the due date known at its `at`; of a
//!   resolved record, the due date known at the resolution instant; a retracted
//!   record repeats its firing record (`at`, `due_date`) with `retracted: true`.
//! - Records carry the case's region/department/window/item_code (from its
//!   `accepted`, else its `submitted`); `window` null when absent.
//! - A dead letter's `line` is 1-based; `field` is the offending field, null for
//!   `not_json`, "case_id" for `orphan`, "type" for `invalid_transition` (the
//!   spec does not name these two; our choice).

use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

// ---------------------------------------------------------------- helpers ---

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden")
}

/// Watermark at the end of the golden input. Every timer of the scenario is
/// before it, and every held invalid event's hold (168 h) has ended by then.
const GOLDEN_UNTIL: &str = "2026-10-31T00:00:00+08:00";

fn golden_args() -> Vec<String> {
    let d = golden_dir();
    let p = |s: &str| d.join(s).display().to_string();
    vec![
        "--catalog".into(),
        p("catalog.csv"),
        "--calendar".into(),
        p("calendar"),
        "--regions".into(),
        p("regions.csv"),
        "--until".into(),
        GOLDEN_UNTIL.into(),
        p("events.jsonl"),
    ]
}

/// Runs `jiancha replay --out OUT ARGS…` and insists on exit status 0. The
/// scenario's item outside the catalogue (G17) is dead-lettered as it was
/// written for: `rules.unlisted_item = "dead_letter"`, said explicitly since
/// follow-up.md made `"card"` the default.
fn run_into(out: &Path, args: &[String]) {
    run_with(out, args, "dead_letter")
}

/// [`run_into`] with `rules.unlisted_item = unlisted`.
fn run_with(out: &Path, args: &[String], unlisted: &str) {
    let output = Command::new(env!("CARGO_BIN_EXE_jiancha"))
        .arg("replay")
        .arg("--out")
        .arg(out)
        .args(args)
        // Whatever today is: the 2027 event (G19) meets a year with no
        // calendar, not a provisional one.
        .env("JIANCHA__TIME__PROVISIONAL_CALENDAR", "false")
        .env("JIANCHA__RULES__UNLISTED_ITEM", unlisted)
        .output()
        .expect("cannot start jiancha");
    assert!(
        output.status.success(),
        "jiancha replay {args:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: not JSON ({e}): {l}", path.display())))
        .collect()
}

/// `jiancha replay --out <fresh temp dir> ARGS…` → (alert records, dead
/// letters), each in file order.
fn replay(args: &[String]) -> (Vec<Value>, Vec<Value>) {
    let dir = tempfile::TempDir::new().expect("temp dir");
    run_into(dir.path(), args);
    (read_jsonl(&dir.path().join("alerts.jsonl")), read_jsonl(&dir.path().join("dead-letter.jsonl")))
}

/// A case's attributes as every one of its alert records carries them.
struct Case {
    id: &'static str,
    region: &'static str,
    department: &'static str,
    window: Option<&'static str>,
    item: &'static str,
}

const fn case(
    id: &'static str,
    region: &'static str,
    department: &'static str,
    window: Option<&'static str>,
    item: &'static str,
) -> Case {
    Case { id, region, department, window, item }
}

fn level(rule: &str) -> &'static str {
    match rule {
        "overdue" | "intake_overdue" | "dual_intake" | "unregistered_case" | "overcharge" | "complaint_overdue"
        | "notice_overdue" | "unlisted_item" => "red",
        "step_overdue" => "yellow",
        "due_soon" | "repeated_supplement" | "backdated_entry" | "denial_without_reason" | "bad_rating_unrectified" => {
            "yellow"
        }
        other => panic!("unknown rule {other}"),
    }
}

const F: &str = "firing";
const R: &str = "resolved";
const X: &str = "retracted";

/// One expected record. `rule` may carry a re-fire suffix (`overdue#2`); `at`
/// is a local time to which `+08:00` is appended.
fn rec(c: &Case, rule: &str, state: &str, at: &str, due: Option<&str>) -> Value {
    let name = rule.split('#').next().unwrap();
    json!({
        "alert_id": format!("{}/{}", c.id, rule),
        "rule": name,
        "level": level(name),
        "state": state,
        "at": format!("{at}+08:00"),
        "case_id": c.id,
        "region": c.region,
        "department": c.department,
        "window": c.window,
        "item_code": c.item,
        "due_date": due,
        "retracted": state == X,
        "detail": {},
    })
}

fn with_detail(mut v: Value, detail: Value) -> Value {
    v["detail"] = detail;
    v
}

/// Canonical text of a JSON value (object keys sorted), for set comparison.
fn canon(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys.iter().map(|k| format!("{k:?}:{}", canon(&m[*k]))).collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(canon).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// The records equal the expected ones as a multiset (line order is not part
/// of the contract).
fn assert_same_records(actual: &[Value], expected: &[Value], what: &str) {
    let mut a: Vec<String> = actual.iter().map(canon).collect();
    let mut e: Vec<String> = expected.iter().map(canon).collect();
    a.sort();
    e.sort();
    if a != e {
        let missing: Vec<&String> = e.iter().filter(|x| !a.contains(x)).collect();
        let unexpected: Vec<&String> = a.iter().filter(|x| !e.contains(x)).collect();
        panic!(
            "{what}: got {} records, expected {}\n--- missing:\n{}\n--- unexpected:\n{}",
            a.len(),
            e.len(),
            missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n"),
            unexpected.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n"),
        );
    }
}

/// rules.md: "A firing record precedes its resolved or retracted record".
fn assert_firing_first(alerts: &[Value]) {
    for (i, r) in alerts.iter().enumerate() {
        if r["state"] != F {
            let id = &r["alert_id"];
            assert!(
                alerts[..i].iter().any(|p| p["alert_id"] == *id && p["state"] == F),
                "alerts.jsonl line {}: {} record of {id} before its firing record",
                i + 1,
                r["state"]
            );
        }
    }
}

// ---------------------------------------------------------- golden scenario ---
//
// tests/data/golden/events.jsonl, by line (wm = watermark after the line; held,
// duplicate and dead-lettered lines do not move it):
//   1 G02 submitted 02-10 09:00        33 G06 step_completed 04-16 14:00 center
//   2 G01 accepted 02-12 10:00         34 G06 completed 04-17 10:00 (rec +24h)
//   3 G02 supplement_requested 02-12   35 G07 accepted 05-06 10:00 center
//   4 G01 step_completed 02-24 15:00   36 G07 completed 05-09 11:00
//   5 G02 supplement_received 02-25    37 G12 accepted 05-11 (item O1)
//   6 G01 completed 02-27 00:00:00     38 G12 completed 05-11 fee 8.504
//   7 G02 accepted 03-04 10:00         39 G07 evaluated 05-12 rating 5
//   8 G02 suspended(supplement) 03-06  40 G07 rectified -> invalid_transition
//   9 G09 accepted 03-09 10:00         41 G17 item Z999 -> unknown_item
//  10 G02 resumed 03-10 14:00          42 G08 accepted 06-05 10:00 market-sys
//  11 not JSON -> not_json             43 G08 withdrawn 06-08 09:00
//  12 G02 completed 03-13 16:00        44 G10 accepted 06-10 10:00 center
//  13 = line 12 (duplicate, ignored)   45 G10 completed denied, with reason
//  14 G09 resumed 03-16 (held)         46 G11 submitted 06-15 09:00
//  15 G99 completed (orphan)           47 G11 refused, reason "  "
//  16 G09 suspended 03-12 09:00 LATE   48 G18 region "22042" -> bad_value
//  17 no offset -> bad_timestamp       49 GJ accepted 07-01 09:00 center
//  18 G09 completed 03-19 11:00        50 GJ-1 (parent GJ) accepted 09:30 fire-sys
//  19 G04 accepted 03-20 16:00         51 GJ step_completed 07-01 10:00 center
//  20 id of line 19 again (dup)        52 GJ-1 completed 07-06 11:00
//  21 G04 fee "12" -> bad_value        53 GJ completed 07-10 15:00
//  22 line 21 resent, fee 12           54-57 G13, G14 accepted + completed
//  23 G05 accepted 03-24 10:00 tax-sys 58 G13 evaluated 09-14 rating 1
//  24 G05 completed 10:20 fee 10       59 G14 rating 6 -> bad_value
//  25 type "archived" -> unknown_type  60 line 59 resent, rating 2
//  26 G03 accepted 04-01 10:00         61 G14 rectified 09-30 10:00
//  27 G05 evaluated 03-24 10:30 LATE   62 G13 rectified 10-12 10:00
//  28-30 G03 escalated/returned/done   63 G19 dated 2027 -> no_calendar
//  31 G16 without applicant            32 G06 accepted 04-14 09:00 (rec +50h)
//  64 G13 notice DB-G13-1, 3 days      68 G13 answer naming DB-G13-9 (held)
//  65 GC1 complaint filed 10-14        69 G13 answer to DB-G13-1 10-19
//  66 G13 notice, deadline 0 -> bad    70 GC2 answered 10-20, not upheld
//  67 GC2 complaint filed 10-15        71 GC1 answered 10-23, upheld

const G01: Case = case("G01", "220421", "market", Some("W01"), "P5");
const G02: Case = case("G02", "220421100", "market", Some("W02"), "P5");
const G03: Case = case("G03", "220421", "transport", Some("W05"), "U5");
const G04: Case = case("G04", "220421", "tax", Some("W03"), "I0");
const G05: Case = case("G05", "220421100201", "tax", None, "I0");
const G06: Case = case("G06", "220421100", "market", Some("W04"), "A3");
const G07: Case = case("G07", "220421", "market", Some("W01"), "A3");
const G08: Case = case("G08", "220421", "market", None, "A3");
const G09: Case = case("G09", "220421", "market", Some("W06"), "A3");
const G11: Case = case("G11", "220421", "market", Some("W02"), "P5");
const G13: Case = case("G13", "220421", "market", Some("W03"), "A3");
const GJ1: Case = case("GJ-1", "220421", "fire", None, "S4");

#[rustfmt::skip]
fn golden_expected_alerts() -> Vec<Value> {
    vec![
        // G01 — P5 (N = 5), accepted at center Thu 02-12 10:00; Spring Festival.
        // Charged: 02-13 Fri (1), 02-14 Sat make-up (2), 02-15..23 off,
        // 02-24 (3), 02-25 (4), 02-26 (5) -> due 02-26.
        // due_soon: charged day max(1, 5-2+1) = 4 -> 02-25 00:00.
        // overdue: 02-27 00:00. Completed at exactly 02-27T00:00:00: the timer
        // at T fires before an event at T, so overdue fires and the completion
        // resolves both alerts at that same instant (not on time).
        rec(&G01, "due_soon", F, "2026-02-25T00:00:00", Some("2026-02-26")),
        rec(&G01, "due_soon", R, "2026-02-27T00:00:00", Some("2026-02-26")),
        rec(&G01, "overdue", F, "2026-02-27T00:00:00", Some("2026-02-26")),
        rec(&G01, "overdue", R, "2026-02-27T00:00:00", Some("2026-02-26")),
        // G02 — P5, submitted at center Tue 02-10 09:00.
        // Intake clock: supplement_requested 02-12 15:00 .. received 02-25
        // 10:00 is a stop, 02-12..02-25 uncharged (incl. make-up 02-14).
        // Charged: 02-11 (1), 02-26 (2), 02-27 (3), 02-28 Sat make-up (4),
        // 03-02 Mon (5) -> intake due 03-02; intake_overdue at 03-03 00:00
        // (before the stop was known the intake due date would have been
        // 02-24, but the stop began 02-12 15:00 < 02-25 00:00: no timer).
        // Resolved by the acceptance 03-04 10:00; due_date stays the intake
        // due date.
        rec(&G02, "intake_overdue", F, "2026-03-03T00:00:00", Some("2026-03-02")),
        rec(&G02, "intake_overdue", R, "2026-03-04T10:00:00", Some("2026-03-02")),
        // Second request for supplements (supplement_requested 02-12, then
        // suspended reason `supplement` 03-06 10:00): repeated_supplement at
        // that request's occurred_at; resolved when the case closes 03-13 16:00.
        rec(&G02, "repeated_supplement", F, "2026-03-06T10:00:00", None),
        rec(&G02, "repeated_supplement", R, "2026-03-13T16:00:00", None),
        // Processing clock from Wed 03-04, N = 5; stop 03-06..03-10 (resumed
        // 14:00) makes 03-06, 03-09, 03-10 uncharged. Charged: 03-05 (1),
        // 03-11 (2), 03-12 (3), 03-13 (4), 03-16 (5) -> due 03-16; due_soon
        // at charged day 4 = 03-13 00:00. (Without the stop it would have been
        // 03-10 00:00, but at that instant the stop is open: no timers.)
        // Completed 03-13 16:00 (early): resolved. The line-13 resend of the
        // completion is a duplicate: ignored, not dead-lettered.
        rec(&G02, "due_soon", F, "2026-03-13T00:00:00", Some("2026-03-16")),
        rec(&G02, "due_soon", R, "2026-03-13T16:00:00", Some("2026-03-16")),
        // G09 — A3 (N = 3), accepted at center Mon 03-09 10:00. Retraction and
        // re-fire. In file order: line 12 moves wm to 03-13 16:00 while only
        // the acceptance is known: charged 03-10 (1), 03-11 (2), 03-12 (3),
        // due 03-12 -> due_soon 03-11 00:00 and overdue 03-13 00:00 both fire.
        // Line 14 (resumed 03-16) has no open suspended: held (hold ends when
        // wm >= 03-23 10:00). Line 16, the suspended of 03-12 09:00, arrives
        // late (wm 03-13 16:00): applied in place, the held resumed becomes
        // valid and is applied. Stop 03-12..03-16 (Thu, Fri, Sat, Sun, Mon).
        // Charged: 03-10 (1), 03-11 (2), 03-17 (3) -> due 03-17.
        // * due_soon at 03-11 00:00 stays right (stop begins 03-12).
        // * overdue at 03-13 00:00 was wrong (at that instant the stop was
        //   open, due date undefined): retracted, with its firing's fields.
        // * the condition holds again at 03-18 00:00 (still open): fires as
        //   `G09/overdue#2` when line 18 moves wm to 03-19 11:00, before the
        //   completion of 03-19 11:00, which resolves due_soon and overdue#2.
        rec(&G09, "due_soon", F, "2026-03-11T00:00:00", Some("2026-03-12")),
        rec(&G09, "due_soon", R, "2026-03-19T11:00:00", Some("2026-03-17")),
        rec(&G09, "overdue", F, "2026-03-13T00:00:00", Some("2026-03-12")),
        rec(&G09, "overdue", X, "2026-03-13T00:00:00", Some("2026-03-12")),
        rec(&G09, "overdue#2", F, "2026-03-18T00:00:00", Some("2026-03-17")),
        rec(&G09, "overdue#2", R, "2026-03-19T11:00:00", Some("2026-03-17")),
        // G04 — I0 immediate (N = 0, fee 10), accepted at center Fri 03-20
        // 16:00: due date = 03-20 itself, no due_soon (N = 0); overdue at
        // 03-21 00:00. Line 20 reuses line 19's event_id (a `completed` of
        // 03-20 16:30): duplicate "whatever its content", ignored. Line 21
        // (fee as a string) is dead-lettered, so its id is not registered and
        // line 22 (same id, fee 12) is applied: completed Mon 03-23 09:30,
        // resolving overdue; 12 > 10 + 0.005 -> overcharge, fired and resolved
        // at the same instant (case closes with it).
        rec(&G04, "overdue", F, "2026-03-21T00:00:00", Some("2026-03-20")),
        rec(&G04, "overdue", R, "2026-03-23T09:30:00", Some("2026-03-20")),
        rec(&G04, "overcharge", F, "2026-03-23T09:30:00", None),
        rec(&G04, "overcharge", R, "2026-03-23T09:30:00", None),
        // G05 — I0, accepted and completed 03-24 10:00/10:20 by tax-sys only,
        // fee 10 (not above the standard fee: no overcharge), on time (N = 0,
        // C = A). Line 26 (G03 accepted, wm -> 04-01 10:00) passes the end of
        // grace 03-25 10:00 with no center event known: unregistered_case fires
        // and, the case being closed, is resolved at the same instant. Line 27
        // then brings a center `evaluated` of 03-24 10:30 (within the grace):
        // the alert is retracted although already resolved.
        rec(&G05, "unregistered_case", F, "2026-03-25T10:00:00", None),
        rec(&G05, "unregistered_case", R, "2026-03-25T10:00:00", None),
        rec(&G05, "unregistered_case", X, "2026-03-25T10:00:00", None),
        // G03 — U5 report_up (N = 5), accepted at center Wed 04-01 10:00;
        // Qingming 04-04..06 off; escalated 04-07 11:00 .. returned 04-09
        // 16:00 stops 04-07, 04-08, 04-09. Charged: 04-02 (1), 04-03 (2),
        // 04-10 (3), 04-13 Mon (4), 04-14 (5) -> due 04-14; due_soon 04-13
        // 00:00 (the pre-stop due_soon 04-08 00:00 never fires: the stop is
        // open then). Completed 04-13 15:00, early: resolved.
        rec(&G03, "due_soon", F, "2026-04-13T00:00:00", Some("2026-04-14")),
        rec(&G03, "due_soon", R, "2026-04-13T15:00:00", Some("2026-04-14")),
        // G06 — A3, accepted by market-sys Tue 04-14 09:00, recorded_at 04-16
        // 11:00 (50 h > 24 h): backdated_entry at the occurred_at, resolved
        // when the case closes 04-17 10:00. The completion's recorded_at is
        // exactly 24 h later: not "more than", no second alert.
        // No center event in [04-14 09:00, 04-15 09:00): unregistered_case at
        // 04-15 09:00; the center step of 04-16 14:00 (after the grace)
        // resolves it. Charged: 04-15 (1), 04-16 (2), 04-17 (3) -> due 04-17;
        // due_soon 04-16 00:00; completed 04-17 10:00 on time: resolved.
        rec(&G06, "backdated_entry", F, "2026-04-14T09:00:00", None),
        rec(&G06, "backdated_entry", R, "2026-04-17T10:00:00", None),
        rec(&G06, "unregistered_case", F, "2026-04-15T09:00:00", None),
        rec(&G06, "unregistered_case", R, "2026-04-16T14:00:00", None),
        rec(&G06, "due_soon", F, "2026-04-16T00:00:00", Some("2026-04-17")),
        rec(&G06, "due_soon", R, "2026-04-17T10:00:00", Some("2026-04-17")),
        // G07 — A3, accepted at center Wed 05-06 10:00 (after 劳动节 05-01..05).
        // Charged: 05-07 (1), 05-08 (2), 05-09 Sat make-up (3) -> due 05-09;
        // due_soon 05-08 00:00; completed on the make-up Saturday 05-09 11:00
        // (on time, not early): resolved. Its rating 5 (line 39) is not bad,
        // so the `rectified` of line 40 is invalid: held 168 h, then
        // dead-lettered `invalid_transition`.
        rec(&G07, "due_soon", F, "2026-05-08T00:00:00", Some("2026-05-09")),
        rec(&G07, "due_soon", R, "2026-05-09T11:00:00", Some("2026-05-09")),
        // G08 — A3, applicant p-dual-张三, accepted by market-sys Fri 06-05
        // 10:00. G07 (same applicant and item, from center, completed, not
        // withdrawn) was accepted 05-06: 06-05 − 05-06 = 30 days ≤ 30 ->
        // dual_intake naming G07. No center event in its grace -> unregistered
        // at 06-06 10:00. Withdrawn Mon 06-08 09:00 resolves both (due_soon
        // would be 06-09 00:00: closed before, never fires).
        with_detail(rec(&G08, "dual_intake", F, "2026-06-05T10:00:00", None), json!({"earlier_case_id": "G07"})),
        with_detail(rec(&G08, "dual_intake", R, "2026-06-08T09:00:00", None), json!({"earlier_case_id": "G07"})),
        rec(&G08, "unregistered_case", F, "2026-06-06T10:00:00", None),
        rec(&G08, "unregistered_case", R, "2026-06-08T09:00:00", None),
        // G10 — same applicant and item, accepted at center 06-10: G08 is from
        // another source but was withdrawn before (06-08), G07 is from the same
        // source (and 35 days earlier): no dual_intake. Completed 06-11 denied
        // WITH a reason: no denial alert; charged 06-11 (1), so no due_soon
        // (06-12 00:00) either. No alert at all.
        // G11 — P5, submitted at center Mon 06-15, refused 06-16 10:00 with a
        // blank reason "  ": denial_without_reason fired and resolved at that
        // instant (the refusal closes the case). Intake due would be 06-23
        // (06-16, 17, 18, [19-21 端午], 22, 23): no intake_overdue.
        rec(&G11, "denial_without_reason", F, "2026-06-16T10:00:00", None),
        rec(&G11, "denial_without_reason", R, "2026-06-16T10:00:00", None),
        // GJ / GJ-1 — joint case. GJ (J10, N = 10) accepted at center Wed
        // 07-01 09:00: charged 07-02 … 07-15 (10th), due_soon 07-14 00:00;
        // completed 07-10: no alert. Sub-case GJ-1 (parent_case_id GJ, S4,
        // N = 4, department fire) accepted by fire-sys 07-01 09:30: never a
        // center event of its own, but the parent's center step at 07-01 10:00
        // lies within [09:30, next day 09:30): registered, no unregistered.
        // Its own clock: 07-02 (1), 07-03 (2), 07-06 Mon (3), 07-07 (4) ->
        // due 07-07; due_soon at charged day 3 = 07-06 00:00; completed 07-06
        // 11:00: resolved.
        rec(&GJ1, "due_soon", F, "2026-07-06T00:00:00", Some("2026-07-07")),
        rec(&GJ1, "due_soon", R, "2026-07-06T11:00:00", Some("2026-07-07")),
        // G13 — A3, completed 09-09; first evaluation rating 1 on Mon 09-14.
        // 15 working days after 09-14 (no stops): 09-15 (1), 16 (2), 17 (3),
        // 18 (4), Sun 09-20 make-up (5), 21 (6), 22 (7), 23 (8), 24 (9),
        // [25–27 中秋], 28 (10), 29 (11), 30 (12), [10-01..07 国庆], 10-08 (13),
        // 10-09 (14), Sat 10-10 make-up (15) -> fires 10-11 00:00; resolved
        // only by the `rectified` of 10-12 10:00.
        rec(&G13, "bad_rating_unrectified", F, "2026-10-11T00:00:00", None),
        rec(&G13, "bad_rating_unrectified", R, "2026-10-12T10:00:00", None),
        // G14 — rating 2 on 09-15 (the rating-6 line before it is
        // dead-lettered, and its resend with the same id is applied); 15th
        // working day after 09-15 is 10-12, deadline 10-13 00:00, but
        // `rectified` 09-30 came first: no alert.
        // G12 — item O1 (in_hall false): no center event needed; completed the
        // day of acceptance, fee 8.504 vs 8.5 (≤ 0.005 over): no alert at all.
        //
        // follow-up.md. G13 (completed, still in memory) gets notice DB-G13-1
        // on Tue 10-13 09:00 with 3 working days: 10-14 (1), 10-15 (2), 10-16
        // (3) -> due 10-16, notice_overdue at 10-17 00:00 although the case is
        // closed; its answer of 10-19 09:30 resolves it (line 68's answer
        // names another notice: held, then invalid_transition).
        rec(&G13, "notice_overdue", F, "2026-10-17T00:00:00", Some("2026-10-16")),
        rec(&G13, "notice_overdue", R, "2026-10-19T09:30:00", Some("2026-10-16")),
        // GC1 — complaint about market filed Wed 10-14: 5 working days after,
        // 10-15 (1), 10-16 (2), 10-19 (3), 10-20 (4), 10-21 (5) -> due 10-21;
        // complaint_overdue at 10-22 00:00, resolved by the answer of 10-23
        // 10:00. A complaint has no item: item_code null.
        no_item(rec(&GC1, "complaint_overdue", F, "2026-10-22T00:00:00", Some("2026-10-21"))),
        no_item(rec(&GC1, "complaint_overdue", R, "2026-10-23T10:00:00", Some("2026-10-21"))),
        // GC2 — filed Thu 10-15: due 10-22 (16, 19, 20, 21, 22); answered
        // 10-20: no alert.
    ]
}

/// A complaint's record: no catalogue item.
fn no_item(mut v: Value) -> Value {
    v["item_code"] = Value::Null;
    v
}

const GC1: Case = case("GC1", "220421", "market", Some("W01"), "");

#[test]
fn golden_scenario() {
    let (alerts, dead) = replay(&golden_args());
    assert_same_records(&alerts, &golden_expected_alerts(), "golden alerts.jsonl");
    assert_firing_first(&alerts);

    // Dead letters, as (reason, field, 1-based line). Validation failures are
    // dead-lettered at once; lines 15 and 40 after their 168 h hold:
    //   15: G99 `completed` — its case never opens -> orphan (hold ends when
    //       wm >= 03-17 09:00 + 168 h = 03-24 09:00, passed by line 23).
    //   40: G07 `rectified` with no bad rating -> invalid_transition (hold
    //       ends 05-13 10:00 + 168 h = 05-20 10:00, passed by line 42).
    // Line 14 (held `resumed` of G09) becomes valid: never dead-lettered.
    // Lines 13 and 20 are duplicates: counted, not dead-lettered.
    let n = |s: &str| Some(s.to_string());
    let mut want: Vec<(String, Option<String>, u64)> = vec![
        ("not_json".into(), None, 11),
        ("orphan".into(), n("case_id"), 15),
        ("bad_timestamp".into(), n("occurred_at"), 17),
        ("bad_value".into(), n("fee_yuan"), 21),
        ("unknown_type".into(), n("type"), 25),
        ("missing_field".into(), n("applicant"), 31),
        ("invalid_transition".into(), n("type"), 40),
        ("unknown_item".into(), n("item_code"), 41),
        ("bad_value".into(), n("region"), 48),
        ("bad_value".into(), n("rating"), 59),
        ("no_calendar".into(), n("occurred_at"), 63),
        ("bad_value".into(), n("deadline_days"), 66),
        // Hold from wm 10-19 09:00 ends 10-26 09:00, before --until.
        ("invalid_transition".into(), n("type"), 68),
    ];
    let mut got: Vec<(String, Option<String>, u64)> = dead
        .iter()
        .map(|d| {
            (
                d["reason"].as_str().unwrap_or("<no reason>").to_string(),
                d["field"].as_str().map(str::to_string),
                d["line"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "dead-letter.jsonl (reason, field, line)");

    // Each dead letter keeps its line byte for byte, and names the file.
    let src = fs::read_to_string(golden_dir().join("events.jsonl")).unwrap();
    let lines: Vec<&str> = src.lines().collect();
    for d in &dead {
        let line = d["line"].as_u64().unwrap() as usize;
        assert_eq!(d["raw"].as_str(), Some(lines[line - 1]), "raw of dead letter at line {line}");
        assert!(
            d["file"].as_str().is_some_and(|f| f.ends_with("events.jsonl")),
            "file of dead letter at line {line}: {}",
            d["file"]
        );
        assert!(d["detail"].as_str().is_some_and(|s| !s.trim().is_empty()), "detail at line {line}");
    }
}

#[test]
fn golden_scenario_follows_the_unlisted_item_with_a_red_card() {
    // The same input with rules.unlisted_item = "card" (follow-up.md's
    // default). Line 41, G17 accepted at 14 May 10:00 for item Z999, which is
    // not in the catalogue, is no longer dead-lettered: its case is followed
    // with the event's department (market) and raises unlisted_item at its
    // occurred_at, with no due date; G17 never closes, so the card stays
    // firing. No time limit, so no clock card; its event is from `center`, so
    // no unregistered_case either. Everything else is as in golden_scenario.
    let (base_alerts, base_dead) = replay(&golden_args());
    let dir = tempfile::TempDir::new().expect("temp dir");
    run_with(dir.path(), &golden_args(), "card");
    let alerts = read_jsonl(&dir.path().join("alerts.jsonl"));
    let dead = read_jsonl(&dir.path().join("dead-letter.jsonl"));
    let g17 = case("G17", "220421", "market", None, "Z999");
    let mut want = base_alerts.clone();
    want.push(rec(&g17, "unlisted_item", F, "2026-05-14T10:00:00", None));
    assert_same_records(&alerts, &want, "alerts.jsonl with unlisted items followed");
    let line = |d: &Value| d["line"].as_u64().unwrap();
    let want_dead: Vec<u64> = base_dead.iter().map(line).filter(|&l| l != 41).collect();
    assert_eq!(dead.iter().map(line).collect::<Vec<_>>(), want_dead);
    assert_eq!(base_dead.len(), want_dead.len() + 1, "line 41 was an unknown_item dead letter");
}

#[test]
fn golden_scenario_with_step_limits() {
    // The same input with steps for item P5: 受理 1, 审核 2, 批准 2
    // (--steps). Only G01 and G02 are accepted P5 cases (G11 is refused,
    // G18 dead-lettered). Calendar: 15–23 Feb off, Sat 14 and 28 Feb working.
    // G01, accepted Thu 12 Feb: 受理 due the 1st charged day, 13 Feb, fires
    //   at 14 Feb 00:00; the 审核 step_completed of 24 Feb 15:00 completes
    //   受理 and 审核 and resolves it. 批准 starts 24 Feb: 25 (1), 26 (2) → due
    //   26 Feb; fires as #2 at 27 Feb 00:00, before the completion dated that
    //   very instant, which resolves it.
    // G02, accepted Wed 4 Mar: 受理 due Thu 5 Mar, fires at 6 Mar 00:00
    //   (before the suspension at 10:00 that day, which starts after the due
    //   date and so changes nothing); never completed as a step, it resolves
    //   with the case on 13 Mar 16:00, due still 5 Mar.
    // Everything else is as in golden_scenario.
    let (base, base_dead) = replay(&golden_args());
    let dir = tempfile::TempDir::new().expect("temp dir");
    let steps = dir.path().join("steps.csv");
    fs::write(&steps, "item_code,step,limit_days\nP5,受理,1\nP5,审核,2\nP5,批准,2\n").unwrap();
    let mut args = vec!["--steps".to_string(), steps.display().to_string()];
    args.extend(golden_args());
    let out = dir.path().join("out");
    run_into(&out, &args);
    let (alerts, dead) = (read_jsonl(&out.join("alerts.jsonl")), read_jsonl(&out.join("dead-letter.jsonl")));
    // The cases table: both completed, so no current step; used days per
    // step. G01: 受理 (12 Feb, 24 Feb] = 13, 14, 24 Feb = 3; 审核 (24, 24] =
    // 0; 批准 (24 Feb, 27 Feb] = 25, 26, 27 = 3. G02: only 受理, (4 Mar,
    // 13 Mar] minus the stop 6–10 Mar = 5, 11, 12, 13 = 4.
    let sql = Command::new(env!("CARGO_BIN_EXE_jiancha"))
        .args(["sql", "--data"])
        .arg(&out)
        .args(["--format", "json"])
        .arg(
            "SELECT case_id, current_step, CAST(step_due_date AS VARCHAR) AS d, step_used_days FROM cases \
             WHERE case_id IN ('G01', 'G02', 'G03') ORDER BY case_id",
        )
        .output()
        .unwrap();
    assert!(sql.status.success(), "{}", String::from_utf8_lossy(&sql.stderr));
    let rows: Value = serde_json::from_slice(&sql.stdout).unwrap();
    let got: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{} {} {} {}", r["case_id"], r["current_step"], r["d"], r["step_used_days"]))
        .collect();
    assert_eq!(
        got,
        [r#""G01" null null "受理:3,审核:0,批准:3""#, r#""G02" null null "受理:4""#, r#""G03" null null null"#]
    );
    let mut want = base.clone();
    want.extend([
        rec(&G01, "step_overdue", F, "2026-02-14T00:00:00", Some("2026-02-13")),
        rec(&G01, "step_overdue", R, "2026-02-24T15:00:00", Some("2026-02-13")),
        rec(&G01, "step_overdue#2", F, "2026-02-27T00:00:00", Some("2026-02-26")),
        rec(&G01, "step_overdue#2", R, "2026-02-27T00:00:00", Some("2026-02-26")),
        rec(&G02, "step_overdue", F, "2026-03-06T00:00:00", Some("2026-03-05")),
        rec(&G02, "step_overdue", R, "2026-03-13T16:00:00", Some("2026-03-05")),
    ]);
    assert_same_records(&alerts, &want, "alerts.jsonl with steps for P5");
    assert_eq!(dead, base_dead);
}

#[test]
fn golden_replay_is_byte_identical() {
    let args = golden_args();
    let a = tempfile::TempDir::new().unwrap();
    let b = tempfile::TempDir::new().unwrap();
    run_into(a.path(), &args);
    run_into(b.path(), &args);
    let first = fs::read(a.path().join("alerts.jsonl")).unwrap();
    let second = fs::read(b.path().join("alerts.jsonl")).unwrap();
    assert!(!first.is_empty(), "golden alerts.jsonl is empty");
    assert!(first == second, "two replays of the same input wrote different alerts.jsonl");
}

// --------------------------------------------------- examples.md, verbatim ---

const EXAMPLE_CATALOG: &str = "\
item_code,name,department,kind,statutory_days,promised_days,fee_yuan,in_hall
A,示例事项A,tax,promised,10,3,0,
I,示例即办事项I,tax,immediate,0,0,10,
";

/// Only what examples.md states: 14 and 28 Feb make-up, 15–23 Feb off.
const EXAMPLE_CALENDAR: &str = r#"{"year": 2026, "papers": [], "days": [
{"name": "春节", "date": "2026-02-14", "isOffDay": false},
{"name": "春节", "date": "2026-02-15", "isOffDay": true},
{"name": "春节", "date": "2026-02-16", "isOffDay": true},
{"name": "春节", "date": "2026-02-17", "isOffDay": true},
{"name": "春节", "date": "2026-02-18", "isOffDay": true},
{"name": "春节", "date": "2026-02-19", "isOffDay": true},
{"name": "春节", "date": "2026-02-20", "isOffDay": true},
{"name": "春节", "date": "2026-02-21", "isOffDay": true},
{"name": "春节", "date": "2026-02-22", "isOffDay": true},
{"name": "春节", "date": "2026-02-23", "isOffDay": true},
{"name": "春节", "date": "2026-02-28", "isOffDay": false}]}
"#;

/// e1–e8 of examples.md. Region/department are not given there: 220421/tax
/// (department of both items); e3–e5 carry no source there: tax-sys (no rule
/// depends on it: C2's first event is from center).
const EXAMPLE_EVENTS: &str = r#"{"event_id":"e1","case_id":"C1","type":"accepted","occurred_at":"2026-02-13T10:00:00+08:00","source":"center","region":"220421","department":"tax","item_code":"A","applicant":"p1"}
{"event_id":"e2","case_id":"C2","type":"accepted","occurred_at":"2026-02-13T10:00:00+08:00","source":"center","region":"220421","department":"tax","item_code":"A","applicant":"p1"}
{"event_id":"e3","case_id":"C2","type":"suspended","occurred_at":"2026-02-24T09:00:00+08:00","source":"tax-sys","reason":"testing"}
{"event_id":"e4","case_id":"C2","type":"resumed","occurred_at":"2026-02-26T15:00:00+08:00","source":"tax-sys"}
{"event_id":"e5","case_id":"C2","type":"completed","occurred_at":"2026-03-02T11:00:00+08:00","source":"tax-sys","result":"approved"}
{"event_id":"e6","case_id":"C3","type":"accepted","occurred_at":"2026-03-02T16:00:00+08:00","source":"tax-sys","region":"220421","department":"tax","item_code":"I","applicant":"p1"}
{"event_id":"e7","case_id":"C3","type":"completed","occurred_at":"2026-03-02T16:30:00+08:00","source":"tax-sys","result":"approved","fee_yuan":30}
{"event_id":"e8","case_id":"C4","type":"accepted","occurred_at":"2026-03-03T09:00:00+08:00","source":"tax-sys","item_code":"A","applicant":"p1","region":"220421","department":"tax"}
"#;

#[rustfmt::skip]
fn example_expected_alerts() -> Vec<Value> {
    let c = |id, item| case(id, "220421", "tax", None, item);
    let (c1, c2, c3, c4) = (c("C1", "A"), c("C2", "A"), c("C3", "I"), c("C4", "A"));
    vec![
        // C1: accepted Fri 02-13, N = 3: 02-14 make-up (1), 02-24 (2), 02-25
        // (3) -> due 02-25; due_soon at charged day 2 = 02-24 00:00; overdue
        // 02-26 00:00. Never closed: both still firing.
        rec(&c1, "due_soon", F, "2026-02-24T00:00:00", Some("2026-02-25")),
        rec(&c1, "overdue", F, "2026-02-26T00:00:00", Some("2026-02-25")),
        // C2: due_soon 02-24 00:00 (the stop of 09:00 is not known at 00:00;
        // due date then 02-25). At 02-26 00:00 the stop is open: no overdue.
        // Stop 02-24..02-26 -> 02-14 (1), 02-27 (2), 02-28 make-up (3), due
        // 02-28; overdue 03-01 00:00. Completed 03-02 11:00 resolves both
        // (due date known then: 02-28).
        rec(&c2, "due_soon", F, "2026-02-24T00:00:00", Some("2026-02-25")),
        rec(&c2, "due_soon", R, "2026-03-02T11:00:00", Some("2026-02-28")),
        rec(&c2, "overdue", F, "2026-03-01T00:00:00", Some("2026-02-28")),
        rec(&c2, "overdue", R, "2026-03-02T11:00:00", Some("2026-02-28")),
        // C3: immediate, completed the day of acceptance (no overdue); fee 30 >
        // 10: overcharge fired and resolved at 16:30; no center event by
        // 03-03 16:00: unregistered_case fired and resolved then (closed).
        rec(&c3, "overcharge", F, "2026-03-02T16:30:00", None),
        rec(&c3, "overcharge", R, "2026-03-02T16:30:00", None),
        rec(&c3, "unregistered_case", F, "2026-03-03T16:00:00", None),
        rec(&c3, "unregistered_case", R, "2026-03-03T16:00:00", None),
        // C4: accepted Tue 03-03 09:00 by tax-sys; C1, C2 (center, 18 days
        // earlier, not withdrawn) tie on occurred_at, C2 last by case_id ->
        // dual_intake names C2. Unregistered at 03-04 09:00. 03-04 (1), 03-05
        // (2), 03-06 (3) -> due Fri 03-06: due_soon 03-05 00:00, overdue
        // 03-07 00:00. Never closed: all firing.
        with_detail(rec(&c4, "dual_intake", F, "2026-03-03T09:00:00", None), json!({"earlier_case_id": "C2"})),
        rec(&c4, "unregistered_case", F, "2026-03-04T09:00:00", None),
        rec(&c4, "due_soon", F, "2026-03-05T00:00:00", Some("2026-03-06")),
        rec(&c4, "overdue", F, "2026-03-07T00:00:00", Some("2026-03-06")),
    ]
}

#[test]
fn worked_example_of_examples_md() {
    let dir = tempfile::TempDir::new().unwrap();
    let d = dir.path();
    fs::create_dir_all(d.join("calendar")).unwrap();
    fs::write(d.join("catalog.csv"), EXAMPLE_CATALOG).unwrap();
    fs::write(d.join("calendar/2026.json"), EXAMPLE_CALENDAR).unwrap();
    fs::write(d.join("events.jsonl"), EXAMPLE_EVENTS).unwrap();
    let p = |s: &str| d.join(s).display().to_string();
    let (alerts, dead) = replay(&[
        "--catalog".into(),
        p("catalog.csv"),
        "--calendar".into(),
        p("calendar"),
        "--until".into(),
        "2026-03-10T00:00:00+08:00".into(),
        p("events.jsonl"),
    ]);

    assert_same_records(&alerts, &example_expected_alerts(), "examples.md alerts.jsonl");
    assert_firing_first(&alerts);
    assert!(dead.is_empty(), "examples.md input has no bad line, got dead letters: {dead:?}");
}
