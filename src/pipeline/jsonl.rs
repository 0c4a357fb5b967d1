//! Files as a sink: [`JsonLinesSink`] writes alert records to
//! `alerts.jsonl` and dead letters to `dead-letter.jsonl` (with their file,
//! line and original bytes), and at the end the events still held to
//! `held.jsonl`.

use super::files::{io, trim_line, FilesError};
use super::{split_origin, DeadLetter, Sink};
use crate::alert::{AlertRecord, AlertState};
use crate::deadletter::Rejection;
use base64::Engine as _;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

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

/// `alerts.jsonl` and `dead-letter.jsonl` in an output folder, with counts.
pub struct JsonLinesSink {
    files: Vec<PathBuf>,
    out: PathBuf,
    alerts: BufWriter<File>,
    dead: BufWriter<File>,
    /// Dead letters the engine raised: their bytes are read back from the
    /// inputs in one pass at the end.
    deferred: Vec<(u64, Rejection)>,
    /// Dead letters by reason.
    pub dead_lettered: BTreeMap<String, u64>,
    /// Firing records by rule.
    pub firing: BTreeMap<String, u64>,
    /// Resolved records.
    pub resolved: u64,
    /// Retracted records.
    pub retracted: u64,
}

impl JsonLinesSink {
    /// Creates the files in `out` for input `files`.
    pub fn create(out: &Path, files: &[PathBuf]) -> Result<JsonLinesSink, FilesError> {
        let create = |name: &str| {
            let p = out.join(name);
            File::create(&p).map_err(io(&p))
        };
        Ok(JsonLinesSink {
            files: files.to_vec(),
            out: out.to_path_buf(),
            alerts: BufWriter::with_capacity(1 << 20, create("alerts.jsonl")?),
            dead: BufWriter::new(create("dead-letter.jsonl")?),
            deferred: Vec::new(),
            dead_lettered: BTreeMap::new(),
            firing: BTreeMap::new(),
            resolved: 0,
            retracted: 0,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.out.join(name)
    }

    /// Writes the dead letters the engine raised and the events still
    /// `held` (to `held.jsonl`), with their bytes read back from the inputs,
    /// and flushes every file.
    pub fn finish(mut self, held: Vec<(u64, Rejection)>) -> Result<(), FilesError> {
        self.alerts.flush().map_err(io(&self.path("alerts.jsonl")))?;
        let wanted: Vec<(u64, Rejection, bool)> = std::mem::take(&mut self.deferred)
            .into_iter()
            .map(|(o, r)| (o, r, false))
            .chain(held.into_iter().map(|(o, r)| (o, r, true)))
            .collect();
        let (held_path, dead_path) = (self.path("held.jsonl"), self.path("dead-letter.jsonl"));
        let mut held_w = BufWriter::new(File::create(&held_path).map_err(io(&held_path))?);
        let raws = fetch_lines(&self.files, wanted.iter().map(|w| w.0))?;
        for (o, rej, is_held) in &wanted {
            let (fi, line) = split_origin(*o);
            let raw = raws.get(o).map(Vec::as_slice).unwrap_or(b"");
            let (w, path) = if *is_held { (&mut held_w, &held_path) } else { (&mut self.dead, &dead_path) };
            write_dead(w, rej, &self.files[fi], line, raw).map_err(io(path))?;
        }
        self.dead.flush().map_err(io(&dead_path))?;
        held_w.flush().map_err(io(&held_path))
    }
}

impl Sink for JsonLinesSink {
    type Error = FilesError;

    fn alert(&mut self, rec: &AlertRecord, json: String) -> Result<(), FilesError> {
        match rec.state {
            AlertState::Firing => *self.firing.entry(rec.rule.as_str().to_string()).or_default() += 1,
            AlertState::Resolved => self.resolved += 1,
            AlertState::Retracted => self.retracted += 1,
        }
        let w = &mut self.alerts;
        w.write_all(json.as_bytes()).and_then(|_| w.write_all(b"\n")).map_err(io(&self.out.join("alerts.jsonl")))
    }

    fn dead_letter(&mut self, d: DeadLetter<'_>) -> Result<(), FilesError> {
        *self.dead_lettered.entry(d.rejection.reason.as_str().to_string()).or_default() += 1;
        match d.raw {
            Some(raw) => {
                let (fi, line) = split_origin(d.origin);
                write_dead(&mut self.dead, d.rejection, &self.files[fi], line, raw.bytes)
                    .map_err(io(&self.out.join("dead-letter.jsonl")))
            }
            None => {
                self.deferred.push((d.origin, d.rejection.clone()));
                Ok(())
            }
        }
    }
}

/// Reads the given input positions' lines back from the files.
fn fetch_lines(files: &[PathBuf], origins: impl Iterator<Item = u64>) -> Result<BTreeMap<u64, Vec<u8>>, FilesError> {
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
                out.insert(super::origin(fi, no), trim_line(&buf).to_vec());
            }
        }
    }
    Ok(out)
}
