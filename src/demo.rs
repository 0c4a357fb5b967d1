//! `jiancha demo`: the embedded default. Simulated departmental systems feed
//! the full pipeline in one process — simulator → decode → engine → history —
//! on a compressed clock, so a newcomer watches yellow and red cards fire and
//! figures move, and queries `./data` with `jiancha sql` / `jiancha report`
//! while it runs. No outside service is needed; reference data falls back to
//! the copies built into the binary when `config/` is not there.

use crate::config::Config;
use crate::engine::{Effect, Engine, Outcome};
use crate::event::Decoder;
use crate::history::History;
use crate::pipeline::Core;
use crate::reference::RefData;
use crate::serve::Live;
use crate::synth::{SimItem, Simulator, SynthOptions};
use crate::time::{Instant, DAY_MS};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Demo settings.
pub struct DemoOptions {
    /// Data folder (history).
    pub data: PathBuf,
    /// Simulated days per wall-clock minute.
    pub days_per_minute: f64,
    /// Cases started per simulated working day.
    pub cases_per_day: usize,
    /// Simulated calendar days of arrivals.
    pub days: u32,
    /// Seed.
    pub seed: u64,
}

/// A demo failed to start or write.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The data folder holds something that is not a demo's.
    #[error("{0} exists and was not written by `jiancha demo`; move it away or pass --data DIR")]
    NotDemoData(PathBuf),
    /// Files.
    #[error("{path}: {cause}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// History.
    #[error(transparent)]
    History(#[from] crate::history::HistoryError),
    /// The HTTP or SQL endpoint.
    #[error(transparent)]
    Serve(#[from] crate::serve::ServeError),
}

const MARKER: &str = ".jiancha-demo";

/// Clears the previous demo's history, refusing to touch other data.
fn prepare(data: &std::path::Path) -> Result<(), DemoError> {
    let io = |cause| DemoError::Io { path: data.to_path_buf(), cause };
    if data.exists() {
        let empty = std::fs::read_dir(data).map_err(io)?.next().is_none();
        if !empty && !data.join(MARKER).exists() {
            return Err(DemoError::NotDemoData(data.to_path_buf()));
        }
        for t in crate::history::TABLES {
            let p = data.join(t);
            if p.exists() {
                std::fs::remove_dir_all(&p).map_err(|cause| DemoError::Io { path: p.clone(), cause })?;
            }
        }
    }
    std::fs::create_dir_all(data).map_err(io)?;
    std::fs::write(data.join(MARKER), "written by jiancha demo; removed and rewritten by the next demo\n")
        .map_err(io)?;
    Ok(())
}

/// Runs the demo until the simulated span ends or `stop` is set, serving
/// HTTP and SQL (per `cfg`) over `live` meanwhile.
pub fn run(
    cfg: &Config,
    refdata: Arc<RefData>,
    opts: &DemoOptions,
    stop: &AtomicU32,
    live: Arc<Live>,
    demo_user: Option<(&str, &str)>,
) -> Result<(), DemoError> {
    prepare(&opts.data)?;
    let servers = crate::serve::start(cfg, live.clone())?;
    let zone = cfg.time.zone.clone();
    let start = chrono::NaiveDate::from_ymd_opt(2026, 3, 2).expect("date");
    let working_days = (opts.days as usize * 5 / 7).max(1);
    let sim_opts = SynthOptions {
        cases: opts.cases_per_day * working_days,
        seed: opts.seed,
        start,
        days: opts.days,
        ..Default::default()
    };
    let mut decoder = Decoder::new(refdata.clone(), zone.clone(), &cfg.privacy.applicant_key);
    // A calendar file added or corrected while the demo runs: every case
    // is judged again on it (no folder: the built-in calendar stays).
    let mut watch = cfg.reference.calendar.is_dir().then(|| {
        crate::calendar::watch::Watch::new(
            cfg.reference.calendar.clone(),
            cfg.time.provisional_calendar.then(|| zone.clone()),
        )
    });
    // Whether the cases were judged again.
    let recalendar =
        |core: &mut Core, decoder: &mut Decoder, watch: &mut Option<crate::calendar::watch::Watch>| match watch
            .as_mut()
            .and_then(|w| w.poll())
        {
            Some(Ok(calendar)) => {
                let rd = Arc::new(core.engine.refdata().with_calendar(calendar));
                live.metrics.set_calendar(&rd.calendar);
                decoder.set_refdata(rd.clone());
                println!("  calendar folder changed: judging {} cases again", core.engine.cases_in_memory());
                core.set_refdata(rd);
                true
            }
            Some(Err(e)) => {
                eprintln!("jiancha: calendar folder changed but does not load ({e}); the calendar in use stays");
                false
            }
            None => false,
        };
    let engine = Engine::new(refdata.clone(), zone.clone(), cfg.rules.clone());
    let mut core = Core::new(engine, History::open(&opts.data, zone.clone(), refdata.clone())?);
    let sim_start: Instant = zone.midnight(crate::time::Day::from_date(start));
    let ms_per_wall_ms = opts.days_per_minute * DAY_MS as f64 / 60_000.0;
    let wall_start = std::time::Instant::now();
    let sim_now = |wall: std::time::Instant| {
        sim_start + (wall.duration_since(wall_start).as_millis() as f64 * ms_per_wall_ms) as i64
    };

    println!("jiancha demo: simulated departmental systems → supervision core → history in {}", opts.data.display());
    println!(
        "  {} cases from {start}, {:.1} simulated days per minute; Ctrl-C stops (history is flushed every few seconds)",
        sim_opts.cases, opts.days_per_minute
    );
    let d = opts.data.display();
    println!("  board and alert feed: http://{}/  (metrics: http://{}/metrics)", servers.http, servers.http);
    match (servers.sql, demo_user) {
        (Some(a), Some((u, p))) => println!("  SQL (PostgreSQL protocol): psql postgresql://{u}:{p}@{a}/jiancha"),
        (Some(a), None) => {
            println!("  SQL (PostgreSQL protocol): psql -h {} -p {} -U <user> jiancha", a.ip(), a.port())
        }
        (None, _) => {}
    }
    live.ready.store(true, Ordering::Relaxed);
    println!("  try, in another terminal:");
    println!("    jiancha sql --data {d} \"SELECT rule, level, count(*) FROM alerts WHERE NOT retracted GROUP BY rule, level\"");
    println!("    jiancha sql --data {d} \"SELECT status, count(*) FROM cases GROUP BY status\"");
    println!("    jiancha report monthly-briefing --data {d} --month 2026-03");

    let (mut events, mut red, mut yellow, mut dead) = (0u64, 0u64, 0u64, 0u64);
    let mut last_flush = std::time::Instant::now();
    let mut last_pending = std::time::Instant::now();
    let m = &live.metrics;
    m.consumer_lag.with_label_values(&["demo"]).set(0);
    let take = |core: &mut Core, red: &mut u64, yellow: &mut u64, dead: &mut u64| {
        for e in core.effects() {
            match e {
                Effect::Alert(r) => {
                    if r.state == crate::alert::AlertState::Firing {
                        match r.level {
                            crate::alert::Level::Red => *red += 1,
                            crate::alert::Level::Yellow => *yellow += 1,
                        }
                    }
                    if let Err(e) = live.alert(&r) {
                        eprintln!("jiancha: {e}: left off the board (it is in history)");
                    }
                }
                Effect::DeadLetter { rejection, .. } => {
                    *dead += 1;
                    m.events_dead_lettered.with_label_values(&[rejection.reason.as_str()]).inc();
                }
            }
        }
    };
    let flush = |core: &mut Core, sim: Instant, events: u64, red: u64, yellow: u64, dead: u64| {
        core.flush()?;
        live.pending.clear("demo");
        m.open_cases.set(core.engine.open_cases() as i64);
        m.pending_timers.set(core.engine.pending_timers() as i64);
        m.checkpoint_age.set(0.0);
        println!(
            "  {}  events {events:>8}  open cases {:>6}  cards fired: red {red:>5}, yellow {yellow:>5}  dead letters {dead}",
            zone.format(sim)[..16].replace('T', " "),
            core.engine.open_cases()
        );
        Ok::<(), DemoError>(())
    };
    for item in Simulator::new(&refdata, zone.clone(), sim_opts) {
        let SimItem::Line(line) = item else { continue };
        m.events_read.inc();
        let ev = match decoder.decode(line.as_bytes()) {
            Ok(ev) => ev,
            Err(rej) => {
                dead += 1;
                m.events_dead_lettered.with_label_values(&[rej.reason.as_str()]).inc();
                continue;
            }
        };
        // Wait for the compressed clock to reach this event, moving the
        // watermark meanwhile so deadlines fire between events.
        loop {
            if stop.load(Ordering::Relaxed) > 0 {
                flush(&mut core, sim_now(std::time::Instant::now()), events, red, yellow, dead)?;
                println!("stopped; the history stays in {d}");
                return Ok(());
            }
            let now = sim_now(std::time::Instant::now());
            let _ = recalendar(&mut core, &mut decoder, &mut watch);
            core.advance(now.min(ev.occurred_at));
            take(&mut core, &mut red, &mut yellow, &mut dead);
            live.set_clock(now.min(ev.occurred_at));
            m.watermark_delay.set((now - core.engine.watermark().unwrap_or(now)) as f64 / 1000.0);
            m.checkpoint_age.set(last_flush.elapsed().as_secs_f64());
            if last_flush.elapsed() >= Duration::from_secs(3) {
                flush(&mut core, now, events, red, yellow, dead)?;
                last_flush = std::time::Instant::now();
            } else if last_pending.elapsed() >= Duration::from_millis(250) {
                // SQL sees the cases changed since the flush at once.
                live.pending.set("demo", core.engine.pending_views());
                last_pending = std::time::Instant::now();
            }
            if now >= ev.occurred_at {
                break;
            }
            let wait_ms = ((ev.occurred_at - now) as f64 / ms_per_wall_ms).clamp(1.0, 200.0);
            std::thread::sleep(Duration::from_millis(wait_ms as u64));
        }
        events += 1;
        let at = ev.occurred_at;
        let started = std::time::Instant::now();
        let counter = m.counter_for(&ev, &refdata);
        let outcome = core.apply(ev, None, events);
        if outcome == Outcome::Applied {
            core.advance(at);
        }
        take(&mut core, &mut red, &mut yellow, &mut dead);
        m.outcome(outcome, counter, started.elapsed());
    }
    let end = sim_now(std::time::Instant::now());
    core.advance(end);
    take(&mut core, &mut red, &mut yellow, &mut dead);
    flush(&mut core, end, events, red, yellow, dead)?;
    println!(
        "the simulated span is over; the history stays in {d}; still serving the board, metrics and SQL until Ctrl-C"
    );
    while stop.load(Ordering::Relaxed) == 0 {
        // Nothing else changes the cases once the span is over.
        if recalendar(&mut core, &mut decoder, &mut watch) {
            take(&mut core, &mut red, &mut yellow, &mut dead);
            flush(&mut core, end, events, red, yellow, dead)?;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(servers);
    Ok(())
}
