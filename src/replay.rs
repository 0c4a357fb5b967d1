//! `jiancha replay`: event-time replay of JSON Lines files through the engine.
//!
//! Lines are read in file order; each is decoded (bad lines are dead-lettered
//! at once with their original bytes), applied, and the watermark follows the
//! largest `occurred_at` applied minus the allowed lateness; at the end it is
//! advanced to `--until` when given. Alerts go to `alerts.jsonl`, dead letters
//! to `dead-letter.jsonl`, a machine-readable summary to `summary.json`.

use crate::config::Config;
use crate::deadletter::DeadReason;
use crate::engine::Engine;
use crate::event::Decoder;
use crate::pipeline::files::{FileSource, FilesError};
use crate::pipeline::jsonl::JsonLinesSink;
use crate::pipeline::{Core, FlushPolicy, Pipeline, PipelineError, Watermark};
use crate::reference::RefData;
use crate::time::Instant;
use serde::Serialize;
use std::collections::BTreeMap;
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
    /// Reading the inputs or writing the outputs.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// Writing history, or an alert record that will not encode.
    #[error(transparent)]
    Pipeline(PipelineError<FilesError>),
    /// Writing history.
    #[error(transparent)]
    History(#[from] crate::history::HistoryError),
    /// Too many input files for the origin encoding.
    #[error("at most 65535 input files")]
    TooManyFiles,
}

impl From<PipelineError<FilesError>> for ReplayError {
    fn from(e: PipelineError<FilesError>) -> ReplayError {
        match e {
            PipelineError::Shell(e) => ReplayError::Files(e),
            e => ReplayError::Pipeline(e),
        }
    }
}

/// History rows buffered before a flush.
const FLUSH_ROWS: usize = 400_000;

/// Runs a replay with loaded configuration and reference data: the input
/// files are the source, the output folder's JSON Lines files the sink.
pub fn run(cfg: &Config, refdata: Arc<RefData>, opts: &ReplayOptions) -> Result<ReplaySummary, ReplayError> {
    let started = std::time::Instant::now();
    if opts.files.len() > 65_535 {
        return Err(ReplayError::TooManyFiles);
    }
    let decoder = Decoder::new(refdata.clone(), cfg.time.zone.clone(), &cfg.privacy.applicant_key)
        .with_unlisted_items(cfg.rules.unlisted_item);
    let source = FileSource::open(&opts.files, &decoder, opts.progress)?;
    replay_from(cfg, refdata, opts, decoder, source, started)
}

/// The replay of `run` from a source already open.
fn replay_from(
    cfg: &Config,
    refdata: Arc<RefData>,
    opts: &ReplayOptions,
    decoder: Decoder,
    mut source: FileSource,
    started: std::time::Instant,
) -> Result<ReplaySummary, ReplayError> {
    let zone = cfg.time.zone.clone();
    let out = &opts.out;
    std::fs::create_dir_all(out).map_err(|source| FilesError::Io { path: out.clone(), source })?;
    let engine = Engine::new(refdata.clone(), zone.clone(), cfg.rules.clone());
    let history = crate::history::History::open(out, zone.clone(), refdata.clone())?;
    let lateness = cfg.time.allowed_lateness.as_millis() as i64;
    let mut core = Core::new(engine, history);
    core.stream_evicted();
    let mut pipeline = Pipeline::new(decoder, core, Watermark::FollowEvents { lateness }, None);

    let mut sink = JsonLinesSink::create(out, &opts.files)?;
    pipeline.run(&mut source, &mut sink, FlushPolicy { rows: FLUSH_ROWS, every: None })?;
    if let Some(until) = opts.until {
        pipeline.advance(until);
        pipeline.drain(&mut sink)?;
    }
    // Events still held at the end are not in effect: leave them out of `events`.
    let held = pipeline.core().engine.held_events();
    let core = pipeline.core_mut();
    for (o, _) in &held {
        core.history.rejected(*o);
    }
    core.flush()?;
    let held_at_end = held.len() as u64;
    let mut summary = ReplaySummary {
        read: source.read,
        blank_lines: source.blank_lines,
        dead_lettered: std::mem::take(&mut sink.dead_lettered),
        firing: std::mem::take(&mut sink.firing),
        resolved: sink.resolved,
        retracted: sink.retracted,
        held_at_end,
        ..ReplaySummary::default()
    };
    sink.finish(held)?;

    let engine = &pipeline.core().engine;
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
    let sp = out.join("summary.json");
    std::fs::write(&sp, serde_json::to_vec_pretty(&summary).unwrap_or_default())
        .map_err(|source| FilesError::Io { path: sp, source })?;
    Ok(summary)
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
    fn regression_a_replay_whose_reader_panics_fails() {
        // Was `reader.join().unwrap_or(Ok(()))`: a replay whose reader died
        // midway ended "successfully" with part of its input, and the
        // command exited 0. Now its error reaches main, which exits 1.
        let dir = tempfile::tempdir().unwrap();
        let (cfg, refdata) = (Config::default(), Arc::new(RefData::embedded()));
        let opts = ReplayOptions { out: dir.path().join("out"), files: Vec::new(), until: None, progress: false };
        let decoder = Decoder::new(refdata.clone(), cfg.time.zone.clone(), &cfg.privacy.applicant_key)
            .with_unlisted_items(cfg.rules.unlisted_item);
        let source = FileSource::failing_midway("decoder bug");
        match replay_from(&cfg, refdata, &opts, decoder, source, std::time::Instant::now()) {
            Err(ReplayError::Files(FilesError::ReaderPanicked(what))) => assert_eq!(what, "decoder bug"),
            other => panic!("the replay did not fail: {other:?}"),
        }
        assert!(!opts.out.join("summary.json").exists(), "no summary for a replay that failed");
    }
}
