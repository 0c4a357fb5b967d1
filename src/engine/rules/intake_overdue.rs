//! 受理超时 — red: a submitted case has no acceptance decision by the end of
//! its 5th charged working day (supplement requests stop that clock).
//! Resolves when the case is accepted, refused or withdrawn.

use super::{Meta, RuleDef};
use crate::alert::{Level, Rule};
use crate::calendar::Calendar;
use crate::engine::case::CaseEvent;
use crate::engine::walk::{Ctx, Status, Walk};
use crate::event::EventType;
use crate::time::{Day, Instant};

/// 受理超时.
pub const META: Meta = Meta {
    rule: Rule::IntakeOverdue,
    name: "intake_overdue",
    level: Level::Red,
    label: "受理超时",
    short_label: "受理超时",
    resolves_on_close: true,
    uses_calendar: true,
    config_keys: &[],
};

/// The rule.
pub struct IntakeOverdue;

impl RuleDef for IntakeOverdue {
    fn meta(&self) -> &'static Meta {
        &META
    }

    fn on_event(&self, w: &mut Walk, ctx: &Ctx, e: &CaseEvent) {
        // Refused and withdrawn close the case, which resolves it too.
        if e.kind == EventType::Accepted {
            let due = w.intake_due(ctx.cal);
            w.resolve(META.rule, e.at, due);
        }
    }

    fn next_timer(&self, w: &Walk, ctx: &Ctx) -> Option<(Instant, u8)> {
        if w.status != Status::Submitted || w.raised(META.rule) {
            return None;
        }
        let due = w.intake_due(ctx.cal)?;
        Some((ctx.zone.midnight(due.next()), 0))
    }

    fn on_timer(&self, w: &mut Walk, ctx: &Ctx, at: Instant, _tag: u8) {
        let due = w.intake_due(ctx.cal);
        w.raise(META.rule, at, due);
    }

    fn due(&self, w: &Walk, cal: &Calendar) -> Option<Day> {
        w.intake_due(cal)
    }
}
