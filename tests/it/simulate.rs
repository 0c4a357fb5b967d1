//! The simulator against the engine: every anomaly the simulator put in is
//! raised, nothing else is (but `due_soon`, which follows from durations),
//! and every case's figures (due date, used days, on time, early) equal the
//! simulator's own plan. Two independent computations of the same clocks.

use crate::support::{refdata, root, zone};
use jiancha::config::RulesConfig;
use jiancha::engine::{Effect, Engine, Outcome};
use jiancha::event::Decoder;
use jiancha::synth::{SimItem, Simulator, SynthOptions, Truth};
use std::collections::{BTreeMap, BTreeSet};

#[test]
fn engine_raises_exactly_the_injected_anomalies_and_agrees_on_figures() {
    let rd = refdata(&std::fs::read_to_string(root().join("config/catalog.csv")).unwrap());
    cross_check(rd, &[]);
}

/// The same with the shipped steps (config/steps.csv): step delays are
/// injected and a case over its limit runs its last step over too, so
/// `step_overdue` is raised exactly on the cases the simulator says.
#[test]
fn with_steps_the_engine_raises_exactly_the_injected_step_delays() {
    let mut rd = (*refdata(&std::fs::read_to_string(root().join("config/catalog.csv")).unwrap())).clone();
    rd.steps = jiancha::reference::Steps::load(&root().join("config/steps.csv"), &rd.catalog).unwrap();
    cross_check(std::sync::Arc::new(rd), &["step_overdue"]);
}

fn cross_check(rd: std::sync::Arc<jiancha::reference::RefData>, more_rules: &[&str]) {
    // SIM_CASES / SIM_SEED for a longer run.
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let cases = env("SIM_CASES", 3000) as usize;
    let opts = SynthOptions { cases, seed: env("SIM_SEED", 11), days: 150, ..SynthOptions::default() };
    let mut lines = Vec::new();
    let mut truth: BTreeMap<String, Truth> = BTreeMap::new();
    for item in Simulator::new(&rd, zone(), opts) {
        match item {
            SimItem::Line(l) => lines.push(l),
            SimItem::Truth(t) => {
                truth.insert(t.case_id.clone(), t);
            }
        }
    }
    // Items outside the catalogue followed, as the shells do by default.
    let decoder = Decoder::new(rd.clone(), zone(), "k").with_unlisted_items(jiancha::config::UnlistedItem::Card);
    // Keep closed cases in memory to the end, to read their figures.
    let rules = RulesConfig { retain_closed_days: 10_000, ..RulesConfig::default() };
    let mut engine = Engine::new(rd.clone(), zone(), rules);
    let mut eff = Vec::new();
    let mut last = 0;
    for (i, l) in lines.iter().enumerate() {
        if let Ok(ev) = decoder.decode(l.as_bytes()) {
            let at = ev.occurred_at;
            if engine.apply(ev, i as u64, &mut eff) == Outcome::Applied {
                last = last.max(at);
                engine.advance_watermark(at, &mut eff);
            }
        }
    }
    engine.advance_watermark(last + 40 * 86_400_000, &mut eff);
    let mut live: BTreeMap<String, (String, String, bool)> = BTreeMap::new();
    for e in &eff {
        match e {
            Effect::Alert(r) => {
                let entry =
                    live.entry(r.alert_id.clone()).or_insert((r.case_id.clone(), r.rule.as_str().to_string(), false));
                if r.state.as_str() == "retracted" {
                    entry.2 = true;
                }
            }
            Effect::DeadLetter { rejection, .. } => panic!("simulated case event dead-lettered: {rejection:?}"),
        }
    }
    let raised: BTreeSet<(String, String)> =
        live.into_values().filter(|v| !v.2 && v.1 != "due_soon").map(|v| (v.0, v.1)).collect();
    let planned: BTreeSet<(String, String)> =
        truth.values().flat_map(|t| t.anomalies.iter().map(|a| (t.case_id.clone(), a.to_string()))).collect();
    let missing: Vec<_> = planned.difference(&raised).take(10).collect();
    let extra: Vec<_> = raised.difference(&planned).take(10).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}\nextra {extra:?}");
    for rule in [
        "overdue",
        "intake_overdue",
        "repeated_supplement",
        "dual_intake",
        "unregistered_case",
        "backdated_entry",
        "overcharge",
        "denial_without_reason",
        "bad_rating_unrectified",
        "complaint_overdue",
        "notice_overdue",
        "unlisted_item",
    ]
    .iter()
    .chain(more_rules)
    {
        assert!(planned.iter().any(|(_, r)| r == rule), "no {rule} in the simulated stream");
    }
    let mut checked = 0;
    for t in truth.values().filter(|t| t.status == "completed") {
        let v = engine.case_view(&t.case_id).unwrap_or_else(|| panic!("{} not in memory", t.case_id));
        let s = &v.summary;
        assert_eq!(s.due_date.map(|d| d.to_string()), t.due_date, "{}", t.case_id);
        assert_eq!((s.used_days, s.on_time, s.early), (t.used_days, t.on_time, t.early), "{}", t.case_id);
        assert_eq!(s.stopped_days, t.stopped_days, "{}", t.case_id);
        checked += 1;
    }
    assert!(checked > cases * 8 / 10, "{checked}");

    // Joint cases: the sub-cases the simulator completed after their
    // parent's due date are exactly those the parent's row names.
    let mut late_by_parent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in truth.values() {
        if let (Some(p), true) = (&t.parent_case_id, t.made_parent_late) {
            late_by_parent.entry(p.clone()).or_default().push(t.case_id.clone());
        }
    }
    let mut parents = 0;
    for t in truth.values().filter(|t| t.kind == "joint" && t.status == "completed") {
        let Some(v) = engine.case_view(&t.case_id) else { continue };
        let mut want = late_by_parent.get(&t.case_id).cloned().unwrap_or_default();
        want.sort();
        let got = v.late_sub_cases.map(|l| l.case_ids).unwrap_or_default();
        assert_eq!(got, want, "late sub-cases of {}", t.case_id);
        parents += 1;
    }
    assert!(parents > 10 && !late_by_parent.is_empty(), "{parents} joint parents, {} late", late_by_parent.len());
}

#[test]
#[ignore]
fn show_case() {
    let rd = refdata(&std::fs::read_to_string(root().join("config/catalog.csv")).unwrap());
    let opts = SynthOptions { cases: 3000, seed: 11, days: 150, ..SynthOptions::default() };
    let want = std::env::var("CASE").unwrap();
    for item in Simulator::new(&rd, zone(), opts) {
        match item {
            SimItem::Line(l) if l.contains(&format!("\"{want}\"")) => println!("{l}"),
            SimItem::Truth(t) if t.case_id == want => println!("{t:?}"),
            _ => {}
        }
    }
}
