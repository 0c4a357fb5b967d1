//! The alert feed: every alert record the pipeline publishes, numbered in
//! order, kept in a bounded ring for streaming clients to resume from, plus
//! each alert's latest record for `GET /api/alerts`.
//!
//! Stream ids are `<run>-<seq>`: `run` is the process start time, so a
//! client resuming with an id from before a restart gets everything the new
//! process still holds rather than a wrong position.

use crate::alert::{AlertRecord, AlertState};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// One record as the feed holds it.
#[derive(Debug)]
pub struct Entry {
    /// Position in this process's feed, from 1.
    pub seq: u64,
    /// The record.
    pub record: AlertRecord,
    /// The record as JSON.
    pub json: String,
}

struct Inner {
    ring: VecDeque<Arc<Entry>>,
    /// The latest record of every alert, by alert id.
    current: BTreeMap<String, Arc<Entry>>,
}

/// The feed (shared; cheap to lock).
pub struct Feed {
    inner: Mutex<Inner>,
    cap: usize,
    last: watch::Sender<u64>,
    /// Identifies this process's numbering.
    pub run: u64,
}

/// What a resuming client gets.
pub struct Since {
    /// The records after the position asked for.
    pub entries: Vec<Arc<Entry>>,
    /// Records between the position asked for and the first held were
    /// dropped from the ring (the client fell too far behind).
    pub gap: bool,
}

impl Feed {
    /// A feed keeping the last `cap` records for resumption.
    pub fn new(cap: usize) -> Feed {
        let run =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Feed {
            inner: Mutex::new(Inner { ring: VecDeque::new(), current: BTreeMap::new() }),
            cap: cap.max(1),
            last: watch::channel(0).0,
            run,
        }
    }

    /// Appends a record; returns the alert's previous state, if any.
    pub fn push(&self, record: &AlertRecord) -> Option<AlertState> {
        let json = serde_json::to_string(record).unwrap_or_default();
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let seq = g.ring.back().map_or(*self.last.borrow(), |e| e.seq) + 1;
        let e = Arc::new(Entry { seq, record: record.clone(), json });
        if g.ring.len() == self.cap {
            g.ring.pop_front();
        }
        g.ring.push_back(e.clone());
        let prev = g.current.insert(record.alert_id.clone(), e).map(|p| p.record.state);
        drop(g);
        self.last.send_replace(seq);
        prev
    }

    /// The number of the newest record (0 before any).
    pub fn last_seq(&self) -> u64 {
        *self.last.borrow()
    }

    /// Wakes when a record is appended.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.last.subscribe()
    }

    /// The records after `seq`, at most `max`.
    pub fn since(&self, seq: u64, max: usize) -> Since {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(first) = g.ring.front().map(|e| e.seq) else { return Since { entries: vec![], gap: false } };
        let gap = seq + 1 < first;
        let start = (seq + 1).saturating_sub(first) as usize;
        let entries = g.ring.iter().skip(start).take(max).cloned().collect();
        Since { entries, gap }
    }

    /// Parses a stream id of this feed: the position to resume after.
    /// An id of another run (or garbage) resumes from the start of the ring.
    pub fn resume_point(&self, id: &str) -> u64 {
        match id.split_once('-') {
            Some((run, seq)) if run.parse() == Ok(self.run) => seq.parse().unwrap_or(0),
            _ => 0,
        }
    }

    /// The stream id of an entry.
    pub fn id_of(&self, e: &Entry) -> String {
        format!("{}-{}", self.run, e.seq)
    }

    /// Each alert's latest record passing `keep`, in alert id order.
    pub fn current(&self, mut keep: impl FnMut(&AlertRecord) -> bool) -> Vec<Arc<Entry>> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.current.values().filter(|e| keep(&e.record)).cloned().collect()
    }

    /// Every alert's latest record whose state is firing.
    pub fn firing(&self) -> Vec<Arc<Entry>> {
        self.current(|r| r.state == AlertState::Firing)
    }
}
