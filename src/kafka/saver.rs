//! The thread that makes a partition's checkpoints durable, so the
//! consuming loop never waits for the disk.
//!
//! The loop takes a consistent cut — the engine's delta (a copy of what
//! changed) and the checkpoint's [`Meta`] — and hands it over
//! ([`Saver::save`]), with the history flush of the same cut, whose parts
//! complete on the history writer's thread meanwhile
//! ([`Saver::save_after_acks`]). This thread waits until those parts are
//! complete (the checkpoint's `next_part` counts them) and the brokers have
//! acknowledged the records published before the cut (the state must not
//! claim a record they may not have), encodes the delta, appends it to the
//! delta log as a frame, syncs the log, and reports the checkpoint durable
//! ([`Saver::durable`]): only then does the loop commit its offset. Cuts
//! queued while it syncs are written together, with one sync. With a
//! changelog ([`Mirror`]), the frames (and every new base) are published
//! there too, and a checkpoint is durable once the brokers acknowledged
//! them as well.
//!
//! Once the log is larger than its base (and than [`FOLD_FROM`]), the
//! thread folds the two into a new base, of the next generation, and
//! starts an empty log (see [`checkpoint`]): the bytes written stay
//! proportional to what changed (each byte of the state is written again
//! about once per change of that size), the log read at a restart at most
//! the base's size. Folding reads the base and the log back and holds a
//! copy of the state meanwhile: memory, not loop time.

use super::changelog::{Changelog, Head};
use super::checkpoint::{self, CheckpointCause, CheckpointError, Meta};
use super::client::{Acks, DeliveryFailure};
use crate::engine::delta::Delta;
use crate::history::{Flushing, HistoryError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

/// A log smaller than this is never folded, whatever its base's size.
pub const FOLD_FROM: u64 = 4 << 20;

enum Job {
    /// Append a checkpoint to the log, once the history flush of its cut
    /// is complete and the brokers have acknowledged the records published
    /// before it.
    Save(Box<Meta>, Box<Delta>, Option<Flushing>, Option<Acks>),
    /// Answer once everything before is durable.
    Sync(Sender<()>),
}

/// What the thread reports.
pub enum Report {
    /// The checkpoint of this meta is durable.
    Durable(Box<Meta>),
    /// Writing failed: the checkpoints after the last durable one are not.
    Failed(CheckpointError),
    /// The history flush of a cut failed: that checkpoint and those after
    /// it are not written.
    HistoryFailed(HistoryError),
}

/// The handle on a partition's checkpoint writer.
pub struct Saver {
    jobs: Option<Sender<Job>>,
    reports: Receiver<Report>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Checkpoints handed over and not reported yet.
    pending: usize,
    /// Set when the handle goes: the thread stops waiting for
    /// acknowledgements (what it waits for then is not written).
    gone: Arc<AtomicBool>,
}

/// The writer thread's state.
struct Writer {
    /// The base.
    path: PathBuf,
    generation: u64,
    base_len: u64,
    log: Option<std::fs::File>,
    log_len: u64,
    /// The log is folded once larger than the base and this.
    fold_from: u64,
    /// Frames being written.
    buf: Vec<u8>,
    /// The changelog kept in step with the files, and its head.
    mirror: Option<(Changelog, Head)>,
}

/// The changelog a writer keeps in step with the local checkpoint.
pub struct Mirror {
    /// The partition's changelog.
    pub changelog: Changelog,
    /// Its head, when it holds exactly the local checkpoint; `None` when
    /// it does not (empty, or written before): the writer then publishes
    /// the local base and log before anything else.
    pub head: Option<Head>,
    /// Keys the head does not use: the writer gives them tombstones.
    pub stale: Vec<String>,
}

impl Saver {
    /// Starts the writer of the checkpoint at `path`, whose base (of
    /// `generation`, `base_len` bytes) is followed by `log_len` bytes of
    /// log; the log is folded once larger than the base and `fold_from`
    /// ([`FOLD_FROM`] but in tests). Logs of other generations (left by a
    /// fold cut short) go.
    pub fn start(path: &Path, generation: u64, base_len: u64, log_len: u64, fold_from: u64) -> Saver {
        Saver::start_with(path, generation, base_len, log_len, fold_from, None)
    }

    /// [`Saver::start`], keeping `mirror`'s changelog in step with the
    /// files: a checkpoint is durable once both have it.
    pub fn start_with(
        path: &Path,
        generation: u64,
        base_len: u64,
        log_len: u64,
        fold_from: u64,
        mirror: Option<Mirror>,
    ) -> Saver {
        let (jobs, rx) = channel::<Job>();
        let gone = Arc::new(AtomicBool::new(false));
        let give_up = gone.clone();
        let (tx, reports) = channel::<Report>();
        let mut w = Writer {
            path: path.to_path_buf(),
            generation,
            base_len,
            log: None,
            log_len,
            fold_from,
            buf: Vec::new(),
            mirror: None,
        };
        w.remove_other_logs();
        let thread = std::thread::Builder::new()
            .name("jiancha-checkpoint".into())
            .spawn(move || {
                if let Some(m) = mirror {
                    if let Err(e) = w.start_mirror(m) {
                        let _ = tx.send(Report::Failed(e));
                        return;
                    }
                }
                while let Ok(job) = rx.recv() {
                    // Every cut waiting goes in this write.
                    let mut batch = Vec::new();
                    let mut syncs = Vec::new();
                    for job in std::iter::once(job).chain(rx.try_iter()) {
                        match job {
                            Job::Save(meta, delta, history, acks) => {
                                if let Some(Err(e)) = history.map(Flushing::wait) {
                                    let _ = tx.send(Report::HistoryFailed(e));
                                    return;
                                }
                                match acks.map(|a| a.wait(&|| give_up.load(Ordering::Relaxed))) {
                                    Some(Err(Some(e))) => {
                                        let _ = tx.send(Report::Failed(undelivered(e)));
                                        return;
                                    }
                                    Some(Err(None)) => return,
                                    _ => {}
                                }
                                batch.push((meta, delta))
                            }
                            Job::Sync(s) => syncs.push(s),
                        }
                    }
                    if !batch.is_empty() {
                        let metas: Vec<Box<Meta>> = batch.iter().map(|(m, _)| m.clone()).collect();
                        match w.append(batch) {
                            Ok(()) => {
                                for m in metas {
                                    let _ = tx.send(Report::Durable(m));
                                }
                            }
                            Err(e) => {
                                let _ = tx.send(Report::Failed(e));
                                return;
                            }
                        }
                    }
                    for s in syncs {
                        let _ = s.send(());
                    }
                }
            })
            .ok();
        Saver { jobs: thread.as_ref().map(|_| jobs), reports, thread, pending: 0, gone }
    }

    /// Hands a cut over to be made durable.
    pub fn save(&mut self, meta: Meta, delta: Delta) {
        self.send(meta, delta, None, None)
    }

    /// Hands a cut over to be made durable once `history` (its history
    /// flush) is.
    pub fn save_after(&mut self, meta: Meta, delta: Delta, history: Flushing) {
        self.send(meta, delta, Some(history), None)
    }

    /// [`Saver::save_after`], once the brokers have also acknowledged the
    /// records of `acks` (those published before the cut).
    pub fn save_after_acks(&mut self, meta: Meta, delta: Delta, history: Flushing, acks: Acks) {
        self.send(meta, delta, Some(history), Some(acks))
    }

    fn send(&mut self, meta: Meta, delta: Delta, history: Option<Flushing>, acks: Option<Acks>) {
        if let Some(j) = &self.jobs {
            if j.send(Job::Save(Box::new(meta), Box::new(delta), history, acks)).is_ok() {
                self.pending += 1;
            }
        }
    }

    /// Checkpoints handed over and not reported yet.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// What the thread reported since the last call; a thread gone (it
    /// can only panic) is reported as a failure.
    pub fn durable(&mut self) -> Vec<Report> {
        let mut out: Vec<Report> = self.reports.try_iter().collect();
        self.pending -= out.len().min(self.pending);
        if self.pending > 0 && self.thread.as_ref().is_none_or(|t| t.is_finished()) {
            out.extend(self.reports.try_iter());
            if !out.iter().any(|r| matches!(r, Report::Failed(_) | Report::HistoryFailed(_))) {
                out.push(Report::Failed(lost()));
            }
            self.pending = 0;
        }
        out
    }

    /// Waits until every checkpoint handed over is durable (or failed);
    /// then [`Saver::durable`] has their reports.
    pub fn sync(&mut self) {
        let (tx, rx) = channel();
        if self.jobs.as_ref().is_some_and(|j| j.send(Job::Sync(tx)).is_ok()) {
            let _ = rx.recv();
        }
    }
}

/// A record published before a cut was refused by the brokers: the cut
/// is not written (the service stops on the failure).
fn undelivered(e: DeliveryFailure) -> CheckpointError {
    CheckpointError {
        path: PathBuf::from("checkpoint writer thread"),
        cause: CheckpointCause::Io(std::io::Error::other(format!("a record published before the checkpoint: {e}"))),
    }
}

fn lost() -> CheckpointError {
    CheckpointError {
        path: PathBuf::from("checkpoint writer thread"),
        cause: CheckpointCause::Io(std::io::Error::other("the checkpoint writer thread stopped")),
    }
}

impl Drop for Saver {
    /// Lets the thread write what it has (but for cuts whose records are
    /// still unacknowledged), then stops it.
    fn drop(&mut self) {
        self.jobs = None;
        self.gone.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Writer {
    fn err(&self, path: &Path) -> impl Fn(std::io::Error) -> CheckpointError {
        let path = path.to_path_buf();
        move |e| CheckpointError { path: path.clone(), cause: e.into() }
    }

    /// Brings the changelog in step with the files: publishes the base and
    /// the log unless it has them, and tombstones what it holds besides.
    fn start_mirror(&mut self, m: Mirror) -> Result<(), CheckpointError> {
        let err = |e: super::changelog::ChangelogError| CheckpointError { path: self.path.clone(), cause: e.into() };
        let head = match m.head {
            Some(h) => h,
            None => {
                let base = std::fs::read(&self.path).map_err(self.err(&self.path))?;
                let log_file = checkpoint::log_path(&self.path, self.generation);
                let mut log = match std::fs::read(&log_file) {
                    Ok(b) => b,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                    Err(e) => return Err(self.err(&log_file)(e)),
                };
                log.truncate(self.log_len as usize);
                let mut head = Head { generation: self.generation, ..Head::default() };
                m.changelog.publish_base(&mut head, &base).map_err(err)?;
                m.changelog.publish_log(&mut head, &log, checkpoint::last_frame_sum(&log)).map_err(err)?;
                head
            }
        };
        m.changelog.retire(None, &m.stale, &head).map_err(err)?;
        self.mirror = Some((m.changelog, head));
        Ok(())
    }

    /// Appends the cuts to the log as frames and syncs it (and publishes
    /// them to the changelog); folds the log into a new base once it
    /// outgrows the base.
    fn append(&mut self, batch: Vec<(Box<Meta>, Box<Delta>)>) -> Result<(), CheckpointError> {
        let log = checkpoint::log_path(&self.path, self.generation);
        let err = self.err(&log);
        self.buf.clear();
        let mut bytes = Vec::new();
        let mut last = None;
        let mut last_sum = 0;
        for (meta, delta) in batch {
            bytes.clear();
            delta.write_to(&mut bytes).map_err(&err)?;
            last_sum = checkpoint::frame(&meta, &bytes, &mut self.buf);
            last = Some(meta);
        }
        if self.log.is_none() {
            let f = std::fs::OpenOptions::new().create(true).append(true).open(&log).map_err(&err)?;
            self.log = Some(f);
        }
        let f = self.log.as_mut().expect("opened");
        f.write_all(&self.buf).and_then(|_| f.sync_data()).map_err(&err)?;
        self.log_len += self.buf.len() as u64;
        if let Some((changelog, head)) = &mut self.mirror {
            changelog
                .publish_log(head, &self.buf, last_sum)
                .map_err(|e| CheckpointError { path: log.clone(), cause: e.into() })?;
        }
        if self.log_len > self.base_len.max(self.fold_from) {
            if let Some(meta) = last {
                self.fold(*meta)?;
            }
        }
        // A large batch leaves no large buffer behind.
        if self.buf.capacity() > 16 << 20 {
            self.buf = Vec::new();
        }
        Ok(())
    }

    /// Writes base and log as a new base of the next generation, then
    /// removes the old log. A crash before the rename leaves the old base
    /// and its log; after it, the new base (the old log is then removed
    /// when the partition is loaded next).
    fn fold(&mut self, mut meta: Meta) -> Result<(), CheckpointError> {
        let started = std::time::Instant::now();
        let Some(loaded) = checkpoint::load(&self.path)? else { return Ok(()) };
        meta.generation = self.generation + 1;
        let deltas = loaded.deltas.iter().map(|d| d.as_slice());
        let mut folded = Err(None);
        checkpoint::write(&self.path, &meta, |w| {
            folded = crate::engine::delta::compact(&loaded.base, deltas, w).map_err(Some);
            // An error of the fold fails the write; it is reported below.
            folded.as_ref().map(|_| ()).map_err(|_| std::io::Error::other("fold failed"))
        })
        .map_err(|e| match folded {
            Err(Some(c)) => CheckpointError { path: self.path.clone(), cause: c.into() },
            _ => e,
        })?;
        let old = checkpoint::log_path(&self.path, self.generation);
        self.generation += 1;
        self.base_len = std::fs::metadata(&self.path).map_err(self.err(&self.path))?.len();
        super::log(&format!(
            "{}: folded a base of {} bytes and a delta log of {} bytes into a base of {} bytes (generation {}) in {:.1} s",
            self.path.display(),
            loaded.base_len,
            self.log_len,
            self.base_len,
            self.generation,
            started.elapsed().as_secs_f64()
        ));
        self.log = None;
        self.log_len = 0;
        let _ = std::fs::remove_file(old);
        let path = self.path.clone();
        if let Some((changelog, head)) = &mut self.mirror {
            let base = std::fs::read(&path).map_err(|e| CheckpointError { path: path.clone(), cause: e.into() })?;
            let err = |e: super::changelog::ChangelogError| CheckpointError { path: path.clone(), cause: e.into() };
            let old = head.clone();
            head.generation = self.generation;
            changelog.publish_base(head, &base).map_err(err)?;
            changelog.retire(Some(&old), &[], head).map_err(err)?;
        }
        Ok(())
    }

    /// Removes logs of generations other than the base's.
    fn remove_other_logs(&self) {
        let (Some(dir), Some(stem)) = (self.path.parent(), self.path.file_stem().and_then(|s| s.to_str())) else {
            return;
        };
        let keep = checkpoint::log_path(&self.path, self.generation);
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name();
            let name = name.to_string_lossy();
            let ours = name.strip_prefix(stem).and_then(|r| r.strip_prefix('.')).and_then(|r| r.strip_suffix(".log"));
            if ours.is_some_and(|g| g.parse::<u64>().is_ok()) && p != keep {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}
