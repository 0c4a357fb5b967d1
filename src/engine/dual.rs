//! The acceptance index behind `dual_intake` (两头受理): every acceptance by
//! (applicant hash, item), so a later acceptance of the same applicant and
//! item from a different source within `dual_intake_days` finds the earlier
//! one, whatever order the two arrive in.

use super::case::AcceptSig;
use super::sim::Ctx;
use crate::time::Instant;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// One acceptance.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Acceptance {
    /// The case.
    pub case: Arc<str>,
    /// Its acceptance.
    pub sig: AcceptSig,
}

/// Acceptances grouped by (applicant, item).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DualIndex {
    #[serde(with = "groups_serde")]
    groups: HashMap<([u8; 32], u32), Vec<Acceptance>, foldhash::fast::RandomState>,
}

mod groups_serde {
    use super::Acceptance;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::HashMap;

    type Groups = HashMap<([u8; 32], u32), Vec<Acceptance>, foldhash::fast::RandomState>;

    pub fn serialize<S: Serializer>(g: &Groups, s: S) -> Result<S::Ok, S::Error> {
        let mut v: Vec<_> = g.iter().collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v.serialize(s)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Groups, D::Error> {
        let v: Vec<(([u8; 32], u32), Vec<Acceptance>)> = Vec::deserialize(d)?;
        Ok(v.into_iter().collect())
    }
}

impl DualIndex {
    /// The most recent earlier acceptance that makes an acceptance at `at`
    /// from `source` a dual intake, by (`occurred_at`, `case_id`).
    pub fn earlier(&self, ctx: &Ctx, key: ([u8; 32], u32), at: Instant, source: u32) -> Option<Arc<str>> {
        let group = self.groups.get(&key)?;
        let day = ctx.zone.day_of(at);
        let max_days = ctx.rules.dual_intake_days as i32;
        let mut best: Option<(Instant, &Arc<str>)> = None;
        for a in group {
            if &*a.case == ctx.case_id || a.sig.source == source {
                continue;
            }
            if (a.sig.at, &*a.case) >= (at, ctx.case_id) {
                continue;
            }
            if day.0 - ctx.zone.day_of(a.sig.at).0 > max_days {
                continue;
            }
            if a.sig.withdrawn_at.is_some_and(|w| w <= at) {
                continue;
            }
            if best.is_none_or(|(bt, bc)| (a.sig.at, &*a.case) > (bt, &**bc)) {
                best = Some((a.sig.at, &a.case));
            }
        }
        best.map(|(_, c)| c.clone())
    }

    /// Replaces a case's entry; returns the other cases of the groups touched,
    /// which must be judged again.
    pub fn update(&mut self, case: &Arc<str>, old: Option<&AcceptSig>, new: Option<&AcceptSig>) -> Vec<Arc<str>> {
        let mut touched = Vec::new();
        if let Some(old) = old {
            if let Some(g) = self.groups.get_mut(&old.key) {
                g.retain(|a| a.case != *case);
                touched.extend(g.iter().map(|a| a.case.clone()));
                if g.is_empty() {
                    self.groups.remove(&old.key);
                }
            }
        }
        if let Some(new) = new {
            let g = self.groups.entry(new.key).or_insert_with(|| Vec::with_capacity(1));
            g.reserve_exact(1);
            if old.is_none_or(|o| o.key != new.key) {
                touched.extend(g.iter().map(|a| a.case.clone()));
            }
            g.push(Acceptance { case: case.clone(), sig: new.clone() });
        }
        touched.sort();
        touched.dedup();
        touched
    }

    /// Drops a whole group once none of its cases is held any more.
    pub fn forget_group_if_unheld(&mut self, key: &([u8; 32], u32), held: impl Fn(&str) -> bool) {
        if let Some(g) = self.groups.get(key) {
            if !g.iter().any(|a| held(&a.case)) {
                self.groups.remove(key);
            }
        }
    }

    /// Number of acceptances indexed.
    pub fn len(&self) -> usize {
        self.groups.values().map(Vec::len).sum()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}
