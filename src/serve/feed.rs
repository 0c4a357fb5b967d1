//! The alert feed: every alert record the pipeline publishes, numbered in
//! order, kept in a bounded ring for streaming clients to resume from, plus
//! each alert's latest record for `GET /api/alerts`.
//!
//! Stream ids are `<run>-<seq>`: `run` is the process start time, so a
//! client resuming with an id from before a restart gets everything the new
//! process still holds rather than a wrong position.

use crate::alert::{AlertRecord, AlertState, EncodeError};
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
    pub fn push(&self, record: &AlertRecord) -> Result<Option<AlertState>, EncodeError> {
        Ok(self.push_entry(record)?.0)
    }

    /// Appends a record; returns the alert's previous state and the entry
    /// (whose JSON the caller may publish as is).
    pub fn push_entry(&self, record: &AlertRecord) -> Result<(Option<AlertState>, Arc<Entry>), EncodeError> {
        Ok(self.push_encoded(record, record.to_json()?))
    }

    /// Appends a record already encoded as `json` (by
    /// [`AlertRecord::to_json`]); returns the alert's previous state and the
    /// entry.
    pub fn push_encoded(&self, record: &AlertRecord, json: String) -> (Option<AlertState>, Arc<Entry>) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let seq = g.ring.back().map_or(*self.last.borrow(), |e| e.seq) + 1;
        let e = Arc::new(Entry { seq, record: record.clone(), json });
        let entry = e.clone();
        if g.ring.len() == self.cap {
            g.ring.pop_front();
        }
        g.ring.push_back(e.clone());
        let prev = g.current.insert(record.alert_id.clone(), e).map(|p| p.record.state);
        if g.current.len() > 2 * self.cap {
            // Keep every firing alert and the newest ended ones: bounded
            // memory, pruned rarely.
            let mut ended: Vec<u64> =
                g.current.values().filter(|e| e.record.state != AlertState::Firing).map(|e| e.seq).collect();
            ended.sort_unstable();
            let cut = ended.len().saturating_sub(self.cap).min(ended.len());
            if let Some(&oldest_kept) = ended.get(cut) {
                g.current.retain(|_, e| e.record.state == AlertState::Firing || e.seq >= oldest_kept);
            }
        }
        drop(g);
        self.last.send_replace(seq);
        (prev, entry)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: usize, state: &str) -> AlertRecord {
        serde_json::from_value(serde_json::json!({
            "alert_id": format!("C{id}/overdue"), "rule": "overdue", "level": "red", "state": state,
            "at": "2026-03-02T09:00:00+08:00", "case_id": format!("C{id}"), "region": "220421",
            "department": "tax", "window": null, "item_code": "T-1", "due_date": null,
            "retracted": false, "detail": {}
        }))
        .unwrap()
    }

    #[test]
    fn ring_resumes_after_an_id_and_reports_a_gap_past_its_end() {
        let f = Feed::new(3);
        for i in 0..5 {
            f.push(&record(i, "firing")).unwrap();
        }
        assert_eq!(f.last_seq(), 5);
        let s = f.since(3, 10);
        assert_eq!(s.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4, 5]);
        assert!(!s.gap);
        let s = f.since(0, 10);
        assert!(s.gap, "records 1 and 2 left the ring");
        assert_eq!(s.entries.first().map(|e| e.seq), Some(3));
        let id = f.id_of(&f.since(3, 1).entries[0]);
        assert_eq!(f.resume_point(&id), 4);
        assert_eq!(f.resume_point("1-4"), 0, "an id of another run starts over");
        assert_eq!(f.resume_point("garbage"), 0);
    }

    #[test]
    fn current_keeps_every_firing_alert_and_the_newest_ended_ones() {
        let f = Feed::new(2);
        f.push(&record(0, "firing")).unwrap();
        for i in 1..10 {
            f.push(&record(i, "firing")).unwrap();
            f.push(&record(i, "resolved")).unwrap();
        }
        let cur = f.current(|_| true);
        assert!(cur.iter().any(|e| e.record.case_id == "C0"), "a firing alert is never pruned");
        assert!(cur.len() <= 5, "{}", cur.len());
        assert!(cur.iter().any(|e| e.record.case_id == "C9"));
        assert_eq!(f.push(&record(9, "firing")).unwrap(), Some(AlertState::Resolved));
    }
}
