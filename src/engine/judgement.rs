//! Judging one case: a pure function from the case's events (in event-time
//! order), the reference data and the watermark to its alerts, its figures and
//! its next wake-up.
//!
//! Events are walked in (`occurred_at`, input order); before each valid event
//! every timer due at or before its instant fires, so a timer knows exactly the
//! events that happened before it. After the last event, timers fire up to the
//! watermark. Re-running this on every change of a case is what makes the
//! outcome independent of arrival order: the engine publishes only the
//! difference between what was published and what this returns.

use super::case::{AcceptSig, Attrs, CaseEvent, F_BACKDATED, F_CENTER, F_DENIED, F_NO_REASON, F_SUPPLEMENT, NEVER};
use super::clock::{self, Stop};
use super::dual::DualIndex;
use crate::alert::Rule;
use crate::calendar::{Calendar, NoCalendar};
use crate::config::RulesConfig;
use crate::event::{Decision, EventType};
use crate::reference::{Catalog, ItemKind};
use crate::time::{Day, Instant, Zone, HOUR_MS};
use serde::Serialize;
use std::sync::Arc;

/// What the simulation reads besides the case's events.
pub struct Ctx<'a> {
    /// Working-day calendar.
    pub cal: &'a Calendar,
    /// Item catalogue.
    pub cat: &'a Catalog,
    /// Time zone.
    pub zone: &'a Zone,
    /// Rule thresholds.
    pub rules: &'a RulesConfig,
    /// Acceptances by (applicant, item), for `dual_intake`.
    pub dual: &'a DualIndex,
    /// Instants of the parent case's `center` events, sorted (sub-cases).
    pub parent_center: &'a [Instant],
    /// This case's id.
    pub case_id: &'a str,
    /// The watermark: timers up to it fire.
    pub limit: Instant,
    /// Compute the clock figures of the summary (due date, used days …);
    /// without it the summary holds only status, attributes and times.
    pub figures: bool,
}

/// Where a case is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// No valid event yet.
    #[default]
    None,
    /// 收件, not yet accepted.
    Submitted,
    /// Accepted, in processing.
    Open,
    /// 办结.
    Completed,
    /// 不予受理.
    Refused,
    /// 撤回.
    Withdrawn,
}

impl Status {
    /// The name used in SQL.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::None => "none",
            Status::Submitted => "submitted",
            Status::Open => "open",
            Status::Completed => "completed",
            Status::Refused => "refused",
            Status::Withdrawn => "withdrawn",
        }
    }
    fn closed(self) -> bool {
        matches!(self, Status::Completed | Status::Refused | Status::Withdrawn)
    }
}

/// An alert as it should stand.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// The rule.
    pub rule: Rule,
    /// Firing instant.
    pub at: Instant,
    /// Due date on the firing record.
    pub due: Option<Day>,
    /// `earlier_case_id` for `dual_intake`.
    pub detail: Option<Arc<str>>,
    /// Case attributes at firing.
    pub attrs: Option<Arc<Attrs>>,
    /// Resolution instant and due date then.
    pub resolved: Option<(Instant, Option<Day>)>,
}

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
}

/// Why an event is invalid at its place.
pub type Why = &'static str;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    DueSoon,
    Overdue,
    Intake,
    Unregistered,
    ParentRegistered,
    BadRating,
}

#[derive(Default)]
struct Walk<'e> {
    status: Status,
    /// Borrowed from the events: cloned only into what leaves the simulation.
    attrs: Option<&'e Arc<Attrs>>,
    first_at: Option<Instant>,
    center_min: Option<Instant>,
    sub_at: Option<Instant>,
    sub_day: Option<Day>,
    intake_stops: Vec<Stop>,
    intake_open: bool,
    acc_at: Option<Instant>,
    acc_day: Option<Day>,
    acc_source: u32,
    n: u32,
    stops: Vec<Stop>,
    susp_open: Option<Day>,
    esc_open: Option<Day>,
    supplements: u32,
    closed_at: Option<Instant>,
    completed: Option<(Instant, Day)>,
    result: Option<Decision>,
    fee: Option<f64>,
    rating: Option<u8>,
    bad_rating: Option<Day>,
    rectified: bool,
    withdrawn_at: Option<Instant>,
    due_soon_raised: bool,
    overdue_raised: bool,
    intake_overdue_raised: bool,
    unregistered_raised: bool,
    bad_rating_raised: bool,
    missing: Option<i32>,
    alerts: Vec<Spec>,
}

impl Walk<'_> {
    fn note<T>(&mut self, r: Result<Option<T>, NoCalendar>) -> Option<T> {
        match r {
            Ok(v) => v,
            Err(NoCalendar(y)) => {
                self.missing.get_or_insert(y);
                None
            }
        }
    }

    /// Processing stops as known now: closed ones plus any open one.
    fn proc_stops(&self) -> Vec<Stop> {
        let mut v = self.stops.clone();
        if let Some(s) = self.susp_open {
            v.push((s, None));
        }
        if let Some(s) = self.esc_open {
            v.push((s, None));
        }
        clock::merge(&mut v);
        v
    }

    fn nth_charged(&mut self, cal: &Calendar, k: u32) -> Option<Day> {
        let a = self.acc_day?;
        let stops = self.proc_stops();
        let r = clock::nth_charged(cal, a, k, &stops);
        self.note(r)
    }

    fn due(&mut self, cal: &Calendar) -> Option<Day> {
        self.acc_day?;
        self.nth_charged(cal, self.n)
    }

    fn intake_due(&mut self, cal: &Calendar) -> Option<Day> {
        let s = self.sub_day?;
        let mut stops = self.intake_stops.clone();
        clock::merge(&mut stops);
        let r = clock::nth_charged(cal, s, 5, &stops);
        self.note(r)
    }

    fn due_for(&mut self, rule: Rule, cal: &Calendar) -> Option<Day> {
        match rule {
            Rule::DueSoon | Rule::Overdue => self.due(cal),
            Rule::IntakeOverdue => self.intake_due(cal),
            _ => None,
        }
    }

    fn live(&self, rule: Rule) -> Option<usize> {
        self.alerts.iter().position(|a| a.rule == rule && a.resolved.is_none())
    }

    fn fire(&mut self, rule: Rule, at: Instant, due: Option<Day>, detail: Option<Arc<str>>) {
        if self.live(rule).is_some() {
            return;
        }
        let resolved = (self.status.closed() && rule.resolves_on_close()).then_some((at, due));
        self.alerts.push(Spec { rule, at, due, detail, attrs: self.attrs.cloned(), resolved });
    }

    fn resolve(&mut self, rule: Rule, at: Instant, cal: &Calendar) {
        if let Some(i) = self.live(rule) {
            let due = self.due_for(rule, cal);
            self.alerts[i].resolved = Some((at, due));
        }
    }

    fn close(&mut self, status: Status, at: Instant, day: Day, cal: &Calendar) {
        if let Some(s) = self.susp_open.take() {
            self.stops.push((s, Some(day)));
        }
        if let Some(s) = self.esc_open.take() {
            self.stops.push((s, Some(day)));
        }
        clock::merge(&mut self.stops);
        self.status = status;
        self.closed_at = Some(at);
        for rule in Rule::ALL {
            if rule.resolves_on_close() {
                self.resolve(rule, at, cal);
            }
        }
    }
}

fn attrs_item<'c>(st: &Walk<'_>, cat: &'c Catalog) -> Option<&'c crate::reference::Item> {
    st.attrs.as_ref().map(|a| cat.item(a.item))
}

/// The next timer of the case and its instant.
fn next_timer(st: &mut Walk<'_>, ctx: &Ctx) -> Option<(Instant, Timer)> {
    let mut best: Option<(Instant, Timer)> = None;
    let mut consider = |t: Option<Instant>, k: Timer| {
        if let Some(t) = t {
            if best.is_none_or(|b| (t, k) < b) {
                best = Some((t, k));
            }
        }
    };
    let z = ctx.zone;
    if st.status == Status::Open {
        if st.n >= 1 && !st.due_soon_raised {
            let warn = ctx.rules.warn_days.clamp(1, st.n);
            let k = st.n - warn + 1;
            let t = st.nth_charged(ctx.cal, k).map(|d| z.midnight(d));
            consider(t, Timer::DueSoon);
        }
        if !st.overdue_raised {
            let t = st.due(ctx.cal).map(|d| z.midnight(d.next()));
            consider(t, Timer::Overdue);
        }
    }
    if st.status == Status::Submitted && !st.intake_overdue_raised {
        let t = st.intake_due(ctx.cal).map(|d| z.midnight(d.next()));
        consider(t, Timer::Intake);
    }
    if !st.unregistered_raised {
        if let (Some(first), Some(item)) = (st.first_at, attrs_item(st, ctx.cat)) {
            if item.in_hall {
                consider(Some(first + ctx.rules.grace_hours as i64 * HOUR_MS), Timer::Unregistered);
            }
        }
    }
    if let Some(i) = st.live(Rule::UnregisteredCase) {
        let fired = st.alerts[i].at;
        let p = ctx.parent_center.iter().copied().find(|&p| p >= fired);
        consider(p, Timer::ParentRegistered);
    }
    if let (Some(day), false, false) = (st.bad_rating, st.rectified, st.bad_rating_raised) {
        let r = ctx.cal.nth_working_after(day, ctx.rules.rectify_days).map(Some);
        let t = st.note(r).map(|d| z.midnight(d.next()));
        consider(t, Timer::BadRating);
    }
    best
}

fn fire_timer(st: &mut Walk<'_>, ctx: &Ctx, t: Instant, k: Timer) {
    match k {
        Timer::DueSoon => {
            st.due_soon_raised = true;
            let due = st.due(ctx.cal);
            st.fire(Rule::DueSoon, t, due, None);
        }
        Timer::Overdue => {
            st.overdue_raised = true;
            let due = st.due(ctx.cal);
            st.fire(Rule::Overdue, t, due, None);
        }
        Timer::Intake => {
            st.intake_overdue_raised = true;
            let due = st.intake_due(ctx.cal);
            st.fire(Rule::IntakeOverdue, t, due, None);
        }
        Timer::Unregistered => {
            st.unregistered_raised = true;
            let own = st.center_min.is_some_and(|c| c < t);
            let parent = ctx.parent_center.first().is_some_and(|&p| p < t);
            if !own && !parent {
                st.fire(Rule::UnregisteredCase, t, None, None);
            }
        }
        Timer::ParentRegistered => st.resolve(Rule::UnregisteredCase, t, ctx.cal),
        Timer::BadRating => {
            st.bad_rating_raised = true;
            st.fire(Rule::BadRatingUnrectified, t, None, None);
        }
    }
}

fn run_timers(st: &mut Walk<'_>, ctx: &Ctx, upto: Instant) {
    // Every timer sets its done flag or resolves its alert, so this ends; the
    // bound only guards against a bug turning into a hang.
    for _ in 0..64 {
        match next_timer(st, ctx) {
            Some((t, k)) if t <= upto => fire_timer(st, ctx, t, k),
            _ => return,
        }
    }
}

/// Checks an event against the state; `Err` says why it is invalid here.
fn check(st: &Walk<'_>, e: &CaseEvent) -> Result<(), Why> {
    use EventType::*;
    use Status as S;
    let ok = match (st.status, e.kind) {
        (S::None, Submitted | Accepted) => true,
        (S::None, _) => return Err("its case has not been submitted or accepted before it"),
        (S::Submitted, Accepted | Refused | Withdrawn) => true,
        (S::Submitted, SupplementRequested) => {
            if st.intake_open {
                return Err("a supplement request is already open");
            }
            true
        }
        (S::Submitted, SupplementReceived) => {
            if !st.intake_open {
                return Err("no supplement request is open");
            }
            true
        }
        (S::Open, StepCompleted | Completed | Withdrawn) => true,
        (S::Open, Suspended) => {
            if st.susp_open.is_some() {
                return Err("a suspension is already open");
            }
            true
        }
        (S::Open, Resumed) => {
            if st.susp_open.is_none() {
                return Err("no suspension is open");
            }
            true
        }
        (S::Open, Escalated) => {
            if st.esc_open.is_some() {
                return Err("an escalation is already open");
            }
            true
        }
        (S::Open, Returned) => {
            if st.esc_open.is_none() {
                return Err("no escalation is open");
            }
            true
        }
        (S::Completed, Evaluated) => true,
        (S::Completed, Rectified) => {
            if st.bad_rating.is_none() {
                return Err("the case has no bad rating to rectify");
            }
            true
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(match st.status {
            S::Submitted => "not valid while the case is submitted and not yet accepted",
            S::Open => "not valid while the case is open",
            S::Completed => "not valid after the case was completed",
            S::Refused => "not valid after the case was refused",
            S::Withdrawn => "not valid after the case was withdrawn",
            S::None => "its case has not been opened",
        })
    }
}

fn apply<'e>(st: &mut Walk<'e>, ctx: &Ctx, e: &'e CaseEvent) {
    use EventType::*;
    let day = ctx.zone.day_of(e.at);
    if st.first_at.is_none() {
        st.first_at = Some(e.at);
    }
    if e.has(F_CENTER) {
        if st.center_min.is_none() {
            st.center_min = Some(e.at);
        }
        st.resolve(Rule::UnregisteredCase, e.at, ctx.cal);
    }
    match e.kind {
        Submitted => {
            st.status = Status::Submitted;
            st.attrs = e.attrs.as_ref();
            st.sub_at = Some(e.at);
            st.sub_day = Some(day);
        }
        SupplementRequested => {
            st.intake_open = true;
            st.intake_stops.push((day, None));
            supplement(st, e.at);
        }
        SupplementReceived => {
            st.intake_open = false;
            if let Some(last) = st.intake_stops.last_mut() {
                last.1 = Some(day);
            }
        }
        Accepted => {
            st.status = Status::Open;
            st.attrs = e.attrs.as_ref();
            st.acc_at = Some(e.at);
            st.acc_day = Some(day);
            st.acc_source = e.source;
            st.n = attrs_item(st, ctx.cat).map_or(0, |i| i.promised_days);
            st.resolve(Rule::IntakeOverdue, e.at, ctx.cal);
            if let Some(a) = &st.attrs {
                let earlier = ctx.dual.earlier(ctx.case_id, ctx.rules.dual_intake_days, ctx.zone, a, e.at, e.source);
                if let Some(earlier) = earlier {
                    st.fire(Rule::DualIntake, e.at, None, Some(earlier));
                }
            }
            if e.has(F_BACKDATED) {
                st.fire(Rule::BackdatedEntry, e.at, None, None);
            }
        }
        Refused => {
            if e.has(F_NO_REASON) {
                st.fire(Rule::DenialWithoutReason, e.at, None, None);
            }
            st.resolve(Rule::IntakeOverdue, e.at, ctx.cal);
            st.close(Status::Refused, e.at, day, ctx.cal);
        }
        StepCompleted => {}
        Suspended => {
            st.susp_open = Some(day);
            if e.has(F_SUPPLEMENT) {
                supplement(st, e.at);
            }
        }
        Resumed => {
            if let Some(s) = st.susp_open.take() {
                st.stops.push((s, Some(day)));
            }
        }
        Escalated => st.esc_open = Some(day),
        Returned => {
            if let Some(s) = st.esc_open.take() {
                st.stops.push((s, Some(day)));
            }
        }
        Completed => {
            if e.has(F_BACKDATED) {
                st.fire(Rule::BackdatedEntry, e.at, None, None);
            }
            let standard = attrs_item(st, ctx.cat).map_or(0.0, |i| i.fee_yuan);
            if e.fee >= 0.0 {
                st.fee = Some(e.fee);
                if micro_yuan(e.fee) - micro_yuan(standard) > 5_000 {
                    st.fire(Rule::Overcharge, e.at, None, None);
                }
            }
            let denied = e.has(F_DENIED);
            if denied && e.has(F_NO_REASON) {
                st.fire(Rule::DenialWithoutReason, e.at, None, None);
            }
            st.result = Some(if denied { Decision::Denied } else { Decision::Approved });
            st.completed = Some((e.at, day));
            st.close(Status::Completed, e.at, day, ctx.cal);
        }
        Withdrawn => {
            st.withdrawn_at = Some(e.at);
            st.resolve(Rule::IntakeOverdue, e.at, ctx.cal);
            st.close(Status::Withdrawn, e.at, day, ctx.cal);
        }
        Evaluated => {
            st.rating = Some(e.rating);
            if e.rating <= 2 && st.bad_rating.is_none() {
                st.bad_rating = Some(day);
            }
        }
        Rectified => {
            st.rectified = true;
            st.resolve(Rule::BadRatingUnrectified, e.at, ctx.cal);
        }
    }
}

/// A fee in millionths of a yuan, so that "more than 0.005 over" is decided
/// on the decimal values the source wrote, not on binary floating point.
fn micro_yuan(fee: f64) -> i128 {
    (fee * 1_000_000.0).round() as i128
}

fn supplement(st: &mut Walk<'_>, at: Instant) {
    st.supplements += 1;
    if st.supplements == 2 {
        st.fire(Rule::RepeatedSupplement, at, None, None);
    }
}

/// Judges a case.
pub fn judge_case(events: &[CaseEvent], ctx: &Ctx) -> Judgement {
    let mut st = Walk::default();
    let mut out = Judgement::default();
    for (i, e) in events.iter().enumerate() {
        if let Err(why) = check(&st, e) {
            out.invalid.push((i, why));
            continue;
        }
        run_timers(&mut st, ctx, e.at);
        apply(&mut st, ctx, e);
    }
    run_timers(&mut st, ctx, ctx.limit);
    out.wake = next_timer(&mut st, ctx).map(|(t, _)| t);
    out.summary = summarize(&mut st, ctx);
    out.accept = match (&st.attrs, st.acc_at) {
        (Some(a), Some(at)) => Some(AcceptSig {
            attrs: Arc::clone(a),
            at,
            source: st.acc_source,
            withdrawn_at: st.withdrawn_at.unwrap_or(NEVER),
        }),
        _ => None,
    };
    out.parent = st.attrs.as_ref().and_then(|a| a.parent.clone());
    out.alerts = std::mem::take(&mut st.alerts);
    out
}

fn summarize(st: &mut Walk<'_>, ctx: &Ctx) -> Summary {
    let cal = ctx.cal;
    let mut s = Summary {
        status: st.status,
        attrs: st.attrs.cloned(),
        submitted_at: st.sub_at,
        accepted_at: st.acc_at,
        closed_at: st.closed_at,
        completed_at: st.completed.map(|c| c.0),
        result: st.result,
        fee_yuan: st.fee,
        rating: st.rating,
        ..Summary::default()
    };
    s.missing_calendar = st.missing;
    if !ctx.figures {
        return s;
    }
    if st.status == Status::Submitted {
        s.intake_due_date = st.intake_due(cal);
    }
    if let Some(a) = st.acc_day {
        s.limit_days = Some(st.n);
        s.stops = st.proc_stops();
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
                s.early = Some(st.n >= 1 && c < due);
            }
        }
    }
    s.overdue = st.overdue_raised || s.on_time == Some(false);
    s.missing_calendar = s.missing_calendar.or(st.missing);
    s
}

/// The kind of the case's item, for figures.
pub fn item_kind(cat: &Catalog, attrs: &Attrs) -> ItemKind {
    cat.item(attrs.item).kind
}
