//! 超标准收费 — red: a `completed` whose fee exceeds the item's standard fee
//! by more than 0.005 yuan fires at that event (and resolves with it, as the
//! case closes).

use super::{Meta, RuleDef};
use crate::alert::{Level, Rule};
use crate::engine::case::CaseEvent;
use crate::engine::walk::{Ctx, Walk};
use crate::event::EventType;

/// 超标准收费.
pub const META: Meta = Meta {
    rule: Rule::Overcharge,
    name: "overcharge",
    level: Level::Red,
    label: "超标准收费",
    short_label: "超标收费",
    resolves_on_close: true,
    uses_calendar: false,
    config_keys: &[],
};

/// The rule.
pub struct Overcharge;

impl RuleDef for Overcharge {
    fn meta(&self) -> &'static Meta {
        &META
    }

    fn on_event(&self, w: &mut Walk, ctx: &Ctx, e: &CaseEvent) {
        // An unlisted item has no standard fee to exceed.
        if e.kind != EventType::Completed || e.fee < 0.0 || w.unlisted() {
            return;
        }
        let standard = w.item(ctx.cat).map_or(0.0, |i| i.fee_yuan);
        if micro_yuan(e.fee) - micro_yuan(standard) > 5_000 {
            w.fire(META.rule, e.at, None, None);
        }
    }
}

/// A fee in millionths of a yuan, so that "more than 0.005 over" is decided
/// on the decimal values the source wrote, not on binary floating point.
fn micro_yuan(fee: f64) -> i128 {
    (fee * 1_000_000.0).round() as i128
}
