//! Criterion benchmarks of the core without I/O: decoding lines, applying
//! decoded events to the engine, and both together, over a synthetic stream
//! (`cargo bench --bench core`). Throughput is reported in events.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use jiancha::config::RulesConfig;
use jiancha::engine::{Engine, Outcome};
use jiancha::event::{Decoder, Event};
use jiancha::history::History;
use jiancha::reference::RefData;
use jiancha::synth::{generate, SynthOptions};
use jiancha::time::Zone;
use std::path::Path;
use std::sync::Arc;

fn setup() -> (Arc<RefData>, Zone, Vec<String>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rd = Arc::new(
        RefData::load(
            &root.join("config/catalog.csv"),
            &root.join("config/calendar"),
            &root.join("config/regions.csv"),
        )
        .expect("shipped reference data"),
    );
    let zone = Zone::new("Asia/Shanghai").unwrap();
    let opts = SynthOptions {
        cases: 6_000,
        start: chrono::NaiveDate::from_ymd_opt(2025, 1, 2).unwrap(),
        days: 300,
        ..SynthOptions::default()
    };
    let lines = generate(&rd, &zone, &opts);
    (rd, zone, lines)
}

/// A fresh engine that applied `events` (each with its input position),
/// the watermark following each one applied.
fn judged(rd: &Arc<RefData>, zone: &Zone, events: impl IntoIterator<Item = (usize, Event)>) -> Engine {
    let mut engine = Engine::new(rd.clone(), zone.clone(), RulesConfig::default());
    let mut eff = Vec::new();
    for (i, ev) in events {
        let at = ev.occurred_at;
        if engine.apply(ev, i as u64, &mut eff) == Outcome::Applied {
            engine.advance_watermark(at, &mut eff);
        }
        eff.clear();
    }
    engine
}

fn bench(c: &mut Criterion) {
    let (rd, zone, lines) = setup();
    let decoder = Decoder::new(rd.clone(), zone.clone(), "bench-key");
    let events: Vec<_> = lines.iter().filter_map(|l| decoder.decode(l.as_bytes()).ok()).collect();
    let mut g = c.benchmark_group("core");
    g.sample_size(10);

    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("decode", |b| b.iter(|| lines.iter().filter(|l| decoder.decode(l.as_bytes()).is_ok()).count()));

    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("rules", |b| {
        b.iter_batched(
            || events.clone(),
            |events| judged(&rd, &zone, events.into_iter().enumerate()),
            BatchSize::LargeInput,
        )
    });

    g.throughput(Throughput::Elements(lines.len() as u64));
    g.bench_function("decode+rules", |b| {
        b.iter(|| {
            let decoded = lines.iter().enumerate().filter_map(|(i, l)| Some((i, decoder.decode(l.as_bytes()).ok()?)));
            judged(&rd, &zone, decoded)
        })
    });

    // What a checkpoint holds the loop for per changed case: its view
    // (judgement concluded with figures, names resolved), then its history
    // row. The engine is left with the cases still in memory at the end of
    // the stream, all judged since history last took them.
    let mut engine = judged(&rd, &zone, events.iter().cloned().enumerate());
    engine.take_evicted(|_| {});
    let views = engine.pending_views();
    g.throughput(Throughput::Elements(views.len() as u64));
    g.bench_function("case views", |b| b.iter(|| engine.pending_views().len()));
    // Each iteration fills a new history with fewer rows than a batch, so
    // the figure is the loop's share only (the Parquet encoding happens on
    // the history thread).
    let dir = tempfile::tempdir().expect("a temporary folder");
    g.bench_function("case rows", |b| {
        b.iter_batched(
            || History::open(dir.path(), zone.clone(), rd.clone()).expect("history opens"),
            |mut history| {
                for v in &views {
                    history.case(v);
                }
                history
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
