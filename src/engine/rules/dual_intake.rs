//! 两头受理 — red: a case is accepted for the same applicant and item as
//! another case accepted within `dual_intake_days` before it (by another
//! source, and not withdrawn by then). Fires at the acceptance, naming the
//! most recent such case; resolves when the case closes.

use super::{Meta, RuleDef};
use crate::alert::{Level, Rule};
use crate::engine::case::CaseEvent;
use crate::engine::walk::{Ctx, Walk};
use crate::event::EventType;

/// 两头受理.
pub const META: Meta = Meta {
    rule: Rule::DualIntake,
    name: "dual_intake",
    level: Level::Red,
    label: "两头受理",
    short_label: "两头受理",
    resolves_on_close: true,
    uses_calendar: false,
    config_keys: &["dual_intake_days"],
};

/// The rule.
pub struct DualIntake;

impl RuleDef for DualIntake {
    fn meta(&self) -> &'static Meta {
        &META
    }

    fn on_event(&self, w: &mut Walk, ctx: &Ctx, e: &CaseEvent) {
        if e.kind != EventType::Accepted {
            return;
        }
        let Some(a) = &w.attrs else { return };
        let earlier = ctx.dual.earlier(ctx.case_id, ctx.rules.dual_intake_days, ctx.zone, a, e.at, e.source);
        if let Some(earlier) = earlier {
            w.fire(META.rule, e.at, None, Some(earlier));
        }
    }
}
