//! 督办超时 — red: the case's open supervision notice is still unanswered at
//! 00:00 of the day after its due date, the `deadline_days`-th working day
//! after the date of its `notice_issued`. Resolves at its
//! `notice_answered`; the case closing does not resolve it (a notice
//! outlives its case). A later notice that goes overdue fires under `#2`,
//! `#3` … (a notice can only be issued once the previous one was answered,
//! so its alert is resolved by then).

use super::{Meta, RuleDef};
use crate::alert::{Level, Rule};
use crate::calendar::Calendar;
use crate::engine::case::CaseEvent;
use crate::engine::walk::{Ctx, Notice, Walk};
use crate::event::EventType;
use crate::time::{Day, Instant};

/// 督办超时.
pub const META: Meta = Meta {
    rule: Rule::NoticeOverdue,
    name: "notice_overdue",
    level: Level::Red,
    label: "督办超时",
    short_label: "督办超时",
    resolves_on_close: false,
    uses_calendar: true,
    config_keys: &[],
};

/// The rule.
pub struct NoticeOverdue;

/// A notice's due date: the `deadline_days`-th working day after the date
/// it was issued.
pub fn due(w: &Walk, cal: &Calendar, n: &Notice) -> Option<Day> {
    w.note(cal.nth_working_after(n.issued.1, n.deadline_days).map(Some))
}

impl RuleDef for NoticeOverdue {
    fn meta(&self) -> &'static Meta {
        &META
    }

    fn on_event(&self, w: &mut Walk, ctx: &Ctx, e: &CaseEvent) {
        if e.kind == EventType::NoticeAnswered {
            // The walk has marked the notice answered already: it is the
            // case's latest one.
            let due = w.notices.last().and_then(|n| due(w, ctx.cal, n));
            w.resolve(META.rule, e.at, due);
        }
    }

    fn next_timer(&self, w: &Walk, ctx: &Ctx) -> Option<(Instant, u8)> {
        let n = w.open_notice().filter(|n| !n.overdue)?;
        let due = due(w, ctx.cal, n)?;
        Some((ctx.zone.midnight(due.next()), 0))
    }

    fn on_timer(&self, w: &mut Walk, ctx: &Ctx, at: Instant, _tag: u8) {
        let Some(n) = w.open_notice() else { return };
        let due = due(w, ctx.cal, n);
        if let Some(n) = w.notices.last_mut() {
            n.overdue = true;
        }
        w.fire(META.rule, at, due, None);
    }
}
