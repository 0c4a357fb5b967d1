//! The monthly briefing over a large history, beside DuckDB on the same
//! Parquet files: `cargo bench --bench briefing [-- --cases N] [--month YYYY-MM]
//! [--region CODE] [--runs K]`.
//!
//! 1. History: the simulator's departmental systems (default 10,000,000
//!    cases) go through decode → engine → history, exactly as in a replay,
//!    into `target/bench-history/cases-N/` (kept, and reused by the next run
//!    when complete).
//! 2. DataFusion: `sql/reports/monthly-briefing.sql` through jiancha's own
//!    session, `--runs` times; the best and median seconds.
//! 3. DuckDB (PyPI `duckdb`, installed if missing): the same report file over
//!    the same Parquet files, with the same view definitions
//!    (`jiancha::sql::VIEWS`), by `benches/duckdb_briefing.py`, which also
//!    checks that both engines return the same rows.

use jiancha::config::Config;
use jiancha::engine::{Engine, Outcome};
use jiancha::event::{Decoder, Event};
use jiancha::history::History;
use jiancha::pipeline::Core;
use jiancha::reference::RefData;
use jiancha::synth::{SimItem, Simulator, SynthOptions};
use jiancha::time::Zone;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

struct Args {
    cases: usize,
    month: String,
    region: String,
    runs: usize,
}

fn args() -> Args {
    let mut a = Args { cases: 10_000_000, month: "2026-05".into(), region: String::new(), runs: 3 };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--cases" => a.cases = v().parse().expect("--cases N"),
            "--month" => a.month = v(),
            "--region" => a.region = v(),
            "--runs" => a.runs = v().parse().expect("--runs K"),
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

fn main() {
    // As `jiancha report` does (src/main.rs): mimalloc keeps the memory a
    // command frees (option 15, `mi_option_purge_delay`, -1: never purge).
    // SAFETY: sets an option of the linked allocator; -1 is a valid value.
    unsafe { mi_option_set(15, -1) };
    let a = args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cfg = Config::default();
    let rd = Arc::new(RefData::embedded());
    let zone = cfg.time.zone.clone();
    let dir = root.join("target/bench-history").join(format!("cases-{}", a.cases));
    let done = dir.join("complete");
    if done.exists() {
        println!("history: reusing {} ({})", dir.display(), std::fs::read_to_string(&done).unwrap_or_default().trim());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
        let note = generate(&cfg, rd.clone(), &zone, a.cases, &dir);
        std::fs::write(&done, &note).expect("marker");
    }
    let size = du(&dir);
    println!("history: {:.2} GB of Parquet", size as f64 / 1e9);

    let sql = std::fs::read_to_string(root.join("sql/reports/monthly-briefing.sql")).expect("report");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let mut times = Vec::new();
    let mut json = Vec::new();
    rt.block_on(async {
        let ctx = jiancha::sql::session(&dir, &rd, cfg.time.zone.name()).await.expect("session");
        export_reference(&ctx, &dir.join("reference")).await;
        let n: Vec<_> = ctx.sql("SELECT count(*) AS cases FROM cases").await.unwrap().collect().await.unwrap();
        println!("{}", datafusion::arrow::util::pretty::pretty_format_batches(&n).unwrap());
        for _ in 0..a.runs {
            let t = Instant::now();
            let b = jiancha::sql::report::run(&ctx, &sql, &a.month, &a.region).await.expect("briefing");
            times.push(t.elapsed().as_secs_f64());
            json = jiancha::sql::format::render(&b, jiancha::sql::format::Format::Json).expect("json");
        }
    });
    let expect = dir.join("datafusion-result.json");
    std::fs::write(&expect, &json).expect("result");
    let views = dir.join("views.sql");
    std::fs::write(&views, jiancha::sql::VIEWS.join(";\n")).expect("views");
    let (df_best, df_median) = best_median(&mut times);
    println!(
        "DataFusion: monthly briefing {} region {:?}: best {df_best:.3} s, median {df_median:.3} s over {} runs",
        a.month, a.region, a.runs
    );

    ensure_duckdb();
    let out = Command::new("python3")
        .arg(root.join("benches/duckdb_briefing.py"))
        .args(["--data", &dir.display().to_string(), "--month", &a.month, "--region", &a.region])
        .args(["--views", &views.display().to_string(), "--expect", &expect.display().to_string()])
        .args(["--report", &root.join("sql/reports/monthly-briefing.sql").display().to_string()])
        .args(["--runs", &a.runs.to_string()])
        .output()
        .expect("python3");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the DuckDB reference failed");
    let duck: f64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("duckdb_best_seconds "))
        .and_then(|v| v.trim().parse().ok())
        .expect("duckdb_best_seconds line");
    println!(
        "RESULT cases {} month {}: DataFusion best {df_best:.3} s, DuckDB best {duck:.3} s, ratio {:.2} (target ≤ 1.5)",
        a.cases,
        a.month,
        df_best / duck
    );
}

fn best_median(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2])
}

fn du(p: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        let m = e.metadata().unwrap();
        n += if m.is_dir() { du(&e.path()) } else { m.len() };
    }
    n
}

/// Simulated departmental systems → decode → engine → history.
fn generate(cfg: &Config, rd: Arc<RefData>, zone: &Zone, cases: usize, dir: &Path) -> String {
    let started = Instant::now();
    // 10 M cases over a year of working days: about 40 k new cases a day.
    let opts = SynthOptions {
        cases,
        seed: 7,
        start: chrono::NaiveDate::from_ymd_opt(2026, 1, 5).unwrap(),
        days: 300,
        ..Default::default()
    };
    let decoder = Decoder::new(rd.clone(), zone.clone(), &cfg.privacy.applicant_key);
    let engine = Engine::new(rd.clone(), zone.clone(), cfg.rules.clone());
    let mut core = Core::new(engine, History::open(dir, zone.clone(), rd.clone()).expect("history"));
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Option<Event>>>(16);
    let (mut events, mut made) = (0u64, 0u64);
    std::thread::scope(|s| {
        let (rd, zone) = (rd.clone(), zone.clone());
        let decoder = &decoder;
        let producer = s.spawn(move || {
            let mut cases = 0u64;
            let mut batch = Vec::with_capacity(4096);
            for item in Simulator::new(&rd, zone, opts) {
                match item {
                    SimItem::Truth(_) => cases += 1,
                    SimItem::Line(l) => batch.push(decoder.decode(l.as_bytes()).ok()),
                }
                if batch.len() == 4096 && tx.send(std::mem::replace(&mut batch, Vec::with_capacity(4096))).is_err() {
                    break;
                }
            }
            let _ = tx.send(batch);
            cases
        });
        let mut origin = 0u64;
        let mut last = Instant::now();
        for batch in rx {
            for ev in batch.into_iter().flatten() {
                origin += 1;
                let at = ev.occurred_at;
                if core.apply(ev, None, origin) == Outcome::Applied {
                    core.advance(at);
                }
                core.effects().for_each(drop);
                if core.history.pending() >= 400_000 {
                    core.flush().expect("flush");
                }
            }
            if last.elapsed().as_secs() >= 30 {
                last = Instant::now();
                eprintln!("  generating: {origin} events, {:.0} s", started.elapsed().as_secs_f64());
            }
        }
        events = origin;
        made = producer.join().expect("simulator");
    });
    core.flush().expect("flush");
    let note = format!("{made} cases, {events} events, generated in {:.0} s", started.elapsed().as_secs_f64());
    println!("history: {note}");
    note
}

/// Writes the reference tables as Parquet for the DuckDB side.
async fn export_reference(ctx: &datafusion::prelude::SessionContext, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for t in ["items", "regions", "region_tree", "departments", "deductions"] {
        let batches = ctx.sql(&format!("SELECT * FROM {t}")).await.unwrap().collect().await.unwrap();
        let f = std::fs::File::create(dir.join(format!("{t}.parquet"))).unwrap();
        let schema = ctx.table(t).await.unwrap().schema().inner().clone();
        let mut w = parquet::arrow::ArrowWriter::try_new(f, schema, None).unwrap();
        for b in &batches {
            w.write(b).unwrap();
        }
        w.close().unwrap();
    }
}

/// Installs PyPI `duckdb` for this user if python3 cannot import it.
fn ensure_duckdb() {
    let ok = Command::new("python3").args(["-c", "import duckdb"]).status().is_ok_and(|s| s.success());
    if !ok {
        let st = Command::new("python3").args(["-m", "pip", "install", "--quiet", "duckdb"]).status();
        assert!(st.is_ok_and(|s| s.success()), "pip install duckdb failed");
    }
}
