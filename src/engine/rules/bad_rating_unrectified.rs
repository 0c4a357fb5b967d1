//! 差评未整改 — yellow: a completed case rated 2 or less has no `rectified`
//! by the end of the `rectify_days`-th working day after the rating. Resolves
//! at the `rectified`; it does not end with the case (the case is closed
//! already when rated).

use super::{Meta, RuleDef};
use crate::alert::{Level, Rule};
use crate::engine::case::CaseEvent;
use crate::engine::walk::{Ctx, Walk};
use crate::event::EventType;
use crate::time::Instant;

/// 差评未整改.
pub const META: Meta = Meta {
    rule: Rule::BadRatingUnrectified,
    name: "bad_rating_unrectified",
    level: Level::Yellow,
    label: "差评未整改",
    short_label: "差评未整改",
    resolves_on_close: false,
    uses_calendar: true,
    config_keys: &["rectify_days"],
};

/// The rule.
pub struct BadRatingUnrectified;

impl RuleDef for BadRatingUnrectified {
    fn meta(&self) -> &'static Meta {
        &META
    }

    fn on_event(&self, w: &mut Walk, _ctx: &Ctx, e: &CaseEvent) {
        if e.kind == EventType::Rectified {
            w.resolve(META.rule, e.at, None);
        }
    }

    fn next_timer(&self, w: &Walk, ctx: &Ctx) -> Option<(Instant, u8)> {
        let day = w.bad_rating?;
        if w.rectified || w.raised(META.rule) {
            return None;
        }
        let r = ctx.cal.nth_working_after(day, ctx.rules.rectify_days).map(Some);
        let last = w.note(r)?;
        Some((ctx.zone.midnight(last.next()), 0))
    }

    fn on_timer(&self, w: &mut Walk, _ctx: &Ctx, at: Instant, _tag: u8) {
        w.raise(META.rule, at, None);
    }
}
