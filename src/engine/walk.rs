//! The facts of one case as its judgement walks its events: where the case
//! is in its life, its clocks' inputs (acceptance day, limit, stops), and the
//! alerts raised so far. The lifecycle (`rules.md`, "Case lifecycle") lives
//! here: which event is valid in which state ([`check`]) and what each event
//! changes ([`Walk::take_in`]). The rules (see [`super::rules`]) read these
//! facts and raise, resolve and time their alerts through [`Walk::fire`] and
//! [`Walk::resolve`].
//!
//! A walk owns everything it holds, so a case can keep its walk after its
//! latest event and continue it when the next event comes (see
//! [`super::judgement`]).

use super::case::{Attrs, CaseEvent, F_CENTER, F_DENIED};
use super::clock::{self, Stop};
use super::dual::DualIndex;
use crate::alert::Rule;
use crate::calendar::{Calendar, NoCalendar};
use crate::config::RulesConfig;
use crate::event::{Decision, EventType};
use crate::reference::{Catalog, Item, Step, Steps};
use crate::time::{Day, Instant, Zone};
use serde::Serialize;
use std::borrow::Cow;
use std::cell::Cell;
use std::sync::Arc;

/// What a judgement reads besides the case's events.
pub struct Ctx<'a> {
    /// Working-day calendar.
    pub cal: &'a Calendar,
    /// Item catalogue.
    pub cat: &'a Catalog,
    /// Steps of items.
    pub steps: &'a Steps,
    /// The engine's interned strings (step names).
    pub strings: &'a super::case::Interner,
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
    /// A complaint (`complaint_filed`), not yet answered.
    Complaint,
    /// A complaint answered (`complaint_answered`).
    Answered,
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
            Status::Complaint => "open",
            Status::Answered => "answered",
        }
    }

    /// Completed, refused or withdrawn; for a complaint, answered.
    pub fn closed(self) -> bool {
        matches!(self, Status::Completed | Status::Refused | Status::Withdrawn | Status::Answered)
    }

    /// A complaint, open or answered.
    pub fn complaint(self) -> bool {
        matches!(self, Status::Complaint | Status::Answered)
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

/// A supervision notice (督办) on a case, as its events were walked.
#[derive(Clone, Debug)]
pub struct Notice {
    /// Interned `notice_id`.
    pub id: u32,
    /// `notice_issued` instant and day.
    pub issued: (Instant, Day),
    /// Working days it gives.
    pub deadline_days: u32,
    /// `notice_answered` instant.
    pub answered: Option<Instant>,
    /// Its `notice_overdue` timer ran.
    pub overdue: bool,
}

/// Why an event is invalid at its place.
pub type Why = &'static str;

/// The facts of a case after the events walked so far.
#[derive(Clone, Debug, Default)]
pub struct Walk {
    /// Life status.
    pub status: Status,
    /// Attributes of the latest valid `submitted` or `accepted`.
    pub attrs: Option<Arc<Attrs>>,
    /// Instant of the first valid event.
    pub first_at: Option<Instant>,
    /// Instant of the first valid `center` event.
    pub center_min: Option<Instant>,
    /// `submitted` instant and day.
    pub submitted: Option<(Instant, Day)>,
    /// Stops of the intake clock (supplement requests), in order.
    pub intake_stops: Vec<Stop>,
    /// A supplement request is open.
    pub intake_open: bool,
    /// `accepted` instant and day.
    pub accepted: Option<(Instant, Day)>,
    /// Interned source of the `accepted`.
    pub accepted_source: u32,
    /// Channel code of the `accepted` (0: none).
    pub accepted_channel: u8,
    /// Interned staff of the `accepted`, or `NO_STAFF`.
    pub accepted_staff: u32,
    /// Channel code of the `completed` (0: none).
    pub completed_channel: u8,
    /// Interned staff of the `completed`, or `NO_STAFF`.
    pub completed_staff: u32,
    /// The limit N in working days.
    pub limit_days: u32,
    /// Closed stops of the processing clock.
    pub stops: Vec<Stop>,
    /// First day of an open suspension.
    pub suspended_since: Option<Day>,
    /// First day of an open escalation.
    pub escalated_since: Option<Day>,
    /// Supplement requests so far (intake and processing).
    pub supplements: u32,
    /// Instant the case closed.
    pub closed_at: Option<Instant>,
    /// `completed` instant and day.
    pub completed: Option<(Instant, Day)>,
    /// Decision of the `completed`.
    pub result: Option<Decision>,
    /// Fee of the `completed`, when given.
    pub fee: Option<f64>,
    /// Latest rating.
    pub rating: Option<u8>,
    /// Day of the first bad rating (≤ 2).
    pub bad_rating: Option<Day>,
    /// A `rectified` came.
    pub rectified: bool,
    /// Instant of a valid `withdrawn`.
    pub withdrawn_at: Option<Instant>,
    /// `complaint_filed` instant and day.
    pub filed: Option<(Instant, Day)>,
    /// Supervision notices, in the order issued.
    pub notices: Vec<Notice>,
    /// The day each completed step of the item's steps completed, in step
    /// order (a `step_completed` naming a later step completes every step up
    /// to it on its day).
    pub step_done: Vec<Day>,
    /// The current step's limit in working days; 0 when there is no current
    /// step (no steps for the item, or all completed).
    pub step_limit: u32,
    /// Rules whose one-shot timer has run (bit [`Rule::index`]).
    raised: u16,
    /// A year whose calendar was needed but missing (a cell, so that the
    /// clocks can be read through a shared reference).
    pub missing: Cell<Option<i32>>,
    /// Alerts as they stand.
    pub alerts: Vec<Spec>,
}

impl Walk {
    /// Records a missing calendar year and passes the value on.
    pub fn note<T>(&self, r: Result<Option<T>, NoCalendar>) -> Option<T> {
        match r {
            Ok(v) => v,
            Err(NoCalendar(y)) => {
                if self.missing.get().is_none() {
                    self.missing.set(Some(y));
                }
                None
            }
        }
    }

    /// Whether the rule's one-shot timer has run.
    pub fn raised(&self, rule: Rule) -> bool {
        self.raised & (1 << rule.index()) != 0
    }

    /// Marks the rule's one-shot timer as run.
    pub fn set_raised(&mut self, rule: Rule) {
        self.raised |= 1 << rule.index();
    }

    /// The catalogue item of the case, once it has attributes.
    pub fn item<'c>(&self, cat: &'c Catalog) -> Option<&'c Item> {
        self.attrs.as_ref().and_then(|a| cat.get(a.item))
    }

    /// Whether the case's item is outside the catalogue (no time limit, no
    /// clock rules).
    pub fn unlisted(&self) -> bool {
        self.attrs.as_ref().is_some_and(|a| a.unlisted())
    }

    /// Processing stops as known now, merged: closed ones plus any open one
    /// (borrowed when there is nothing to merge).
    pub fn processing_stops(&self) -> Cow<'_, [Stop]> {
        if self.suspended_since.is_none() && self.escalated_since.is_none() && self.stops.len() <= 1 {
            return Cow::Borrowed(&self.stops);
        }
        let mut v = self.stops.clone();
        if let Some(s) = self.suspended_since {
            v.push((s, None));
        }
        if let Some(s) = self.escalated_since {
            v.push((s, None));
        }
        clock::merge(&mut v);
        Cow::Owned(v)
    }

    /// The `k`-th charged day of the processing clock.
    pub fn nth_charged(&self, cal: &Calendar, k: u32) -> Option<Day> {
        let (_, a) = self.accepted?;
        let r = clock::nth_charged(cal, a, k, &self.processing_stops());
        self.note(r)
    }

    /// The processing due date (none for an unlisted item).
    pub fn due(&self, cal: &Calendar) -> Option<Day> {
        self.accepted?;
        if self.unlisted() {
            return None;
        }
        self.nth_charged(cal, self.limit_days)
    }

    /// The start date of the current step: the acceptance date for the
    /// first, else the day the step before it completed.
    pub fn step_start(&self) -> Option<Day> {
        let (_, a) = self.accepted?;
        Some(self.step_done.last().copied().unwrap_or(a))
    }

    /// The current step's due date: its `step_limit`-th charged day of the
    /// processing clock (stops apply) after its start date.
    pub fn step_due(&self, cal: &Calendar) -> Option<Day> {
        if self.step_limit == 0 {
            return None;
        }
        let start = self.step_start()?;
        let r = clock::nth_charged(cal, start, self.step_limit, &self.processing_stops());
        self.note(r)
    }

    /// Completes every step of `steps` up to position `pos` on `day`, when
    /// that step is not completed yet; returns whether the current step
    /// completed.
    pub fn complete_steps(&mut self, pos: usize, day: Day, steps: &[Step]) -> bool {
        if pos < self.step_done.len() || pos >= steps.len() {
            return false;
        }
        self.step_done.resize(pos + 1, day);
        self.step_limit = steps.get(pos + 1).map_or(0, |s| s.limit_days);
        true
    }

    /// The acceptance-decision due date (5 working days, supplement stops
    /// excluded).
    pub fn intake_due(&self, cal: &Calendar) -> Option<Day> {
        let (_, s) = self.submitted?;
        if self.unlisted() {
            return None;
        }
        let r = if self.intake_stops.len() <= 1 {
            clock::nth_charged(cal, s, 5, &self.intake_stops)
        } else {
            let mut stops = self.intake_stops.clone();
            clock::merge(&mut stops);
            clock::nth_charged(cal, s, 5, &stops)
        };
        self.note(r)
    }

    /// The case's notice still waiting for its answer, if any (only the
    /// latest can be).
    pub fn open_notice(&self) -> Option<&Notice> {
        self.notices.last().filter(|n| n.answered.is_none())
    }

    /// The index of the rule's unresolved alert.
    pub fn live(&self, rule: Rule) -> Option<usize> {
        self.alerts.iter().position(|a| a.rule == rule && a.resolved.is_none())
    }

    /// Raises an alert unless one of the rule is unresolved; on a closed case
    /// a rule that resolves on close is raised resolved.
    pub fn fire(&mut self, rule: Rule, at: Instant, due: Option<Day>, detail: Option<Arc<str>>) {
        if self.live(rule).is_some() {
            return;
        }
        let resolved = (self.status.closed() && rule.resolves_on_close()).then_some((at, due));
        self.alerts.push(Spec { rule, at, due, detail, attrs: self.attrs.clone(), resolved });
    }

    /// A rule's one-shot timer ran at `at`: marks it run and raises its
    /// alert with `due` on it.
    pub fn raise(&mut self, rule: Rule, at: Instant, due: Option<Day>) {
        self.set_raised(rule);
        self.fire(rule, at, due, None);
    }

    /// Resolves the rule's unresolved alert, if any, with `due` on the
    /// resolved record.
    pub fn resolve(&mut self, rule: Rule, at: Instant, due: Option<Day>) {
        if let Some(i) = self.live(rule) {
            self.alerts[i].resolved = Some((at, due));
        }
    }

    /// Takes in a valid event: the facts it changes, short of closing the
    /// case (the closing, which resolves alerts, is the judgement's).
    pub fn take_in(&mut self, e: &CaseEvent, day: Day, cat: &Catalog) {
        use EventType::*;
        // A notice is the bureau's, not a step of the case: it changes
        // nothing else.
        match e.kind {
            NoticeIssued => {
                self.notices.push(Notice {
                    id: e.notice,
                    issued: (e.at, day),
                    deadline_days: e.deadline_days(),
                    answered: None,
                    overdue: false,
                });
                return;
            }
            NoticeAnswered => {
                if let Some(n) = self.notices.last_mut() {
                    n.answered = Some(e.at);
                }
                return;
            }
            _ => {}
        }
        if self.first_at.is_none() {
            self.first_at = Some(e.at);
        }
        if e.has(F_CENTER) && self.center_min.is_none() {
            self.center_min = Some(e.at);
        }
        match e.kind {
            Submitted => {
                self.status = Status::Submitted;
                self.attrs = e.attrs.clone();
                self.submitted = Some((e.at, day));
            }
            SupplementRequested => {
                self.intake_open = true;
                self.intake_stops.push((day, None));
                self.supplements += 1;
            }
            SupplementReceived => {
                self.intake_open = false;
                if let Some(last) = self.intake_stops.last_mut() {
                    last.1 = Some(day);
                }
            }
            Accepted => {
                self.status = Status::Open;
                self.attrs = e.attrs.clone();
                self.accepted = Some((e.at, day));
                self.accepted_source = e.source;
                self.accepted_channel = e.channel;
                self.accepted_staff = e.staff;
                self.limit_days = self.item(cat).map_or(0, |i| i.promised_days);
            }
            Suspended => {
                self.suspended_since = Some(day);
                if e.has(super::case::F_SUPPLEMENT) {
                    self.supplements += 1;
                }
            }
            Resumed => {
                if let Some(s) = self.suspended_since.take() {
                    self.stops.push((s, Some(day)));
                }
            }
            Escalated => self.escalated_since = Some(day),
            Returned => {
                if let Some(s) = self.escalated_since.take() {
                    self.stops.push((s, Some(day)));
                }
            }
            Completed => {
                if e.fee >= 0.0 {
                    self.fee = Some(e.fee);
                }
                self.result = Some(if e.has(F_DENIED) { Decision::Denied } else { Decision::Approved });
                self.completed = Some((e.at, day));
                self.completed_channel = e.channel;
                self.completed_staff = e.staff;
            }
            Withdrawn => self.withdrawn_at = Some(e.at),
            Evaluated => {
                self.rating = Some(e.rating);
                if e.rating <= 2 && self.bad_rating.is_none() {
                    self.bad_rating = Some(day);
                }
            }
            Rectified => self.rectified = true,
            ComplaintFiled => {
                self.status = Status::Complaint;
                self.attrs = e.attrs.clone();
                self.filed = Some((e.at, day));
            }
            Refused | StepCompleted | ComplaintAnswered | NoticeIssued | NoticeAnswered => {}
        }
    }

    /// The status an event closes the case with, if it closes it.
    pub fn closes(e: &CaseEvent) -> Option<Status> {
        match e.kind {
            EventType::Completed => Some(Status::Completed),
            EventType::Refused => Some(Status::Refused),
            EventType::Withdrawn => Some(Status::Withdrawn),
            EventType::ComplaintAnswered => Some(Status::Answered),
            _ => None,
        }
    }

    /// Closes the case's clocks and sets its status; the judgement then
    /// resolves the alerts that end with the case.
    pub fn close(&mut self, status: Status, at: Instant, day: Day) {
        if let Some(s) = self.suspended_since.take() {
            self.stops.push((s, Some(day)));
        }
        if let Some(s) = self.escalated_since.take() {
            self.stops.push((s, Some(day)));
        }
        clock::merge(&mut self.stops);
        self.status = status;
        self.closed_at = Some(at);
    }
}

/// Checks an event against the case's facts; `Err` says why it is invalid
/// at its place.
pub fn check(w: &Walk, e: &CaseEvent) -> Result<(), Why> {
    use EventType::*;
    use Status as S;
    if e.kind.is_notice() {
        return match (w.status, e.kind) {
            (S::None, _) => Err("its case has not been opened"),
            (_, NoticeIssued) if w.open_notice().is_some() => Err("a notice of the case is still open"),
            (_, NoticeIssued) => Ok(()),
            _ => match w.open_notice() {
                None => Err("the case has no open notice"),
                Some(n) if n.id != e.notice => Err("its notice_id is not the case's open notice"),
                Some(_) => Ok(()),
            },
        };
    }
    if w.status.complaint() || (w.status != S::None && e.kind.is_complaint()) {
        return match (w.status, e.kind) {
            (S::Complaint, ComplaintAnswered) => Ok(()),
            (S::Complaint | S::Answered, _) if !e.kind.is_complaint() => Err("not valid on a complaint"),
            (S::Answered, _) => Err("not valid after the complaint was answered"),
            _ => Err("a complaint's event is not valid on a case"),
        };
    }
    let ok = match (w.status, e.kind) {
        (S::None, Submitted | Accepted | ComplaintFiled) => true,
        (S::None, _) => return Err("its case has not been submitted or accepted before it"),
        (S::Submitted, Accepted | Refused | Withdrawn) => true,
        (S::Submitted, SupplementRequested) => {
            if w.intake_open {
                return Err("a supplement request is already open");
            }
            true
        }
        (S::Submitted, SupplementReceived) => {
            if !w.intake_open {
                return Err("no supplement request is open");
            }
            true
        }
        (S::Open, StepCompleted | Completed | Withdrawn) => true,
        (S::Open, Suspended) => {
            if w.suspended_since.is_some() {
                return Err("a suspension is already open");
            }
            true
        }
        (S::Open, Resumed) => {
            if w.suspended_since.is_none() {
                return Err("no suspension is open");
            }
            true
        }
        (S::Open, Escalated) => {
            if w.escalated_since.is_some() {
                return Err("an escalation is already open");
            }
            true
        }
        (S::Open, Returned) => {
            if w.escalated_since.is_none() {
                return Err("no escalation is open");
            }
            true
        }
        (S::Completed, Evaluated) => true,
        (S::Completed, Rectified) => {
            if w.bad_rating.is_none() {
                return Err("the case has no bad rating to rectify");
            }
            true
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(match w.status {
            S::Submitted => "not valid while the case is submitted and not yet accepted",
            S::Open => "not valid while the case is open",
            S::Completed => "not valid after the case was completed",
            S::Refused => "not valid after the case was refused",
            S::Withdrawn => "not valid after the case was withdrawn",
            S::Complaint | S::Answered => "not valid on a complaint",
            S::None => "its case has not been opened",
        })
    }
}
