//! 环节超时 — yellow: an open case's current step (`steps.csv`) has not
//! completed at the start of the day after that step's due date.
//!
//! Step 1 starts at the acceptance, step k + 1 at the `step_completed` of
//! step k; a `step_completed` naming a later step completes every step up
//! to it, one naming a completed or unlisted step changes nothing. A step's
//! due date is its `limit_days`-th charged day (stops apply) after its start
//! date. Resolves when the step completes or the case closes; the next
//! step going overdue fires again (`#2`, …).

use super::{Meta, RuleDef};
use crate::alert::{Level, Rule};
use crate::calendar::Calendar;
use crate::engine::case::{CaseEvent, NO_STEP};
use crate::engine::walk::{Ctx, Status, Walk};
use crate::event::EventType;
use crate::time::{Day, Instant};

/// 环节超时.
pub const META: Meta = Meta {
    rule: Rule::StepOverdue,
    name: "step_overdue",
    level: Level::Yellow,
    label: "环节超时",
    short_label: "环节超时",
    resolves_on_close: true,
    uses_calendar: true,
    config_keys: &[],
};

/// The rule.
pub struct StepOverdue;

impl RuleDef for StepOverdue {
    fn meta(&self) -> &'static Meta {
        &META
    }

    fn on_event(&self, w: &mut Walk, ctx: &Ctx, e: &CaseEvent) {
        match e.kind {
            // Step 1 starts with the acceptance.
            EventType::Accepted => {
                let first = w.attrs.as_ref().and_then(|a| ctx.steps.of(a.item).first());
                w.step_limit = first.map_or(0, |s| s.limit_days);
            }
            EventType::StepCompleted if e.step != NO_STEP => {
                let Some(item) = w.attrs.as_ref().map(|a| a.item) else { return };
                let steps = ctx.steps.of(item);
                let name = ctx.strings.name(e.step);
                let Some(pos) = steps.iter().position(|s| s.name == name) else { return };
                let due = w.step_due(ctx.cal);
                if w.complete_steps(pos, ctx.zone.day_of(e.at), steps) {
                    w.resolve(META.rule, e.at, due);
                }
            }
            _ => {}
        }
    }

    fn next_timer(&self, w: &Walk, ctx: &Ctx) -> Option<(Instant, u8)> {
        if w.status != Status::Open || w.step_limit == 0 || w.live(META.rule).is_some() {
            return None;
        }
        let due = w.step_due(ctx.cal)?;
        Some((ctx.zone.midnight(due.next()), 0))
    }

    fn on_timer(&self, w: &mut Walk, ctx: &Ctx, at: Instant, _tag: u8) {
        // Fires once a step: the alert stays live until the step completes.
        let due = w.step_due(ctx.cal);
        w.fire(META.rule, at, due, None);
    }

    fn due(&self, w: &Walk, cal: &Calendar) -> Option<Day> {
        w.step_due(cal)
    }
}
