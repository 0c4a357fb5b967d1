//! No input makes the pipeline panic or lose an event: random bytes, mutated
//! events, and random event sequences against the engine.

use crate::support::{refdata, zone, CATALOG};
use jiancha::config::RulesConfig;
use jiancha::engine::{Effect, Engine, Outcome};
use jiancha::event::Decoder;
use proptest::prelude::*;
use serde_json::{json, Value};

const ITEMS: [&str; 4] = ["A", "I", "F", "S"];

const TYPES: [&str; 15] = [
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
    "bogus",
];

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "[a-zA-Z0-9_ :+-]{0,24}".prop_map(Value::from),
        Just(json!("2026-03-02T10:00:00+08:00")),
        Just(json!("220421")),
        Just(json!("A")),
        Just(json!([1, 2])),
        Just(json!({"x": 1})),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::support::proptest_cases(400), .. ProptestConfig::default() })]

    #[test]
    fn decoder_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let d = Decoder::new(refdata(CATALOG), zone(), "k");
        let _ = d.decode(&bytes);
    }

    #[test]
    fn decoder_never_panics_on_mutated_events(field in 0usize..19, v in value(), drop in any::<bool>()) {
        let fields = ["event_id", "case_id", "type", "occurred_at", "recorded_at", "source", "region", "department",
            "window", "item_code", "applicant", "parent_case_id", "reason", "result", "fee_yuan", "rating", "step", "channel", "staff"];
        let mut e = json!({"event_id": "e", "case_id": "c", "type": "accepted", "occurred_at": "2026-03-02T10:00:00+08:00",
            "source": "center", "region": "220421", "department": "tax", "item_code": "A", "applicant": "p"});
        if drop {
            e.as_object_mut().unwrap().remove(fields[field]);
        } else {
            e[fields[field]] = v;
        }
        let d = Decoder::new(refdata(CATALOG), zone(), "k");
        let _ = d.decode(e.to_string().as_bytes());
    }

    /// Random sequences over a few cases: the engine never panics, every
    /// event given to it ends applied, held, duplicate or dead-lettered, and
    /// every retraction or resolution follows a firing of the same alert.
    #[test]
    fn engine_accounts_for_every_event(steps in proptest::collection::vec(
        (0usize..4, 0usize..15, 0i64..(30 * 24), 0u8..6, any::<bool>()), 1..60)) {
        let rd = refdata(CATALOG);
        let d = Decoder::new(rd.clone(), zone(), "k");
        let mut engine = Engine::new(rd, zone(), RulesConfig::default());
        let base = jiancha::time::parse_rfc3339("2026-02-10T00:00:00+08:00").unwrap();
        let mut eff = Vec::new();
        let mut applied_or_held = 0u64;
        let mut decoded = 0u64;
        for (i, (case, ty, hour, rating, center)) in steps.into_iter().enumerate() {
            let at = base + hour * 3_600_000;
            let mut e = json!({"event_id": format!("e{}", i % 50), "case_id": format!("c{case}"), "type": TYPES[ty],
                "occurred_at": zone().format(at), "source": if center { "center" } else { "dept" },
                "region": "220421", "department": "tax", "item_code": ITEMS[case], "applicant": "p",
                "reason": if rating == 0 { "" } else { "supplement" }, "result": if rating > 3 { "approved" } else { "denied" },
                "rating": rating.max(1), "step": "s", "fee_yuan": rating as f64 * 4.0});
            if case == 3 { e["parent_case_id"] = json!("c2"); }
            if let Ok(ev) = d.decode(e.to_string().as_bytes()) {
                decoded += 1;
                let at = ev.occurred_at;
                match engine.apply(ev, i as u64, &mut eff) {
                    Outcome::Applied => { applied_or_held += 1; engine.advance_watermark(at, &mut eff); }
                    Outcome::Held => applied_or_held += 1,
                    Outcome::Duplicate => {}
                }
            }
        }
        engine.advance_watermark(base + 90 * 86_400_000, &mut eff);
        let st = engine.stats();
        prop_assert_eq!(decoded, st.applied + st.held + st.duplicates);
        prop_assert_eq!(applied_or_held, st.applied + st.held);
        let mut fired = std::collections::HashSet::new();
        for e in &eff {
            if let Effect::Alert(r) = e {
                match r.state.as_str() {
                    "firing" => prop_assert!(fired.insert(r.alert_id.clone()), "{} fired twice", r.alert_id),
                    _ => prop_assert!(fired.contains(&r.alert_id), "{} {} before firing", r.alert_id, r.state.as_str()),
                }
            }
        }
    }
}
