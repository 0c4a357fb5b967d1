//! `jiancha replay`: event-time replay of JSON Lines files through the engine.
//!
//! Lines are read in file order; each is decoded (bad lines are dead-lettered
//! at once with their original bytes), applied, and the watermark follows the
//! largest `occurred_at` applied minus the allowed lateness; at the end it is
//! advanced to `--until` when given. Alerts go to `alerts.jsonl`, dead letters
//! to `dead-letter.jsonl`, a machine-readable summary to `summary.json`.

use crate::alert::AlertState;
use crate::config::Config;
use crate::deadletter::{DeadReason, Rejection};
use crate::engine::{Effect, Engine, Outcome};
use crate::event::Decoder;
use crate::pipeline::{origin, split_origin, Core};
use crate::reference::RefData;
use crate::time::Instant;
use base64::Engine as _;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a replay needs.
pub struct ReplayOptions {
    /// Output folder.
    pub out: PathBuf,
    /// Input files, in order.
    pub files: Vec<PathBuf>,
    /// Final watermark.
    pub until: Option<Instant>,
    /// Show a progress bar on a terminal.
    pub progress: bool,
}

/// Figures of a finished replay (`summary.json`).
#[derive(Debug, Default, Serialize)]
pub struct ReplaySummary {
    /// Non-blank lines read.
    pub read: u64,
    /// Blank lines skipped.
    pub blank_lines: u64,
    /// Events in effect at the end (valid at their place).
    pub applied: u64,
    /// Repeated event ids ignored.
    pub duplicates: u64,
    /// Dead letters by reason.
    pub dead_lettered: BTreeMap<String, u64>,
    /// Events still invalid at the end of input, not yet past their hold
    /// (listed in `held.jsonl`).
    pub held_at_end: u64,
    /// Firing records by rule.
    pub firing: BTreeMap<String, u64>,
    /// Resolved records.
    pub resolved: u64,
    /// Retracted records.
    pub retracted: u64,
    /// The final watermark.
    pub watermark: Option<String>,
    /// Cases in memory at the end.
    pub cases: u64,
    /// Years a clock needed without a calendar file.
    pub missing_calendar_years: Vec<i32>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// A replay failed (I/O or reference data); bad events never fail it.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// Reading or writing a file.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// Writing history.
    #[error(transparent)]
    History(crate::history::HistoryError),
    /// Too many input files for the origin encoding.
    #[error("at most 65535 input files")]
    TooManyFiles,
    /// The reader thread panicked: the input was not read to its end.
    #[error("reading the input failed unexpectedly ({0}); the output is incomplete")]
    ReaderPanicked(String),
}

/// What the reader thread's end means for the replay: a panic fails it
/// (the input was not read to its end), never passes for success.
fn reader_outcome(joined: std::thread::Result<Result<(), ReplayError>>) -> Result<(), ReplayError> {
    joined.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_string());
        Err(ReplayError::ReaderPanicked(what))
    })
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReplayError + '_ {
    move |cause| ReplayError::Io { path: path.to_path_buf(), cause }
}

#[derive(Serialize)]
struct DeadRecord<'a> {
    reason: &'static str,
    field: Option<&'a str>,
    detail: &'a str,
    file: String,
    line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_base64: Option<String>,
}

fn write_dead(w: &mut impl Write, rej: &Rejection, file: &Path, line: u64, raw: &[u8]) -> std::io::Result<()> {
    let (raw_str, raw_b64) = match std::str::from_utf8(raw) {
        Ok(s) => (Some(s), None),
        Err(_) => (None, Some(base64::engine::general_purpose::STANDARD.encode(raw))),
    };
    let rec = DeadRecord {
        reason: rej.reason.as_str(),
        field: rej.field.as_deref(),
        detail: &rej.detail,
        file: file.display().to_string(),
        line,
        raw: raw_str,
        raw_base64: raw_b64,
    };
    serde_json::to_writer(&mut *w, &rec)?;
    w.write_all(b"\n")
}

fn trim_line(buf: &[u8]) -> &[u8] {
    let mut s = buf;
    while let [rest @ .., b'\n' | b'\r'] = s {
        s = rest;
    }
    s
}

/// Runs a replay with loaded configuration and reference data.
pub fn run(cfg: &Config, refdata: Arc<RefData>, opts: &ReplayOptions) -> Result<ReplaySummary, ReplayError> {
    let started = std::time::Instant::now();
    if opts.files.len() > 65_535 {
        return Err(ReplayError::TooManyFiles);
    }
    for f in &opts.files {
        std::fs::metadata(f).map_err(io(f))?;
    }
    std::fs::create_dir_all(&opts.out).map_err(io(&opts.out))?;
    let zone = cfg.time.zone.clone();
    let lateness = cfg.time.allowed_lateness.as_millis() as i64;
    let decoder = Decoder::new(refdata.clone(), zone.clone(), &cfg.privacy.applicant_key);
    let engine = Engine::new(refdata.clone(), zone.clone(), cfg.rules.clone());
    let history =
        crate::history::History::open(&opts.out, zone.clone(), refdata.clone()).map_err(ReplayError::History)?;
    let mut core = Core::new(engine, history);

    let alerts_path = opts.out.join("alerts.jsonl");
    let dead_path = opts.out.join("dead-letter.jsonl");
    let mut alerts = BufWriter::with_capacity(1 << 20, File::create(&alerts_path).map_err(io(&alerts_path))?);
    let mut dead = BufWriter::new(File::create(&dead_path).map_err(io(&dead_path))?);
    let mut summary = ReplaySummary::default();
    let mut deferred: Vec<(u64, Rejection)> = Vec::new();

    let total: u64 = opts.files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    let bar = if opts.progress && total > 16 << 20 {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {per_sec} eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };

    let handle = |core: &mut Core,
                  alerts: &mut BufWriter<File>,
                  deferred: &mut Vec<(u64, Rejection)>,
                  summary: &mut ReplaySummary|
     -> std::io::Result<()> {
        for eff in core.effects() {
            match eff {
                Effect::Alert(rec) => {
                    match rec.state {
                        AlertState::Firing => *summary.firing.entry(rec.rule.as_str().to_string()).or_default() += 1,
                        AlertState::Resolved => summary.resolved += 1,
                        AlertState::Retracted => summary.retracted += 1,
                    }
                    alerts.write_all(rec.to_json().map_err(std::io::Error::other)?.as_bytes())?;
                    alerts.write_all(b"\n")?;
                }
                Effect::DeadLetter { origin, rejection } => {
                    *summary.dead_lettered.entry(rejection.reason.as_str().to_string()).or_default() += 1;
                    deferred.push((origin, rejection));
                }
            }
        }
        Ok(())
    };

    // A reader thread reads and decodes; this thread applies, in input order.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(8);
    std::thread::scope(|scope| -> Result<(), ReplayError> {
        let reader = scope.spawn(|| read_and_decode(&opts.files, &decoder, tx));
        for batch in rx {
            bar.inc(batch.bytes);
            let path = &opts.files[batch.file];
            for item in batch.items {
                match item {
                    Item::Blank => summary.blank_lines += 1,
                    Item::Bad { line, rejection, raw } => {
                        summary.read += 1;
                        *summary.dead_lettered.entry(rejection.reason.as_str().to_string()).or_default() += 1;
                        write_dead(&mut dead, &rejection, path, line, &raw).map_err(io(&dead_path))?;
                    }
                    Item::Good { line, event } => {
                        summary.read += 1;
                        let at = event.occurred_at;
                        if core.apply(event, None, origin(batch.file, line)) == Outcome::Applied {
                            core.advance(at.saturating_sub(lateness));
                        }
                        handle(&mut core, &mut alerts, &mut deferred, &mut summary).map_err(io(&alerts_path))?;
                        if core.history.pending() >= FLUSH_ROWS {
                            core.flush().map_err(ReplayError::History)?;
                        }
                    }
                }
            }
        }
        reader_outcome(reader.join())
    })?;
    if let Some(until) = opts.until {
        core.advance(until);
        handle(&mut core, &mut alerts, &mut deferred, &mut summary).map_err(io(&alerts_path))?;
    }
    // Events still held at the end are not in effect: leave them out of `events`.
    let held = core.engine.held_events();
    for (o, _) in &held {
        core.history.rejected(*o);
    }
    core.flush().map_err(ReplayError::History)?;
    bar.finish_and_clear();
    alerts.flush().map_err(io(&alerts_path))?;

    // Dead letters raised by the engine, and events still held: fetch their
    // original bytes in one pass over the inputs.
    summary.held_at_end = held.len() as u64;
    let wanted: Vec<(u64, Rejection, bool)> =
        deferred.into_iter().map(|(o, r)| (o, r, false)).chain(held.into_iter().map(|(o, r)| (o, r, true))).collect();
    let held_path = opts.out.join("held.jsonl");
    let mut held_w = BufWriter::new(File::create(&held_path).map_err(io(&held_path))?);
    let raws = fetch_lines(&opts.files, wanted.iter().map(|w| w.0))?;
    for (o, rej, is_held) in &wanted {
        let (fi, line) = split_origin(*o);
        let raw = raws.get(o).map(Vec::as_slice).unwrap_or(b"");
        let (w, path) = if *is_held { (&mut held_w, &held_path) } else { (&mut dead, &dead_path) };
        write_dead(w, rej, &opts.files[fi], line, raw).map_err(io(path))?;
    }
    dead.flush().map_err(io(&dead_path))?;
    held_w.flush().map_err(io(&held_path))?;

    let engine = &core.engine;
    let st = engine.stats();
    // Every line read is accounted for exactly once: applied (in effect at the
    // end, including held events that a later arrival made valid), duplicate,
    // dead-lettered, or still held.
    let dead: u64 = summary.dead_lettered.values().sum();
    summary.applied = summary.read - st.duplicates - dead - summary.held_at_end;
    summary.duplicates = st.duplicates;
    summary.missing_calendar_years = st.missing_calendar_years.iter().copied().collect();
    summary.watermark = engine.watermark().map(|w| zone.format(w));
    summary.cases = engine.cases_in_memory() as u64;
    summary.seconds = started.elapsed().as_secs_f64();
    let sp = opts.out.join("summary.json");
    std::fs::write(&sp, serde_json::to_vec_pretty(&summary).unwrap_or_default()).map_err(io(&sp))?;
    Ok(summary)
}

/// History rows buffered before a flush.
const FLUSH_ROWS: usize = 400_000;

/// One input line, decoded. (Not boxed: a box per line would cost an
/// allocation for every good event to spare the rare bad one its size.)
#[allow(clippy::large_enum_variant)]
enum Item {
    Blank,
    Bad { line: u64, rejection: Rejection, raw: Vec<u8> },
    Good { line: u64, event: crate::event::Event },
}

/// Consecutive lines of one file.
struct Batch {
    file: usize,
    bytes: u64,
    items: Vec<Item>,
}

/// Reads every file in order and sends decoded batches; stops early if the
/// receiver is gone.
fn read_and_decode(
    files: &[PathBuf],
    decoder: &Decoder,
    tx: std::sync::mpsc::SyncSender<Batch>,
) -> Result<(), ReplayError> {
    const BATCH: usize = 2048;
    let mut buf = Vec::with_capacity(4096);
    for (fi, path) in files.iter().enumerate() {
        let mut r = BufReader::with_capacity(1 << 20, File::open(path).map_err(io(path))?);
        let mut line_no = 0u64;
        let mut batch = Batch { file: fi, bytes: 0, items: Vec::with_capacity(BATCH) };
        loop {
            buf.clear();
            let n = r.read_until(b'\n', &mut buf).map_err(io(path))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            batch.bytes += n as u64;
            let mut line = trim_line(&buf);
            if line_no == 1 {
                line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line); // a UTF-8 byte-order mark
            }
            batch.items.push(if line.iter().all(u8::is_ascii_whitespace) {
                Item::Blank
            } else {
                match decoder.decode(line) {
                    Ok(event) => Item::Good { line: line_no, event },
                    Err(rejection) => Item::Bad { line: line_no, rejection, raw: line.to_vec() },
                }
            });
            if batch.items.len() == BATCH {
                let full =
                    std::mem::replace(&mut batch, Batch { file: fi, bytes: 0, items: Vec::with_capacity(BATCH) });
                if tx.send(full).is_err() {
                    return Ok(());
                }
            }
        }
        if !batch.items.is_empty() && tx.send(batch).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// Reads the given input positions' lines back from the files.
fn fetch_lines(files: &[PathBuf], origins: impl Iterator<Item = u64>) -> Result<BTreeMap<u64, Vec<u8>>, ReplayError> {
    let mut by_file: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for o in origins {
        let (fi, line) = split_origin(o);
        by_file.entry(fi).or_default().push(line);
    }
    let mut out = BTreeMap::new();
    for (fi, mut lines) in by_file {
        lines.sort_unstable();
        let path = &files[fi];
        let mut r = BufReader::new(File::open(path).map_err(io(path))?);
        let mut buf = Vec::new();
        let mut no = 0u64;
        let mut want = lines.iter().peekable();
        while want.peek().is_some() {
            buf.clear();
            if r.read_until(b'\n', &mut buf).map_err(io(path))? == 0 {
                break;
            }
            no += 1;
            while want.peek() == Some(&&no) {
                want.next();
                out.insert(origin(fi, no), trim_line(&buf).to_vec());
            }
        }
    }
    Ok(out)
}

impl ReplaySummary {
    /// A human summary for the terminal.
    pub fn render(&self, out: &Path) -> String {
        let mut s = String::new();
        let rate = if self.seconds > 0.0 { self.read as f64 / self.seconds } else { 0.0 };
        s += &format!("read          {} events in {:.2} s ({:.0} events/s)\n", self.read, self.seconds, rate);
        s += &format!("applied       {}\n", self.applied);
        s += &format!("duplicates    {}\n", self.duplicates);
        let dl: u64 = self.dead_lettered.values().sum();
        let reasons: Vec<String> = DeadReason::ALL
            .iter()
            .filter_map(|r| self.dead_lettered.get(r.as_str()).map(|n| format!("{} {n}", r.as_str())))
            .collect();
        s += &format!(
            "dead-lettered {dl}{}\n",
            if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) }
        );
        if self.held_at_end > 0 {
            s += &format!("held          {} still invalid at the end of input (held.jsonl)\n", self.held_at_end);
        }
        let firing: u64 = self.firing.values().sum();
        let rules: Vec<String> = self.firing.iter().map(|(r, n)| format!("{r} {n}")).collect();
        s += &format!(
            "alerts        {firing} fired{}\n",
            if rules.is_empty() { String::new() } else { format!(" ({})", rules.join(", ")) }
        );
        s += &format!("              {} resolved, {} retracted\n", self.resolved, self.retracted);
        s += &format!("watermark     {}\n", self.watermark.as_deref().unwrap_or("-"));
        for y in &self.missing_calendar_years {
            s += &format!("warning       no calendar file for {y}: due dates reaching into it are unknown, their cards cannot fire\n");
        }
        s += &format!("output        {}/alerts.jsonl, dead-letter.jsonl, summary.json\n", out.display());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_a_panicking_reader_fails_the_replay() {
        // Was `reader.join().unwrap_or(Ok(()))`: a replay whose reader died
        // midway ended "successfully" with part of its input.
        let joined = std::thread::spawn(|| -> Result<(), ReplayError> { panic!("decoder bug") }).join();
        match reader_outcome(joined) {
            Err(ReplayError::ReaderPanicked(what)) => assert_eq!(what, "decoder bug"),
            other => panic!("{other:?}"),
        }
        let joined = std::thread::spawn(|| -> Result<(), ReplayError> { Ok(()) }).join();
        assert!(reader_outcome(joined).is_ok());
    }
}
