//! 即将超期 — yellow: an open case reaches the `warn_days`-th charged day
//! before its due date (clamped to 1…N; never for N = 0). Fires at the start
//! of that day; resolves when the case closes.

use super::{Meta, RuleDef};
use crate::alert::{Level, Rule};
use crate::calendar::Calendar;
use crate::engine::walk::{Ctx, Status, Walk};
use crate::time::{Day, Instant};

/// 即将超期.
pub const META: Meta = Meta {
    rule: Rule::DueSoon,
    name: "due_soon",
    level: Level::Yellow,
    label: "即将超期",
    short_label: "即将超期",
    resolves_on_close: true,
    uses_calendar: true,
    config_keys: &["warn_days"],
};

/// The rule.
pub struct DueSoon;

impl RuleDef for DueSoon {
    fn meta(&self) -> &'static Meta {
        &META
    }

    fn next_timer(&self, w: &Walk, ctx: &Ctx) -> Option<(Instant, u8)> {
        if w.status != Status::Open || w.limit_days == 0 || w.raised(META.rule) {
            return None;
        }
        let warn = ctx.rules.warn_days.clamp(1, w.limit_days);
        let day = w.nth_charged(ctx.cal, w.limit_days - warn + 1)?;
        Some((ctx.zone.midnight(day), 0))
    }

    fn on_timer(&self, w: &mut Walk, ctx: &Ctx, at: Instant, _tag: u8) {
        let due = w.due(ctx.cal);
        w.raise(META.rule, at, due);
    }

    fn due(&self, w: &Walk, cal: &Calendar) -> Option<Day> {
        w.due(cal)
    }
}
