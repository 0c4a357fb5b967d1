//! 补录 / 倒签 — yellow: an `accepted` or `completed` recorded more than
//! `backdate_hours` after it occurred fires at that event. Resolves when the
//! case closes.

use super::{Meta, RuleDef};
use crate::alert::{Level, Rule};
use crate::engine::case::{CaseEvent, F_BACKDATED};
use crate::engine::walk::{Ctx, Walk};
use crate::event::EventType;

/// 补录 / 倒签.
pub const META: Meta = Meta {
    rule: Rule::BackdatedEntry,
    name: "backdated_entry",
    level: Level::Yellow,
    label: "补录 / 倒签",
    short_label: "补录倒签",
    resolves_on_close: true,
    uses_calendar: false,
    config_keys: &["backdate_hours"],
};

/// The rule. The flag is set when the event is taken in (see
/// `Engine::apply`), where `recorded_at` is still at hand.
pub struct BackdatedEntry;

impl RuleDef for BackdatedEntry {
    fn meta(&self) -> &'static Meta {
        &META
    }

    fn on_event(&self, w: &mut Walk, _ctx: &Ctx, e: &CaseEvent) {
        if matches!(e.kind, EventType::Accepted | EventType::Completed) && e.has(F_BACKDATED) {
            w.fire(META.rule, e.at, None, None);
        }
    }
}
