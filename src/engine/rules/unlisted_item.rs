//! 清单外事项 — red: a `submitted` or `accepted` names an item that is not in
//! the catalogue (清单之外无权力), when `rules.unlisted_item = "card"`; `at`
//! is its `occurred_at`. Resolves when the case closes. (With
//! `"dead_letter"` such an event never reaches the engine: the decoder
//! dead-letters it `unknown_item`.)

use super::{Meta, RuleDef};
use crate::alert::{Level, Rule};
use crate::engine::case::CaseEvent;
use crate::engine::walk::{Ctx, Walk};
use crate::event::EventType;

/// 清单外事项.
pub const META: Meta = Meta {
    rule: Rule::UnlistedItem,
    name: "unlisted_item",
    level: Level::Red,
    label: "清单外事项",
    short_label: "清单外",
    resolves_on_close: true,
    uses_calendar: false,
    config_keys: &["unlisted_item"],
};

/// The rule.
pub struct UnlistedItem;

impl RuleDef for UnlistedItem {
    fn meta(&self) -> &'static Meta {
        &META
    }

    fn on_event(&self, w: &mut Walk, _ctx: &Ctx, e: &CaseEvent) {
        if matches!(e.kind, EventType::Submitted | EventType::Accepted)
            && e.attrs.as_ref().is_some_and(|a| a.unlisted())
        {
            w.fire(META.rule, e.at, None, None);
        }
    }
}
