//! The supervision engine: a pure state machine. Events and watermark advances
//! go in; alert records and dead letters come out as [`Effect`]s. No I/O, no
//! clock, no randomness: the same input gives the same output, byte for byte,
//! and the whole state can be snapshotted and resumed.
//!
//! Layout: [`case`] holds per-case data, [`sim`] judges one case (pure),
//! [`clock`] counts working days with stops, [`dual`] indexes acceptances for
//! `dual_intake`. This module keeps the cases, the wake-up set (one entry per
//! case: `BTreeSet<(Instant, case)>`), the duplicate filter and the
//! cross-case links, and publishes the difference between what a case's
//! judgement says and what was already published.

pub mod case;
pub mod clock;
pub mod dual;
pub mod sim;

use crate::alert::{AlertRecord, AlertState, Detail};
use crate::config::RulesConfig;
use crate::deadletter::{DeadReason, Rejection};
use crate::event::{Decision, Event, EventType};
use crate::reference::{ItemKind, RefData};
use crate::time::{Day, Instant, Zone, DAY_MS, HOUR_MS};
use case::{
    Attrs, Case, CaseEvent, Interner, Published, F_BACKDATED, F_CENTER, F_DENIED, F_NO_REASON, F_SUPPLEMENT, NOT_HELD,
    NO_WAKE, NO_WINDOW,
};
use dual::DualIndex;
use serde::{Deserialize, Serialize};
use sim::{simulate, Ctx, SimOut, Spec, Status, Summary};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// Hash maps keyed by case id or event id hash: foldhash, seeded per process.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type Set<K> = HashSet<K, foldhash::fast::RandomState>;

/// What the engine asks the outside world to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Publish an alert record.
    Alert(AlertRecord),
    /// Dead-letter the event found at `origin` (its original bytes).
    DeadLetter {
        /// Input position of the event.
        origin: u64,
        /// Why.
        rejection: Rejection,
    },
}

/// What became of an event given to [`Engine::apply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Valid at its place and applied.
    Applied,
    /// Invalid at its place for now; held and judged again as its case changes.
    Held,
    /// A repeat of an applied event id; ignored.
    Duplicate,
}

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

mod sorted {
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
struct State {
    #[serde(with = "sorted")]
    cases: Map<Arc<str>, Box<Case>>,
    timers: BTreeSet<(Instant, Arc<str>)>,
    /// Hashes of the event ids of the events the cases hold (applied or held).
    #[serde(with = "sorted::set")]
    dedupe: Set<[u64; 2]>,
    dual: DualIndex,
    #[serde(with = "sorted")]
    children: Map<Arc<str>, Vec<Arc<str>>>,
    strings: Interner,
    watermark: Option<Instant>,
    stats: Stats,
    /// Cases judged since the last [`Engine::take_changed`].
    #[serde(with = "sorted::set", default)]
    changed: Set<Arc<str>>,
    /// Records found already published (see [`Engine::recover_published`])
    /// for cases not in memory yet, merged when their case's first event
    /// arrives.
    #[serde(with = "sorted", default)]
    recovered: Map<Arc<str>, Vec<AlertRecord>>,
    /// Cases of other partitions in the acceptance index, by group.
    #[serde(with = "sorted", default)]
    remote: Map<Arc<str>, std::num::NonZeroU64>,
    /// The entries of `remote` by the instant of their acceptance, oldest
    /// first, so that forgetting the old ones looks at those only (not
    /// kept in snapshots: rebuilt from `remote`). An entry whose case's
    /// acceptance has moved since stays until it is looked at.
    #[serde(skip)]
    remote_by_at: BTreeSet<(Instant, Arc<str>)>,
    /// `center` instants of joint cases of other partitions.
    #[serde(with = "sorted", default)]
    remote_center: Map<Arc<str>, Vec<Instant>>,
    /// `center` instants last shared, by joint case of this engine.
    #[serde(with = "sorted", default)]
    shared_center: Map<Arc<str>, Vec<Instant>>,
    /// Digest of the calendar the cases were judged on (0: not recorded,
    /// taken as the engine's).
    #[serde(default)]
    calendar: u64,
}

/// A case as the outside world sees it.
#[derive(Clone, Debug)]
pub struct CaseView {
    /// The case id.
    pub case_id: String,
    /// Figures and clock.
    pub summary: Summary,
    /// Region code.
    pub region: Option<String>,
    /// Department code.
    pub department: Option<String>,
    /// Window.
    pub window: Option<String>,
    /// Item code.
    pub item_code: Option<String>,
    /// Parent case.
    pub parent_case_id: Option<String>,
    /// Events held as invalid.
    pub held_events: usize,
    /// Its due date, or the day it was completed, lies in a year whose
    /// calendar is provisional.
    pub provisional_calendar: bool,
}

/// The supervision engine.
pub struct Engine {
    refdata: Arc<RefData>,
    zone: Zone,
    rules: RulesConfig,
    st: State,
    scratch: Vec<Arc<str>>,
    /// Final views of changed cases that left memory before being taken.
    evicted_views: Vec<CaseView>,
    /// Whether acceptance changes are collected for other engines.
    share: bool,
    /// Facts about this engine's cases not yet taken.
    shared: Vec<SharedFact>,
}

/// What the engines of other partitions learn from this one: the
/// acceptances (for `dual_intake` across partitions) and the `center`
/// events of joint cases (for their sub-cases' `unregistered_case`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fact", rename_all = "snake_case")]
pub enum SharedFact {
    /// A case's acceptance, or `None` when it has none any more.
    Acceptance {
        /// The case.
        case_id: String,
        /// Its acceptance.
        acceptance: Option<AcceptanceFact>,
    },
    /// The instants of a joint case's `center` events.
    Center {
        /// The (parent) case.
        case_id: String,
        /// `occurred_at` of its `center` events in effect.
        at: Vec<Instant>,
    },
}

impl SharedFact {
    /// The case the fact is about.
    pub fn case_id(&self) -> &str {
        match self {
            SharedFact::Acceptance { case_id, .. } | SharedFact::Center { case_id, .. } => case_id,
        }
    }
}

/// The facts of an acceptance that `dual_intake` compares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AcceptanceFact {
    /// Applicant hash, lowercase hex.
    pub applicant: String,
    /// Item code.
    pub item_code: String,
    /// `occurred_at` of the `accepted`.
    pub at: Instant,
    /// Its source.
    pub source: String,
    /// `occurred_at` of a valid `withdrawn`, if any.
    pub withdrawn_at: Option<Instant>,
}

/// A snapshot could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot restore engine snapshot: {0}")]
pub struct SnapshotError(String);

impl Engine {
    /// A fresh engine.
    pub fn new(refdata: Arc<RefData>, zone: Zone, rules: RulesConfig) -> Engine {
        Engine::with_state(refdata, zone, rules, State::default())
    }

    fn with_state(refdata: Arc<RefData>, zone: Zone, rules: RulesConfig, mut st: State) -> Engine {
        st.strings.intern("center");
        if st.calendar == 0 {
            st.calendar = refdata.calendar.digest();
        }
        let dual = &st.dual;
        st.remote_by_at =
            st.remote.iter().map(|(k, g)| (dual.current(*g, k).map_or(Instant::MIN, |s| s.at), k.clone())).collect();
        Engine {
            refdata,
            zone,
            rules,
            st,
            scratch: Vec::new(),
            evicted_views: Vec::new(),
            share: false,
            shared: Vec::new(),
        }
    }

    /// Takes new reference data — a calendar file added or corrected, a
    /// provisional year made official — and judges every case in memory
    /// again on it: cards it no longer supports are retracted, cards it
    /// implies fire (at once when already due), exactly as for a late event;
    /// cards it leaves as they were are not published again.
    pub fn set_refdata(&mut self, refdata: Arc<RefData>, out: &mut Vec<Effect>) {
        self.refdata = refdata;
        self.st.calendar = self.refdata.calendar.digest();
        let keys: Vec<Arc<str>> = self.st.cases.keys().cloned().collect();
        for k in &keys {
            self.rejudge(k, false, out);
        }
    }

    /// Whether the cases were judged on another calendar than the engine's
    /// (a state restored from before a calendar change): the shell then
    /// passes the reference data to [`Engine::set_refdata`].
    pub fn judged_on_another_calendar(&self) -> bool {
        self.st.calendar != self.refdata.calendar.digest()
    }

    /// The reference data the engine judges with.
    pub fn refdata(&self) -> &Arc<RefData> {
        &self.refdata
    }

    /// The whole state, serialized (deterministic: equal states give equal bytes).
    pub fn snapshot(&self) -> Vec<u8> {
        serde_json::to_vec(&self.st).expect("engine state serializes")
    }

    /// Writes [`Engine::snapshot`] to `w` (a buffer kept from one
    /// checkpoint to the next is not grown, copied and zeroed again each
    /// time, as a new one is).
    pub fn write_snapshot(&self, w: impl std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer(w, &self.st).map_err(std::io::Error::from)
    }

    /// An engine resumed from [`Engine::snapshot`].
    pub fn restore(
        refdata: Arc<RefData>,
        zone: Zone,
        rules: RulesConfig,
        bytes: &[u8],
    ) -> Result<Engine, SnapshotError> {
        let st: State = serde_json::from_slice(bytes).map_err(|e| SnapshotError(e.to_string()))?;
        Ok(Engine::with_state(refdata, zone, rules, st))
    }

    /// The watermark, once any time has passed.
    pub fn watermark(&self) -> Option<Instant> {
        self.st.watermark
    }

    /// The current views of every case judged since the last call (sorted
    /// by case id), for history: a case's row changes only when it is judged.
    pub fn take_changed(&mut self) -> Vec<CaseView> {
        let mut ids: Vec<Arc<str>> = self.st.changed.drain().collect();
        ids.sort();
        let mut views = std::mem::take(&mut self.evicted_views);
        views.extend(ids.iter().filter_map(|id| self.case_view(id)));
        views
    }

    /// The current views of the cases judged since the last
    /// [`Engine::take_changed`], without taking them: what history will
    /// write at the next flush, for SQL to see before it.
    pub fn pending_views(&self) -> Vec<CaseView> {
        let mut views = self.evicted_views.clone();
        views.extend(self.st.changed.iter().filter_map(|id| self.case_view(id)));
        views
    }

    /// Whether an event id would be ignored as a duplicate.
    pub fn is_duplicate(&self, event_id: &str) -> bool {
        self.st.dedupe.contains(&id_hash(event_id))
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.st.stats
    }

    /// Cases held in memory.
    pub fn cases_in_memory(&self) -> usize {
        self.st.cases.len()
    }

    /// Cases neither closed nor empty.
    pub fn open_cases(&self) -> usize {
        self.st.cases.values().filter(|c| !c.closed).count()
    }

    /// Pending wake-ups (one per case with a future timer or held event).
    pub fn pending_timers(&self) -> usize {
        self.st.timers.len()
    }

    /// Facts about cases of other partitions held (acceptances and joint
    /// cases' `center` events).
    pub fn remote_facts(&self) -> usize {
        self.st.remote.len() + self.st.remote_center.len()
    }

    /// Event ids remembered for the duplicate filter.
    pub fn remembered_ids(&self) -> usize {
        self.st.dedupe.len()
    }

    /// Applies one checked event found at input position `origin`.
    pub fn apply(&mut self, ev: Event, origin: u64, out: &mut Vec<Effect>) -> Outcome {
        let id = id_hash(&ev.event_id);
        if !self.st.dedupe.insert(id) {
            self.st.stats.duplicates += 1;
            return Outcome::Duplicate;
        }
        let mut flags = 0;
        if ev.recorded_at.is_some_and(|r| r - ev.occurred_at > self.rules.backdate_hours as i64 * HOUR_MS) {
            flags |= F_BACKDATED;
        }
        if ev.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
            flags |= F_NO_REASON;
        }
        if ev.kind == EventType::Suspended && ev.reason.as_deref() == Some("supplement") {
            flags |= F_SUPPLEMENT;
        }
        if ev.source == "center" {
            flags |= F_CENTER;
        }
        if ev.result == Some(Decision::Denied) {
            flags |= F_DENIED;
        }
        let key: Arc<str> = match self.st.cases.get_key_value(ev.case_id.as_str()) {
            Some((k, _)) => k.clone(),
            None => Arc::from(ev.case_id.as_str()),
        };
        let attrs = match (ev.kind, &ev.region, &ev.department, ev.item, ev.applicant) {
            (EventType::Submitted | EventType::Accepted, Some(r), Some(d), Some(item), Some(applicant)) => {
                let a = Attrs {
                    region: self.st.strings.intern(r),
                    department: self.st.strings.intern(d),
                    window: ev.window.as_deref().map_or(NO_WINDOW, |w| self.st.strings.intern(w)),
                    item,
                    applicant,
                    parent: ev.parent_case_id.as_deref().map(|p| match self.st.cases.get_key_value(p) {
                        Some((k, _)) => k.clone(),
                        None => Arc::from(p),
                    }),
                };
                let shared = self
                    .st
                    .cases
                    .get(&key)
                    .and_then(|c| c.events.iter().filter_map(|e| e.attrs.as_ref()).find(|x| ***x == a).cloned());
                Some(shared.unwrap_or_else(|| Arc::new(a)))
            }
            _ => None,
        };
        let ce = CaseEvent {
            at: ev.occurred_at,
            origin,
            id,
            kind: ev.kind,
            source: self.st.strings.intern(&ev.source),
            flags,
            rating: ev.rating.unwrap_or(0),
            fee: ev.fee_yuan.unwrap_or(-1.0),
            attrs,
            hold_until: NOT_HELD,
        };
        let case = self.st.cases.entry(key.clone()).or_insert_with(|| Box::new(Case::new()));
        case.insert(ce);
        if !self.st.recovered.is_empty() {
            if let Some(recs) = self.st.recovered.remove(&key) {
                for r in &recs {
                    merge_published(case, r);
                }
            }
        }
        self.rejudge(&key, true, out);
        let held = self
            .st
            .cases
            .get(&key)
            .and_then(|c| c.events.iter().find(|e| e.origin == origin))
            .is_none_or(|e| e.is_held());
        if held {
            self.st.stats.held += 1;
            Outcome::Held
        } else {
            self.st.stats.applied += 1;
            Outcome::Applied
        }
    }

    /// Advances the watermark to `to` (never back), firing every timer due.
    pub fn advance_watermark(&mut self, to: Instant, out: &mut Vec<Effect>) {
        if self.st.watermark.is_some_and(|w| to <= w) {
            return;
        }
        let new_day = self.st.watermark.is_none_or(|w| self.zone.day_of(w) != self.zone.day_of(to));
        self.st.watermark = Some(to);
        while let Some((t, key)) = self.st.timers.first().cloned() {
            if t > to {
                break;
            }
            self.st.timers.pop_first();
            if let Some(c) = self.st.cases.get_mut(&key) {
                c.wake = NO_WAKE;
            }
            self.rejudge(&key, false, out);
        }
        if new_day && (!self.st.remote.is_empty() || !self.st.remote_center.is_empty()) {
            self.forget_old_remote(to);
        }
    }

    /// The current view of a case.
    pub fn case_view(&self, case_id: &str) -> Option<CaseView> {
        let case = self.st.cases.get(case_id)?;
        let pc = self.parent_center(case.parent.as_deref());
        let out = self.judge(case_id, case, &pc, true);
        let s = &self.st.strings;
        let attrs = out.summary.attrs.clone();
        Some(CaseView {
            case_id: case_id.to_string(),
            region: attrs.as_ref().map(|a| s.name(a.region).to_string()),
            department: attrs.as_ref().map(|a| s.name(a.department).to_string()),
            window: attrs.as_ref().and_then(|a| a.window()).map(|w| s.name(w).to_string()),
            item_code: attrs.as_ref().map(|a| self.refdata.catalog.item(a.item).item_code.clone()),
            parent_case_id: attrs.as_ref().and_then(|a| a.parent.as_deref().map(str::to_string)),
            held_events: case.events.iter().filter(|e| e.is_held()).count(),
            provisional_calendar: {
                let cal = &self.refdata.calendar;
                out.summary.due_date.is_some_and(|d| cal.is_provisional(d))
                    || out.summary.completed_at.is_some_and(|t| cal.is_provisional(self.zone.day_of(t)))
            },
            summary: out.summary,
        })
    }

    fn parent_center(&self, parent: Option<&str>) -> Vec<Instant> {
        let Some(p) = parent.and_then(|p| self.st.cases.get(p)) else {
            return parent.and_then(|p| self.st.remote_center.get(p)).cloned().unwrap_or_default();
        };
        p.events.iter().filter(|e| e.has(F_CENTER) && !e.is_held()).map(|e| e.at).collect()
    }

    fn judge(&self, case_id: &str, case: &Case, parent_center: &[Instant], figures: bool) -> SimOut {
        let ctx = Ctx {
            cal: &self.refdata.calendar,
            cat: &self.refdata.catalog,
            zone: &self.zone,
            rules: &self.rules,
            dual: &self.st.dual,
            parent_center,
            case_id,
            limit: self.st.watermark.unwrap_or(i64::MIN),
            figures,
        };
        simulate(&case.events, &ctx)
    }

    /// Judges a case again and publishes the difference.
    fn rejudge(&mut self, key: &Arc<str>, by_event: bool, out: &mut Vec<Effect>) {
        let Some(case) = self.st.cases.get(key) else {
            return;
        };
        if !self.st.changed.contains(key) {
            self.st.changed.insert(key.clone());
        }
        let mut pc = self.parent_center(case.parent.as_deref());
        let mut sim = self.judge(key, case, &pc, false);
        if sim.parent != case.parent {
            pc = self.parent_center(sim.parent.as_deref());
            sim = self.judge(key, case, &pc, false);
        }
        let wm = self.st.watermark.unwrap_or(i64::MIN);
        let orphan_ms = self.rules.orphan_hours as i64 * HOUR_MS;
        let mut expired: Vec<(usize, &'static str)> = Vec::new();
        {
            let case = self.st.cases.get_mut(key).expect("case present");
            let mut inv = sim.invalid.iter().peekable();
            for (i, e) in case.events.iter_mut().enumerate() {
                match inv.peek() {
                    Some(&&(j, why)) if j == i => {
                        inv.next();
                        if !e.is_held() {
                            e.hold_until = e.at.max(wm).saturating_add(orphan_ms);
                        }
                        if e.hold_until <= wm {
                            expired.push((i, why));
                        }
                    }
                    _ => e.hold_until = NOT_HELD,
                }
            }
        }
        let zone = self.zone.clone();
        let keep_closed = self.keep_closed_ms();
        let case = self.st.cases.get_mut(key).expect("case present");
        for &(i, why) in expired.iter().rev() {
            let e = case.remove(i);
            self.st.dedupe.remove(&e.id);
            let reason =
                if sim.summary.status == Status::None { DeadReason::Orphan } else { DeadReason::InvalidTransition };
            *self.st.stats.dead_letters.entry(reason).or_default() += 1;
            out.push(Effect::DeadLetter {
                origin: e.origin,
                rejection: Rejection::field(
                    reason,
                    if reason == DeadReason::Orphan { "case_id" } else { "type" },
                    format!(
                        "{} of case {} at {}: {}; still invalid after {} hours",
                        e.kind.as_str(),
                        key,
                        zone.format(e.at),
                        why,
                        self.rules.orphan_hours
                    ),
                ),
            });
        }
        if let Some(y) = sim.summary.missing_calendar {
            self.st.stats.missing_calendar_years.insert(y);
        }
        reconcile(
            case,
            key,
            &sim.alerts,
            &sim.summary,
            &self.st.strings,
            &self.refdata,
            &zone,
            &mut self.st.stats,
            out,
        );
        case.closed = matches!(sim.summary.status, Status::Completed | Status::Refused | Status::Withdrawn);
        if self.share
            && sim.summary.attrs.as_ref().is_some_and(|a| self.refdata.catalog.item(a.item).kind == ItemKind::Joint)
        {
            let at: Vec<Instant> =
                case.events.iter().filter(|e| e.has(F_CENTER) && !e.is_held()).map(|e| e.at).collect();
            if self.st.shared_center.get(key) != Some(&at) {
                self.shared.push(SharedFact::Center { case_id: key.to_string(), at: at.clone() });
                self.st.shared_center.insert(key.clone(), at);
            }
        }

        // Wake-up: the next timer, the first hold to end, or, for a closed
        // case with nothing pending, the time to leave memory.
        let hold = case.events.iter().filter_map(CaseEvent::held_until).min();
        let mut wake = match (sim.wake, hold) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if case.closed && wake.is_none() {
            let evict_at = case.last_at().map_or(wm, |t| t.saturating_add(keep_closed));
            if evict_at > wm {
                wake = Some(evict_at);
            } else if self.st.children.contains_key(key) {
                // A parent stays while its sub-cases are held: they read its events.
                wake = Some(wm.saturating_add(DAY_MS));
            } else if case.published.iter().any(|p| p.recovered) {
                // Records recovered after a restart stay until they are
                // judged again ([`Engine::settle_recovered`]): leaving
                // now would leave one the engine no longer stands by
                // unretracted.
                wake = Some(wm.saturating_add(DAY_MS));
            } else {
                self.evict(key);
                return;
            }
        }
        let wake = wake.filter(|&t| t > wm);
        if case.wake() != wake {
            if let Some(old) = case.wake() {
                self.st.timers.remove(&(old, key.clone()));
            }
            if let Some(new) = wake {
                self.st.timers.insert((new, key.clone()));
            }
            case.wake = wake.unwrap_or(NO_WAKE);
        }

        // Cross-case links.
        let empty = case.events.is_empty();
        let new_accept = if empty { None } else { sim.accept.take() };
        let mut again = std::mem::take(&mut self.scratch);
        again.clear();
        if case.accept.and_then(|h| self.st.dual.current(h, key)) != new_accept.as_ref() {
            if self.share {
                let acceptance = new_accept.as_ref().map(|a| AcceptanceFact {
                    applicant: crate::privacy::hex(&a.attrs.applicant),
                    item_code: self.refdata.catalog.item(a.attrs.item).item_code.clone(),
                    at: a.at,
                    source: self.st.strings.name(a.source).to_string(),
                    withdrawn_at: (a.withdrawn_at != case::NEVER).then_some(a.withdrawn_at),
                });
                self.shared.push(SharedFact::Acceptance { case_id: key.to_string(), acceptance });
            }
            case.accept = self.st.dual.update(key, case.accept, new_accept, &mut again);
        }
        let old_parent = std::mem::replace(&mut case.parent, if empty { None } else { sim.parent.clone() });
        let new_parent = case.parent.clone();
        if empty {
            if let Some(w) = case.wake() {
                self.st.timers.remove(&(w, key.clone()));
            }
            self.st.cases.remove(key);
        }
        if old_parent != new_parent {
            if let Some(p) = &old_parent {
                if let Some(v) = self.st.children.get_mut(p) {
                    v.retain(|c| c != key);
                    if v.is_empty() {
                        self.st.children.remove(p);
                    }
                }
            }
            if let Some(p) = &new_parent {
                let v = self.st.children.entry(p.clone()).or_default();
                if !v.contains(key) {
                    v.push(key.clone());
                }
            }
        }
        if by_event {
            if let Some(kids) = self.st.children.get(key) {
                again.extend(kids.iter().cloned());
            }
        }
        again.retain(|k| k != key);
        for k in &again {
            self.rejudge(k, false, out);
        }
        again.clear();
        self.scratch = again;
    }

    /// How long a closed case stays in memory after its last event: long
    /// enough for ratings, late events, the duplicate window and dual intake.
    fn keep_closed_ms(&self) -> i64 {
        let r = &self.rules;
        r.retain_closed_days.max(r.dual_intake_days + 1).max(r.dedupe_days) as i64 * DAY_MS
    }

    /// Leaves a closed case to history: forgets its ids, links and wake-up.
    /// Its acceptance stays indexed while another case of its group is held,
    /// so that case is judged the same if it is judged again.
    fn evict(&mut self, key: &Arc<str>) {
        if self.st.changed.remove(key) {
            if let Some(v) = self.case_view(key) {
                self.evicted_views.push(v);
            }
        }
        let Some(case) = self.st.cases.remove(key) else { return };
        self.st.shared_center.remove(key);
        if let Some(w) = case.wake() {
            self.st.timers.remove(&(w, key.clone()));
        }
        for e in &case.events {
            self.st.dedupe.remove(&e.id);
        }
        if let Some(p) = &case.parent {
            if let Some(v) = self.st.children.get_mut(p) {
                v.retain(|c| c != key);
                if v.is_empty() {
                    self.st.children.remove(p);
                }
            }
        }
        if let Some(h) = case.accept {
            if let Some(attrs) = self.st.dual.current(h, key).map(|s| s.attrs.clone()) {
                let cases = &self.st.cases;
                self.st.dual.forget_group_if_unheld(h, &attrs, |c| cases.contains_key(c));
            }
        }
        self.st.stats.evicted += 1;
    }
}

impl Engine {
    /// Collects facts about this engine's cases for the engines of other
    /// partitions ([`Engine::take_shared`]).
    pub fn share_facts(&mut self) {
        self.share = true;
    }

    /// Whether facts wait for [`Engine::take_shared`].
    pub fn has_shared(&self) -> bool {
        !self.shared.is_empty()
    }

    /// The facts collected since the last call.
    pub fn take_shared(&mut self) -> Vec<SharedFact> {
        std::mem::take(&mut self.shared)
    }

    /// Learns a fact about a case of another partition, and judges again
    /// the cases of this engine it bears on. Ignored for a case of this
    /// engine, and for an item not in the catalogue.
    pub fn remote_fact(&mut self, fact: &SharedFact, out: &mut Vec<Effect>) {
        if self.st.cases.contains_key(fact.case_id()) {
            return;
        }
        let acceptance = match fact {
            SharedFact::Acceptance { acceptance, .. } => acceptance,
            SharedFact::Center { case_id, at } => {
                let key: Arc<str> = Arc::from(case_id.as_str());
                if at.is_empty() {
                    self.st.remote_center.remove(&key);
                } else {
                    self.st.remote_center.insert(key.clone(), at.clone());
                }
                let kids = self.st.children.get(&key).cloned().unwrap_or_default();
                for k in &kids {
                    self.rejudge(k, false, out);
                }
                return;
            }
        };
        let new = match acceptance {
            None => None,
            Some(a) => {
                let Some(item) = self.refdata.catalog.lookup(&a.item_code) else { return };
                let Some(applicant) = crate::privacy::unhex32(&a.applicant) else { return };
                let attrs = Attrs {
                    region: NO_WINDOW,
                    department: NO_WINDOW,
                    window: NO_WINDOW,
                    item,
                    applicant,
                    parent: None,
                };
                Some(case::AcceptSig {
                    attrs: Arc::new(attrs),
                    at: a.at,
                    source: self.st.strings.intern(&a.source),
                    withdrawn_at: a.withdrawn_at.unwrap_or(case::NEVER),
                })
            }
        };
        let key: Arc<str> = Arc::from(fact.case_id());
        let old = self.st.remote.get(&key).copied();
        let mut again = std::mem::take(&mut self.scratch);
        let at = new.as_ref().map(|s| s.at);
        // The index keeps an entry (returns its group) exactly when there is a new acceptance.
        match self.st.dual.update(&key, old, new, &mut again).zip(at) {
            Some((g, at)) => {
                self.st.remote_by_at.insert((at, key.clone()));
                self.st.remote.insert(key, g);
            }
            None => {
                self.st.remote.remove(&key);
            }
        }
        for k in &again {
            self.rejudge(k, false, out);
        }
        again.clear();
        self.scratch = again;
    }

    /// Ends the grace of recovered records (see
    /// [`Engine::recover_published`]) that the input processed again should
    /// have given by now — those up to the watermark — judging their cases
    /// again: a record the engine no longer stands by is retracted. Call it
    /// once the input that was processed before the restart has been
    /// processed again; returns how many recovered records still wait (their
    /// instant is past the watermark).
    pub fn settle_recovered(&mut self, out: &mut Vec<Effect>) -> usize {
        self.st.recovered.clear();
        let wm = self.st.watermark.unwrap_or(i64::MIN);
        let mut waiting = 0;
        let mut again = Vec::new();
        for (key, case) in self.st.cases.iter_mut() {
            let mut touched = false;
            for p in case.published.iter_mut().filter(|p| p.recovered) {
                if p.at <= wm && p.resolved.is_none_or(|(r, _)| r <= wm) {
                    p.recovered = false;
                    touched = true;
                } else {
                    waiting += 1;
                }
            }
            if touched {
                again.push(key.clone());
            }
        }
        again.sort();
        for k in &again {
            self.rejudge(k, false, out);
        }
        waiting
    }

    /// Forgets what other partitions told about their cases once it is as
    /// old as a closed case kept in memory and no case of this engine can
    /// still need it (the same rule as for this engine's own cases).
    fn forget_old_remote(&mut self, wm: Instant) {
        let horizon = wm.saturating_sub(self.keep_closed_ms());
        // Only entries accepted before the horizon can go: those are at the
        // front of `remote_by_at`. One whose group has a case in memory is
        // looked at again the next day.
        let mut again = Vec::new();
        let mut touched = Vec::new();
        while self.st.remote_by_at.first().is_some_and(|(at, _)| *at < horizon) {
            let Some((at, k)) = self.st.remote_by_at.pop_first() else { break };
            let Some(&g) = self.st.remote.get(&k) else { continue };
            let dual = &self.st.dual;
            if dual.current(g, &k).is_some_and(|s| s.at >= horizon) {
                continue; // accepted again since: its newer entry is queued
            }
            let cases = &self.st.cases;
            if dual.cases_of(g).any(|c| cases.contains_key(c)) {
                again.push((at, k));
                continue;
            }
            self.st.dual.update(&k, Some(g), None, &mut touched);
            self.st.remote.remove(&k);
        }
        self.st.remote_by_at.extend(again);
        let children = &self.st.children;
        self.st.remote_center.retain(|k, at| children.contains_key(k) || at.last().is_some_and(|&t| t >= horizon));
    }

    /// Tells the engine that `rec` was already published, though the state
    /// it was restored from does not know it (a record published after the
    /// last checkpoint, before a crash). The case's published alerts take it
    /// in, so that processing the same input again publishes only what is
    /// still missing — and, should it judge differently this time, retracts
    /// what it no longer stands by — instead of publishing a record twice.
    pub fn recover_published(&mut self, rec: &AlertRecord) {
        match self.st.cases.get_mut(rec.case_id.as_str()) {
            Some(case) => merge_published(case, rec),
            None => self.st.recovered.entry(Arc::from(rec.case_id.as_str())).or_default().push(rec.clone()),
        }
    }
}

/// Takes a published record into a case's published alerts.
fn merge_published(case: &mut Case, rec: &AlertRecord) {
    let n = rec.alert_id.rsplit_once('#').and_then(|(_, n)| n.parse::<u32>().ok()).unwrap_or(1);
    let at = crate::time::parse_rfc3339(&rec.at).unwrap_or(rec.at_ms);
    let due =
        rec.due_date.as_deref().and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()).map(Day::from_date);
    let i = match case.published.iter().position(|p| p.rule == rec.rule && p.n == n) {
        Some(i) => i,
        None => {
            let attrs = case.events.iter().rev().find_map(|e| e.attrs.clone());
            let mut v = std::mem::take(&mut case.published).into_vec();
            v.push(Published {
                rule: rec.rule,
                n,
                at,
                due,
                detail: rec.detail.earlier_case_id.as_deref().map(Arc::from),
                attrs,
                resolved: None,
                retracted: false,
                recovered: true,
                provisional: rec.detail.provisional_calendar,
            });
            case.published = v.into_boxed_slice();
            case.published.len() - 1
        }
    };
    let p = &mut case.published[i];
    p.recovered = true;
    match rec.state {
        AlertState::Firing => {}
        AlertState::Resolved => p.resolved = Some((at, due)),
        AlertState::Retracted => p.retracted = true,
    }
}

/// The 128-bit hash under which an event id is remembered.
fn id_hash(event_id: &str) -> [u64; 2] {
    let h = xxhash_rust::xxh3::xxh3_128(event_id.as_bytes());
    [h as u64, (h >> 64) as u64]
}

/// Publishes the difference between the published alerts of a case and what
/// its judgement says.
#[allow(clippy::too_many_arguments)]
fn reconcile(
    case: &mut Case,
    case_id: &str,
    specs: &[Spec],
    summary: &Summary,
    strings: &Interner,
    refdata: &RefData,
    zone: &Zone,
    stats: &mut Stats,
    out: &mut Vec<Effect>,
) {
    let mut matched = vec![false; case.published.len()];
    let mut to_resolve = Vec::new();
    let mut to_fire = Vec::new();
    // A card counted in working days whose instant or due date lies in a
    // year with a provisional calendar was computed on it (the years
    // without a file are always the latest, so a clock reaching one ends
    // in one). Not a reason to fire again when the file comes and says
    // the same: only what it changes is retracted and fired anew.
    let cal = &refdata.calendar;
    let provisional = |spec: &Spec| {
        spec.rule.uses_calendar()
            && (spec.due.is_some_and(|d| cal.is_provisional(d)) || cal.is_provisional(zone.day_of(spec.at)))
    };
    for spec in specs {
        let found = case.published.iter().enumerate().position(|(i, p)| {
            !matched[i]
                && (!p.retracted || p.recovered)
                && p.rule == spec.rule
                && p.at == spec.at
                && p.due == spec.due
                && p.detail == spec.detail
        });
        match found {
            // Retracted before a restart, at a point not reached again yet.
            Some(i) if case.published[i].retracted => matched[i] = true,
            Some(i) => match (case.published[i].resolved, spec.resolved) {
                (None, None) => {
                    matched[i] = true;
                    case.published[i].recovered = false;
                    case.published[i].provisional = provisional(spec);
                }
                (None, Some(r)) => {
                    matched[i] = true;
                    case.published[i].recovered = false;
                    case.published[i].provisional = provisional(spec);
                    to_resolve.push((i, r));
                }
                (Some(a), Some(b)) if a == b => {
                    matched[i] = true;
                    case.published[i].recovered = false;
                    case.published[i].provisional = provisional(spec);
                }
                // A resolution already published before a restart, not
                // reached again yet.
                (Some(_), None) if case.published[i].recovered => matched[i] = true,
                _ => to_fire.push(spec),
            },
            None => to_fire.push(spec),
        }
    }
    let mk = |p: &Published, state: AlertState, at: Instant, due: Option<Day>, attrs: Option<&Arc<Attrs>>| {
        let alert_id = if p.n <= 1 {
            format!("{}/{}", case_id, p.rule.as_str())
        } else {
            format!("{}/{}#{}", case_id, p.rule.as_str(), p.n)
        };
        AlertRecord {
            alert_id,
            rule: p.rule,
            level: p.rule.level(),
            state,
            at: zone.format(at),
            case_id: case_id.to_string(),
            region: attrs.map(|a| strings.name(a.region).to_string()),
            department: attrs.map(|a| strings.name(a.department).to_string()),
            window: attrs.and_then(|a| a.window()).map(|w| strings.name(w).to_string()),
            item_code: attrs.map(|a| refdata.catalog.item(a.item).item_code.clone()),
            due_date: due.map(|d| d.to_string()),
            retracted: state == AlertState::Retracted,
            detail: Detail {
                earlier_case_id: p.detail.as_deref().map(str::to_string),
                provisional_calendar: p.provisional,
            },
            at_ms: at,
        }
    };
    let mut emit = |stats: &mut Stats, rec: AlertRecord| {
        *stats.alerts.entry(format!("{}/{}", rec.rule.as_str(), rec.state.as_str())).or_default() += 1;
        out.push(Effect::Alert(rec));
    };
    for (i, p) in case.published.iter_mut().enumerate() {
        if !matched[i] && !p.retracted && !p.recovered && !to_resolve.iter().any(|(j, _)| *j == i) {
            p.retracted = true;
            emit(stats, mk(p, AlertState::Retracted, p.at, p.due, p.attrs.as_ref()));
        }
    }
    for (i, (at, due)) in to_resolve {
        let p = &mut case.published[i];
        p.resolved = Some((at, due));
        emit(stats, mk(p, AlertState::Resolved, at, due, summary.attrs.as_ref()));
    }
    if to_fire.is_empty() {
        return;
    }
    let mut published = std::mem::take(&mut case.published).into_vec();
    published.reserve_exact(to_fire.len());
    for spec in to_fire {
        let provisional = provisional(spec);
        let n = published.iter().filter(|p| p.rule == spec.rule).map(|p| p.n).max().unwrap_or(0) + 1;
        let p = Published {
            rule: spec.rule,
            n,
            at: spec.at,
            due: spec.due,
            detail: spec.detail.clone(),
            attrs: spec.attrs.clone(),
            resolved: spec.resolved,
            retracted: false,
            recovered: false,
            provisional,
        };
        emit(stats, mk(&p, AlertState::Firing, p.at, p.due, p.attrs.as_ref()));
        if let Some((at, due)) = p.resolved {
            emit(stats, mk(&p, AlertState::Resolved, at, due, summary.attrs.as_ref()));
        }
        published.push(p);
    }
    case.published = published.into_boxed_slice();
}

impl Engine {
    /// Events still held as invalid, by input position, with the reason they
    /// would be dead-lettered for if their hold ended now.
    pub fn held_events(&self) -> Vec<(u64, Rejection)> {
        let mut v = Vec::new();
        for (id, case) in &self.st.cases {
            if !case.events.iter().any(CaseEvent::is_held) {
                continue;
            }
            let opened = case.events.iter().any(|e| !e.is_held());
            let reason = if opened { DeadReason::InvalidTransition } else { DeadReason::Orphan };
            for e in case.events.iter().filter(|e| e.is_held()) {
                let until = self.zone.format(e.hold_until);
                v.push((
                    e.origin,
                    Rejection::field(
                        reason,
                        if reason == DeadReason::Orphan { "case_id" } else { "type" },
                        format!("{} of case {} is invalid at its place; held until {until}", e.kind.as_str(), id),
                    ),
                ));
            }
        }
        v.sort_by_key(|x| x.0);
        v
    }
}
