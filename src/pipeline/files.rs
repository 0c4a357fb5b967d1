//! Files as a source: [`FileSource`] reads JSON Lines files in order and
//! decodes them on a thread of its own (the sink writing files is
//! [`super::jsonl`]).

use super::{Payload, Pulled, Record, Source};
use crate::deadletter::Rejection;
use crate::event::{Decoder, Event};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender};
use std::thread::JoinHandle;

/// Reading or writing the files failed.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The reader thread panicked: the input was not read to its end.
    #[error("reading the input failed unexpectedly ({0}); the output is incomplete")]
    ReaderPanicked(String),
}

pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FilesError + '_ {
    move |source| FilesError::Io { path: path.to_path_buf(), source }
}

/// One input line, decoded. (Not boxed: a box per line would cost an
/// allocation for every good event to spare the rare bad one its size.)
#[allow(clippy::large_enum_variant)]
enum Item {
    Blank,
    Bad { line: u64, rejection: Rejection, raw: Vec<u8> },
    Good { line: u64, event: Event },
}

/// Consecutive lines of one file.
struct Batch {
    file: usize,
    bytes: u64,
    items: Vec<Item>,
}

/// JSON Lines files read in order, decoded on a reader thread; blank lines
/// are counted and skipped.
pub struct FileSource {
    rx: Option<Receiver<Batch>>,
    reader: Option<JoinHandle<Result<(), FilesError>>>,
    batch: std::vec::IntoIter<Item>,
    file: usize,
    /// The bytes of the last bad line handed out.
    raw: Vec<u8>,
    bar: indicatif::ProgressBar,
    /// Non-blank lines read.
    pub read: u64,
    /// Blank lines skipped.
    pub blank_lines: u64,
}

impl FileSource {
    /// Starts reading `files` (checked to exist) with a copy of `decoder`;
    /// a progress bar on stderr when `progress` and the input is large.
    pub fn open(files: &[PathBuf], decoder: &Decoder, progress: bool) -> Result<FileSource, FilesError> {
        let mut total = 0;
        for f in files {
            total += std::fs::metadata(f).map_err(io(f))?.len();
        }
        let bar = if progress && total > 16 << 20 {
            let b = indicatif::ProgressBar::new(total);
            b.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {per_sec} eta {eta}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        } else {
            indicatif::ProgressBar::hidden()
        };
        let (files, decoder) = (files.to_vec(), decoder.clone());
        FileSource::spawn(bar, move |tx| read_and_decode(&files, &decoder, tx))
    }

    /// A source over what `read` sends from a thread of its own.
    fn spawn(
        bar: indicatif::ProgressBar,
        read: impl FnOnce(SyncSender<Batch>) -> Result<(), FilesError> + Send + 'static,
    ) -> Result<FileSource, FilesError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(8);
        let reader = std::thread::Builder::new()
            .name("jiancha-reader".into())
            .spawn(move || read(tx))
            .map_err(io(Path::new("reader thread")))?;
        Ok(FileSource {
            rx: Some(rx),
            reader: Some(reader),
            batch: Vec::new().into_iter(),
            file: 0,
            raw: Vec::new(),
            bar,
            read: 0,
            blank_lines: 0,
        })
    }

    /// A source whose reader sends a few blank lines, then panics with
    /// `what` (for the tests of what uses a source).
    #[cfg(test)]
    pub(crate) fn failing_midway(what: &'static str) -> FileSource {
        FileSource::spawn(indicatif::ProgressBar::hidden(), move |tx| {
            let _ = tx.send(Batch { file: 0, bytes: 2, items: vec![Item::Blank, Item::Blank] });
            panic!("{what}")
        })
        .expect("a thread")
    }

    /// The reader's end: a panic fails the read (the input was not read to
    /// its end), never passes for success.
    fn join(&mut self) -> Result<(), FilesError> {
        self.bar.finish_and_clear();
        self.rx = None;
        match self.reader.take() {
            Some(h) => reader_outcome(h.join()),
            None => Ok(()),
        }
    }
}

impl Drop for FileSource {
    fn drop(&mut self) {
        // Let a reader still sending stop, then wait for it.
        self.rx = None;
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
    }
}

impl Source for FileSource {
    type Error = FilesError;

    fn pull(&mut self) -> Result<Pulled<'_>, FilesError> {
        loop {
            match self.batch.next() {
                Some(Item::Blank) => self.blank_lines += 1,
                Some(Item::Bad { line, rejection, raw }) => {
                    self.read += 1;
                    self.raw = raw;
                    let origin = super::origin(self.file, line);
                    let payload = Payload::Rejected(rejection, &self.raw);
                    return Ok(Pulled::Record(Record { origin, kafka: None, key: None, payload }));
                }
                Some(Item::Good { line, event }) => {
                    self.read += 1;
                    let origin = super::origin(self.file, line);
                    let payload = Payload::Decoded(event);
                    return Ok(Pulled::Record(Record { origin, kafka: None, key: None, payload }));
                }
                None => match self.rx.as_ref().and_then(|rx| rx.recv().ok()) {
                    Some(b) => {
                        self.bar.inc(b.bytes);
                        self.file = b.file;
                        self.batch = b.items.into_iter();
                    }
                    None => {
                        self.join()?;
                        return Ok(Pulled::End);
                    }
                },
            }
        }
    }
}

/// What the reader thread's end means: a panic is an error.
fn reader_outcome(joined: std::thread::Result<Result<(), FilesError>>) -> Result<(), FilesError> {
    joined.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_string());
        Err(FilesError::ReaderPanicked(what))
    })
}

pub(super) fn trim_line(buf: &[u8]) -> &[u8] {
    let mut s = buf;
    while let [rest @ .., b'\n' | b'\r'] = s {
        s = rest;
    }
    s
}

/// Reads every file in order and sends decoded batches; stops early if the
/// receiver is gone.
fn read_and_decode(files: &[PathBuf], decoder: &Decoder, tx: SyncSender<Batch>) -> Result<(), FilesError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_a_panicking_reader_fails_the_replay() {
        // Was `reader.join().unwrap_or(Ok(()))`: a replay whose reader died
        // midway ended "successfully" with part of its input.
        let joined = std::thread::spawn(|| -> Result<(), FilesError> { panic!("decoder bug") }).join();
        match reader_outcome(joined) {
            Err(FilesError::ReaderPanicked(what)) => assert_eq!(what, "decoder bug"),
            other => panic!("{other:?}"),
        }
        let joined = std::thread::spawn(|| -> Result<(), FilesError> { Ok(()) }).join();
        assert!(reader_outcome(joined).is_ok());
    }

    #[test]
    fn a_source_whose_reader_panics_midway_fails_instead_of_ending() {
        let mut src = FileSource::failing_midway("decoder bug");
        let mut pulls = 0;
        let err = loop {
            pulls += 1;
            match src.pull() {
                Ok(Pulled::End) => panic!("the source ended as if its input were read"),
                Ok(_) => assert!(pulls < 10),
                Err(e) => break e,
            }
        };
        assert!(matches!(err, FilesError::ReaderPanicked(ref w) if w == "decoder bug"), "{err}");
        assert_eq!(src.blank_lines, 2, "what was read before the panic was taken");
    }
}
