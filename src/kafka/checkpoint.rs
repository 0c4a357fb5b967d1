//! A partition's checkpoint: the state of its engine (open cases, their
//! timers, held events, the duplicate filter, what it learnt from other
//! partitions) with the input offset it reflects, where the output topics
//! ended when it was taken, and the history part it was taken after.
//!
//! Two files per partition, under `<data_dir>/checkpoints/<group>/`:
//! - the base, `<topic>-<p>.ckpt`: a JSON line of [`Meta`], then an engine
//!   snapshot (binary; see `crate::binary`). It is written to a temporary
//!   name, synced and renamed: a crash leaves the previous base or the new
//!   one, never half of one.
//! - its delta log, `<topic>-<p>.<generation>.log`: the checkpoints taken
//!   after the base, each a frame of its own [`Meta`] and the engine's
//!   delta (what changed since the checkpoint before it; see
//!   [`crate::engine::delta`]). A frame is its length, an XXH3-64 of its
//!   body, and the body; a frame cut short by a crash, or damaged, ends the
//!   log (and is cut off before the log grows again): the checkpoint is
//!   then the last whole frame, which is the last one synced, the only
//!   ones whose offsets were committed.
//!
//! The log is folded into a new base (the next generation) by the thread
//! that writes it ([`super::saver`]) once it outgrows the base.
//! The same bytes go to the partition's changelog ([`super::changelog`]),
//! through which the state moves with the partition to an instance that
//! shares no volume with this one; the local files make a restart on the
//! same host fast.

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
    /// Generation of the base: its delta log is the one of this number
    /// (0 in checkpoints written before delta logs existed).
    #[serde(default)]
    pub generation: u64,
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
    /// A delta log frame whose checksum matched but which does not read
    /// (written by a newer version, or a bug).
    #[error("delta log frame at byte {at}: {why}")]
    Frame {
        /// Its position in the log.
        at: u64,
        /// What is wrong.
        why: String,
    },
    /// Folding the delta log into a new base failed.
    #[error(transparent)]
    Compact(#[from] crate::engine::delta::CompactError),
    /// The changelog did not take it.
    #[error(transparent)]
    Changelog(#[from] super::changelog::ChangelogError),
}

fn safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
}

/// The checkpoint file of a partition.
pub fn path(data_dir: &Path, group: &str, topic: &str, partition: i32) -> PathBuf {
    data_dir.join("checkpoints").join(safe(group)).join(format!("{}-{partition}.ckpt", safe(topic)))
}

/// The delta log following the base at `path` of `generation`.
pub fn log_path(path: &Path, generation: u64) -> PathBuf {
    path.with_extension(format!("{generation}.log"))
}

/// A checkpoint as read: the base, and the deltas after it.
pub struct Loaded {
    /// The last checkpoint's [`Meta`] (the last whole frame's, or the base's).
    pub meta: Meta,
    /// The base snapshot.
    pub base: Vec<u8>,
    /// The deltas after it, in order.
    pub deltas: Vec<Vec<u8>>,
    /// Bytes of the base file.
    pub base_len: u64,
    /// Bytes of the delta log kept (its whole frames).
    pub log_len: u64,
    /// Bytes cut off the end of the log: a frame cut short or damaged.
    pub cut: u64,
    /// The base's own [`Meta`].
    pub base_meta: Meta,
    /// XXH3-64 of the base file.
    pub base_sum: u64,
    /// Each frame of the log: where it ends, its checksum and its meta.
    pub frames: Vec<FrameAt>,
    /// How long reading (and restoring, for the caller) took.
    pub took: std::time::Duration,
}

/// A frame of a delta log as read.
#[derive(Clone, Debug)]
pub struct FrameAt {
    /// Where it ends in the log.
    pub end: u64,
    /// Its checksum (as its header has it).
    pub sum: u64,
    /// Its meta.
    pub meta: Meta,
}

impl Loaded {
    /// Keeps the base and the first `n` frames: the log is cut after them,
    /// on disk too (the checkpoint at `path`).
    pub fn keep_frames(&mut self, path: &Path, n: usize) -> Result<(), CheckpointError> {
        if n >= self.frames.len() {
            return Ok(());
        }
        let end = if n == 0 { 0 } else { self.frames[n - 1].end };
        let log = log_path(path, self.base_meta.generation);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&log)
            .and_then(|f| f.set_len(end).and_then(|_| f.sync_all()))
            .map_err(|e| CheckpointError { path: log.clone(), cause: e.into() });
        f?;
        self.frames.truncate(n);
        self.deltas.truncate(n);
        self.meta = self.frames.last().map_or_else(|| self.base_meta.clone(), |f| f.meta.clone());
        self.log_len = end;
        Ok(())
    }

    /// The checksum of the last frame kept (0 with none).
    pub fn last_sum(&self) -> u64 {
        self.frames.last().map_or(0, |f| f.sum)
    }
}

/// Frame header: length (u32) and checksum (u64), little-endian.
const FRAME_HEADER: usize = 12;

/// Appends a frame of `meta` and `delta` to `out`; returns its checksum.
pub fn frame(meta: &Meta, delta: &[u8], out: &mut Vec<u8>) -> u64 {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER]);
    serde_json::to_writer(&mut *out, meta).expect("meta serializes");
    out.push(b'\n');
    out.extend_from_slice(delta);
    let body = &out[start + FRAME_HEADER..];
    let (len, sum) = (body.len() as u32, xxhash_rust::xxh3::xxh3_64(body));
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + FRAME_HEADER].copy_from_slice(&sum.to_le_bytes());
    sum
}

/// The checksum of the last whole frame of a delta log (0 with none).
pub fn last_frame_sum(log: &[u8]) -> u64 {
    let (mut at, mut sum) = (0usize, 0u64);
    while let Some(head) = log.get(at..at + FRAME_HEADER) {
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        if log.len() < at + FRAME_HEADER + len {
            break;
        }
        sum = u64::from_le_bytes(head[4..].try_into().expect("8 bytes"));
        at += FRAME_HEADER + len;
    }
    sum
}

/// Reads a checkpoint — its base and the whole frames of its delta log —
/// if there is one; a torn end of the log is cut off.
pub fn load(path: &Path) -> Result<Option<Loaded>, CheckpointError> {
    let Some((base_meta, base, base_len, base_sum)) = read_base(path)? else { return Ok(None) };
    let log = log_path(path, base_meta.generation);
    let err = |cause: CheckpointCause| CheckpointError { path: log.clone(), cause };
    let bytes = match std::fs::read(&log) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(err(e.into())),
    };
    let generation = base_meta.generation;
    let mut meta = base_meta.clone();
    let mut deltas = Vec::new();
    let mut frames = Vec::new();
    let mut at = 0usize;
    while let Some(head) = bytes.get(at..at + FRAME_HEADER) {
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        let sum = u64::from_le_bytes(head[4..].try_into().expect("8 bytes"));
        let Some(body) = bytes.get(at + FRAME_HEADER..at + FRAME_HEADER + len) else { break };
        if xxhash_rust::xxh3::xxh3_64(body) != sum {
            break;
        }
        let frame_err = |why: String| err(CheckpointCause::Frame { at: at as u64, why });
        let nl = body.iter().position(|&b| b == b'\n').ok_or_else(|| frame_err("no header line".into()))?;
        meta = serde_json::from_slice(&body[..nl]).map_err(|e| frame_err(e.to_string()))?;
        // A frame's generation is the base's, whatever its writer knew.
        meta.generation = generation;
        deltas.push(body[nl + 1..].to_vec());
        at += FRAME_HEADER + len;
        frames.push(FrameAt { end: at as u64, sum, meta: meta.clone() });
    }
    let cut = (bytes.len() - at) as u64;
    if cut > 0 {
        let f = std::fs::OpenOptions::new().write(true).open(&log).map_err(|e| err(e.into()))?;
        f.set_len(at as u64).and_then(|_| f.sync_all()).map_err(|e| err(e.into()))?;
    }
    Ok(Some(Loaded {
        meta,
        base,
        deltas,
        base_len,
        log_len: at as u64,
        cut,
        took: Default::default(),
        base_meta,
        base_sum,
        frames,
    }))
}

/// A base as read: its meta, its snapshot, the file's length and its
/// checksum.
type Base = (Meta, Vec<u8>, u64, u64);

/// Reads a checkpoint's base, if there is one.
fn read_base(path: &Path) -> Result<Option<Base>, CheckpointError> {
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
    let len = bytes.len() as u64;
    let sum = xxhash_rust::xxh3::xxh3_64(&bytes);
    let mut bytes = bytes;
    bytes.drain(..nl + 1);
    Ok(Some((meta, bytes, len, sum)))
}

/// Puts a checkpoint read from elsewhere (the changelog) in place of the
/// one at `path`: its base file and the delta log of its `generation`,
/// each written whole or not at all. Logs of other generations go when
/// the partition's writer starts.
pub fn install(path: &Path, generation: u64, base: &[u8], log: &[u8]) -> Result<(), CheckpointError> {
    let log_file = log_path(path, generation);
    // The old base goes first: should the process die before the new one
    // is in place, the partition has no local checkpoint (and is read from
    // the changelog again), never an old base followed by a new log of the
    // same generation.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(CheckpointError { path: path.to_path_buf(), cause: e.into() }),
    }
    write_whole(&log_file, "install.tmp", |f| f.write_all(log))?;
    write_whole(path, "install.tmp", |f| f.write_all(base))
}

/// Writes a checkpoint atomically and durably.
pub fn write(
    path: &Path,
    meta: &Meta,
    snapshot: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), CheckpointError> {
    write_whole(path, "ckpt.tmp", |f| {
        serde_json::to_writer(&mut *f, meta).map_err(std::io::Error::from)?;
        f.write_all(b"\n")?;
        snapshot(f)
    })
}

/// Writes a file whole or not at all: `fill` writes it under a temporary
/// name (`path` with the extension `tmp_ext`), which is synced and renamed
/// over `path`, and the folder synced.
fn write_whole(
    path: &Path,
    tmp_ext: &str,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), CheckpointError> {
    let err = |cause: std::io::Error| CheckpointError { path: path.to_path_buf(), cause: cause.into() };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = path.with_extension(tmp_ext);
    {
        let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp).map_err(err)?);
        fill(&mut f).map_err(err)?;
        let f = f.into_inner().map_err(|e| err(e.into_error()))?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
