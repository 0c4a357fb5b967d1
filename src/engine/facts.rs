//! Facts between partitions: what the engines of other partitions learn
//! from this one — acceptances, for `dual_intake` across partitions, and the
//! `center` events of joint cases, for their sub-cases' `unregistered_case`
//! — and what this engine does with the facts it is told.

use super::case::{self, Attrs, NO_WINDOW};
use super::{Effect, Engine};
use crate::time::Instant;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What the engines of other partitions learn from this one: the
/// acceptances (for `dual_intake` across partitions) and the `center`
/// events of joint cases (for their sub-cases' `unregistered_case`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fact", rename_all = "snake_case")]
pub enum SharedFact {
    /// A case's acceptance, or `None` when it has none any more.
    Acceptance {
        /// The case.
        case_id: String,
        /// Its acceptance.
        acceptance: Option<AcceptanceFact>,
    },
    /// The instants of a joint case's `center` events.
    Center {
        /// The (parent) case.
        case_id: String,
        /// `occurred_at` of its `center` events in effect.
        at: Vec<Instant>,
    },
}

impl SharedFact {
    /// The case the fact is about.
    pub fn case_id(&self) -> &str {
        match self {
            SharedFact::Acceptance { case_id, .. } | SharedFact::Center { case_id, .. } => case_id,
        }
    }
}

/// The facts of an acceptance that `dual_intake` compares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AcceptanceFact {
    /// Applicant hash, lowercase hex.
    pub applicant: String,
    /// Item code.
    pub item_code: String,
    /// `occurred_at` of the `accepted`.
    pub at: Instant,
    /// Its source.
    pub source: String,
    /// `occurred_at` of a valid `withdrawn`, if any.
    pub withdrawn_at: Option<Instant>,
}

impl Engine {
    /// Collects facts about this engine's cases for the engines of other
    /// partitions ([`Engine::take_shared`]).
    pub fn share_facts(&mut self) {
        self.share = true;
    }

    /// Whether facts wait for [`Engine::take_shared`].
    pub fn has_shared(&self) -> bool {
        !self.shared.is_empty()
    }

    /// The facts collected since the last call.
    pub fn take_shared(&mut self) -> Vec<SharedFact> {
        std::mem::take(&mut self.shared)
    }

    /// Learns a fact about a case of another partition, and judges again
    /// the cases of this engine it bears on. Ignored for a case of this
    /// engine, and for an item not in the catalogue.
    pub fn remote_fact(&mut self, fact: &SharedFact, out: &mut Vec<Effect>) {
        if self.st.cases.contains_key(fact.case_id()) {
            return;
        }
        let acceptance = match fact {
            SharedFact::Acceptance { acceptance, .. } => acceptance,
            SharedFact::Center { case_id, at } => {
                let key: Arc<str> = Arc::from(case_id.as_str());
                if at.is_empty() {
                    self.st.remote_center.remove(&key);
                } else {
                    self.st.remote_center.insert(key.clone(), at.clone());
                }
                let kids = self.st.children.get(&key).cloned().unwrap_or_default();
                for k in &kids {
                    self.rejudge(k, super::Cause::Other, out);
                }
                return;
            }
        };
        let new = match acceptance {
            None => None,
            Some(a) => {
                let item = match self.refdata.catalog.lookup(&a.item_code) {
                    Some(i) => i,
                    None => case::UNLISTED_ITEM | self.st.strings.intern(&a.item_code),
                };
                let Some(applicant) = crate::privacy::unhex32(&a.applicant) else { return };
                let attrs = Attrs {
                    region: NO_WINDOW,
                    department: NO_WINDOW,
                    window: NO_WINDOW,
                    item,
                    applicant,
                    parent: None,
                };
                Some(case::AcceptSig {
                    attrs: Arc::new(attrs),
                    at: a.at,
                    source: self.st.strings.intern(&a.source),
                    withdrawn_at: a.withdrawn_at.unwrap_or(case::NEVER),
                })
            }
        };
        let key: Arc<str> = Arc::from(fact.case_id());
        let old = self.st.remote.get(&key).copied();
        let mut again = std::mem::take(&mut self.scratch);
        let at = new.as_ref().map(|s| s.at);
        // The index keeps an entry (returns its group) exactly when there is a new acceptance.
        match self.st.dual.update(&key, old, new, &mut again).zip(at) {
            Some((g, at)) => {
                self.st.remote_by_at.insert((at, key.clone()));
                self.st.remote.insert(key, g);
            }
            None => {
                self.st.remote.remove(&key);
            }
        }
        for k in &again {
            self.rejudge(k, super::Cause::Other, out);
        }
        again.clear();
        self.scratch = again;
    }

    /// Forgets what other partitions told about their cases once it is as
    /// old as a closed case kept in memory and no case of this engine can
    /// still need it (the same rule as for this engine's own cases).
    pub(super) fn forget_old_remote(&mut self, wm: Instant) {
        let horizon = wm.saturating_sub(self.keep_closed_ms());
        // Only entries accepted before the horizon can go: those are at the
        // front of `remote_by_at`. One whose group has a case in memory is
        // looked at again the next day.
        let mut again = Vec::new();
        let mut touched = Vec::new();
        while self.st.remote_by_at.first().is_some_and(|(at, _)| *at < horizon) {
            let Some((at, k)) = self.st.remote_by_at.pop_first() else { break };
            let Some(&g) = self.st.remote.get(&k) else { continue };
            let dual = &self.st.dual;
            if dual.current(g, &k).is_some_and(|s| s.at >= horizon) {
                continue; // accepted again since: its newer entry is queued
            }
            let cases = &self.st.cases;
            if dual.cases_of(g).any(|c| cases.contains_key(c)) {
                again.push((at, k));
                continue;
            }
            self.st.dual.update(&k, Some(g), None, &mut touched);
            self.st.remote.remove(&k);
        }
        self.st.remote_by_at.extend(again);
        let children = &self.st.children;
        self.st.remote_center.retain(|k, at| children.contains_key(k) || at.last().is_some_and(|&t| t >= horizon));
    }
}
