//! The alert rules of `rules.md`, one file each, and their registry.
//!
//! A rule file holds everything the rule is: its [`Meta`] (name, card
//! colour, labels, the config keys it reads) and its behaviour as a
//! [`RuleDef`]: what it does when a valid event comes, which timer it wants
//! next and what it does when that timer runs, and the due date its records
//! carry. The clocks (charged days, due dates, stops) and the case's
//! lifecycle are computed once, in [`super::walk`], and offered to every rule;
//! the judgement ([`super::judgement`]) calls the rules in [`REGISTRY`] order.
//!
//! Adding a rule: write `rules/<rule>.rs` with its `META` and its
//! `RuleDef`, add its variant to [`Rule`] (in `alert.rs`, the names records
//! carry) and its line to [`REGISTRY`] at the same position, and its
//! thresholds to `[rules]` of the configuration.

use super::case::CaseEvent;
use super::walk::{Ctx, Walk};
use crate::alert::{Level, Rule};
use crate::calendar::Calendar;
use crate::time::{Day, Instant};

pub mod backdated_entry;
pub mod bad_rating_unrectified;
pub mod complaint_overdue;
pub mod denial_without_reason;
pub mod dual_intake;
pub mod due_soon;
pub mod intake_overdue;
pub mod notice_overdue;
pub mod overcharge;
pub mod overdue;
pub mod repeated_supplement;
pub mod step_overdue;
pub mod unlisted_item;
pub mod unregistered_case;

/// What a rule is, as data.
#[derive(Debug)]
pub struct Meta {
    /// The rule.
    pub rule: Rule,
    /// Its name in ids, records and metrics.
    pub name: &'static str,
    /// Its card colour.
    pub level: Level,
    /// Its name as supervision offices write it.
    pub label: &'static str,
    /// A short label for narrow places (table headings).
    pub short_label: &'static str,
    /// Whether its alert resolves when the case closes.
    pub resolves_on_close: bool,
    /// Whether its instant or due date is counted in working days (and so
    /// depends on the calendar).
    pub uses_calendar: bool,
    /// The `[rules]` config keys it reads.
    pub config_keys: &'static [&'static str],
}

/// What a rule does. Every method has a default that does nothing, so a rule
/// writes only what it reacts to.
pub trait RuleDef: Sync {
    /// The rule as data.
    fn meta(&self) -> &'static Meta;

    /// A valid event came: the walk already holds what it changed, except
    /// that a closing event has not closed the case yet.
    fn on_event(&self, _w: &mut Walk, _ctx: &Ctx, _e: &CaseEvent) {}

    /// The rule's next timer: its instant and a tag of the rule's own (for a
    /// rule with more than one timer). Timers of all rules run in (instant,
    /// registry position, tag) order.
    fn next_timer(&self, _w: &Walk, _ctx: &Ctx) -> Option<(Instant, u8)> {
        None
    }

    /// The timer given by [`RuleDef::next_timer`] runs at `at`. It must make
    /// progress: raise, resolve or mark itself run.
    fn on_timer(&self, _w: &mut Walk, _ctx: &Ctx, _at: Instant, _tag: u8) {}

    /// The due date its records carry.
    fn due(&self, _w: &Walk, _cal: &Calendar) -> Option<Day> {
        None
    }
}

/// Every rule, in [`Rule::ALL`] order.
pub static REGISTRY: [&dyn RuleDef; 14] = [
    &due_soon::DueSoon,
    &overdue::Overdue,
    &intake_overdue::IntakeOverdue,
    &repeated_supplement::RepeatedSupplement,
    &dual_intake::DualIntake,
    &unregistered_case::UnregisteredCase,
    &backdated_entry::BackdatedEntry,
    &overcharge::Overcharge,
    &denial_without_reason::DenialWithoutReason,
    &bad_rating_unrectified::BadRatingUnrectified,
    &complaint_overdue::ComplaintOverdue,
    &notice_overdue::NoticeOverdue,
    &step_overdue::StepOverdue,
    &unlisted_item::UnlistedItem,
];

impl Rule {
    /// The rule's definition.
    pub fn def(self) -> &'static dyn RuleDef {
        REGISTRY[self.index()]
    }

    /// The rule as data.
    pub fn meta(self) -> &'static Meta {
        self.def().meta()
    }

    /// The rule's name in ids, records and metrics.
    pub fn as_str(self) -> &'static str {
        self.meta().name
    }

    /// The card colour.
    pub fn level(self) -> Level {
        self.meta().level
    }

    /// The rule's name as supervision offices write it (rules.md).
    pub fn label(self) -> &'static str {
        self.meta().label
    }

    /// A short label for narrow places (table headings).
    pub fn short_label(self) -> &'static str {
        self.meta().short_label
    }

    /// Whether the alert resolves when its case closes.
    pub fn resolves_on_close(self) -> bool {
        self.meta().resolves_on_close
    }

    /// Whether the rule's instant or due date is counted in working days
    /// (and so depends on the calendar).
    pub fn uses_calendar(self) -> bool {
        self.meta().uses_calendar
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_lists_every_rule_in_order_under_its_record_name() {
        let toml = toml::to_string(&crate::config::RulesConfig::default()).unwrap();
        for (i, rule) in Rule::ALL.into_iter().enumerate() {
            let m = REGISTRY[i].meta();
            assert_eq!(m.rule, rule);
            assert_eq!(rule.index(), i);
            assert_eq!(serde_json::to_string(&rule).unwrap(), format!("\"{}\"", m.name));
            for key in m.config_keys {
                assert!(toml.contains(&format!("{key} = ")), "{} reads unknown key {key}", m.name);
            }
        }
    }
}
