//! 超期 — red: an open case is still open at the start of the day after
//! its due date. Resolves when the case closes.

use super::{Meta, RuleDef};
use crate::alert::{Level, Rule};
use crate::calendar::Calendar;
use crate::engine::walk::{Ctx, Status, Walk};
use crate::time::{Day, Instant};

/// 超期.
pub const META: Meta = Meta {
    rule: Rule::Overdue,
    name: "overdue",
    level: Level::Red,
    label: "超期",
    short_label: "超期",
    resolves_on_close: true,
    uses_calendar: true,
    config_keys: &[],
};

/// The rule.
pub struct Overdue;

impl RuleDef for Overdue {
    fn meta(&self) -> &'static Meta {
        &META
    }

    fn next_timer(&self, w: &Walk, ctx: &Ctx) -> Option<(Instant, u8)> {
        if w.status != Status::Open || w.raised(META.rule) {
            return None;
        }
        let due = w.due(ctx.cal)?;
        Some((ctx.zone.midnight(due.next()), 0))
    }

    fn on_timer(&self, w: &mut Walk, ctx: &Ctx, at: Instant, _tag: u8) {
        let due = w.due(ctx.cal);
        w.raise(META.rule, at, due);
    }

    fn due(&self, w: &Walk, cal: &Calendar) -> Option<Day> {
        w.due(cal)
    }
}
