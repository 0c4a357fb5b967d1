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
    run_with(rd, lines, |i, engine| {
        if split == Some(i) {
            let snap = engine.snapshot();
            *engine = Engine::restore(rd.clone(), zone(), RulesConfig::default(), &snap).unwrap();
            assert_eq!(engine.snapshot(), snap, "snapshot of a restored engine is identical");
        }
    })
}

/// [`run`], calling `before` with each line's index before the line.
fn run_with(rd: &Arc<RefData>, lines: &[String], mut before: impl FnMut(usize, &mut Engine)) -> (Vec<String>, Engine) {
    // Items outside the catalogue (the simulator injects them) followed,
    // as the shells do by default.
    let decoder = Decoder::new(rd.clone(), zone(), "k").with_unlisted_items(RulesConfig::default().unlisted_item);
    let mut engine = Engine::new(rd.clone(), zone(), RulesConfig::default());
    let mut out = Vec::new();
    let mut eff = Vec::new();
    let mut last = i64::MIN;
    for (i, line) in lines.iter().enumerate() {
        before(i, &mut engine);
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

#[test]
fn a_json_snapshot_restores_the_state_its_binary_snapshot_holds_and_a_corrupt_one_is_refused() {
    // The binary snapshot (format 2) holds what the JSON one (format 1,
    // written by earlier versions) held: either restores the same state.
    let rd = shipped();
    let lines = stream(11, 60, 0.05, 0.02, 0.01);
    let (_, engine) = run(&rd, &lines[..lines.len() / 2], None);
    let bin = engine.snapshot();
    let json = engine.snapshot_json();
    assert!(bin.len() * 2 < json.len(), "binary {} bytes against JSON {}", bin.len(), json.len());
    let restore = |b: &[u8]| Engine::restore(rd.clone(), zone(), RulesConfig::default(), b);
    let from_json = restore(&json).unwrap();
    assert_eq!(from_json.snapshot(), bin);
    assert_eq!(restore(&bin).unwrap().snapshot_json(), json);
    // Cut or damaged, a snapshot is an error, never a panic or a state
    // silently short of cases.
    for cut in [0, 8, 12, bin.len() / 2, bin.len() - 1] {
        assert!(restore(&bin[..cut]).is_err(), "cut at {cut}");
    }
    let mut other = bin.clone();
    other[8] = 9;
    let err = restore(&other).err().expect("format 9 is refused").to_string();
    assert!(err.contains("format 9"), "{err}");
    for i in (12..bin.len()).step_by(97) {
        let mut bad = bin.clone();
        bad[i] ^= 0xa5;
        let err = restore(&bad).err().expect("a damaged snapshot is refused").to_string();
        assert!(err.contains("checksum"), "{err}");
    }
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
        let shuffled = delay_some(&in_order, shuffle);
        let (a, _) = run(&rd, &in_order, None);
        let (b, _) = run(&rd, &shuffled, None);
        prop_assert!(a.iter().all(|e| !e.starts_with("dead")));
        prop_assert_eq!(live(&a), live(&b));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::support::proptest_cases(24), .. ProptestConfig::default() })]

    /// The same with the shipped steps: the step clock (step_overdue, its
    /// `#2`, its retraction by a late step_completed) does not depend on
    /// arrival order either; nor do the joint parents' late sub-cases.
    #[test]
    fn arrival_order_does_not_change_the_live_alerts_with_steps(seed in any::<u64>(), shuffle in any::<u64>()) {
        let mut rd = (*shipped()).clone();
        rd.steps = jiancha::reference::Steps::load(&root().join("config/steps.csv"), &rd.catalog).unwrap();
        let rd = Arc::new(rd);
        let opts = SynthOptions {
            cases: 80,
            seed,
            start: chrono::NaiveDate::from_ymd_opt(2026, 2, 2).unwrap(),
            days: 25,
            late_rate: 0.0,
            duplicate_rate: 0.0,
            bad_line_rate: 0.0,
            ..SynthOptions::default()
        };
        let in_order = generate(&rd, &zone(), &opts);
        let shuffled = delay_some(&in_order, shuffle);
        let (a, ea) = run(&rd, &in_order, None);
        let (b, eb) = run(&rd, &shuffled, None);
        prop_assert!(a.iter().all(|e| !e.starts_with("dead")));
        prop_assert_eq!(live(&a), live(&b));
        let parents: Vec<String> = in_order
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["parent_case_id"].as_str().map(str::to_string))
            .collect();
        // (Where both engines still hold the sub-cases: when a closed case
        // leaves memory depends on when its last wake-up ran.)
        for p in parents {
            let x = ea.case_view(&p).and_then(|v| v.late_sub_cases);
            let y = eb.case_view(&p).and_then(|v| v.late_sub_cases);
            if let (Some(x), Some(y)) = (x, y) {
                prop_assert_eq!(x, y, "late sub-cases of {}", p);
            }
        }
    }
}

/// Delays a quarter of the events by up to 48 h of event time (well inside
/// the 168 h hold); events of one case at one instant share a delay.
fn delay_some(in_order: &[String], shuffle: u64) -> Vec<String> {
    let mut keyed: Vec<(i64, usize, String)> = Vec::new();
    for (i, l) in in_order.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let at = jiancha::time::parse_rfc3339(v["occurred_at"].as_str().unwrap()).unwrap();
        let mut r = Rng::new(shuffle ^ xxhash_rust::xxh3::xxh3_64(format!("{}{}", v["case_id"], at).as_bytes()));
        let delay = if r.chance(0.25) { r.below(48 * 3600) as i64 * 1000 } else { 0 };
        keyed.push((at + delay, i, l.clone()));
    }
    keyed.sort();
    keyed.into_iter().map(|k| k.2).collect()
}

/// Feeds the same lines to an engine that continues each case's walk and to
/// one that walks every case from its first event each time; after every
/// line (every prefix of every case) their effects and the views of the
/// cases they judged must be the same. Returns how many lines were compared.
fn incremental_against_from_scratch(rd: &Arc<RefData>, lines: &[String]) -> Result<usize, TestCaseError> {
    let decoder = Decoder::new(rd.clone(), zone(), "k");
    let mut inc = Engine::new(rd.clone(), zone(), RulesConfig::default());
    let mut full = Engine::new(rd.clone(), zone(), RulesConfig::default());
    full.set_incremental(false);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (i, line) in lines.iter().enumerate() {
        let Ok(ev) = decoder.decode(line.as_bytes()) else { continue };
        let at = ev.occurred_at;
        let oa = inc.apply(ev.clone(), i as u64, &mut a);
        let ob = full.apply(ev, i as u64, &mut b);
        prop_assert_eq!(oa, ob, "outcome of line {}", i);
        if oa == Outcome::Applied {
            inc.advance_watermark(at, &mut a);
            full.advance_watermark(at, &mut b);
        }
        prop_assert_eq!(&a, &b, "effects after line {}", i);
        let (va, vb) = (inc.take_changed(), full.take_changed());
        prop_assert_eq!(format!("{va:?}"), format!("{vb:?}"), "cases judged after line {}", i);
        a.clear();
        b.clear();
    }
    let end = inc.watermark().unwrap_or(0) + 40 * 86_400_000;
    inc.advance_watermark(end, &mut a);
    full.advance_watermark(end, &mut b);
    prop_assert_eq!(&a, &b, "effects at the end");
    prop_assert_eq!(format!("{:?}", inc.take_changed()), format!("{:?}", full.take_changed()));
    Ok(lines.len())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::support::proptest_cases(24), .. ProptestConfig::default() })]

    #[test]
    fn incremental_judgement_equals_judging_from_the_first_event_on_every_prefix(
        seed in any::<u64>(),
        shuffle in any::<u64>(),
        late in 0.0f64..0.2,
    ) {
        let rd = shipped();
        let lines = delay_some(&stream(seed, 60, late, 0.02, 0.0), shuffle);
        incremental_against_from_scratch(&rd, &lines)?;
    }
}

/// In order, an event continues its open case's judgement: a case of 52
/// events walks 1 + 2 + 3 + 4 events until it keeps its walk (at 4 events),
/// then one an event: 58, not 1 + 2 + … + 52. (A closed case walks again
/// when a rating comes: it keeps no walk.)
#[test]
fn regression_every_event_walked_its_case_from_the_first_event() {
    let rd = shipped();
    let item = rd.catalog.items().iter().find(|i| i.promised_days >= 20).unwrap().item_code.clone();
    let mut lines = Vec::new();
    for (i, kind) in ["submitted", "accepted"].into_iter().chain(std::iter::repeat_n("step_completed", 50)).enumerate()
    {
        lines.push(format!(
            r#"{{"event_id":"E{i}","case_id":"C1","type":"{kind}","occurred_at":"2026-03-02T09:{:02}:00+08:00","source":"center","region":"220421","department":"tax","item_code":"{item}","applicant":"P1","step":"review"}}"#,
            i
        ));
    }
    let walked = |incremental: bool| {
        let decoder = Decoder::new(rd.clone(), zone(), "k");
        let mut engine = Engine::new(rd.clone(), zone(), RulesConfig::default());
        engine.set_incremental(incremental);
        let mut eff = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let ev = decoder.decode(line.as_bytes()).unwrap();
            let at = ev.occurred_at;
            assert_eq!(engine.apply(ev, i as u64, &mut eff), Outcome::Applied);
            engine.advance_watermark(at, &mut eff);
        }
        engine.events_walked()
    };
    assert_eq!(walked(true), 1 + 2 + 3 + 4 + 48);
    assert_eq!(walked(false), 52 * 53 / 2);
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

/// Feeds lines `from..to` (their index is their input position) through the
/// engine with an event-time watermark; alert records out, as JSON.
fn feed(engine: &mut Engine, rd: &Arc<RefData>, lines: &[(usize, &String)]) -> Vec<String> {
    let decoder = Decoder::new(rd.clone(), zone(), "k");
    let mut eff = Vec::new();
    let mut out = Vec::new();
    for (i, line) in lines {
        if let Ok(ev) = decoder.decode(line.as_bytes()) {
            let at = ev.occurred_at;
            if engine.apply(ev, *i as u64, &mut eff) == Outcome::Applied {
                engine.advance_watermark(at, &mut eff);
            }
        }
        out.extend(eff.drain(..).filter_map(|e| match e {
            Effect::Alert(r) => Some(serde_json::to_string(&r).unwrap()),
            Effect::DeadLetter { .. } => None,
        }));
    }
    out
}

fn ids(records: &[String]) -> Vec<(String, String)> {
    records
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_str(r).unwrap();
            (v["alert_id"].as_str().unwrap().to_string(), v["state"].as_str().unwrap().to_string())
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::support::proptest_cases(24), .. ProptestConfig::default() })]

    /// A crash after a checkpoint: the records published since it are told
    /// to the restored engine (`recover_published`), and the input since the
    /// checkpoint is processed again — in the same order, or with the cases'
    /// events interleaved differently (as partitions may be after a
    /// restart). No `(alert_id, state)` is published twice, and the live
    /// alerts are those of an uninterrupted run.
    #[test]
    fn crash_after_checkpoint_publishes_nothing_twice(
        seed in any::<u64>(), cp in 0.0f64..1.0, crash in 0.0f64..1.0, reorder in any::<bool>()
    ) {
        let rd = shipped();
        let lines = stream(seed, 60, 0.05, 0.02, 0.0);
        let all: Vec<(usize, &String)> = lines.iter().enumerate().collect();
        let cp = (lines.len() as f64 * cp) as usize;
        let crash = cp + ((lines.len() - cp) as f64 * crash) as usize;
        let mut whole = Engine::new(rd.clone(), zone(), RulesConfig::default());
        let reference = feed(&mut whole, &rd, &all);

        let mut first = Engine::new(rd.clone(), zone(), RulesConfig::default());
        let mut published = feed(&mut first, &rd, &all[..cp]);
        let snap = first.snapshot();
        let lost = feed(&mut first, &rd, &all[cp..crash]);
        published.extend(lost.iter().cloned());

        let mut again = Engine::restore(rd.clone(), zone(), RulesConfig::default(), &snap).unwrap();
        for r in &lost {
            let mut rec: jiancha::alert::AlertRecord = serde_json::from_str(r).unwrap();
            rec.at_ms = jiancha::time::parse_rfc3339(&rec.at).unwrap();
            again.recover_published(&rec);
        }
        let mut rest: Vec<(usize, &String)> = all[cp..].to_vec();
        if reorder {
            // Another interleaving, as three partitions read at different
            // paces (each partition's order kept, no partition more than
            // 48 h of event time ahead of another's head).
            let parse = |l: &str| -> Option<(String, i64)> {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                Some((v["case_id"].to_string(), jiancha::time::parse_rfc3339(v["occurred_at"].as_str()?)?))
            };
            let mut queues: Vec<std::collections::VecDeque<(i64, (usize, &String))>> = vec![Default::default(); 3];
            let mut last = i64::MIN;
            for x in rest.drain(..) {
                let (case, at) = parse(x.1).unwrap_or_else(|| (String::new(), last));
                last = at;
                queues[(xxhash_rust::xxh3::xxh3_64(case.as_bytes()) % 3) as usize].push_back((at, x));
            }
            let mut r = Rng::new(seed);
            while queues.iter().any(|q| !q.is_empty()) {
                let min = queues.iter().filter_map(|q| q.front().map(|h| h.0)).min().unwrap();
                let ok: Vec<usize> =
                    (0..3).filter(|&k| queues[k].front().is_some_and(|h| h.0 <= min + 48 * 3_600_000)).collect();
                let k = ok[r.below(ok.len() as u64) as usize];
                rest.push(queues[k].pop_front().unwrap().1);
            }
        }
        published.extend(feed(&mut again, &rd, &rest));
        let mut eff = Vec::new();
        prop_assert_eq!(again.settle_recovered(&mut eff), 0);
        published.extend(eff.into_iter().filter_map(|e| match e {
            Effect::Alert(r) => Some(serde_json::to_string(&r).unwrap()),
            Effect::DeadLetter { .. } => None,
        }));
        let keys = ids(&published);
        let unique: BTreeSet<&(String, String)> = keys.iter().collect();
        prop_assert_eq!(unique.len(), keys.len(), "a record published twice");
        if !reorder {
            let a: BTreeSet<(String, String)> = ids(&reference).into_iter().collect();
            let b: BTreeSet<(String, String)> = keys.into_iter().collect();
            prop_assert_eq!(a, b);
        }
        let (a, b) = (live(&reference), live(&published));
        prop_assert!(a == b, "only uninterrupted: {:?}\nonly after the crash: {:?}", a.difference(&b).collect::<Vec<_>>(), b.difference(&a).collect::<Vec<_>>());
    }
}

/// The cases split over `parts` engines by a hash of their id, as Kafka
/// partitions split them, each engine telling the others its facts
/// (acceptances, joint cases' `center` events) right after each event;
/// every engine at the same watermark. Alert records out, as JSON.
fn partitioned(rd: &Arc<RefData>, lines: &[String], parts: usize) -> Vec<String> {
    partitioned_with(rd, lines, parts, |_, _| {}).0
}

/// [`partitioned`], calling `before` with each line's index before the
/// line; the engines at the end.
fn partitioned_with(
    rd: &Arc<RefData>,
    lines: &[String],
    parts: usize,
    mut before: impl FnMut(usize, &mut [Engine]),
) -> (Vec<String>, Vec<Engine>) {
    let decoder = Decoder::new(rd.clone(), zone(), "k");
    let mut engines: Vec<Engine> = (0..parts)
        .map(|_| {
            let mut e = Engine::new(rd.clone(), zone(), RulesConfig::default());
            e.share_facts();
            e
        })
        .collect();
    let mut eff = Vec::new();
    let mut out = Vec::new();
    let mut wm = i64::MIN;
    let exchange = |engines: &mut Vec<Engine>, eff: &mut Vec<Effect>| loop {
        let mut any = false;
        for p in 0..engines.len() {
            for fact in engines[p].take_shared() {
                any = true;
                for (q, e) in engines.iter_mut().enumerate() {
                    if q != p {
                        e.remote_fact(&fact, eff);
                    }
                }
            }
        }
        if !any {
            break;
        }
    };
    for (i, line) in lines.iter().enumerate() {
        before(i, &mut engines);
        if let Ok(ev) = decoder.decode(line.as_bytes()) {
            let p = (xxhash_rust::xxh3::xxh3_64(ev.case_id.as_bytes()) % parts as u64) as usize;
            let at = ev.occurred_at;
            if engines[p].apply(ev, i as u64, &mut eff) == Outcome::Applied {
                wm = wm.max(at);
            }
            exchange(&mut engines, &mut eff);
            for e in engines.iter_mut() {
                e.advance_watermark(wm, &mut eff);
            }
            exchange(&mut engines, &mut eff);
        }
        out.extend(eff.drain(..).filter_map(|e| match e {
            Effect::Alert(r) => Some(serde_json::to_string(&r).unwrap()),
            Effect::DeadLetter { .. } => None,
        }));
    }
    (out, engines)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::support::proptest_cases(16), .. ProptestConfig::default() })]

    /// Engines of several partitions that share their facts raise the same
    /// live alerts as one engine, `dual_intake` and sub-cases of joint cases
    /// across partitions included.
    #[test]
    fn partitions_sharing_facts_equal_one_engine(seed in any::<u64>(), parts in 2usize..5) {
        let rd = shipped();
        let opts = SynthOptions {
            cases: 80,
            seed,
            start: chrono::NaiveDate::from_ymd_opt(2026, 2, 2).unwrap(),
            days: 25,
            rates: jiancha::synth::AnomalyRates { dual_intake: 0.15, ..Default::default() },
            late_rate: 0.0,
            duplicate_rate: 0.0,
            bad_line_rate: 0.0,
            ..SynthOptions::default()
        };
        let lines = generate(&rd, &zone(), &opts);
        let mut one = Engine::new(rd.clone(), zone(), RulesConfig::default());
        let all: Vec<(usize, &String)> = lines.iter().enumerate().collect();
        let single = feed(&mut one, &rd, &all);
        let split = partitioned(&rd, &lines, parts);
        prop_assert!(single.iter().any(|r| r.contains("dual_intake")));
        prop_assert_eq!(live(&single), live(&split));
    }
}

/// A snapshot and the deltas taken after it, as a checkpoint store keeps
/// them.
#[derive(Default)]
struct Store {
    base: Vec<u8>,
    deltas: Vec<Vec<u8>>,
    cases_written: usize,
}

impl Store {
    /// Takes the base at `i == base_at` (tracking from there) and a delta
    /// every `every` lines after it.
    fn cut(&mut self, i: usize, base_at: usize, every: usize, e: &mut Engine) {
        if i == base_at {
            self.base = e.snapshot();
            e.track_changes();
        } else if i > base_at && (i - base_at).is_multiple_of(every) {
            let d = e.take_delta().expect("changes are tracked");
            self.cases_written += d.cases();
            self.deltas.push(d.encode());
        }
    }

    /// A delta, then every case left to history (a delta again), then the
    /// state restored from the store: its snapshot must be the engine's.
    fn check(&mut self, rd: &Arc<RefData>, e: &mut Engine) -> Result<(), TestCaseError> {
        for days in [0, 100, 200] {
            let wm = e.watermark().unwrap_or(0);
            e.advance_watermark(wm + days * 86_400_000, &mut Vec::new());
            let d = e.take_delta().expect("changes are tracked");
            self.cases_written += d.cases();
            self.deltas.push(d.encode());
        }
        prop_assert_eq!(e.cases_in_memory(), 0);
        let deltas = self.deltas.iter().map(|d| d.as_slice());
        let back = Engine::restore_with_deltas(rd.clone(), zone(), RulesConfig::default(), &self.base, deltas).unwrap();
        prop_assert!(back.snapshot() == e.snapshot(), "the state restored from the deltas differs");
        let mut compacted = Vec::new();
        jiancha::engine::delta::compact(&self.base, self.deltas.iter().map(|d| d.as_slice()), &mut compacted).unwrap();
        prop_assert!(compacted == e.snapshot(), "the compacted snapshot differs");
        // A damaged delta is refused, never applied.
        let mut bad = self.deltas[0].clone();
        let n = bad.len();
        bad[n / 2] ^= 1;
        let err = Engine::restore_with_deltas(rd.clone(), zone(), RulesConfig::default(), &self.base, [&bad[..]]);
        prop_assert!(err.err().is_some_and(|e| e.to_string().contains("checksum")));
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: crate::support::proptest_cases(24), .. ProptestConfig::default() })]

    /// A snapshot and the deltas taken after it, at any spacing, give the
    /// state byte for byte — held, duplicate and dead-lettered events,
    /// cases leaving memory and the watermark's timers included — and each
    /// delta writes only the cases that changed.
    #[test]
    fn a_snapshot_and_its_deltas_restore_the_state_byte_for_byte(
        seed in any::<u64>(), base_at in 0.0f64..0.5, every in 1usize..200,
    ) {
        let rd = shipped();
        let lines = stream(seed, 60, 0.05, 0.02, 0.01);
        let base_at = (lines.len() as f64 * base_at) as usize;
        let mut store = Store::default();
        let (_, mut e) = run_with(&rd, &lines, |i, e| store.cut(i, base_at, every, e));
        store.check(&rd, &mut e)?;
        // Not the state again each time: nothing changed, nothing written.
        prop_assert!(store.cases_written > 0);
        prop_assert_eq!(e.take_delta().unwrap().cases(), 0);
    }

    /// The same across partitions sharing facts: what an engine learnt
    /// from the others, and shared with them, is in its deltas.
    #[test]
    fn deltas_keep_what_partitions_shared(seed in any::<u64>(), every in 1usize..100) {
        let rd = shipped();
        let opts = SynthOptions {
            cases: 60,
            seed,
            start: chrono::NaiveDate::from_ymd_opt(2026, 2, 2).unwrap(),
            days: 25,
            rates: jiancha::synth::AnomalyRates { dual_intake: 0.15, ..Default::default() },
            ..SynthOptions::default()
        };
        let lines = generate(&rd, &zone(), &opts);
        let mut stores: Vec<Store> = (0..3).map(|_| Store::default()).collect();
        let (_, mut engines) = partitioned_with(&rd, &lines, 3, |i, es| {
            for (s, e) in stores.iter_mut().zip(es.iter_mut()) {
                s.cut(i, 0, every, e);
            }
        });
        for (s, e) in stores.iter_mut().zip(engines.iter_mut()) {
            s.check(&rd, e)?;
        }
    }
}

/// A case of another partition is remembered while a case of this engine
/// can still be judged against it, and forgotten once it is as old as a
/// closed case kept in memory (regression: the facts of other partitions
/// were kept for ever).
#[test]
fn facts_of_other_partitions_are_forgotten_when_no_case_can_need_them() {
    use jiancha::engine::{AcceptanceFact, SharedFact};
    let rd = shipped();
    let decoder = Decoder::new(rd.clone(), zone(), "k");
    let mut e = Engine::new(rd.clone(), zone(), RulesConfig::default());
    e.share_facts();
    let mut eff = Vec::new();
    let at = |s: &str| jiancha::time::parse_rfc3339(s).unwrap();
    let applicant = jiancha::privacy::hex(&jiancha::privacy::ApplicantHasher::new("k").hash("p1"));
    let fact = SharedFact::Acceptance {
        case_id: "REMOTE".into(),
        acceptance: Some(AcceptanceFact {
            applicant,
            item_code: "TAX-003".into(),
            at: at("2026-03-02T10:00:00+08:00"),
            source: "center".into(),
            withdrawn_at: None,
        }),
    };
    e.remote_fact(&fact, &mut eff);
    assert_eq!(e.remote_facts(), 1);
    let line = r#"{"event_id":"l1","case_id":"LOCAL","type":"accepted","occurred_at":"2026-03-10T10:00:00+08:00","source":"tax-sys","region":"220421","department":"tax","item_code":"TAX-003","applicant":"p1"}"#;
    e.apply(decoder.decode(line.as_bytes()).unwrap(), 1, &mut eff);
    let raised: Vec<String> = eff
        .drain(..)
        .filter_map(|x| match x {
            Effect::Alert(r) => Some(r.alert_id),
            _ => None,
        })
        .collect();
    assert!(raised.contains(&"LOCAL/dual_intake".to_string()), "{raised:?}");
    // The local case stays open: the remote acceptance is still needed.
    e.advance_watermark(at("2026-09-01T00:00:00+08:00"), &mut eff);
    assert_eq!(e.remote_facts(), 1);
    assert!(!eff.iter().any(|x| matches!(x, Effect::Alert(r) if r.state == jiancha::alert::AlertState::Retracted && r.rule == jiancha::alert::Rule::DualIntake)));
    // Once the local case is closed and gone, so is the remote one, also
    // in an engine restored from a snapshot (which rebuilds the order in
    // which remote acceptances are looked at for forgetting).
    let mut e = Engine::restore(rd.clone(), zone(), RulesConfig::default(), &e.snapshot()).unwrap();
    let done = r#"{"event_id":"l2","case_id":"LOCAL","type":"completed","occurred_at":"2026-09-01T10:00:00+08:00","source":"tax-sys","result":"approved"}"#;
    e.apply(decoder.decode(done.as_bytes()).unwrap(), 2, &mut eff);
    e.advance_watermark(at("2026-12-31T00:00:00+08:00"), &mut eff);
    assert_eq!(e.cases_in_memory(), 0);
    assert_eq!(e.remote_facts(), 0);
}

/// Regression (two instances, one killed): a record published by an
/// instance that then died, for a case that the new owner judges
/// differently, was never retracted when the case closed and left memory
/// before the recovered records were settled (the new owner read its
/// partition for a long while before reaching the end).
#[test]
fn regression_recovered_record_of_a_case_that_left_memory_before_settling_is_retracted() {
    let rd = shipped();
    let line = |id: &str, ty: &str, at: &str| {
        let result = if ty == "completed" { r#","result":"approved""# } else { "" };
        format!(
            r#"{{"event_id":"{id}","case_id":"X1","type":"{ty}","occurred_at":"{at}","source":"center","region":"220421","department":"tax","item_code":"TAX-003","applicant":"a"{result}}}"#
        )
    };
    let lines = [
        line("x1", "submitted", "2026-03-02T09:00:00+08:00"),
        line("x2", "accepted", "2026-03-02T09:10:00+08:00"),
        line("x3", "completed", "2026-03-03T10:00:00+08:00"),
    ];
    let all: Vec<(usize, &String)> = lines.iter().enumerate().collect();
    // The dead instance published an unregistered_case this input never
    // gives (all its events come from the centre).
    let mut rec: jiancha::alert::AlertRecord = serde_json::from_value(serde_json::json!({
        "alert_id": "X1/unregistered_case", "rule": "unregistered_case", "level": "red", "state": "firing",
        "at": "2026-03-03T09:00:00+08:00", "case_id": "X1", "region": "220421", "department": "tax",
        "window": null, "item_code": "TAX-003", "due_date": null, "retracted": false, "detail": {}
    }))
    .unwrap();
    rec.at_ms = jiancha::time::parse_rfc3339(&rec.at).unwrap();
    let mut engine = Engine::new(rd.clone(), zone(), RulesConfig::default());
    engine.share_facts(); // as `run` does
    engine.recover_published(&rec);
    let mut out = feed(&mut engine, &rd, &all);
    // Half a year passes before the partition has been read again.
    let mut eff = Vec::new();
    engine.advance_watermark(jiancha::time::parse_rfc3339("2026-09-01T00:00:00+08:00").unwrap(), &mut eff);
    assert_eq!(engine.settle_recovered(&mut eff), 0);
    out.extend(eff.into_iter().filter_map(|e| match e {
        Effect::Alert(r) => Some(serde_json::to_string(&r).unwrap()),
        Effect::DeadLetter { .. } => None,
    }));
    let got: Vec<(String, String)> = ids(&out).into_iter().filter(|(id, _)| id.contains("unregistered")).collect();
    assert_eq!(got, [("X1/unregistered_case".to_string(), "retracted".to_string())]);
    // And then the case leaves memory.
    let mut eff = Vec::new();
    engine.advance_watermark(jiancha::time::parse_rfc3339("2026-12-01T00:00:00+08:00").unwrap(), &mut eff);
    assert_eq!(engine.cases_in_memory(), 0);
}
