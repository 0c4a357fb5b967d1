//! 投诉超时 — red: an open complaint is still unanswered at 00:00 of the day
//! after its due date, the `complaint_days`-th working day after the filing
//! date (stops do not apply to a complaint). Resolves at the
//! `complaint_answered`, which closes the complaint (a complaint has no
//! other way to close).

use super::{Meta, RuleDef};
use crate::alert::{Level, Rule};
use crate::calendar::Calendar;
use crate::engine::case::CaseEvent;
use crate::engine::walk::{Ctx, Status, Walk};
use crate::event::EventType;
use crate::time::{Day, Instant};

/// 投诉超时.
pub const META: Meta = Meta {
    rule: Rule::ComplaintOverdue,
    name: "complaint_overdue",
    level: Level::Red,
    label: "投诉超时",
    short_label: "投诉超时",
    resolves_on_close: false,
    uses_calendar: true,
    config_keys: &["complaint_days"],
};

/// The rule.
pub struct ComplaintOverdue;

/// The complaint's due date: the `days`-th working day after it was filed.
pub fn due(w: &Walk, cal: &Calendar, days: u32) -> Option<Day> {
    let (_, filed) = w.filed?;
    w.note(cal.nth_working_after(filed, days).map(Some))
}

impl RuleDef for ComplaintOverdue {
    fn meta(&self) -> &'static Meta {
        &META
    }

    fn on_event(&self, w: &mut Walk, ctx: &Ctx, e: &CaseEvent) {
        if e.kind == EventType::ComplaintAnswered {
            let due = due(w, ctx.cal, ctx.rules.complaint_days);
            w.resolve(META.rule, e.at, due);
        }
    }

    fn next_timer(&self, w: &Walk, ctx: &Ctx) -> Option<(Instant, u8)> {
        if w.status != Status::Complaint || w.raised(META.rule) {
            return None;
        }
        let due = due(w, ctx.cal, ctx.rules.complaint_days)?;
        Some((ctx.zone.midnight(due.next()), 0))
    }

    fn on_timer(&self, w: &mut Walk, ctx: &Ctx, at: Instant, _tag: u8) {
        let due = due(w, ctx.cal, ctx.rules.complaint_days);
        w.raise(META.rule, at, due);
    }
}
