//! 体外循环 — red: a case of an item handled in the hall has no event from
//! the service centre (`source = center`) within `grace_hours` of its first
//! event — nor has its parent, for a sub-case of a joint case. Resolves at
//! the first `center` event of the case or its parent after it fired, or
//! when the case closes.

use super::{Meta, RuleDef};
use crate::alert::{Level, Rule};
use crate::engine::case::{CaseEvent, F_CENTER};
use crate::engine::walk::{Ctx, Walk};
use crate::time::{Instant, HOUR_MS};

/// 体外循环.
pub const META: Meta = Meta {
    rule: Rule::UnregisteredCase,
    name: "unregistered_case",
    level: Level::Red,
    label: "体外循环",
    short_label: "体外循环",
    resolves_on_close: true,
    uses_calendar: false,
    config_keys: &["grace_hours"],
};

/// Timer tag: the grace period ends.
const GRACE_ENDS: u8 = 0;
/// Timer tag: the parent's `center` event comes after the alert fired.
const PARENT_REGISTERED: u8 = 1;

/// The rule.
pub struct UnregisteredCase;

impl RuleDef for UnregisteredCase {
    fn meta(&self) -> &'static Meta {
        &META
    }

    fn on_event(&self, w: &mut Walk, _ctx: &Ctx, e: &CaseEvent) {
        if e.has(F_CENTER) {
            w.resolve(META.rule, e.at, None);
        }
    }

    fn next_timer(&self, w: &Walk, ctx: &Ctx) -> Option<(Instant, u8)> {
        let mut best = None;
        if !w.raised(META.rule) {
            // An unlisted item is treated as handled in the hall (follow-up.md).
            if let Some(first) = w.first_at {
                if w.item(ctx.cat).map_or(w.unlisted(), |i| i.in_hall) {
                    best = Some((first + ctx.rules.grace_hours as i64 * HOUR_MS, GRACE_ENDS));
                }
            }
        }
        if let Some(i) = w.live(META.rule) {
            let fired = w.alerts[i].at;
            if let Some(p) = ctx.parent_center.iter().copied().find(|&p| p >= fired) {
                let t = (p, PARENT_REGISTERED);
                best = Some(best.map_or(t, |b: (Instant, u8)| b.min(t)));
            }
        }
        best
    }

    fn on_timer(&self, w: &mut Walk, ctx: &Ctx, at: Instant, tag: u8) {
        if tag == PARENT_REGISTERED {
            w.resolve(META.rule, at, None);
            return;
        }
        w.set_raised(META.rule);
        let own = w.center_min.is_some_and(|c| c < at);
        let parent = ctx.parent_center.first().is_some_and(|&p| p < at);
        if !own && !parent {
            w.fire(META.rule, at, None, None);
        }
    }
}
