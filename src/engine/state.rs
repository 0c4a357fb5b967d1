//! The engine's whole mutable state — what a snapshot holds — with the
//! [`Case`] as kept in it, and the snapshot itself (binary, versioned,
//! deterministic: equal states give equal bytes; see [`crate::binary`]).

use super::case::{CaseEvent, Interner, Published};
use super::dual::DualIndex;
use super::tracked::{Shared, Tracked};
use super::{Engine, Set};
use crate::alert::AlertRecord;
use crate::config::RulesConfig;
use crate::deadletter::DeadReason;
use crate::reference::RefData;
use crate::time::{Instant, Zone};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU64;
use std::sync::Arc;

/// Counters kept by the engine.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Events applied (valid at their place when they arrived).
    pub applied: u64,
    /// Events held as invalid when they arrived.
    pub held: u64,
    /// Repeated event ids ignored.
    pub duplicates: u64,
    /// Dead letters raised by the engine (invalid transitions, orphans).
    pub dead_letters: BTreeMap<DeadReason, u64>,
    /// Closed cases left to history.
    pub evicted: u64,
    /// Years whose calendar a clock needed but which have no file: due
    /// dates reaching into them are unknown until the file is added.
    pub missing_calendar_years: BTreeSet<i32>,
    /// Alert records published, by `rule/state`.
    pub alerts: BTreeMap<String, u64>,
}

pub(crate) mod sorted {
    //! Serializes hash maps and sets as sorted lists, so snapshots are deterministic.
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::{HashMap, HashSet};
    use std::hash::{BuildHasher, Hash};

    pub fn serialize<K: Ord + Serialize, V: Serialize, H, S: Serializer>(
        m: &HashMap<K, V, H>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut v: Vec<(&K, &V)> = m.iter().collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v.serialize(s)
    }

    pub fn deserialize<'de, K, V, H, D>(d: D) -> Result<HashMap<K, V, H>, D::Error>
    where
        K: Eq + Hash + Deserialize<'de>,
        V: Deserialize<'de>,
        H: BuildHasher + Default,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }

    pub mod set {
        use super::*;

        pub fn serialize<K: Ord + Serialize, H, S: Serializer>(m: &HashSet<K, H>, s: S) -> Result<S::Ok, S::Error> {
            let mut v: Vec<&K> = m.iter().collect();
            v.sort();
            v.serialize(s)
        }

        pub fn deserialize<'de, K, H, D>(d: D) -> Result<HashSet<K, H>, D::Error>
        where
            K: Eq + Hash + Deserialize<'de>,
            H: BuildHasher + Default,
            D: Deserializer<'de>,
        {
            Ok(Vec::<K>::deserialize(d)?.into_iter().collect())
        }
    }
}

/// The engine's whole mutable state (what a snapshot holds).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(super) struct State {
    pub(super) cases: Tracked<Arc<str>, Shared<Case>>,
    pub(super) timers: BTreeSet<(Instant, Arc<str>)>,
    /// Hashes of the event ids of the events the cases hold (applied or held).
    #[serde(with = "sorted::set")]
    pub(super) dedupe: Set<[u64; 2]>,
    pub(super) dual: DualIndex,
    pub(super) children: Tracked<Arc<str>, Vec<Arc<str>>>,
    pub(super) strings: Interner,
    pub(super) watermark: Option<Instant>,
    pub(super) stats: Stats,
    /// Cases judged since the last [`Engine::take_changed`].
    #[serde(with = "sorted::set", default)]
    pub(super) changed: Set<Arc<str>>,
    /// Records found already published (see [`Engine::recover_published`])
    /// for cases not in memory yet, merged when their case's first event
    /// arrives.
    #[serde(default)]
    pub(super) recovered: Tracked<Arc<str>, Vec<AlertRecord>>,
    /// Cases of other partitions in the acceptance index, by group.
    #[serde(default)]
    pub(super) remote: Tracked<Arc<str>, std::num::NonZeroU64>,
    /// The entries of `remote` by the instant of their acceptance, oldest
    /// first, so that forgetting the old ones looks at those only (not
    /// kept in snapshots: rebuilt from `remote`). An entry whose case's
    /// acceptance has moved since stays until it is looked at.
    #[serde(skip)]
    pub(super) remote_by_at: BTreeSet<(Instant, Arc<str>)>,
    /// `center` instants of joint cases of other partitions.
    #[serde(default)]
    pub(super) remote_center: Tracked<Arc<str>, Vec<Instant>>,
    /// `center` instants last shared, by joint case of this engine.
    #[serde(default)]
    pub(super) shared_center: Tracked<Arc<str>, Vec<Instant>>,
    /// Digest of the calendar the cases were judged on (0: not recorded,
    /// taken as the engine's).
    #[serde(default)]
    pub(super) calendar: u64,
    /// Sub-cases that left memory before their parent, by parent: its row
    /// still counts them among its sub-cases (`late_sub_cases`).
    #[serde(default)]
    pub(super) departed: Tracked<Arc<str>, Vec<Departed>>,
}

/// A sub-case that left memory, as its parent's row needs it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Departed {
    /// Its case id.
    pub(super) case_id: Arc<str>,
    /// Its interned department.
    pub(super) department: u32,
    /// When it closed, if it did.
    pub(super) closed_at: Option<Instant>,
}

/// A snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A JSON snapshot (format 1) that does not parse.
    #[error("cannot restore engine snapshot: {0}")]
    Json(#[source] serde_json::Error),
    /// A binary snapshot that does not decode.
    #[error("cannot restore engine snapshot: {0}")]
    Binary(#[source] crate::binary::Error),
    /// A binary snapshot of a format this version does not read.
    #[error("cannot restore engine snapshot: format {0}, this version reads 1 and {SNAPSHOT_FORMAT}")]
    Format(u32),
    /// A binary snapshot whose bytes are not those written (its checksum
    /// does not match): cut short or damaged.
    #[error("cannot restore engine snapshot: checksum mismatch (cut short or damaged)")]
    Checksum,
    /// A delta that does not follow the state it is applied to (it
    /// interns strings from another position: a delta missing before it).
    #[error("cannot restore engine state: a delta follows {from} strings, the state has {have} (a delta is missing)")]
    OutOfSequence {
        /// Strings in the state.
        have: u64,
        /// Strings the delta follows.
        from: u64,
    },
}

/// The first bytes of a binary snapshot (never the start of JSON).
const MAGIC: &[u8; 8] = b"\xffJCHSNAP";

/// The binary snapshot format written: its number follows [`MAGIC`] (format
/// 1 is the JSON snapshot of earlier versions, still read).
pub const SNAPSHOT_FORMAT: u32 = 2;

impl Engine {
    /// The whole state, serialized in the binary format (deterministic:
    /// equal states give equal bytes).
    pub fn snapshot(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_snapshot(&mut v).expect("a snapshot encodes into memory");
        v
    }

    /// The whole state as JSON (format 1, as earlier versions wrote it):
    /// for reading by eye and for tests of old snapshots.
    pub fn snapshot_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.st).expect("engine state serializes")
    }

    /// Writes [`Engine::snapshot`] to `w` (best a buffered writer): the
    /// magic bytes, the format number, the state, and a 64-bit checksum
    /// (XXH3) of the state's bytes.
    pub fn write_snapshot(&self, w: impl std::io::Write) -> std::io::Result<()> {
        self.st.write(w)
    }

    /// An engine resumed from [`Engine::snapshot`] (or from a JSON snapshot
    /// of an earlier version).
    pub fn restore(
        refdata: Arc<RefData>,
        zone: Zone,
        rules: RulesConfig,
        bytes: &[u8],
    ) -> Result<Engine, SnapshotError> {
        Ok(Engine::with_state(refdata, zone, rules, State::decode(bytes)?))
    }
}

impl State {
    /// Writes the snapshot of the state (see [`Engine::write_snapshot`]).
    pub(super) fn write(&self, w: impl std::io::Write) -> std::io::Result<()> {
        write_framed(MAGIC, SNAPSHOT_FORMAT, self, w)
    }

    /// Reads a snapshot: binary, or JSON of format 1.
    pub(super) fn decode(bytes: &[u8]) -> Result<State, SnapshotError> {
        if bytes.starts_with(MAGIC) {
            read_framed(MAGIC, SNAPSHOT_FORMAT, bytes)
        } else {
            serde_json::from_slice(bytes).map_err(SnapshotError::Json)
        }
    }
}

/// Writes `value` framed: `magic`, the format number, the value in the
/// binary format, and a 64-bit checksum (XXH3) of the value's bytes.
pub(super) fn write_framed<T: Serialize>(
    magic: &[u8; 8],
    format: u32,
    value: &T,
    mut w: impl std::io::Write,
) -> std::io::Result<()> {
    w.write_all(magic)?;
    w.write_all(&format.to_le_bytes())?;
    // The encoder writes a few bytes at a time: the buffer in front of
    // the hash gives it blocks.
    let mut h =
        std::io::BufWriter::with_capacity(1 << 16, Hashing { inner: &mut w, hash: xxhash_rust::xxh3::Xxh3::new() });
    crate::binary::to_writer(&mut h, value).map_err(|e| match e {
        crate::binary::Error::Io(e) => e,
        e => std::io::Error::other(e),
    })?;
    let sum = h.into_inner().map_err(|e| e.into_error())?.hash.digest();
    w.write_all(&sum.to_le_bytes())
}

/// Reads what [`write_framed`] wrote with `magic` and `format`.
pub(super) fn read_framed<T: serde::de::DeserializeOwned>(
    magic: &[u8; 8],
    format: u32,
    bytes: &[u8],
) -> Result<T, SnapshotError> {
    let rest = bytes.strip_prefix(magic).ok_or(SnapshotError::Format(0))?;
    let (v, rest) = rest.split_at_checked(4).ok_or(SnapshotError::Format(0))?;
    let v = u32::from_le_bytes(v.try_into().expect("4 bytes"));
    if v != format {
        return Err(SnapshotError::Format(v));
    }
    let cut = rest.len().checked_sub(8).ok_or(SnapshotError::Checksum)?;
    let (body, sum) = rest.split_at(cut);
    if xxhash_rust::xxh3::xxh3_64(body).to_le_bytes() != sum {
        return Err(SnapshotError::Checksum);
    }
    crate::binary::from_slice(body).map_err(SnapshotError::Binary)
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hash: xxhash_rust::xxh3::Xxh3,
}

impl<W: std::io::Write> std::io::Write for Hashing<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(b)?;
        self.hash.update(&b[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// `wake` of a case with no registered wake-up.
pub const NO_WAKE: Instant = Instant::MIN;

/// A case. Its id is the key it is stored under.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Case {
    /// Events, sorted by (`at`, `origin`); exactly as long as needed.
    pub events: Box<[CaseEvent]>,
    /// Published alerts.
    pub published: Box<[Published]>,
    /// The registered wake-up instant in the timer set, or [`NO_WAKE`].
    pub wake: Instant,
    /// The group of its entry in the acceptance index (see
    /// [`super::dual::group_of`]), if it has one.
    pub accept: Option<NonZeroU64>,
    /// Its parent, as registered in the children index.
    pub parent: Option<Arc<str>>,
    /// Whether the case is closed (completed, refused, withdrawn).
    pub closed: bool,
}

impl Default for Case {
    fn default() -> Case {
        Case::new()
    }
}

impl Case {
    /// A case with no events yet.
    pub fn new() -> Case {
        Case { events: Box::new([]), published: Box::new([]), wake: NO_WAKE, accept: None, parent: None, closed: false }
    }

    /// Inserts an event at its (`at`, `origin`) place; returns its index.
    /// (An event placed before the latest one ends the walk the engine
    /// keeps to resume the case's judgement.)
    pub fn insert(&mut self, e: CaseEvent) -> usize {
        let pos = self.events.partition_point(|x| (x.at, x.origin) < (e.at, e.origin));
        let mut v = std::mem::take(&mut self.events).into_vec();
        v.reserve_exact(1);
        v.insert(pos, e);
        self.events = v.into_boxed_slice();
        pos
    }

    /// Removes the event at index `i` (which ends the walk the engine
    /// keeps to resume the case's judgement).
    pub fn remove(&mut self, i: usize) -> CaseEvent {
        let mut v = std::mem::take(&mut self.events).into_vec();
        let e = v.remove(i);
        self.events = v.into_boxed_slice();
        e
    }

    /// The registered wake-up, if any.
    pub fn wake(&self) -> Option<Instant> {
        (self.wake != NO_WAKE).then_some(self.wake)
    }

    /// The latest event instant.
    pub fn last_at(&self) -> Option<Instant> {
        self.events.last().map(|e| e.at)
    }
}
