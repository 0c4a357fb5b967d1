//! The parts being written, on a thread of their own: encoding rows into
//! Parquet and compressing them was about an eighth of a replay's time,
//! and it needs nothing from the loop but the rows. The loop hands batches
//! over a short queue (it waits only when the writer is that far behind)
//! and, at a flush, either waits until every part is complete or takes a
//! [`Flushing`] to wait on elsewhere (the checkpoint writer of `run`).

use super::{HistoryError, Month, ROW_GROUP_ROWS, UNIQUE_COLUMNS};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

/// Batches waiting for the writer thread at most (each up to
/// [`super::BATCH_ROWS`] rows, a few MB): enough that a checkpoint's flush,
/// which hands over a batch per table and month at once, seldom waits for
/// a writer that is behind (in a backfill it waited 23-65 ms with 4).
const QUEUE: usize = 16;

enum Job {
    /// Encode rows into the open part of a table and month (opening it,
    /// numbered `part`).
    Encode { table: &'static str, month: Option<Month>, part: u64, batch: RecordBatch },
    /// Complete every open part, and say so here.
    Finish(SyncSender<Finished>),
}

/// What a [`Job::Finish`] did.
pub(super) enum Finished {
    /// No part was open.
    Nothing,
    /// The open parts were completed, or abandoned after a failure (which
    /// is returned).
    Parts(Result<(), HistoryError>),
}

/// The handle on the writer thread.
pub(super) struct Parts {
    jobs: Option<SyncSender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The thread is gone (it can only panic): what to report.
    lost: bool,
    /// How long handing batches over waited for room in the queue.
    waited: std::time::Duration,
}

struct OpenPart {
    writer: ArrowWriter<std::fs::File>,
    tmp: PathBuf,
    path: PathBuf,
}

/// The writer thread's state.
struct Writer {
    dir: PathBuf,
    /// `WRITER-` of a named writer's part names, or empty.
    prefix: String,
    open: BTreeMap<(&'static str, Option<Month>), OpenPart>,
    /// Encoding failed: reported at the next finish, nothing more encoded
    /// until then.
    failed: Option<HistoryError>,
    /// Where complete parts are moved, if anywhere.
    remote: Option<Arc<super::store::Remote>>,
}

impl Parts {
    /// Starts the writer thread for parts under `dir` named with `prefix`.
    /// Starts the writer thread for parts under `dir` named with `prefix`,
    /// moving each to `remote` once complete.
    pub(super) fn start(dir: &Path, prefix: &str, remote: Option<Arc<super::store::Remote>>) -> Parts {
        let (jobs, rx) = sync_channel::<Job>(QUEUE);
        let mut w =
            Writer { dir: dir.to_path_buf(), prefix: prefix.to_string(), open: BTreeMap::new(), failed: None, remote };
        let thread = std::thread::Builder::new()
            .name("jiancha-history".into())
            .spawn(move || {
                for job in rx {
                    match job {
                        Job::Encode { table, month, part, batch } => w.encode(table, month, part, &batch),
                        // Nobody waiting for it is no reason to stop.
                        Job::Finish(tx) => drop(tx.send(w.finish())),
                    }
                }
            })
            .ok();
        Parts { jobs: thread.as_ref().map(|_| jobs), lost: thread.is_none(), thread, waited: Default::default() }
    }

    /// Hands rows to the writer thread.
    pub(super) fn encode(&mut self, table: &'static str, month: Option<Month>, part: u64, batch: RecordBatch) {
        let Some(j) = self.jobs.as_ref() else {
            self.lost = true;
            return;
        };
        let sent = match j.try_send(Job::Encode { table, month, part, batch }) {
            Ok(()) => true,
            Err(std::sync::mpsc::TrySendError::Full(job)) => {
                let started = std::time::Instant::now();
                let sent = j.send(job).is_ok();
                self.waited += started.elapsed();
                sent
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => false,
        };
        self.lost |= !sent;
    }

    /// How long handing batches over has waited for the thread, in all.
    pub(super) fn waited(&self) -> std::time::Duration {
        self.waited
    }

    /// Asks the thread to complete every open part, once every batch
    /// handed over is in it.
    pub(super) fn finish(&mut self) -> Flushing {
        let (tx, rx) = sync_channel(1);
        let sent = !self.lost && self.jobs.as_ref().is_some_and(|j| j.send(Job::Finish(tx)).is_ok());
        self.lost |= !sent;
        Flushing(rx)
    }
}

/// The parts of one flush, completing on the writer thread.
pub struct Flushing(Receiver<Finished>);

impl Flushing {
    /// Waits until they are complete (under their final names, and in the
    /// object store if there is one). A thread gone (it can only panic),
    /// or that lost a batch of this flush, fails.
    pub fn wait(self) -> Result<(), HistoryError> {
        match self.0.recv().unwrap_or_else(|_| Finished::Parts(Err(lost()))) {
            Finished::Nothing => Ok(()),
            Finished::Parts(result) => result,
        }
    }
}

fn lost() -> HistoryError {
    HistoryError::Io {
        path: PathBuf::from("history writer thread"),
        cause: std::io::Error::other("the history writer thread stopped"),
    }
}

impl Drop for Parts {
    /// Stops the thread (parts still open stay under their temporary names).
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Writer {
    fn encode(&mut self, table: &'static str, m: Option<Month>, part: u64, batch: &RecordBatch) {
        if self.failed.is_none() {
            if let Err(e) = self.try_encode(table, m, part, batch) {
                self.failed = Some(e);
            }
        }
    }

    fn try_encode(
        &mut self,
        table: &'static str,
        m: Option<Month>,
        n: u64,
        batch: &RecordBatch,
    ) -> Result<(), HistoryError> {
        let part = match self.open.entry((table, m)) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => {
                let folder = match m {
                    None => self.dir.join(table),
                    Some(m) => self.dir.join(table).join(format!("month={m}")),
                };
                std::fs::create_dir_all(&folder).map_err(|cause| HistoryError::Io { path: folder.clone(), cause })?;
                let path = folder.join(format!("part-{}{:08}.parquet", self.prefix, n));
                let tmp = folder.join(format!(".part-{}{:08}.parquet.tmp", self.prefix, n));
                let file =
                    std::fs::File::create(&tmp).map_err(|cause| HistoryError::Io { path: tmp.clone(), cause })?;
                let mut props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    .set_max_row_group_row_count(Some(ROW_GROUP_ROWS));
                for c in UNIQUE_COLUMNS {
                    props = props.set_column_dictionary_enabled(ColumnPath::from(*c), false);
                }
                let props = props.build();
                let writer = ArrowWriter::try_new(file, batch.schema(), Some(props))
                    .map_err(|cause| HistoryError::Parquet { path: path.clone(), cause })?;
                v.insert(OpenPart { writer, tmp, path })
            }
        };
        part.writer.write(batch).map_err(|cause| HistoryError::Parquet { path: part.path.clone(), cause })
    }

    fn finish(&mut self) -> Finished {
        if let Some(e) = self.failed.take() {
            self.open.clear();
            return Finished::Parts(Err(e));
        }
        if self.open.is_empty() {
            return Finished::Nothing;
        }
        let (dir, remote) = (&self.dir, &self.remote);
        let complete = |p: OpenPart| {
            let pq = |cause| HistoryError::Parquet { path: p.path.clone(), cause };
            p.writer.close().map_err(pq)?;
            let io = |cause| HistoryError::Io { path: p.path.clone(), cause };
            std::fs::rename(&p.tmp, &p.path).map_err(io)?;
            if let Some(r) = remote {
                // Complete here first: a crash before the copy leaves it
                // local, numbered past the checkpoint, and removed when
                // the partition is taken up again.
                let rel = p.path.strip_prefix(dir).unwrap_or(&p.path);
                let rel: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
                r.put_file(&p.path, &rel.join("/"))?;
                std::fs::remove_file(&p.path).map_err(io)?;
            }
            Ok(())
        };
        let mut result = Ok(());
        for (_, p) in std::mem::take(&mut self.open) {
            result = complete(p);
            if result.is_err() {
                break;
            }
        }
        Finished::Parts(result)
    }
}
