//! Judging one case: a pure function from the case's events (in event-time
//! order), the reference data and the watermark to its alerts, its figures and
//! its next wake-up.
//!
//! Events are walked in (`occurred_at`, input order); before each valid event
//! every timer due at or before its instant runs, so a timer knows exactly the
//! events that happened before it. After the last event, timers run up to the
//! watermark. The outcome is independent of arrival order: the engine
//! publishes only the difference between what was published and what this
//! returns.
//!
//! Each valid event goes first to the case's facts ([`Walk::take_in`]), then
//! to every rule in registry order, then — if it closes the case — closes it,
//! resolving the alerts that end with the case.

use super::case::{AcceptSig, Attrs, CaseEvent, NEVER, NO_STAFF};
use super::clock::{self, Stop};
use super::rules::{complaint_overdue, notice_overdue, REGISTRY};
use super::walk::{check, Walk};
pub use super::walk::{Ctx, Spec, Status, Why};
use crate::event::{Channel, Decision};
use crate::reference::{Catalog, ItemKind};
use crate::time::{Day, Instant};
use std::sync::Arc;

/// The figures of a case (`cases` table).
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Life status.
    pub status: Status,
    /// Attributes (from `accepted`, else `submitted`).
    pub attrs: Option<Arc<Attrs>>,
    /// `submitted` instant.
    pub submitted_at: Option<Instant>,
    /// `accepted` instant.
    pub accepted_at: Option<Instant>,
    /// The limit N in working days.
    pub limit_days: Option<u32>,
    /// Processing due date.
    pub due_date: Option<Day>,
    /// Acceptance-decision due date.
    pub intake_due_date: Option<Day>,
    /// Instant the case closed.
    pub closed_at: Option<Instant>,
    /// Instant of `completed`.
    pub completed_at: Option<Instant>,
    /// Decision.
    pub result: Option<Decision>,
    /// Completed on or before the due date.
    pub on_time: Option<bool>,
    /// Completed before the due date with N ≥ 1.
    pub early: Option<bool>,
    /// Charged days used.
    pub used_days: Option<u32>,
    /// Uncharged working days.
    pub stopped_days: Option<u32>,
    /// Is, or was, past its due date while open.
    pub overdue: bool,
    /// Fee charged.
    pub fee_yuan: Option<f64>,
    /// Latest rating.
    pub rating: Option<u8>,
    /// Processing stops (merged).
    pub stops: Vec<Stop>,
    /// A year whose calendar was needed but missing.
    pub missing_calendar: Option<i32>,
    /// A supervision notice of the case waits for its answer: the case
    /// stays in memory, closed or not.
    pub open_notice: bool,
    /// The case's supervision notices (with the clock figures).
    pub notices: Vec<NoticeFigures>,
    /// The current step (its position in the item's steps) of an open case.
    pub step: Option<u32>,
    /// The current step's due date.
    pub step_due_date: Option<Day>,
    /// Charged days each step used: the completed steps, then the current
    /// one (up to the watermark's date, or the day the case closed).
    pub step_used: Vec<u32>,
    /// Channel of the `accepted`.
    pub channel_accepted: Option<Channel>,
    /// Channel of the `completed`.
    pub channel_completed: Option<Channel>,
    /// Interned staff: of the `completed` when it gives one, else of the
    /// `accepted`.
    pub staff: Option<u32>,
}

/// A supervision notice's figures (`notices` table).
#[derive(Clone, Debug, PartialEq)]
pub struct NoticeFigures {
    /// Interned `notice_id`.
    pub id: u32,
    /// `notice_issued` instant.
    pub issued_at: Instant,
    /// Working days given.
    pub deadline_days: u32,
    /// Due date of the answer.
    pub due_date: Option<Day>,
    /// `notice_answered` instant.
    pub answered_at: Option<Instant>,
    /// Its `notice_overdue` fired, or it was answered after its due date.
    pub overdue: bool,
}

/// Everything the engine needs back.
#[derive(Debug, Default)]
pub struct Judgement {
    /// Alerts as they should stand.
    pub alerts: Vec<Spec>,
    /// Indices of invalid events, with why.
    pub invalid: Vec<(usize, Why)>,
    /// Next instant at which the case changes with no new event.
    pub wake: Option<Instant>,
    /// Figures.
    pub summary: Summary,
    /// Entry for the acceptance index.
    pub accept: Option<AcceptSig>,
    /// Parent case (sub-cases).
    pub parent: Option<Arc<str>>,
}

/// The next timer of any rule: its instant, the rule's registry position and
/// the rule's tag.
fn next_timer(w: &Walk, ctx: &Ctx) -> Option<(Instant, usize, u8)> {
    let mut best: Option<(Instant, usize, u8)> = None;
    for (i, def) in REGISTRY.iter().enumerate() {
        if let Some((t, tag)) = def.next_timer(w, ctx) {
            if best.is_none_or(|b| t < b.0) {
                best = Some((t, i, tag));
            }
        }
    }
    best
}

/// Runs every timer due at or before `upto`.
fn run_timers(w: &mut Walk, ctx: &Ctx, upto: Instant) {
    // Every timer marks itself run or resolves its alert, so this ends; the
    // bound only guards against a bug turning into a hang.
    for _ in 0..64 {
        match next_timer(w, ctx) {
            Some((t, i, tag)) if t <= upto => REGISTRY[i].on_timer(w, ctx, t, tag),
            _ => return,
        }
    }
}

/// Takes in one valid event: facts, rules, then closing.
fn take_in(w: &mut Walk, ctx: &Ctx, e: &CaseEvent) {
    let day = ctx.zone.day_of(e.at);
    w.take_in(e, day, ctx.cat);
    for def in REGISTRY.iter() {
        def.on_event(w, ctx, e);
    }
    if let Some(status) = Walk::closes(e) {
        w.close(status, e.at, day);
        for def in REGISTRY.iter() {
            let m = def.meta();
            if m.resolves_on_close && w.live(m.rule).is_some() {
                let due = def.due(w, ctx.cal);
                w.resolve(m.rule, e.at, due);
            }
        }
    }
}

/// A case's walk after its latest event, kept so that an event landing
/// after it continues the judgement from there instead of walking the
/// case's earlier events again. Valid while the events it walked stay the
/// first ones of the case and nothing else the walk read changed (the
/// parent's `center` events, the acceptance index, the reference data): the
/// engine drops it otherwise.
#[derive(Clone, Debug, Default)]
pub struct Resume {
    /// The facts after the walked events (timers run up to the last valid
    /// one, none after it).
    walk: Walk,
    /// Indices of the invalid events among them, with why.
    invalid: Vec<(usize, Why)>,
    /// How many of the case's first events it walked.
    walked: usize,
}

impl Resume {
    /// How many of the case's first events it walked.
    pub fn walked(&self) -> usize {
        self.walked
    }
}

/// Walks the case's events not yet walked by `r` (all of them when it is
/// new), in place.
pub fn walk_events(events: &[CaseEvent], ctx: &Ctx, r: &mut Resume) {
    if r.walked > events.len() {
        *r = Resume::default();
    }
    for (i, e) in events.iter().enumerate().skip(r.walked) {
        if let Err(why) = check(&r.walk, e) {
            r.invalid.push((i, why));
            continue;
        }
        run_timers(&mut r.walk, ctx, e.at);
        take_in(&mut r.walk, ctx, e);
    }
    r.walked = events.len();
}

/// Judges a case whose events were all walked: timers up to the watermark,
/// then the figures. The walk is left as it was (timers run on a copy, and
/// only when one is due).
pub fn conclude(r: &Resume, ctx: &Ctx) -> Judgement {
    let kept_missing = r.walk.missing.get();
    let next = next_timer(&r.walk, ctx);
    let mut ran = None;
    if next.is_some_and(|(t, ..)| t <= ctx.limit) {
        let mut w = r.walk.clone();
        run_timers(&mut w, ctx, ctx.limit);
        ran = Some(w);
    }
    let w = ran.as_ref().unwrap_or(&r.walk);
    let mut out = Judgement { invalid: r.invalid.clone(), ..Judgement::default() };
    out.wake = if ran.is_some() { next_timer(w, ctx) } else { next }.map(|(t, ..)| t);
    out.summary = summarize(w, ctx);
    out.accept = match (&w.attrs, w.accepted) {
        (Some(a), Some((at, _))) => Some(AcceptSig {
            attrs: Arc::clone(a),
            at,
            source: w.accepted_source,
            withdrawn_at: w.withdrawn_at.unwrap_or(NEVER),
        }),
        _ => None,
    };
    out.parent = w.attrs.as_ref().and_then(|a| a.parent.clone());
    out.alerts = match ran {
        Some(w) => w.alerts,
        None => r.walk.alerts.clone(),
    };
    r.walk.missing.set(kept_missing);
    out
}

/// Judges a case from its first event.
pub fn judge_case(events: &[CaseEvent], ctx: &Ctx) -> Judgement {
    let mut r = Resume::default();
    walk_events(events, ctx, &mut r);
    conclude(&r, ctx)
}

fn summarize(st: &Walk, ctx: &Ctx) -> Summary {
    let cal = ctx.cal;
    let mut s = Summary {
        status: st.status,
        attrs: st.attrs.clone(),
        submitted_at: st.submitted.map(|s| s.0),
        accepted_at: st.accepted.map(|a| a.0),
        closed_at: st.closed_at,
        completed_at: st.completed.map(|c| c.0),
        result: st.result,
        fee_yuan: st.fee,
        rating: st.rating,
        ..Summary::default()
    };
    if st.accepted.is_some() {
        s.channel_accepted = Channel::from_code(st.accepted_channel);
    }
    if st.completed.is_some() {
        s.channel_completed = Channel::from_code(st.completed_channel);
    }
    let given = |x: u32| (x != NO_STAFF).then_some(x);
    s.staff = st
        .completed
        .and_then(|_| given(st.completed_staff))
        .or_else(|| st.accepted.and_then(|_| given(st.accepted_staff)));
    s.missing_calendar = st.missing.get();
    s.open_notice = st.open_notice().is_some();
    if !ctx.figures {
        return s;
    }
    for n in &st.notices {
        let due_date = notice_overdue::due(st, cal, n);
        let late = n.answered.zip(due_date).is_some_and(|(a, d)| ctx.zone.day_of(a) > d);
        s.notices.push(NoticeFigures {
            id: n.id,
            issued_at: n.issued.0,
            deadline_days: n.deadline_days,
            due_date,
            answered_at: n.answered,
            overdue: n.overdue || late,
        });
    }
    if let Some((filed, _)) = st.filed {
        // A complaint: filed is its start, answered its completion.
        s.submitted_at = Some(filed);
        s.due_date = complaint_overdue::due(st, cal, ctx.rules.complaint_days);
        if st.status == Status::Answered {
            s.completed_at = st.closed_at;
            s.on_time = st.closed_at.zip(s.due_date).map(|(a, d)| ctx.zone.day_of(a) <= d);
        }
        s.overdue = st.raised(crate::alert::Rule::ComplaintOverdue) || s.on_time == Some(false);
        s.missing_calendar = st.missing.get();
        return s;
    }
    if st.status == Status::Submitted {
        s.intake_due_date = st.intake_due(cal);
    }
    if let Some((_, a)) = st.accepted {
        s.limit_days = (!st.unlisted()).then_some(st.limit_days);
        s.stops = st.processing_stops().into_owned();
        if matches!(st.status, Status::Open | Status::Completed) {
            s.due_date = st.due(cal);
        }
        let upto = match (st.status, st.completed) {
            (Status::Completed, Some((_, c))) => Some(c),
            (Status::Open, _) => Some(ctx.zone.day_of(ctx.limit)),
            _ => None,
        };
        if let Some(upto) = upto {
            let r = clock::stopped_days(cal, a, upto, &s.stops).map(Some);
            s.stopped_days = st.note(r);
        }
        if let Some((_, c)) = st.completed {
            let r = clock::charged_days(cal, a, c, &s.stops).map(Some);
            s.used_days = st.note(r);
            if let Some(due) = s.due_date {
                s.on_time = Some(c <= due);
                s.early = Some(st.limit_days >= 1 && c < due);
            }
        }
    }
    if let (Some((_, a)), Some(attrs)) = (st.accepted, &st.attrs) {
        let steps = ctx.steps.of(attrs.item);
        if !steps.is_empty() {
            let end = match (st.status, st.closed_at) {
                (Status::Open, _) => ctx.zone.day_of(ctx.limit),
                (_, Some(t)) => ctx.zone.day_of(t),
                _ => a,
            };
            let mut start = a;
            let ends = st.step_done.iter().copied().chain((st.step_done.len() < steps.len()).then_some(end));
            for done in ends {
                let r = clock::charged_days(cal, start, done.max(start), &s.stops).map(Some);
                s.step_used.push(st.note(r).unwrap_or(0));
                start = done.max(start);
            }
            if st.status == Status::Open && st.step_done.len() < steps.len() {
                s.step = Some(st.step_done.len() as u32);
                s.step_due_date = st.step_due(cal);
            }
        }
    }
    s.overdue = st.raised(crate::alert::Rule::Overdue) || s.on_time == Some(false);
    s.missing_calendar = st.missing.get();
    s
}

/// The kind of the case's item, for figures.
pub fn item_kind(cat: &Catalog, attrs: &Attrs) -> ItemKind {
    cat.item(attrs.item).kind
}
