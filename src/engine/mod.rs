//! The supervision engine: a pure state machine. Events and watermark advances
//! go in; alert records and dead letters come out as [`Effect`]s. No I/O, no
//! clock, no randomness: the same input gives the same output, byte for byte,
//! and the whole state can be snapshotted and resumed.
//!
//! Layout:
//! - [`case`]: per-case data (events, published alerts);
//! - [`judgement`]: judging one case, a pure function of its events;
//! - [`walk`]: a case's facts and lifecycle as its events are walked;
//! - [`rules`]: the alert rules, one file each, and their registry;
//! - [`clock`]: working days counted with stops;
//! - [`dual`]: the acceptance index for `dual_intake`;
//! - `state`: the whole mutable state and its snapshot;
//! - `rejudge`: judging a case again and the cases that depend on it;
//! - `published`: reconciling a case's published alerts with its judgement
//!   (only the difference goes out), and records recovered after a restart;
//! - [`facts`]: what the engines of other partitions learn from this one.
//!
//! This module is the API: it keeps the cases, the wake-up set (one entry
//! per case: `BTreeSet<(Instant, case)>`), the duplicate filter and the
//! cross-case links, applies events, moves the watermark and judges a
//! case again whenever something it depends on changed.

pub mod case;
pub mod clock;
pub mod delta;
pub mod dual;
pub mod facts;
pub mod judgement;
mod published;
mod rejudge;
pub mod rules;
mod state;
mod tracked;
pub mod walk;

pub use facts::{AcceptanceFact, SharedFact};
use published::{merge_published, reconcile};
use state::{Case, Departed, State, NO_WAKE};
pub use state::{SnapshotError, Stats};
use tracked::Shared;

use crate::alert::AlertRecord;
use crate::config::RulesConfig;
use crate::deadletter::{DeadReason, Rejection};
use crate::event::{Decision, Event, EventType};
use crate::reference::{ItemKind, RefData};
use crate::time::{Day, Instant, Zone, DAY_MS, HOUR_MS};
use case::{
    Attrs, CaseEvent, F_BACKDATED, F_CENTER, F_DENIED, F_NO_REASON, F_SUPPLEMENT, NOT_HELD, NO_ITEM, NO_NOTICE,
    NO_STEP, NO_WINDOW, UNLISTED_ITEM,
};
use judgement::{conclude, judge_case, walk_events, Ctx, Judgement, Resume, Status, Summary};
use std::collections::{HashMap, HashSet};
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

/// A case keeps its walk once it has this many events.
const KEEP_WALK_FROM: usize = 4;

/// Why a case is judged again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    /// An event of its own came (its kept walk goes on if it landed last).
    Event,
    /// Its wake-up came: only the watermark moved.
    Timer,
    /// Something else it reads changed: another case's acceptance, its
    /// parent's events, facts from another partition, the reference data,
    /// recovered records. It is walked from its first event.
    Other,
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
    /// The `notice_id` of each of `summary.notices`, in their order.
    pub notices: Vec<String>,
    /// The name of the current step of an open case (`steps.csv`).
    pub step: Option<String>,
    /// Charged days each step used so far, `name:days` comma-separated in
    /// step order; None for an item without steps.
    pub step_used_days: Option<String>,
    /// A joint parent's sub-cases that made it late (completed after its
    /// due date, or still open at 00:00 of the day after it): their ids
    /// and departments, sorted; None for a case without sub-cases.
    pub late_sub_cases: Option<LateSubCases>,
    /// The official who handled it: the `staff` of its `completed` when
    /// given, else of its `accepted`.
    pub staff: Option<String>,
}

/// The sub-cases that made a joint parent late (follow-up.md, "Joint cases").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LateSubCases {
    /// Their case ids, sorted.
    pub case_ids: Vec<String>,
    /// Their departments, sorted, each once.
    pub departments: Vec<String>,
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
    /// Continue a case's kept walk when it can (else walk every case from
    /// its first event every time: the reference the tests compare with).
    incremental: bool,
    /// Events walked by judgements so far (not in snapshots).
    walked: u64,
    /// The walk of a case after its latest event, to continue its next
    /// judgement from (not in snapshots: rebuilt at the case's next
    /// judgement). Kept beside the cases, not in them, so that a case
    /// copied while a checkpoint's cut shares it does not copy its walk.
    walks: Map<Arc<str>, Box<Resume>>,
    /// While changes are tracked for deltas, the number of strings interned
    /// at the last cut (see [`delta`]).
    strings_saved: Option<usize>,
    /// Cases judged before the last [`Engine::defer_changed`], for
    /// [`Engine::take_deferred_with`] to take a few at a time (those no
    /// longer among the changed ones were taken meanwhile).
    deferred: Vec<Arc<str>>,
}

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
            incremental: true,
            walked: 0,
            walks: Map::default(),
            strings_saved: None,
            deferred: Vec::new(),
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
            self.rejudge(k, Cause::Other, out);
        }
    }

    /// Whether a case's judgement continues from its latest event (the
    /// default) or walks all its events every time. Both give the same
    /// output, byte for byte; the second is the reference the property
    /// tests hold the first to.
    pub fn set_incremental(&mut self, on: bool) {
        self.incremental = on;
        if !on {
            self.walks.clear();
        }
    }

    /// Events walked by the judgements since the engine started: about one
    /// per event when events come in order, more for late ones.
    pub fn events_walked(&self) -> u64 {
        self.walked
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

    /// The watermark, once any time has passed.
    pub fn watermark(&self) -> Option<Instant> {
        self.st.watermark
    }

    /// Gives `f` the current view of every case judged since the last call
    /// (first those that left memory meanwhile, then the others sorted by
    /// case id), for history: a case's row changes only when it is judged.
    /// The views are made one at a time, not collected.
    pub fn take_changed_with(&mut self, mut f: impl FnMut(&CaseView)) {
        self.take_evicted(&mut f);
        self.deferred.clear();
        let mut ids: Vec<Arc<str>> = self.st.changed.drain().collect();
        ids.sort();
        for id in &ids {
            if let Some(v) = self.case_view(id) {
                f(&v);
            }
        }
    }

    /// Leaves the cases judged so far for [`Engine::take_deferred_with`] to
    /// take a few at a time, instead of all at once at the next
    /// [`Engine::take_changed_with`]: a shell that writes history while it
    /// goes on consuming spreads the cost of the views over the time
    /// between its checkpoints. Until taken they stay among the changed
    /// cases, so a cut of the state still has them (see
    /// [`Engine::take_delta`]) and SQL's pending rows too.
    pub fn defer_changed(&mut self) {
        self.deferred.clear();
        self.deferred.extend(self.st.changed.iter().cloned());
    }

    /// Gives `f` the final views of the cases that left memory since the
    /// last call, then the current views of up to `max` cases left by
    /// [`Engine::defer_changed`] and not taken since (each leaves the
    /// changed cases: it is judged again before its next view). Returns
    /// how many of those it took.
    pub fn take_deferred_with(&mut self, max: usize, mut f: impl FnMut(&CaseView)) -> usize {
        self.take_evicted(&mut f);
        let mut taken = 0;
        while taken < max {
            let Some(id) = self.deferred.pop() else { break };
            if !self.st.changed.remove(&id) {
                continue;
            }
            if let Some(v) = self.case_view(&id) {
                f(&v);
            }
            taken += 1;
        }
        taken
    }

    /// Cases left by [`Engine::defer_changed`] not taken yet (some may have
    /// been taken another way meanwhile).
    pub fn deferred(&self) -> usize {
        self.deferred.len()
    }

    /// The views [`Engine::take_changed_with`] gives, collected.
    pub fn take_changed(&mut self) -> Vec<CaseView> {
        let mut v = Vec::new();
        self.take_changed_with(|c| v.push(c.clone()));
        v
    }

    /// Gives `f` the final views of the changed cases that left memory
    /// since the last call (part of [`Engine::take_changed_with`]): a shell
    /// with no reader of pending rows (replay) takes them as they come, so
    /// they do not pile up until the flush.
    pub fn take_evicted(&mut self, mut f: impl FnMut(&CaseView)) {
        for v in self.evicted_views.drain(..) {
            f(&v);
        }
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
        let item = match (ev.item, &ev.unlisted_item) {
            (None, Some(code)) => Some(UNLISTED_ITEM | self.st.strings.intern(code)),
            (item, _) => item,
        };
        let attrs = match (ev.kind, &ev.region, &ev.department, item, ev.applicant) {
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
            (EventType::ComplaintFiled, Some(r), Some(d), ..) => Some(Arc::new(Attrs {
                region: self.st.strings.intern(r),
                department: self.st.strings.intern(d),
                window: ev.window.as_deref().map_or(NO_WINDOW, |w| self.st.strings.intern(w)),
                item: NO_ITEM,
                applicant: [0; 32],
                parent: None,
            })),
            _ => None,
        };
        let ce = CaseEvent {
            at: ev.occurred_at,
            origin,
            id,
            kind: ev.kind,
            source: self.st.strings.intern(&ev.source),
            flags,
            rating: ev.rating.or(ev.deadline_days).unwrap_or(0),
            notice: ev.notice_id.as_deref().map_or(NO_NOTICE, |n| self.st.strings.intern(n)),
            fee: ev.fee_yuan.unwrap_or(-1.0),
            attrs,
            hold_until: NOT_HELD,
            step: match ev.step.as_deref() {
                Some(name) if ev.kind == EventType::StepCompleted && self.refdata.steps.knows(name) => {
                    self.st.strings.intern(name)
                }
                _ => NO_STEP,
            },
            channel: crate::event::Channel::code(ev.channel),
            staff: ev.staff.as_deref().map_or(case::NO_STAFF, |s| self.st.strings.intern(s)),
        };
        let case = self.st.cases.entry(key.clone()).or_insert_with(|| Shared::new(Case::new()));
        if case.insert(ce) + 1 < case.events.len() {
            self.walks.remove(&key);
        }
        if !self.st.recovered.is_empty() {
            if let Some(recs) = self.st.recovered.remove(&key) {
                for r in &recs {
                    merge_published(case, r);
                }
            }
        }
        self.rejudge(&key, Cause::Event, out);
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
            self.rejudge(&key, Cause::Timer, out);
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
            item_code: attrs.as_ref().and_then(|a| a.item_code(&self.refdata.catalog, s)).map(str::to_string),
            parent_case_id: attrs.as_ref().and_then(|a| a.parent.as_deref().map(str::to_string)),
            held_events: case.events.iter().filter(|e| e.is_held()).count(),
            provisional_calendar: {
                let cal = &self.refdata.calendar;
                out.summary.due_date.is_some_and(|d| cal.is_provisional(d))
                    || out.summary.completed_at.is_some_and(|t| cal.is_provisional(self.zone.day_of(t)))
            },
            notices: out.summary.notices.iter().map(|n| s.name(n.id).to_string()).collect(),
            step: {
                let steps = attrs.as_ref().map_or(&[][..], |a| self.refdata.steps.of(a.item));
                out.summary.step.and_then(|k| steps.get(k as usize)).map(|s| s.name.clone())
            },
            step_used_days: {
                let steps = attrs.as_ref().map_or(&[][..], |a| self.refdata.steps.of(a.item));
                let used = &out.summary.step_used;
                (!used.is_empty()).then(|| {
                    let v: Vec<String> = steps.iter().zip(used).map(|(s, d)| format!("{}:{d}", s.name)).collect();
                    v.join(",")
                })
            },
            late_sub_cases: self.late_sub_cases(case_id, out.summary.due_date),
            staff: out.summary.staff.map(|i| s.name(i).to_string()),
            summary: out.summary,
        })
    }

    /// The instant from which a joint parent's open sub-cases make it late:
    /// 00:00 of the day after its due date; None for a case without
    /// sub-cases in memory or without a due date.
    fn joint_deadline(&self, case_id: &str) -> Option<Instant> {
        self.st.children.get(case_id)?;
        let case = self.st.cases.get(case_id)?;
        let pc = self.parent_center(case.parent.as_deref());
        let due = self.judge(case_id, case, &pc, true).summary.due_date?;
        Some(self.zone.midnight(due.next()))
    }

    /// The sub-cases (in memory) that made the case late, given its due
    /// date: each closed at or after 00:00 of the day after it, or still
    /// open when the watermark has passed that instant.
    fn late_sub_cases(&self, case_id: &str, due: Option<Day>) -> Option<LateSubCases> {
        let kids = self.st.children.get(case_id);
        let departed = self.st.departed.get(case_id);
        if kids.is_none() && departed.is_none() {
            return None;
        }
        let mut late = LateSubCases::default();
        let Some(due) = due else { return Some(late) };
        let t = self.zone.midnight(due.next());
        let wm = self.st.watermark.unwrap_or(i64::MIN);
        for d in departed.into_iter().flatten() {
            if d.closed_at.map_or(wm >= t, |x| x >= t) {
                late.case_ids.push(d.case_id.to_string());
                late.departments.push(self.st.strings.name(d.department).to_string());
            }
        }
        for k in kids.into_iter().flatten() {
            let Some(c) = self.st.cases.get(k) else { continue };
            let pc = self.parent_center(c.parent.as_deref());
            let s = self.judge(k, c, &pc, false).summary;
            let Some(attrs) = s.attrs.as_ref() else { continue };
            if s.closed_at.map_or(wm >= t, |x| x >= t) {
                late.case_ids.push(k.to_string());
                late.departments.push(self.st.strings.name(attrs.department).to_string());
            }
        }
        late.case_ids.sort();
        late.case_ids.dedup();
        late.departments.sort();
        late.departments.dedup();
        Some(late)
    }

    fn parent_center(&self, parent: Option<&str>) -> Vec<Instant> {
        let Some(p) = parent.and_then(|p| self.st.cases.get(p)) else {
            return parent.and_then(|p| self.st.remote_center.get(p)).cloned().unwrap_or_default();
        };
        p.events.iter().filter(|e| e.has(F_CENTER) && !e.is_held()).map(|e| e.at).collect()
    }

    fn ctx<'a>(&'a self, case_id: &'a str, parent_center: &'a [Instant], figures: bool) -> Ctx<'a> {
        Ctx {
            cal: &self.refdata.calendar,
            cat: &self.refdata.catalog,
            steps: &self.refdata.steps,
            strings: &self.st.strings,
            zone: &self.zone,
            rules: &self.rules,
            dual: &self.st.dual,
            parent_center,
            case_id,
            limit: self.st.watermark.unwrap_or(i64::MIN),
            figures,
        }
    }

    /// Judges a case as it stands, continuing its kept walk if it has one.
    fn judge(&self, case_id: &str, case: &Case, parent_center: &[Instant], figures: bool) -> Judgement {
        let ctx = self.ctx(case_id, parent_center, figures);
        match self.walks.get(case_id).map(|r| &**r) {
            Some(r) if r.walked() == case.events.len() => conclude(r, &ctx),
            _ => judge_case(&case.events, &ctx),
        }
    }
}

/// The 128-bit hash under which an event id is remembered.
fn id_hash(event_id: &str) -> [u64; 2] {
    let h = xxhash_rust::xxh3::xxh3_128(event_id.as_bytes());
    [h as u64, (h >> 64) as u64]
}

impl Engine {
    /// Events still held as invalid, by input position, with the reason they
    /// would be dead-lettered for if their hold ended now.
    pub fn held_events(&self) -> Vec<(u64, Rejection)> {
        let mut v = Vec::new();
        for (id, case) in self.st.cases.iter() {
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
