//! End-to-end replay benchmark: `cargo bench --bench replay_e2e [-- EVENTS]`.
//!
//! Generates a synthetic stream (default 1,000,000 events) with the shipped
//! catalogue and calendar, replays it from a file through decode → engine →
//! alerts.jsonl / dead-letter.jsonl, and reports events/s. Then measures the
//! engine's heap per open case with a counting allocator: once at the end of
//! the replay, and once for 1,000,000 cases left open (submitted + accepted).

use jiancha::config::Config;
use jiancha::engine::Engine;
use jiancha::event::Decoder;
use jiancha::reference::RefData;
use jiancha::replay::{run, ReplayOptions};
use jiancha::synth::{generate, SynthOptions};
use jiancha::time::Zone;
use mimalloc::MiMalloc as System;
use std::alloc::{GlobalAlloc, Layout};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::sync::Arc;

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn main() {
    let events: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cfg = Config::default();
    let rd = Arc::new(
        RefData::load(
            &root.join("config/catalog.csv"),
            &root.join("config/calendar"),
            &root.join("config/regions.csv"),
        )
        .expect("shipped reference data"),
    );
    let zone = Zone::new("Asia/Shanghai").unwrap();
    let dir = tempfile::tempdir().unwrap();
    // BENCH_KEEP=FILE keeps the generated input for profiling `jiancha replay`.
    let input =
        std::env::var_os("BENCH_KEEP").map(std::path::PathBuf::from).unwrap_or_else(|| dir.path().join("events.jsonl"));

    let t = std::time::Instant::now();
    let opts = SynthOptions {
        cases: events * 10 / 34,
        start: chrono::NaiveDate::from_ymd_opt(2024, 1, 2).unwrap(),
        days: 950,
        ..SynthOptions::default()
    };
    let lines = generate(&rd, &zone, &opts);
    let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
    for l in &lines {
        writeln!(f, "{l}").unwrap();
    }
    f.flush().unwrap();
    let bytes = std::fs::metadata(&input).unwrap().len();
    println!("generated {} events ({:.0} MB) in {:.1} s", lines.len(), bytes as f64 / 1e6, t.elapsed().as_secs_f64());
    drop(lines);

    let out = dir.path().join("out");
    let s = run(&cfg, rd.clone(), &ReplayOptions { out, files: vec![input.clone()], until: None, progress: false })
        .unwrap();
    println!(
        "replay: {} events in {:.2} s = {:.0} events/s ({} applied, {} duplicates, {} dead letters, {} alerts fired)",
        s.read,
        s.seconds,
        s.read as f64 / s.seconds,
        s.applied,
        s.duplicates,
        s.dead_lettered.values().sum::<u64>(),
        s.firing.values().sum::<u64>()
    );

    // Memory per open case: 1,000,000 accepted, never completed cases.
    let decoder = Decoder::new(rd.clone(), zone.clone(), "bench-key");
    let items: Vec<&str> =
        rd.catalog.items().iter().filter(|i| i.promised_days > 3).map(|i| i.item_code.as_str()).collect();
    let open = 1_000_000usize;
    let before = LIVE.load(Relaxed);
    let mut engine = Engine::new(rd.clone(), zone.clone(), cfg.rules.clone());
    let mut eff = Vec::new();
    for i in 0..open {
        let t = format!("2026-03-{:02}T{:02}:{:02}:00+08:00", 2 + (i % 20), 9 + (i % 8), i % 60);
        for (k, kind) in [(0, "submitted"), (1, "accepted")] {
            let line = format!(
                r#"{{"event_id":"E{i}-{k}","case_id":"CASE-{i:08}","type":"{kind}","occurred_at":"{t}","source":"center","region":"220421","department":"tax","window":"W{w:02}","item_code":"{item}","applicant":"P{a:09}"}}"#,
                w = i % 20,
                item = items[i % items.len()],
                a = i * 7 % 900_000,
            );
            let ev = decoder.decode(line.as_bytes()).unwrap();
            engine.apply(ev, (i * 2 + k) as u64, &mut eff);
            eff.clear();
        }
    }
    let used = LIVE.load(Relaxed) - before;
    println!(
        "memory: {} open cases, {} pending wake-ups, {} ids remembered: {:.0} bytes per open case",
        engine.open_cases(),
        engine.pending_timers(),
        engine.remembered_ids(),
        used as f64 / engine.open_cases() as f64
    );
}
