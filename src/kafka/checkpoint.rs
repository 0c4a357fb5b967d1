//! A partition's checkpoint: the state of its engine (open cases, their
//! timers, held events, the duplicate filter, what it learnt from other
//! partitions) with the input offset it reflects, where the output topics
//! ended when it was taken, and the history part it was taken after.
//!
//! One file per partition, `<data_dir>/checkpoints/<group>/<topic>-<p>.ckpt`:
//! a JSON line of [`Meta`], then the engine snapshot (binary; see
//! `crate::binary`). Instances of one group share the data folder, so a
//! partition's state moves with the partition. A file is written to a
//! temporary name, synced and renamed: a crash leaves the previous
//! checkpoint or the new one, never half of one.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What a checkpoint says besides the engine state.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// Format version (1).
    pub version: u32,
    /// The events topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Next offset to read.
    pub offset: i64,
    /// Largest `occurred_at` applied (event-time watermark).
    pub max_at: Option<i64>,
    /// Ends of the alerts topic when the checkpoint was taken: every record
    /// of this partition after them was published after it.
    pub alerts_end: BTreeMap<i32, i64>,
    /// Ends of the dead-letter topic, likewise.
    pub dead_letter_end: BTreeMap<i32, i64>,
    /// Next offset of the facts topic, by its partition, that the engine
    /// has not learnt yet.
    pub facts_next: BTreeMap<i32, i64>,
    /// The history run its events are tagged with.
    pub run: u64,
    /// History parts of this partition numbered from here on were written
    /// after the checkpoint.
    pub next_part: u64,
    /// When it was written (RFC 3339, wall clock), for operators.
    pub written_at: String,
}

/// Reading or writing a checkpoint failed.
#[derive(Debug, thiserror::Error)]
#[error("checkpoint {path}: {cause}")]
pub struct CheckpointError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub cause: CheckpointCause,
}

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointCause {
    /// The file system refused.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The header line is not the JSON it should be.
    #[error("header: {0}")]
    Header(#[from] serde_json::Error),
    /// The file has no header line.
    #[error("no header line")]
    NoHeader,
    /// Written in a format this version does not read.
    #[error("format version {0} is not 1")]
    Version(u32),
}

fn safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
}

/// The checkpoint file of a partition.
pub fn path(data_dir: &Path, group: &str, topic: &str, partition: i32) -> PathBuf {
    data_dir.join("checkpoints").join(safe(group)).join(format!("{}-{partition}.ckpt", safe(topic)))
}

/// Reads a checkpoint, if there is one.
pub fn read(path: &Path) -> Result<Option<(Meta, Vec<u8>)>, CheckpointError> {
    let err = |cause: CheckpointCause| CheckpointError { path: path.to_path_buf(), cause };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e.into())),
    };
    let nl = bytes.iter().position(|&b| b == b'\n').ok_or_else(|| err(CheckpointCause::NoHeader))?;
    let meta: Meta = serde_json::from_slice(&bytes[..nl]).map_err(|e| err(e.into()))?;
    if meta.version != 1 {
        return Err(err(CheckpointCause::Version(meta.version)));
    }
    Ok(Some((meta, bytes[nl + 1..].to_vec())))
}

/// Writes a checkpoint atomically and durably.
pub fn write(
    path: &Path,
    meta: &Meta,
    snapshot: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), CheckpointError> {
    let err = |cause: std::io::Error| CheckpointError { path: path.to_path_buf(), cause: cause.into() };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = path.with_extension("ckpt.tmp");
    {
        let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp).map_err(err)?);
        serde_json::to_writer(&mut f, meta).map_err(|e| err(e.into()))?;
        f.write_all(b"\n").map_err(err)?;
        snapshot(&mut f).map_err(err)?;
        let f = f.into_inner().map_err(|e| err(e.into_error()))?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
