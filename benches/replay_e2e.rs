//! End-to-end replay benchmark: `cargo bench --bench replay_e2e [-- EVENTS]`.
//!
//! Three figures, each from a file through decode → engine → `alerts.jsonl`,
//! `dead-letter.jsonl` and history:
//! 1. the simulator's stream — `jiancha simulate --cases 300000 --seed 5`,
//!    about 1.14 M events with late, repeated and bad lines
//!    (`BENCH_SIM_CASES` changes the number of cases) — replayed in this
//!    process, then by the `jiancha` binary for its wall time and peak RSS;
//! 2. a uniform synthetic stream (default 1,000,000 events, `EVENTS`), with
//!    anomalies of every rule;
//! 3. 1,000,000 open cases (submitted + accepted): the engine's heap per open
//!    case with a counting allocator, the size and the write and restore
//!    times of their snapshot (binary, and the JSON of format 1), the
//!    `jiancha replay` process's peak RSS for them (`--until` four weeks
//!    later), and what a checkpoint's delta of 10,000 and of 990,000
//!    changed cases costs to copy (on `run`'s loop) and to encode.
//!
//! `BENCH_KEEP=DIR` keeps the generated inputs for profiling `jiancha replay`.

use jiancha::config::Config;
use jiancha::engine::Engine;
use jiancha::event::Decoder;
use jiancha::reference::RefData;
use jiancha::replay::{run, ReplayOptions};
use jiancha::synth::{generate, SimItem, Simulator, SynthOptions};
use jiancha::time::Zone;
use mimalloc::MiMalloc as System;
use std::alloc::{GlobalAlloc, Layout};
use std::io::Write;
use std::path::{Path, PathBuf};
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
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("BENCH_KEEP").map(PathBuf::from).unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();

    // 1. The simulator's stream.
    let sim_cases: usize = std::env::var("BENCH_SIM_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300_000);
    let sim = dir.join("simulated.jsonl");
    let t = std::time::Instant::now();
    let opts = SynthOptions { cases: sim_cases, seed: 5, ..SynthOptions::default() };
    let n = write_lines(
        &sim,
        Simulator::new(&rd, zone.clone(), opts).filter_map(|i| match i {
            SimItem::Line(l) => Some(l),
            SimItem::Truth(_) => None,
        }),
    );
    println!("simulator: {n} events of {sim_cases} cases (seed 5) in {:.1} s", t.elapsed().as_secs_f64());
    replay_here("simulator", &cfg, &rd, &sim, &dir.join("out-sim"));
    replay_child("simulator", &sim, &dir.join("out-sim-bin"), None);

    // 2. The uniform stream.
    let input = dir.join("events.jsonl");

    let t = std::time::Instant::now();
    let opts = SynthOptions {
        cases: events * 10 / 34,
        start: chrono::NaiveDate::from_ymd_opt(2024, 1, 2).unwrap(),
        days: 950,
        ..SynthOptions::default()
    };
    let n = write_lines(&input, generate(&rd, &zone, &opts).into_iter());
    let bytes = std::fs::metadata(&input).unwrap().len();
    println!("uniform: {n} events ({:.0} MB) in {:.1} s", bytes as f64 / 1e6, t.elapsed().as_secs_f64());
    replay_here("uniform", &cfg, &rd, &input, &dir.join("out-uniform"));

    // 3. Memory per open case: 1,000,000 accepted, never completed cases.
    let decoder = Decoder::new(rd.clone(), zone.clone(), "bench-key");
    let items: Vec<&str> =
        rd.catalog.items().iter().filter(|i| i.promised_days > 3).map(|i| i.item_code.as_str()).collect();
    let open = 1_000_000usize;
    let line = |i: usize, k: usize| {
        let t = format!("2026-03-{:02}T{:02}:{:02}:00+08:00", 2 + (i % 20), 9 + (i % 8), i % 60);
        let kind = ["submitted", "accepted"][k];
        format!(
            r#"{{"event_id":"E{i}-{k}","case_id":"CASE-{i:08}","type":"{kind}","occurred_at":"{t}","source":"center","region":"220421","department":"tax","window":"W{w:02}","item_code":"{item}","applicant":"P{a:09}"}}"#,
            w = i % 20,
            item = items[i % items.len()],
            a = i * 7 % 900_000,
        )
    };
    // The process first: a child's peak RSS (ru_maxrss) counts this
    // process's resident memory at the fork, so it runs before this one
    // holds a million cases.
    let file = dir.join("open.jsonl");
    write_lines(&file, (0..open).flat_map(|i| [line(i, 0), line(i, 1)]));
    replay_child("open cases", &file, &dir.join("out-open"), Some("2026-04-20"));
    let before = LIVE.load(Relaxed);
    let mut engine = Engine::new(rd.clone(), zone.clone(), cfg.rules.clone());
    let mut eff = Vec::new();
    for i in 0..open {
        for k in 0..2 {
            let ev = decoder.decode(line(i, k).as_bytes()).unwrap();
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
    // The snapshot of those cases, binary and (as before) JSON, written to
    // a file through a buffer as a checkpoint is, then read and restored.
    for (name, json) in [("binary", false), ("JSON", true)] {
        let path = dir.join(format!("snapshot-{name}"));
        let t = std::time::Instant::now();
        let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).unwrap());
        if json {
            f.write_all(&engine.snapshot_json()).unwrap();
        } else {
            engine.write_snapshot(&mut f).unwrap();
        }
        f.into_inner().unwrap().sync_all().unwrap();
        let write = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let snap = std::fs::read(&path).unwrap();
        let back = Engine::restore(rd.clone(), zone.clone(), cfg.rules.clone(), &snap).unwrap();
        let read = t.elapsed().as_secs_f64();
        assert_eq!(back.open_cases(), engine.open_cases());
        println!(
            "snapshot {name}: {} MB ({:.0} bytes per open case), written in {write:.2} s, read and restored in {read:.2} s",
            snap.len() / 1_000_000,
            snap.len() as f64 / engine.open_cases() as f64
        );
        drop(back);
        std::fs::remove_file(&path).unwrap();
    }
    // A checkpoint of `run` cuts what changed since the last one: the copy
    // is made on the consuming loop, its encoding on the writer thread.
    // 10,000 changed cases (live traffic between checkpoints) and then the
    // other 990,000 (a bulk load), each completed.
    engine.track_changes();
    for (from, to) in [(0, 10_000), (10_000, open)] {
        for i in from..to {
            let l = format!(
                r#"{{"event_id":"E{i}-2","case_id":"CASE-{i:08}","type":"completed","occurred_at":"2026-03-25T10:00:00+08:00","source":"center","result":"approved"}}"#
            );
            engine.apply(decoder.decode(l.as_bytes()).unwrap(), (open * 2 + i) as u64, &mut eff);
            eff.clear();
        }
        // As run's history flush does before each cut.
        engine.take_changed_with(|_| {});
        let t = std::time::Instant::now();
        let delta = engine.take_delta().unwrap();
        let copy = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let bytes = delta.encode();
        let encode = t.elapsed().as_secs_f64();
        println!(
            "delta of {} changed cases: copied in {:.0} ms ({:.2} µs a case), encoded in {:.0} ms, {} MB",
            delta.cases(),
            copy * 1000.0,
            copy * 1e6 / delta.cases() as f64,
            encode * 1000.0,
            bytes.len() / 1_000_000
        );
    }
    drop(engine);
}

/// Writes lines to a file; returns how many.
fn write_lines(path: &Path, lines: impl Iterator<Item = String>) -> usize {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut n = 0;
    for l in lines {
        writeln!(f, "{l}").unwrap();
        n += 1;
    }
    f.flush().unwrap();
    n
}

/// Replays a file in this process and prints the rate.
fn replay_here(what: &str, cfg: &Config, rd: &Arc<RefData>, file: &Path, out: &Path) {
    let opts = ReplayOptions { out: out.to_path_buf(), files: vec![file.to_path_buf()], until: None, progress: false };
    let s = run(cfg, rd.clone(), &opts).unwrap();
    println!(
        "replay {what}: {} events in {:.2} s = {:.0} events/s ({} applied, {} duplicates, {} dead letters, {} alerts fired)",
        s.read,
        s.seconds,
        s.read as f64 / s.seconds,
        s.applied,
        s.duplicates,
        s.dead_lettered.values().sum::<u64>(),
        s.firing.values().sum::<u64>()
    );
}

/// Runs `jiancha replay` on a file (in the repository, so it reads the
/// shipped configuration) and prints its wall time, CPU time and peak RSS
/// (the larger of its own and this process's at the fork: call it while
/// this process is small).
fn replay_child(what: &str, file: &Path, out: &Path, until: Option<&str>) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_jiancha"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).arg("replay").arg(file).arg("--out").arg(out);
    if let Some(u) = until {
        cmd.args(["--until", u]);
    }
    let t = std::time::Instant::now();
    // Reaped by wait4 below, which gives this child's own resource use
    // (std's wait does not).
    #[allow(clippy::zombie_processes)]
    let child = cmd.stdout(std::process::Stdio::null()).spawn().unwrap();
    let (status, ru) = unsafe {
        // SAFETY: wait4 only writes the status and the struct it is given.
        let mut ru: libc::rusage = std::mem::zeroed();
        let mut status = 0;
        let r = libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut ru);
        assert_eq!(r, child.id() as libc::pid_t, "wait4");
        (status, ru)
    };
    let wall = t.elapsed().as_secs_f64();
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "jiancha replay failed: {status}");
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    println!(
        "jiancha replay {what}: {wall:.2} s wall, {:.2} s CPU, peak RSS {} MB",
        secs(ru.ru_utime) + secs(ru.ru_stime),
        ru.ru_maxrss / 1024
    );
}
