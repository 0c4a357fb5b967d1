//! Property tests of the engine over synthetic streams: determinism, snapshot
//! and resume, no clock card on a closed case, and independence of arrival
//! order.

use crate::support::{refdata, root, zone};
use jiancha::config::RulesConfig;
use jiancha::engine::{Effect, Engine, Outcome};
use jiancha::event::Decoder;
use jiancha::reference::RefData;
use jiancha::synth::{generate, Rng, SynthOptions};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

fn shipped() -> Arc<RefData> {
    refdata(&std::fs::read_to_string(root().join("config/catalog.csv")).unwrap())
}

fn stream(seed: u64, cases: usize, late: f64, dup: f64, bad: f64) -> Vec<String> {
    let opts = SynthOptions {
        cases,
        seed,
        start: chrono::NaiveDate::from_ymd_opt(2026, 2, 2).unwrap(),
        days: 25,
        late_rate: late,
        duplicate_rate: dup,
        bad_line_rate: bad,
        ..SynthOptions::default()
    };
    generate(&shipped(), &zone(), &opts)
}

/// Runs lines through decode → engine (event-time watermark); effects as
/// strings. With `split`, stops after that many lines, snapshots, restores
/// into a new engine and goes on.
fn run(rd: &Arc<RefData>, lines: &[String], split: Option<usize>) -> (Vec<String>, Engine) {
    let decoder = Decoder::new(rd.clone(), zone(), "k");
    let mut engine = Engine::new(rd.clone(), zone(), RulesConfig::default());
    let mut out = Vec::new();
    let mut eff = Vec::new();
    let mut last = i64::MIN;
    for (i, line) in lines.iter().enumerate() {
        if split == Some(i) {
            let snap = engine.snapshot();
            engine = Engine::restore(rd.clone(), zone(), RulesConfig::default(), &snap).unwrap();
            assert_eq!(engine.snapshot(), snap, "snapshot of a restored engine is identical");
        }
        if let Ok(ev) = decoder.decode(line.as_bytes()) {
            let at = ev.occurred_at;
            if engine.apply(ev, i as u64, &mut eff) == Outcome::Applied {
                last = last.max(at);
                engine.advance_watermark(at, &mut eff);
            }
        }
        for e in eff.drain(..) {
            out.push(match e {
                Effect::Alert(r) => serde_json::to_string(&r).unwrap(),
                Effect::DeadLetter { origin, rejection } => format!("dead {origin} {rejection:?}"),
            });
        }
    }
    engine.advance_watermark(last + 40 * 86_400_000, &mut eff);
    for e in eff.drain(..) {
        out.push(match e {
            Effect::Alert(r) => serde_json::to_string(&r).unwrap(),
            Effect::DeadLetter { origin, rejection } => format!("dead {origin} {rejection:?}"),
        });
    }
    (out, engine)
}

/// Live alerts (fired, never retracted) as (case, rule, at, due, detail).
fn live(effects: &[String]) -> BTreeSet<(String, String, String, String, String)> {
    let mut by_id: BTreeMap<String, (serde_json::Value, bool)> = BTreeMap::new();
    for e in effects.iter().filter(|e| !e.starts_with("dead")) {
        let v: serde_json::Value = serde_json::from_str(e).unwrap();
        let id = v["alert_id"].as_str().unwrap().to_string();
        match v["state"].as_str().unwrap() {
            "firing" => {
                by_id.insert(id, (v, false));
            }
            "retracted" => by_id.get_mut(&id).expect("retraction follows a firing").1 = true,
            _ => {}
        }
    }
    by_id
        .into_values()
        .filter(|(_, retracted)| !retracted)
        .map(|(v, _)| {
            let s = |k: &str| v[k].to_string();
            (s("case_id"), s("rule"), s("at"), s("due_date"), s("detail"))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::support::proptest_cases(24), .. ProptestConfig::default() })]

    #[test]
    fn same_input_same_output(seed in any::<u64>()) {
        let rd = shipped();
        let lines = stream(seed, 60, 0.05, 0.02, 0.01);
        let (a, _) = run(&rd, &lines, None);
        let (b, _) = run(&rd, &lines, None);
        prop_assert!(!a.is_empty());
        prop_assert_eq!(a, b);
    }

    #[test]
    fn snapshot_and_resume_anywhere_equals_an_uninterrupted_run(seed in any::<u64>(), at in 0.0f64..1.0) {
        let rd = shipped();
        let lines = stream(seed, 60, 0.05, 0.02, 0.01);
        let split = (lines.len() as f64 * at) as usize;
        let (whole, e1) = run(&rd, &lines, None);
        let (resumed, e2) = run(&rd, &lines, Some(split));
        prop_assert_eq!(whole, resumed);
        prop_assert_eq!(e1.snapshot(), e2.snapshot());
    }

    #[test]
    fn no_clock_card_fires_for_a_closed_case(seed in any::<u64>()) {
        let rd = shipped();
        let lines = stream(seed, 80, 0.05, 0.0, 0.0);
        let (effects, engine) = run(&rd, &lines, None);
        for (case, rule, at, _, _) in live(&effects) {
            if !["\"due_soon\"", "\"overdue\"", "\"intake_overdue\""].contains(&rule.as_str()) {
                continue;
            }
            let case = case.trim_matches('"');
            let Some(view) = engine.case_view(case) else { continue };
            if let Some(closed) = view.summary.closed_at {
                let at = jiancha::time::parse_rfc3339(at.trim_matches('"')).unwrap();
                prop_assert!(at <= closed, "{rule} at {at} on {case} closed at {closed}");
            }
        }
    }

    #[test]
    fn arrival_order_does_not_change_the_live_alerts(seed in any::<u64>(), shuffle in any::<u64>()) {
        let rd = shipped();
        let in_order = stream(seed, 60, 0.0, 0.0, 0.0);
        // Delay a quarter of the events by up to 48 h of event time (well
        // inside the 168 h hold); events of one case at one instant share a delay.
        let mut keyed: Vec<(i64, usize, String)> = Vec::new();
        for (i, l) in in_order.iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let at = jiancha::time::parse_rfc3339(v["occurred_at"].as_str().unwrap()).unwrap();
            let mut r = Rng::new(shuffle ^ xxhash_rust::xxh3::xxh3_64(format!("{}{}", v["case_id"], at).as_bytes()));
            let delay = if r.chance(0.25) { r.below(48 * 3600) as i64 * 1000 } else { 0 };
            keyed.push((at + delay, i, l.clone()));
        }
        keyed.sort();
        let shuffled: Vec<String> = keyed.into_iter().map(|k| k.2).collect();
        let (a, _) = run(&rd, &in_order, None);
        let (b, _) = run(&rd, &shuffled, None);
        prop_assert!(a.iter().all(|e| !e.starts_with("dead")));
        prop_assert_eq!(live(&a), live(&b));
    }
}

/// The shuffled runs exercise retraction and holding, not just in-order paths.
#[test]
fn shuffled_streams_do_retract_and_hold() {
    let rd = shipped();
    let mut retracted = 0;
    let mut live_alerts = 0;
    for seed in 0..8u64 {
        let lines = stream(seed, 60, 0.25, 0.0, 0.0);
        let (a, e) = run(&rd, &lines, None);
        retracted += a.iter().filter(|x| x.contains("\"state\":\"retracted\"")).count();
        live_alerts += live(&a).len();
        assert!(e.stats().held > 0 || seed > 0 || retracted > 0);
    }
    assert!(retracted > 5, "only {retracted} retractions");
    assert!(live_alerts > 100, "only {live_alerts} live alerts");
}
