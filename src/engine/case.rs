//! What the engine keeps per case: its events in event-time order (so that a
//! late arrival can be put in its place and the case re-judged), and the
//! alert records published for it (so that a re-judgement publishes only the
//! difference).

use crate::alert::Rule;
use crate::event::EventType;
use crate::time::{Day, Instant};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// Interned strings (regions, departments, windows, sources): bounded sets
/// stored once, referred to by index.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Interner {
    names: Vec<Arc<str>>,
    #[serde(skip)]
    index: HashMap<Arc<str>, u32>,
}

impl Interner {
    /// The index of `s`, adding it when new.
    pub fn intern(&mut self, s: &str) -> u32 {
        if self.index.len() != self.names.len() {
            self.rebuild();
        }
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let a: Arc<str> = Arc::from(s);
        let i = self.names.len() as u32;
        self.names.push(a.clone());
        self.index.insert(a, i);
        i
    }
    /// The index of `s` if known.
    pub fn get(&mut self, s: &str) -> Option<u32> {
        if self.index.len() != self.names.len() {
            self.rebuild();
        }
        self.index.get(s).copied()
    }
    fn rebuild(&mut self) {
        self.index = self.names.iter().enumerate().map(|(i, n)| (n.clone(), i as u32)).collect();
    }
    /// The string at an index.
    pub fn name(&self, i: u32) -> &str {
        self.names.get(i as usize).map(|s| &**s).unwrap_or("")
    }
}

/// The attributes a `submitted` or `accepted` event gives its case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attrs {
    /// Interned region code.
    pub region: u32,
    /// Interned department code.
    pub department: u32,
    /// Interned window, if any.
    pub window: Option<u32>,
    /// Catalogue index.
    pub item: u32,
    /// HMAC of the applicant id.
    pub applicant: [u8; 32],
    /// Parent of a joint sub-case.
    pub parent: Option<Arc<str>>,
}

/// Flag: `recorded_at` is more than `backdate_hours` after `occurred_at`.
pub const F_BACKDATED: u8 = 1;
/// Flag: `reason` is missing or blank.
pub const F_NO_REASON: u8 = 2;
/// Flag: a `suspended` with reason `supplement`.
pub const F_SUPPLEMENT: u8 = 4;
/// Flag: source is `center`.
pub const F_CENTER: u8 = 8;
/// Flag: a `completed` with result `denied`.
pub const F_DENIED: u8 = 16;

/// One event of a case, reduced to what the rules read.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseEvent {
    /// `occurred_at`.
    pub at: Instant,
    /// Input position (file and line, or partition and offset): ties in `at`
    /// are broken by it, and it locates the original bytes for dead letters.
    pub origin: u64,
    /// Hash of `event_id`, to forget it when the event is dead-lettered.
    pub id: [u64; 2],
    /// The event type.
    pub kind: EventType,
    /// Interned source.
    pub source: u32,
    /// `F_*` flags.
    pub flags: u8,
    /// Rating of an `evaluated`.
    pub rating: u8,
    /// Fee of a `completed`, or a negative number when none was given.
    pub fee: f64,
    /// Attributes of a `submitted` or `accepted`.
    pub attrs: Option<Arc<Attrs>>,
    /// Set while the event is invalid at its place: the watermark at which it
    /// is dead-lettered unless a later arrival makes it valid.
    pub hold_until: Option<Instant>,
}

impl CaseEvent {
    /// Whether a flag is set.
    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
}

/// An alert as published for a case.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Published {
    /// The rule.
    pub rule: Rule,
    /// Instance number: 1 for `<case>/<rule>`, n for `…#n`.
    pub n: u32,
    /// The firing instant.
    pub at: Instant,
    /// Due date on the firing record.
    pub due: Option<Day>,
    /// `earlier_case_id` for `dual_intake`.
    pub detail: Option<Arc<str>>,
    /// Attributes on the firing record.
    pub attrs: Option<Arc<Attrs>>,
    /// Resolution instant and due date on the resolved record.
    pub resolved: Option<(Instant, Option<Day>)>,
    /// Whether a retraction was published.
    pub retracted: bool,
}

/// Where a case stands in the acceptance index for `dual_intake`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AcceptSig {
    /// Applicant hash and catalogue index.
    pub key: ([u8; 32], u32),
    /// Acceptance instant.
    pub at: Instant,
    /// Interned source of the `accepted`.
    pub source: u32,
    /// Instant of a valid `withdrawn`, if any.
    pub withdrawn_at: Option<Instant>,
}

/// A case.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Case {
    /// The case id.
    pub id: Arc<str>,
    /// Events, sorted by (`at`, `origin`).
    pub events: Vec<CaseEvent>,
    /// Published alerts.
    pub published: Vec<Published>,
    /// The registered wake-up instant in the timer set.
    pub wake: Option<Instant>,
    /// Its entry in the acceptance index.
    pub accept: Option<Box<AcceptSig>>,
    /// Its parent, as registered in the children index.
    pub parent: Option<Arc<str>>,
    /// Whether the case is closed (completed, refused, withdrawn).
    pub closed: bool,
}

impl Case {
    /// A case with no events yet.
    pub fn new(id: Arc<str>) -> Case {
        Case { id, events: Vec::new(), published: Vec::new(), wake: None, accept: None, parent: None, closed: false }
    }

    /// Inserts an event at its (`at`, `origin`) place; returns its index.
    pub fn insert(&mut self, e: CaseEvent) -> usize {
        let pos = self.events.partition_point(|x| (x.at, x.origin) < (e.at, e.origin));
        self.events.insert(pos, e);
        pos
    }

    /// The latest event instant.
    pub fn last_at(&self) -> Option<Instant> {
        self.events.last().map(|e| e.at)
    }
}
