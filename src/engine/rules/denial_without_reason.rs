//! 不予许可未说明理由 — yellow: a `refused`, or a `completed` with result
//! `denied`, that gives no reason fires at that event (and resolves with it,
//! as the case closes).

use super::{Meta, RuleDef};
use crate::alert::{Level, Rule};
use crate::engine::case::{CaseEvent, F_DENIED, F_NO_REASON};
use crate::engine::walk::{Ctx, Walk};
use crate::event::EventType;

/// 不予许可未说明理由.
pub const META: Meta = Meta {
    rule: Rule::DenialWithoutReason,
    name: "denial_without_reason",
    level: Level::Yellow,
    label: "不予许可未说明理由",
    short_label: "未说明理由",
    resolves_on_close: true,
    uses_calendar: false,
    config_keys: &[],
};

/// The rule.
pub struct DenialWithoutReason;

impl RuleDef for DenialWithoutReason {
    fn meta(&self) -> &'static Meta {
        &META
    }

    fn on_event(&self, w: &mut Walk, _ctx: &Ctx, e: &CaseEvent) {
        let denial = match e.kind {
            EventType::Refused => true,
            EventType::Completed => e.has(F_DENIED),
            _ => false,
        };
        if denial && e.has(F_NO_REASON) {
            w.fire(META.rule, e.at, None, None);
        }
    }
}
