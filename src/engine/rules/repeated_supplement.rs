//! 多次补正 — yellow: a case's second supplement request (at intake, or a
//! suspension for `supplement` while open) fires it at that request.
//! Resolves when the case closes.

use super::{Meta, RuleDef};
use crate::alert::{Level, Rule};
use crate::engine::case::{CaseEvent, F_SUPPLEMENT};
use crate::engine::walk::{Ctx, Walk};
use crate::event::EventType;

/// 多次补正.
pub const META: Meta = Meta {
    rule: Rule::RepeatedSupplement,
    name: "repeated_supplement",
    level: Level::Yellow,
    label: "多次补正",
    short_label: "多次补正",
    resolves_on_close: true,
    uses_calendar: false,
    config_keys: &[],
};

/// The rule.
pub struct RepeatedSupplement;

impl RuleDef for RepeatedSupplement {
    fn meta(&self) -> &'static Meta {
        &META
    }

    fn on_event(&self, w: &mut Walk, _ctx: &Ctx, e: &CaseEvent) {
        let request = match e.kind {
            EventType::SupplementRequested => true,
            EventType::Suspended => e.has(F_SUPPLEMENT),
            _ => false,
        };
        if request && w.supplements == 2 {
            w.fire(META.rule, e.at, None, None);
        }
    }
}
