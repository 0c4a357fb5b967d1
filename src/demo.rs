//! `jiancha demo`: the embedded default. Simulated departmental systems feed
//! the full pipeline in one process — simulator → decode → engine → history —
//! on a compressed clock, so a newcomer watches yellow and red cards fire and
//! figures move, and queries `./data` with `jiancha sql` / `jiancha report`
//! while it runs. No outside service is needed; reference data falls back to
//! the copies built into the binary when `config/` is not there.

use crate::config::Config;
use crate::engine::Engine;
use crate::event::Decoder;
use crate::history::History;
use crate::pipeline::inbox::{ChannelInbox, Compressed};
use crate::pipeline::live::Live;
use crate::pipeline::live::LiveSink;
use crate::pipeline::{
    Core, DeadLetter, FlushPolicy, Payload, Pipeline, PipelineError, Pulled, Record, Sink, Source, Watermark,
};
use crate::reference::RefData;
use crate::synth::{SimItem, Simulator, SynthOptions};
use crate::time::{Instant, DAY_MS};
use std::convert::Infallible;
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
    /// An alert record could not be encoded.
    #[error("{0}; stopping rather than publishing it empty")]
    Encode(crate::alert::EncodeError),
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

/// Runs the demo until `stop` is set, serving HTTP and SQL (per `cfg`) over
/// `live` meanwhile: the simulator paced on the compressed clock is the
/// source, the live feed the sink; history is flushed every few seconds.
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
    let decoder = Decoder::new(refdata.clone(), zone.clone(), &cfg.privacy.applicant_key)
        .with_unlisted_items(cfg.rules.unlisted_item);
    let engine = Engine::new(refdata.clone(), zone.clone(), cfg.rules.clone());
    let core = Core::new(engine, History::open(&opts.data, zone.clone(), refdata.clone())?);
    let metrics = Some(live.metrics.clone());
    // The demo's events arrive in order: the watermark follows them at once.
    let mut pipeline = Pipeline::new(decoder.clone(), core, Watermark::FollowEvents { lateness: 0 }, metrics);

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
    println!("    jiancha report monthly-briefing --data {d} --month 2026-03 --format html --out briefing.html");
    println!("    jiancha report annual-assessment --data {d} --year 2026");
    live.metrics.consumer_lag.with_label_values(&["demo"]).set(0);

    let sim_start: Instant = zone.midnight(crate::time::Day::from_date(start));
    let clock = Compressed {
        wall_start: std::time::Instant::now(),
        sim_start,
        ms_per_wall_ms: opts.days_per_minute * DAY_MS as f64 / 60_000.0,
    };
    // Notices issued from the board join the simulated stream.
    let (inbox, posted) = ChannelInbox::new(clock);
    let _ = live.inbox.set(Arc::new(inbox));
    let mut source = Paced {
        sim: Simulator::new(&refdata, zone.clone(), sim_opts),
        decoder,
        next: None,
        raw: String::new(),
        line: 0,
        clock,
        posted,
        posted_raw: Vec::new(),
        stop,
        // A calendar file added or corrected while the demo runs: every
        // case is judged again on it (no folder: the built-in calendar
        // stays).
        watch: cfg.reference.calendar.is_dir().then(|| {
            crate::calendar::watch::Watch::new(
                cfg.reference.calendar.clone(),
                cfg.time.provisional_calendar.then(|| zone.clone()),
            )
        }),
        live: live.clone(),
        ended: false,
        due: false,
        wait: Duration::ZERO,
    };
    let mut sink = DemoSink { live: LiveSink::new(live.clone(), "demo"), zone: zone.clone() };
    let flush = FlushPolicy { rows: usize::MAX, every: Some(Duration::from_secs(3)) };
    let mut run = |source: &mut Paced, sink: &mut DemoSink| -> Result<(), DemoError> {
        pipeline.run(source, sink, flush).map_err(DemoError::from_pipeline)?;
        pipeline.advance(source.now());
        pipeline.drain(sink).map_err(DemoError::from_pipeline)?;
        pipeline.flush(sink).map_err(DemoError::from_pipeline)
    };
    // Until the simulated span ends (or a stop), then on: nothing changes
    // the cases but a corrected calendar.
    run(&mut source, &mut sink)?;
    if stop.load(Ordering::Relaxed) == 0 {
        println!(
            "the simulated span is over; the history stays in {d}; still serving the board, metrics and SQL until Ctrl-C"
        );
        run(&mut source, &mut sink)?;
    }
    println!("stopped; the history stays in {d}");
    drop(servers);
    Ok(())
}

impl DemoError {
    fn from_pipeline(e: PipelineError<Infallible>) -> DemoError {
        match e {
            PipelineError::History(h) => DemoError::History(h),
            PipelineError::Encode(e) => DemoError::Encode(e),
            PipelineError::Shell(never) => match never {},
        }
    }
}

/// The live feed, plus a status line after each flush.
struct DemoSink {
    live: LiveSink,
    zone: crate::time::Zone,
}

impl Sink for DemoSink {
    type Error = Infallible;

    fn alert(&mut self, r: &crate::alert::AlertRecord, json: String) -> Result<(), Infallible> {
        self.live.alert(r, json)
    }

    fn dead_letter(&mut self, d: DeadLetter<'_>) -> Result<(), Infallible> {
        self.live.dead_letter(d)
    }

    fn flushed(&mut self, core: &Core) -> Result<(), Infallible> {
        self.live.flushed(core)?;
        let l = &self.live;
        let at = core.engine.watermark().map_or_else(String::new, |w| self.zone.format(w)[..16].replace('T', " "));
        println!(
            "  {at}  events {:>8}  open cases {:>6}  cards fired: red {:>5}, yellow {:>5}  dead letters {}",
            l.live.metrics.events_read.get(),
            core.engine.open_cases(),
            l.red,
            l.yellow,
            l.dead
        );
        Ok(())
    }

    fn polled(&mut self, core: &Core) {
        self.live.polled(core)
    }
}

/// The simulator's events, each handed over when the compressed clock
/// reaches it, with the clock's reading in between (so deadlines fire
/// between events); a changed calendar folder; the end when the simulated
/// span is over or `stop` is set. Once the span is over, only a changed
/// calendar, until `stop`.
struct Paced<'a> {
    sim: Simulator<'a>,
    /// Decodes ahead, to know when each event is due.
    decoder: Decoder,
    /// The next event (its line number, decoded), and its bytes.
    next: Option<(u64, Result<crate::event::Event, crate::deadletter::Rejection>)>,
    raw: String,
    line: u64,
    /// The compressed clock.
    clock: Compressed,
    /// Events posted over HTTP (notices), handed over before the next
    /// simulated one.
    posted: std::sync::mpsc::Receiver<Vec<u8>>,
    /// The bytes of the posted event last handed over.
    posted_raw: Vec<u8>,
    stop: &'a AtomicU32,
    watch: Option<crate::calendar::watch::Watch>,
    live: Arc<Live>,
    /// The simulated span is over.
    ended: bool,
    /// The next event is due: hand it over at the next pull.
    due: bool,
    /// How long to sleep before the next reading.
    wait: Duration,
}

impl Paced<'_> {
    /// The compressed clock's reading.
    fn now(&self) -> Instant {
        self.clock.now()
    }
}

impl Source for Paced<'_> {
    type Error = Infallible;

    fn pull(&mut self) -> Result<Pulled<'_>, Infallible> {
        if self.stop.load(Ordering::Relaxed) > 0 {
            return Ok(Pulled::End);
        }
        std::thread::sleep(std::mem::take(&mut self.wait));
        match self.watch.as_mut().and_then(|w| w.poll()) {
            Some(Ok(calendar)) => {
                let rd = Arc::new(self.decoder.refdata().with_calendar(calendar));
                self.decoder.set_refdata(rd.clone());
                println!("  calendar folder changed: judging every case again");
                return Ok(Pulled::Refdata(rd));
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "calendar folder changed but does not load; the calendar in use stays");
            }
            None => {}
        }
        if let Ok(bytes) = self.posted.try_recv() {
            self.line += 1;
            self.posted_raw = bytes;
            let payload = match self.decoder.decode(&self.posted_raw) {
                Ok(ev) => Payload::Decoded(ev),
                Err(rej) => Payload::Rejected(rej, &self.posted_raw),
            };
            return Ok(Pulled::Record(Record { origin: self.line, kafka: None, key: None, payload }));
        }
        if self.ended {
            self.wait = Duration::from_millis(100);
            return Ok(Pulled::Idle);
        }
        if self.next.is_none() {
            self.next = loop {
                match self.sim.next() {
                    Some(SimItem::Line(line)) => {
                        self.line += 1;
                        let decoded = self.decoder.decode(line.as_bytes());
                        self.raw = line;
                        break Some((self.line, decoded));
                    }
                    Some(SimItem::Truth(_)) => {}
                    None => break None,
                }
            };
        }
        let now = self.now();
        let (at, bad) = match &self.next {
            None => {
                self.ended = true;
                return Ok(Pulled::End);
            }
            Some((_, Ok(ev))) => (ev.occurred_at, false),
            Some((_, Err(_))) => (now, true), // a bad line is dead-lettered at once
        };
        if self.due || bad {
            self.due = false;
            let Some((line, decoded)) = self.next.take() else { return Ok(Pulled::Idle) };
            let payload = match decoded {
                Ok(ev) => Payload::Decoded(ev),
                Err(rej) => Payload::Rejected(rej, self.raw.as_bytes()),
            };
            return Ok(Pulled::Record(Record { origin: line, kafka: None, key: None, payload }));
        }
        self.live.metrics.watermark_delay.set((now - now.min(at)) as f64 / 1000.0);
        if now >= at {
            self.due = true;
        } else {
            self.wait = Duration::from_millis(((at - now) as f64 / self.clock.ms_per_wall_ms).clamp(1.0, 200.0) as u64);
        }
        Ok(Pulled::Clock(now.min(at)))
    }
}
