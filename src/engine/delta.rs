//! Incremental checkpoints: what changed in the state since the last one.
//!
//! Once [`Engine::track_changes`] is called, the state's maps remember the
//! keys that change (see `super::tracked`) and the acceptance index its
//! groups. [`Engine::take_delta`] takes the current value of each (or its
//! absence), the strings interned since, and the few small globals
//! (watermark, counters) — a consistent cut whose cost follows what
//! changed, not the state's size — and tracking goes on. A case in the cut
//! is shared with the state, not copied (`super::tracked::Shared`): the
//! engine copies it only if it changes the case before the cut is written.
//! The cut owns or shares its data, so it is encoded and written on
//! another thread while the engine goes on.
//!
//! A snapshot followed by the deltas taken after it, applied in order
//! ([`Engine::restore_with_deltas`], or [`compact`] into a new snapshot),
//! gives the state byte for byte. The timer set and the duplicate filter
//! are not in deltas: they follow from the cases (their wake-up, their
//! events' ids) and are updated from the cases a delta replaces.

use super::dual::GroupChanges;
use super::state::{read_framed, write_framed, Case, Departed, SnapshotError, State, Stats, NO_WAKE};
use super::tracked::{Changes, Shared};
use super::Engine;
use crate::alert::AlertRecord;
use crate::config::RulesConfig;
use crate::reference::RefData;
use crate::time::{Instant, Zone};
use serde::{Deserialize, Serialize, Serializer};
use std::num::NonZeroU64;
use std::sync::Arc;

/// The first bytes of an encoded delta.
const MAGIC: &[u8; 8] = b"\xffJCHDLTA";

/// The delta format written (and the only one read).
pub const DELTA_FORMAT: u32 = 1;

/// What changed in an engine's state between two cuts.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Delta {
    #[serde(serialize_with = "by_key")]
    cases: Changes<Arc<str>, Shared<Case>>,
    #[serde(serialize_with = "by_key")]
    children: Changes<Arc<str>, Vec<Arc<str>>>,
    #[serde(serialize_with = "by_key")]
    departed: Changes<Arc<str>, Vec<Departed>>,
    #[serde(serialize_with = "by_key")]
    recovered: Changes<Arc<str>, Vec<AlertRecord>>,
    #[serde(serialize_with = "by_key")]
    remote: Changes<Arc<str>, NonZeroU64>,
    #[serde(serialize_with = "by_key")]
    remote_center: Changes<Arc<str>, Vec<Instant>>,
    #[serde(serialize_with = "by_key")]
    shared_center: Changes<Arc<str>, Vec<Instant>>,
    dual: GroupChanges,
    /// Number of strings interned before `strings`.
    strings_from: u64,
    /// Strings interned since the last cut.
    strings: Vec<Arc<str>>,
    watermark: Option<Instant>,
    calendar: u64,
    stats: Stats,
    /// Cases judged and not yet taken for history.
    #[serde(serialize_with = "in_order")]
    changed: Vec<Arc<str>>,
}

// A delta is taken on the consuming loop and encoded on another thread:
// its lists are taken as they come, and sorted when encoded, so that
// equal deltas give equal bytes without the loop paying for the sort.

/// Serializes changes sorted by key.
fn by_key<K: Ord + Serialize, V: Serialize, S: Serializer>(v: &[(K, V)], s: S) -> Result<S::Ok, S::Error> {
    let mut refs: Vec<&(K, V)> = v.iter().collect();
    refs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    s.collect_seq(refs)
}

/// Serializes a list sorted.
fn in_order<K: Ord + Serialize, S: Serializer>(v: &[K], s: S) -> Result<S::Ok, S::Error> {
    let mut refs: Vec<&K> = v.iter().collect();
    refs.sort_unstable();
    s.collect_seq(refs)
}

impl Delta {
    /// Number of cases it writes (changed or gone).
    pub fn cases(&self) -> usize {
        self.cases.len()
    }

    /// Encodes it to `w`: magic bytes, format, the delta and a checksum.
    pub fn write_to(&self, w: impl std::io::Write) -> std::io::Result<()> {
        write_framed(MAGIC, DELTA_FORMAT, self, w)
    }

    /// Encodes it into memory.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_to(&mut v).expect("a delta encodes into memory");
        v
    }

    /// Decodes an encoded delta.
    pub fn decode(bytes: &[u8]) -> Result<Delta, SnapshotError> {
        read_framed(MAGIC, DELTA_FORMAT, bytes)
    }

    /// Applies it to a state.
    fn apply(self, st: &mut State) -> Result<(), SnapshotError> {
        let have = st.strings.len() as u64;
        if !st.strings.append(self.strings_from as usize, self.strings) {
            return Err(SnapshotError::OutOfSequence { have, from: self.strings_from });
        }
        // The timers and ids of the cases replaced go first: an id may move
        // from one case of the delta to another.
        for (k, _) in &self.cases {
            if let Some(old) = st.cases.remove_untracked(k) {
                if old.wake != NO_WAKE {
                    st.timers.remove(&(old.wake, k.clone()));
                }
                for e in old.events.iter() {
                    st.dedupe.remove(&e.id);
                }
            }
        }
        for (k, case) in self.cases {
            if let Some(c) = case {
                if c.wake != NO_WAKE {
                    st.timers.insert((c.wake, k.clone()));
                }
                st.dedupe.extend(c.events.iter().map(|e| e.id));
                st.cases.insert_untracked(k, c);
            }
        }
        st.children.apply(self.children);
        st.departed.apply(self.departed);
        st.recovered.apply(self.recovered);
        st.remote.apply(self.remote);
        st.remote_center.apply(self.remote_center);
        st.shared_center.apply(self.shared_center);
        st.dual.apply(self.dual);
        st.watermark = self.watermark;
        st.calendar = self.calendar;
        st.stats = self.stats;
        st.changed = self.changed.into_iter().collect();
        Ok(())
    }
}

impl Engine {
    /// Starts remembering what changes, for [`Engine::take_delta`]: the
    /// state as it is now is the base the deltas apply to (a snapshot
    /// taken now, or the snapshot and deltas it was restored from).
    pub fn track_changes(&mut self) {
        let st = &mut self.st;
        st.cases.track();
        st.children.track();
        st.departed.track();
        st.recovered.track();
        st.remote.track();
        st.remote_center.track();
        st.shared_center.track();
        st.dual.track();
        self.strings_saved = Some(st.strings.len());
    }

    /// Entries changed since the last cut (cases, links, facts, groups of
    /// the acceptance index): what the next delta copies.
    pub fn changes_pending(&self) -> usize {
        let st = &self.st;
        st.cases.changed_keys()
            + st.children.changed_keys()
            + st.departed.changed_keys()
            + st.recovered.changed_keys()
            + st.remote.changed_keys()
            + st.remote_center.changed_keys()
            + st.shared_center.changed_keys()
            + st.dual.changed_groups()
    }

    /// A copy of what changed since [`Engine::track_changes`] or the last
    /// delta; `None` when changes are not tracked.
    pub fn take_delta(&mut self) -> Option<Delta> {
        let from = self.strings_saved?;
        let st = &mut self.st;
        debug_assert!(st.cases.tracking());
        self.strings_saved = Some(st.strings.len());
        let changed: Vec<Arc<str>> = st.changed.iter().cloned().collect();
        Some(Delta {
            cases: st.cases.take_changes(Shared::clone),
            children: st.children.take_changes(Clone::clone),
            departed: st.departed.take_changes(Clone::clone),
            recovered: st.recovered.take_changes(Clone::clone),
            remote: st.remote.take_changes(Clone::clone),
            remote_center: st.remote_center.take_changes(Clone::clone),
            shared_center: st.shared_center.take_changes(Clone::clone),
            dual: st.dual.take_changes(),
            strings_from: from as u64,
            strings: st.strings.names_from(from),
            watermark: st.watermark,
            calendar: st.calendar,
            stats: st.stats.clone(),
            changed,
        })
    }

    /// An engine resumed from a snapshot and the deltas taken after it, in
    /// the order they were taken.
    pub fn restore_with_deltas<'a>(
        refdata: Arc<RefData>,
        zone: Zone,
        rules: RulesConfig,
        base: &[u8],
        deltas: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Engine, SnapshotError> {
        let st = state_with_deltas(base, deltas)?;
        Ok(Engine::with_state(refdata, zone, rules, st))
    }
}

fn state_with_deltas<'a>(base: &[u8], deltas: impl IntoIterator<Item = &'a [u8]>) -> Result<State, SnapshotError> {
    let mut st = State::decode(base)?;
    for d in deltas {
        Delta::decode(d)?.apply(&mut st)?;
    }
    Ok(st)
}

/// Writes to `w` the snapshot of a snapshot and the deltas taken after it
/// (the bytes [`Engine::snapshot`] gives for that state): compaction off
/// the engine's thread, needing no engine.
pub fn compact<'a>(
    base: &[u8],
    deltas: impl IntoIterator<Item = &'a [u8]>,
    w: impl std::io::Write,
) -> Result<(), CompactError> {
    let st = state_with_deltas(base, deltas)?;
    st.write(w).map_err(CompactError::Io)
}

/// Compacting failed.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    /// The snapshot or a delta does not read.
    #[error(transparent)]
    Read(#[from] SnapshotError),
    /// Writing failed.
    #[error("writing the compacted snapshot: {0}")]
    Io(std::io::Error),
}
