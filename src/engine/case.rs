//! What the engine keeps of a case's events and alerts: an event reduced to
//! what the rules read, its interned attributes, the alert records
//! published for it (so that a judgement publishes only the difference) and
//! its entry in the acceptance index.

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
    index: HashMap<Arc<str>, u32, foldhash::fast::RandomState>,
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
    /// Number of strings.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The strings from index `from` on.
    pub fn names_from(&self, from: usize) -> Vec<Arc<str>> {
        self.names.get(from..).unwrap_or_default().to_vec()
    }

    /// Adds strings that follow the first `from` ones; false (adding
    /// nothing) when there are not exactly `from`.
    pub fn append(&mut self, from: usize, names: Vec<Arc<str>>) -> bool {
        if from != self.names.len() {
            return false;
        }
        self.names.extend(names);
        true
    }

    /// The string at an index.
    pub fn name(&self, i: u32) -> &str {
        self.names.get(i as usize).map(|s| &**s).unwrap_or("")
    }
}

/// `Attrs::window` when no window was given.
pub const NO_WINDOW: u32 = u32::MAX;

/// `Attrs::item` of a case with no catalogue item (a complaint).
pub const NO_ITEM: u32 = u32::MAX;

/// `CaseEvent::notice` of an event that names no notice.
pub const NO_NOTICE: u32 = u32::MAX;

fn no_notice() -> u32 {
    NO_NOTICE
}
/// The bit of `Attrs::item` that marks an item outside the catalogue
/// (清单外事项); the other bits are then its interned `item_code`.
pub const UNLISTED_ITEM: u32 = 1 << 31;

impl Attrs {
    /// The interned window, if any.
    pub fn window(&self) -> Option<u32> {
        (self.window != NO_WINDOW).then_some(self.window)
    }

    /// Whether the item is outside the catalogue.
    pub fn unlisted(&self) -> bool {
        self.item != NO_ITEM && self.item & UNLISTED_ITEM != 0
    }

    /// The item's code: from the catalogue, or interned when unlisted;
    /// None for a case without an item (a complaint).
    pub fn item_code<'a>(&self, cat: &'a crate::reference::Catalog, strings: &'a Interner) -> Option<&'a str> {
        match cat.get(self.item) {
            Some(i) => Some(&i.item_code),
            None if self.item == NO_ITEM => None,
            None => Some(strings.name(self.item & !UNLISTED_ITEM)),
        }
    }
}

/// The attributes a `submitted` or `accepted` event gives its case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attrs {
    /// Interned region code.
    pub region: u32,
    /// Interned department code.
    pub department: u32,
    /// Interned window, or [`NO_WINDOW`].
    pub window: u32,
    /// Catalogue index.
    pub item: u32,
    /// HMAC of the applicant id.
    #[serde(with = "crate::privacy::hex32")]
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

/// `hold_until` of an event that is not held.
pub const NOT_HELD: Instant = Instant::MIN;

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
    /// Rating of an `evaluated`; working days of a `notice_issued`.
    pub rating: u8,
    /// Interned `notice_id` of a notice event, else [`NO_NOTICE`] (also
    /// in snapshots written before notices existed).
    #[serde(default = "no_notice")]
    pub notice: u32,
    /// Fee of a `completed`, or a negative number when none was given.
    pub fee: f64,
    /// Attributes of a `submitted` or `accepted`.
    pub attrs: Option<Arc<Attrs>>,
    /// While the event is invalid at its place, the watermark at which it is
    /// dead-lettered unless a later arrival makes it valid; else [`NOT_HELD`].
    pub hold_until: Instant,
    /// The interned step a `step_completed` names, when some item lists a
    /// step of that name; else [`NO_STEP`].
    #[serde(default = "no_step")]
    pub step: u32,
    /// [`crate::event::Channel::code`] of its channel (0: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub channel: u8,
    /// Interned `staff`, or [`NO_STAFF`].
    #[serde(default = "no_staff", skip_serializing_if = "is_no_staff")]
    pub staff: u32,
}

/// `CaseEvent::step` of an event that names no listed step.
pub const NO_STEP: u32 = u32::MAX;

fn no_step() -> u32 {
    NO_STEP
}

/// `CaseEvent::staff` when no staff was given.
pub const NO_STAFF: u32 = u32::MAX;

fn no_staff() -> u32 {
    NO_STAFF
}

fn is_no_staff(s: &u32) -> bool {
    *s == NO_STAFF
}

fn is_zero(c: &u8) -> bool {
    *c == 0
}

impl CaseEvent {
    /// The working days a `notice_issued` gives.
    pub fn deadline_days(&self) -> u32 {
        self.rating as u32
    }

    /// Whether a flag is set.
    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    /// Whether the event is held as invalid.
    pub fn is_held(&self) -> bool {
        self.hold_until != NOT_HELD
    }

    /// The end of its hold, if held.
    pub fn held_until(&self) -> Option<Instant> {
        self.is_held().then_some(self.hold_until)
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
    /// Known only from the output topic after a restart (see
    /// `Engine::recover_published`), not yet judged again: while it is, the
    /// judgement not (yet) giving it does not retract it.
    #[serde(default)]
    pub recovered: bool,
    /// Its instant or due date was computed on a provisional calendar.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub provisional: bool,
}

/// An acceptance, as the index for `dual_intake` holds it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AcceptSig {
    /// Attributes of the `accepted`: its applicant hash and item are the key.
    pub attrs: Arc<Attrs>,
    /// Acceptance instant.
    pub at: Instant,
    /// Interned source of the `accepted`.
    pub source: u32,
    /// Instant of a valid `withdrawn`, or [`NEVER`] when none.
    pub withdrawn_at: Instant,
}

/// `withdrawn_at` of an acceptance never withdrawn.
pub const NEVER: Instant = Instant::MAX;

impl AcceptSig {
    /// Applicant hash and catalogue index.
    pub fn key(&self) -> ([u8; 32], u32) {
        (self.attrs.applicant, self.attrs.item)
    }
}

impl PartialEq for AcceptSig {
    /// Equal when key, instant, source and withdrawal are (other attributes
    /// do not matter to the index).
    fn eq(&self, o: &AcceptSig) -> bool {
        self.at == o.at
            && self.source == o.source
            && self.withdrawn_at == o.withdrawn_at
            && self.attrs.item == o.attrs.item
            && self.attrs.applicant == o.attrs.applicant
    }
}
