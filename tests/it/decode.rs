//! The decoder against `events.md` "Bad input": every dead-letter reason the
//! decoder can give, with the field it must name, and the inputs it must accept.
//!
//! One table of (what, line, reason, field) and one loop; every mismatch is
//! collected and reported together.

use crate::support;
use jiancha::deadletter::{DeadReason, Rejection};
use jiancha::event::{Decision, Decoder, Event, EventType, SUSPEND_REASONS};
use serde_json::{json, Value};
use std::collections::BTreeSet;

const KEY: &str = "test-key";
/// A raw applicant id (ID-card number shape) that must never survive decoding.
const APPLICANT: &str = "22042119900101123X";

fn decoder() -> Decoder {
    Decoder::new(support::refdata(support::CATALOG), support::zone(), KEY)
}

/// A valid event of `kind` with every field its type requires.
fn base(kind: &str) -> Value {
    let mut v = json!({"event_id": "E-1", "case_id": "C-1", "type": kind,
                       "occurred_at": "2026-03-10T10:00:00+08:00", "source": "center"});
    let extra = match kind {
        "submitted" | "accepted" => {
            json!({"region": "220421", "department": "tax", "item_code": "A", "applicant": APPLICANT})
        }
        "suspended" => json!({"reason": "hearing"}),
        "completed" => json!({"result": "approved"}),
        "evaluated" => json!({"rating": 5}),
        "step_completed" => json!({"step": "审核"}),
        _ => json!({}),
    };
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

/// `base(kind)` with fields set (a JSON object of overrides).
fn with(kind: &str, set: Value) -> Vec<u8> {
    let mut v = base(kind);
    for (k, x) in set.as_object().unwrap() {
        v[k] = x.clone();
    }
    v.to_string().into_bytes()
}

/// `base(kind)` without one field.
fn without(kind: &str, field: &str) -> Vec<u8> {
    let mut v = base(kind);
    assert!(v.as_object_mut().unwrap().remove(field).is_some() || field == "reason");
    v.to_string().into_bytes()
}

struct Bad {
    what: String,
    line: Vec<u8>,
    reason: &'static str,
    field: Option<&'static str>,
}

fn bad(what: impl Into<String>, line: Vec<u8>, reason: &'static str, field: Option<&'static str>) -> Bad {
    Bad { what: what.into(), line, reason, field }
}

fn bad_lines() -> Vec<Bad> {
    let mut t = Vec::new();
    let s = |x: &str| x.as_bytes().to_vec();

    // not_json: never names a field.
    let mut non_utf8 = with("submitted", json!({"applicant": "APPLICANT-X"}));
    let at = non_utf8.windows(11).position(|w| w == b"APPLICANT-X").unwrap();
    non_utf8[at + 10] = 0xff; // inside a string: the JSON shape is intact
    for (what, line) in [
        ("broken JSON", s(r#"{"event_id": "E-1", "case_id": "#)),
        ("trailing garbage", s(r#"{"event_id": "E-1"} x"#)),
        ("two objects on one line", s(r#"{"event_id": "E-1"} {"event_id": "E-2"}"#)),
        ("a JSON array", s(r#"[{"event_id": "E-1"}]"#)),
        ("a bare string", s(r#""submitted""#)),
        ("a bare number", s("42")),
        ("JSON null", s("null")),
        ("an empty line", s("")),
        ("non-UTF-8 bytes", non_utf8),
        ("Latin-1 text", b"{\"event_id\": \"caf\xe9\"}".to_vec()),
    ] {
        t.push(bad(what, line, "not_json", None));
    }

    // missing_field: the always-required fields, absent or null.
    for f in ["event_id", "case_id", "type", "occurred_at", "source"] {
        t.push(bad(format!("{f} absent"), without("resumed", f), "missing_field", Some(f)));
        t.push(bad(format!("{f} null"), with("resumed", json!({ f: null })), "missing_field", Some(f)));
    }
    t.push(bad("an empty object", s("{}"), "missing_field", Some("event_id")));
    // ... and the per-type ones.
    for kind in ["submitted", "accepted"] {
        for f in ["region", "department", "item_code", "applicant"] {
            t.push(bad(format!("{kind} without {f}"), without(kind, f), "missing_field", Some(f)));
            t.push(bad(format!("{kind} with {f} null"), with(kind, json!({ f: null })), "missing_field", Some(f)));
        }
    }
    for (kind, f) in
        [("suspended", "reason"), ("completed", "result"), ("evaluated", "rating"), ("step_completed", "step")]
    {
        t.push(bad(format!("{kind} without {f}"), without(kind, f), "missing_field", Some(f)));
        t.push(bad(format!("{kind} with {f} null"), with(kind, json!({ f: null })), "missing_field", Some(f)));
    }

    // unknown_type
    for ty in ["opened", "Submitted", "SUBMITTED", "submitted ", ""] {
        t.push(bad(format!("type {ty:?}"), with("resumed", json!({"type": ty})), "unknown_type", Some("type")));
    }

    // bad_timestamp
    for (what, ts) in [
        ("no offset", json!("2026-03-10T10:00:00")),
        ("date only", json!("2026-03-10")),
        ("garbage", json!("yesterday afternoon")),
        ("no such day", json!("2026-02-30T10:00:00+08:00")),
        ("offset without minutes", json!("2026-03-10T10:00:00+08")),
        ("a number (epoch seconds)", json!(1773108000)),
        ("an object", json!({"ts": "2026-03-10T10:00:00+08:00"})),
    ] {
        t.push(bad(
            format!("occurred_at {what}"),
            with("resumed", json!({"occurred_at": ts.clone()})),
            "bad_timestamp",
            Some("occurred_at"),
        ));
        t.push(bad(
            format!("recorded_at {what}"),
            with("resumed", json!({"recorded_at": ts})),
            "bad_timestamp",
            Some("recorded_at"),
        ));
    }

    // unknown_item, on a type that requires it and on one where it is optional.
    t.push(bad(
        "unknown item on submitted",
        with("submitted", json!({"item_code": "NOPE"})),
        "unknown_item",
        Some("item_code"),
    ));
    t.push(bad(
        "unknown item on completed",
        with("completed", json!({"item_code": "NOPE"})),
        "unknown_item",
        Some("item_code"),
    ));
    t.push(bad(
        "item code differs in case",
        with("accepted", json!({"item_code": "a"})),
        "unknown_item",
        Some("item_code"),
    ));

    // bad_value: wrong JSON type or outside the domain.
    let long = "x".repeat(129);
    for (what, kind, set, field) in [
        ("rating 6", "evaluated", json!({"rating": 6}), "rating"),
        ("rating 0", "evaluated", json!({"rating": 0}), "rating"),
        ("rating -1", "evaluated", json!({"rating": -1}), "rating"),
        ("rating 4.5", "evaluated", json!({"rating": 4.5}), "rating"),
        ("rating \"5\"", "evaluated", json!({"rating": "5"}), "rating"),
        ("rating true", "evaluated", json!({"rating": true}), "rating"),
        ("five-digit region", "submitted", json!({"region": "22042"}), "region"),
        ("seven-digit region", "submitted", json!({"region": "2204210"}), "region"),
        ("region with letters", "submitted", json!({"region": "22042A"}), "region"),
        ("region as a number", "accepted", json!({"region": 220421}), "region"),
        ("bad region on an optional type", "completed", json!({"region": "abc"}), "region"),
        ("negative fee", "completed", json!({"fee_yuan": -1}), "fee_yuan"),
        ("negative fractional fee", "completed", json!({"fee_yuan": -0.01}), "fee_yuan"),
        ("fee as a string", "completed", json!({"fee_yuan": "10"}), "fee_yuan"),
        ("unknown suspended reason", "suspended", json!({"reason": "lunch"}), "reason"),
        ("blank suspended reason", "suspended", json!({"reason": ""}), "reason"),
        ("unknown result", "completed", json!({"result": "maybe"}), "result"),
        ("result in capitals", "completed", json!({"result": "Approved"}), "result"),
        ("result as a boolean", "completed", json!({"result": true}), "result"),
        ("event_id of 129 characters", "resumed", json!({"event_id": long.clone()}), "event_id"),
        ("case_id of 129 characters", "resumed", json!({"case_id": long.clone()}), "case_id"),
        ("parent_case_id of 129 characters", "submitted", json!({"parent_case_id": long}), "parent_case_id"),
        ("empty case_id", "resumed", json!({"case_id": ""}), "case_id"),
        ("empty event_id", "resumed", json!({"event_id": ""}), "event_id"),
        ("event_id as a number", "resumed", json!({"event_id": 17}), "event_id"),
        ("type as a number", "resumed", json!({"type": 1}), "type"),
        ("blank applicant", "submitted", json!({"applicant": "  "}), "applicant"),
        ("applicant as a number", "submitted", json!({"applicant": 220421199001011234u64}), "applicant"),
        ("department as an array", "accepted", json!({"department": ["tax"]}), "department"),
        ("unknown channel", "accepted", json!({"channel": "phone"}), "channel"),
        ("channel in capitals", "completed", json!({"channel": "Window"}), "channel"),
        ("blank channel", "completed", json!({"channel": ""}), "channel"),
        ("channel as a number", "accepted", json!({"channel": 1}), "channel"),
        ("unknown channel on another type", "resumed", json!({"channel": "hall"}), "channel"),
        ("blank staff", "completed", json!({"staff": " "}), "staff"),
        ("empty staff", "resumed", json!({"staff": ""}), "staff"),
        ("staff of 65 characters", "accepted", json!({"staff": "s".repeat(65)}), "staff"),
        ("staff as a number", "accepted", json!({"staff": 1024}), "staff"),
    ] {
        t.push(bad(what, with(kind, set), "bad_value", Some(field)));
    }
    let line = String::from_utf8(base("resumed").to_string().into_bytes()).unwrap();
    let dup = line.replacen('{', r#"{"case_id":"C-0","#, 1);
    t.push(bad("duplicated key case_id", dup.into_bytes(), "bad_value", Some("case_id")));
    let dup = line.replacen('{', r#"{"type":null,"#, 1);
    t.push(bad("duplicated key type, first null", dup.into_bytes(), "bad_value", Some("type")));

    // no_calendar: the local date's year (Asia/Shanghai) has no file.
    for (what, ts) in [
        ("a 2031 date", "2031-03-10T10:00:00+08:00"),
        ("2027-01-01 local, 2026 in UTC", "2026-12-31T17:00:00Z"),
        ("the last second of 2023", "2023-12-31T23:59:59+08:00"),
    ] {
        t.push(bad(what, with("submitted", json!({"occurred_at": ts})), "no_calendar", Some("occurred_at")));
    }
    t
}

#[test]
fn every_bad_line_is_rejected_with_its_reason_and_field() {
    let d = decoder();
    let table = bad_lines();
    let mut failures = Vec::new();
    for case in &table {
        let shown = String::from_utf8_lossy(&case.line);
        match d.decode(&case.line) {
            Ok(ev) => failures.push(format!(
                "{}: accepted, expected {} / {:?}\n    line: {shown}\n    event: {ev:?}",
                case.what, case.reason, case.field
            )),
            Err(Rejection { reason, field, detail }) => {
                if reason.as_str() != case.reason || field.as_deref() != case.field {
                    failures.push(format!(
                        "{}: got {} / {:?} ({detail}), expected {} / {:?}\n    line: {shown}",
                        case.what,
                        reason.as_str(),
                        field,
                        case.reason,
                        case.field
                    ));
                } else if detail.trim().is_empty() {
                    failures.push(format!("{}: empty detail", case.what));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad lines were not rejected as expected:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );
    // The table covers every reason the decoder alone can give.
    let covered: BTreeSet<&str> = table.iter().map(|c| c.reason).collect();
    for r in DeadReason::ALL {
        if !matches!(r, DeadReason::InvalidTransition | DeadReason::Orphan) {
            assert!(covered.contains(r.as_str()), "no table row for {}", r.as_str());
        }
    }
}

fn ok(d: &Decoder, line: &[u8]) -> Event {
    d.decode(line).unwrap_or_else(|r| panic!("rejected {}: {r:?}", String::from_utf8_lossy(line)))
}

#[test]
fn every_type_decodes_with_its_required_fields_only() {
    let d = decoder();
    for kind in [
        "submitted",
        "supplement_requested",
        "supplement_received",
        "accepted",
        "refused",
        "step_completed",
        "suspended",
        "resumed",
        "escalated",
        "returned",
        "completed",
        "withdrawn",
        "evaluated",
        "rectified",
    ] {
        let ev = ok(&d, &with(kind, json!({})));
        assert_eq!(ev.kind.as_str(), kind);
        assert_eq!(EventType::parse(kind), Some(ev.kind));
    }
    for r in SUSPEND_REASONS {
        assert_eq!(ok(&d, &with("suspended", json!({"reason": r}))).reason.as_deref(), Some(r));
    }
    for (rating, want) in [(1, 1u8), (5, 5)] {
        assert_eq!(ok(&d, &with("evaluated", json!({"rating": rating}))).rating, Some(want));
    }
    let ev = ok(&d, &with("completed", json!({"result": "denied", "fee_yuan": 12.5})));
    assert_eq!((ev.result, ev.fee_yuan), (Some(Decision::Denied), Some(12.5)));
    assert_eq!(ok(&d, &with("completed", json!({"fee_yuan": 0}))).fee_yuan, Some(0.0));
    // Region codes of 6, 9 and 12 digits.
    for r in ["220421", "220421100", "220421100215"] {
        assert_eq!(ok(&d, &with("submitted", json!({"region": r}))).region.as_deref(), Some(r));
    }
    // 128 characters is the limit, counted in characters, not bytes.
    let cjk = "监".repeat(128);
    let ev = ok(&d, &with("resumed", json!({"event_id": "e".repeat(128), "case_id": cjk.clone()})));
    assert_eq!(ev.case_id, cjk);
}

#[test]
fn channel_defaults_by_source_on_accepted_and_completed_and_staff_is_kept_as_given() {
    use jiancha::event::Channel;
    let d = decoder();
    for kind in ["accepted", "completed"] {
        // Absent or null: the centre's system works at the window, any other in the back office.
        assert_eq!(ok(&d, &with(kind, json!({}))).channel, Some(Channel::Window), "{kind}");
        assert_eq!(ok(&d, &with(kind, json!({"channel": null}))).channel, Some(Channel::Window), "{kind}");
        let dept = ok(&d, &with(kind, json!({"source": "tax-sys"})));
        assert_eq!(dept.channel, Some(Channel::BackOffice), "{kind}");
        for (name, c) in [
            ("window", Channel::Window),
            ("online", Channel::Online),
            ("back_office", Channel::BackOffice),
            ("agent", Channel::Agent),
        ] {
            assert_eq!(ok(&d, &with(kind, json!({"channel": name, "source": "tax-sys"}))).channel, Some(c));
            assert_eq!(c.as_str(), name);
        }
    }
    // Other types: as given, no default.
    assert_eq!(ok(&d, &with("submitted", json!({}))).channel, None);
    assert_eq!(ok(&d, &with("submitted", json!({"channel": "online"}))).channel, Some(Channel::Online));
    // staff: 1–64 characters (not bytes), kept exactly as given, on any type.
    for kind in ["submitted", "accepted", "completed", "evaluated", "resumed"] {
        assert_eq!(ok(&d, &with(kind, json!({}))).staff, None, "{kind}");
        assert_eq!(ok(&d, &with(kind, json!({"staff": " S-07 "}))).staff.as_deref(), Some(" S-07 "), "{kind}");
    }
    let long = "窗".repeat(64);
    assert_eq!(ok(&d, &with("accepted", json!({"staff": long.clone()}))).staff, Some(long));
}

#[test]
fn unknown_fields_are_ignored() {
    let d = decoder();
    let plain = ok(&d, &with("submitted", json!({})));
    let extra = ok(
        &d,
        &with(
            "submitted",
            json!({"operator": "张三", "attachments": [1, {"a": [null]}], "meta": {"rating": 9},
                   "Type": "bogus", "event-id": 3}),
        ),
    );
    assert_eq!(plain, extra);
}

#[test]
fn null_optional_fields_are_absent() {
    let d = decoder();
    let ev = ok(
        &d,
        &with(
            "submitted",
            json!({"recorded_at": null, "window": null, "parent_case_id": null, "reason": null,
                   "result": null, "fee_yuan": null, "rating": null, "step": null, "channel": null,
                   "staff": null}),
        ),
    );
    assert_eq!(ev, ok(&d, &with("submitted", json!({}))));
    assert_eq!((ev.recorded_at, ev.window, ev.parent_case_id), (None, None, None));
    assert_eq!((ev.reason, ev.result, ev.fee_yuan, ev.rating, ev.step), (None, None, None, None, None));
    // region etc. are optional outside submitted / accepted.
    let ev = ok(&d, &with("completed", json!({"region": null, "item_code": null, "applicant": null})));
    assert_eq!((ev.region, ev.item, ev.applicant), (None, None, None));
}

#[test]
fn a_refusal_or_denial_without_reason_is_not_an_error() {
    let d = decoder();
    assert_eq!(ok(&d, &without("refused", "reason")).reason, None);
    assert_eq!(ok(&d, &with("refused", json!({"reason": null}))).reason, None);
    ok(&d, &with("refused", json!({"reason": ""})));
    let ev = ok(&d, &with("completed", json!({"result": "denied"})));
    assert_eq!((ev.result, ev.reason), (Some(Decision::Denied), None));
    assert_eq!(ok(&d, &with("refused", json!({"reason": "材料不全"}))).reason.as_deref(), Some("材料不全"));
}

fn hmac_sha256(key: &str, msg: &str) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    m.update(msg.as_bytes());
    m.finalize().into_bytes().into()
}

#[test]
fn the_applicant_is_kept_only_as_its_keyed_hash() {
    let d = decoder();
    let ev = ok(&d, &with("submitted", json!({})));
    assert_eq!(ev.applicant, Some(hmac_sha256(KEY, APPLICANT)));
    let shown = format!("{ev:?} {ev:#?} {}", serde_json::to_string(&ev).unwrap());
    for needle in [APPLICANT, "19900101123X", "220421199001"] {
        assert!(!shown.contains(needle), "raw applicant {needle:?} survives in {shown}");
    }
    // Same applicant, same hash, whatever the event; another applicant or key, another hash.
    let again = ok(&d, &with("accepted", json!({"case_id": "C-9", "event_id": "E-9"})));
    assert_eq!(again.applicant, ev.applicant);
    let other = ok(&d, &with("submitted", json!({"applicant": "220421199001011235"})));
    assert_ne!(other.applicant, ev.applicant);
    let other_key = Decoder::new(support::refdata(support::CATALOG), support::zone(), "another-key");
    assert_ne!(ok(&other_key, &with("submitted", json!({}))).applicant, ev.applicant);
}

fn utc_ms(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    chrono::NaiveDate::from_ymd_opt(y, mo, d).unwrap().and_hms_opt(h, mi, s).unwrap().and_utc().timestamp_millis()
}

#[test]
fn timestamps_with_z_fractions_and_other_offsets() {
    let d = decoder();
    let at = |ts: &str| ok(&d, &with("resumed", json!({"occurred_at": ts}))).occurred_at;
    let ten_local = utc_ms(2026, 3, 10, 2, 0, 0);
    assert_eq!(at("2026-03-10T10:00:00+08:00"), ten_local);
    assert_eq!(at("2026-03-10T02:00:00Z"), ten_local);
    assert_eq!(at("2026-03-10T02:00:00z"), ten_local);
    assert_eq!(at("2026-03-09T21:00:00-05:00"), ten_local);
    assert_eq!(at("2026-03-10T02:00:00.5Z"), ten_local + 500);
    assert_eq!(at("2026-03-10T10:00:00.123+08:00"), ten_local + 123);
    assert_eq!(at("2026-03-10T10:00:00.123456789+08:00"), ten_local + 123);
    // 2023-12-31 16:30 UTC is 2024-01-01 00:30 in Shanghai: a year with a calendar.
    assert_eq!(at("2023-12-31T16:30:00Z"), utc_ms(2023, 12, 31, 16, 30, 0));
    let ev = ok(&d, &with("accepted", json!({"recorded_at": "2026-03-11T09:15:30.250+08:00"})));
    assert_eq!(ev.recorded_at, Some(utc_ms(2026, 3, 11, 1, 15, 30) + 250));
    // recorded_at is not checked against the calendar.
    let ev = ok(&d, &with("accepted", json!({"recorded_at": "2031-01-01T00:00:00+08:00"})));
    assert_eq!(ev.recorded_at, Some(utc_ms(2030, 12, 31, 16, 0, 0)));
}
