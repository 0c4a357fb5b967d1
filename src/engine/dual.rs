//! The acceptance index behind `dual_intake` (两头受理): every acceptance by
//! (applicant hash, item), so a later acceptance of the same applicant and
//! item from a different source within `dual_intake_days` finds the earlier
//! one, whatever order the two arrive in.
//!
//! Groups are stored under a 64-bit hash of their key ([`group_of`]), as exact
//! boxed slices; every entry carries its full key (through its attributes),
//! so entries of keys whose hashes collide are told apart.

use super::case::{AcceptSig, Attrs};
use crate::time::Instant;
use crate::time::Zone;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::Arc;

/// One acceptance.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Acceptance {
    /// The case.
    pub case: Arc<str>,
    /// Its acceptance.
    pub sig: AcceptSig,
}

type Groups = HashMap<NonZeroU64, Box<[Acceptance]>, foldhash::fast::RandomState>;

/// Acceptances grouped by (applicant, item).
#[derive(Clone, Debug, Default)]
pub struct DualIndex {
    groups: Groups,
    /// Groups changed since the last [`DualIndex::take_changes`], while
    /// tracking (see `super::tracked`); not in snapshots.
    dirty: Option<std::collections::HashSet<NonZeroU64, foldhash::fast::RandomState>>,
}

/// The changed groups of the index: each with its entries now, or `None`
/// when it is gone; sorted by group.
pub type GroupChanges = Vec<(NonZeroU64, Option<Box<[Acceptance]>>)>;

/// The group hash of the key (applicant, item) of `attrs`: deterministic, so
/// a case can record it across snapshots.
pub fn group_of(attrs: &Attrs) -> NonZeroU64 {
    let mut b = [0u8; 36];
    b[..32].copy_from_slice(&attrs.applicant);
    b[32..].copy_from_slice(&attrs.item.to_le_bytes());
    NonZeroU64::new(xxhash_rust::xxh3::xxh3_64(&b)).unwrap_or(NonZeroU64::MIN)
}

fn same_key(a: &Attrs, b: &Attrs) -> bool {
    a.item == b.item && a.applicant == b.applicant
}

impl Serialize for DualIndex {
    /// All acceptances, sorted by key and then in group order.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut v: Vec<&Acceptance> = self.groups.values().flat_map(|g| g.iter()).collect();
        v.sort_by_key(|a| a.sig.key());
        v.serialize(s)
    }
}

impl<'de> Deserialize<'de> for DualIndex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DualIndex, D::Error> {
        let mut m: HashMap<NonZeroU64, Vec<Acceptance>, foldhash::fast::RandomState> = HashMap::default();
        for a in Vec::<Acceptance>::deserialize(d)? {
            m.entry(group_of(&a.sig.attrs)).or_default().push(a);
        }
        Ok(DualIndex { groups: m.into_iter().map(|(k, v)| (k, v.into_boxed_slice())).collect(), dirty: None })
    }
}

impl DualIndex {
    fn mark(&mut self, group: NonZeroU64) {
        if let Some(d) = &mut self.dirty {
            d.insert(group);
        }
    }

    /// Starts remembering changed groups (forgetting any remembered).
    pub fn track(&mut self) {
        self.dirty = Some(Default::default());
    }

    /// Groups changed since tracking began or since the last call.
    pub fn changed_groups(&self) -> usize {
        self.dirty.as_ref().map_or(0, |d| d.len())
    }

    /// The groups changed since tracking began or since the last call,
    /// copied; tracking goes on.
    pub fn take_changes(&mut self) -> GroupChanges {
        let Some(d) = &mut self.dirty else { return Vec::new() };
        let mut v: GroupChanges = d.drain().map(|g| (g, self.groups.get(&g).cloned())).collect();
        v.sort_unstable_by_key(|c| c.0);
        v
    }

    /// Applies changes taken by [`DualIndex::take_changes`].
    pub fn apply(&mut self, changes: GroupChanges) {
        for (g, entries) in changes {
            match entries {
                Some(e) => self.groups.insert(g, e),
                None => self.groups.remove(&g),
            };
        }
    }

    /// The most recent earlier acceptance that makes case `case_id`'s
    /// acceptance at `at` from `source` a dual intake, by (`occurred_at`,
    /// `case_id`), within `window_days` calendar days in `zone`.
    pub fn earlier(
        &self,
        case_id: &str,
        window_days: u32,
        zone: &Zone,
        attrs: &Attrs,
        at: Instant,
        source: u32,
    ) -> Option<Arc<str>> {
        let group = self.groups.get(&group_of(attrs))?;
        let mut best: Option<(Instant, &Arc<str>)> = None;
        for a in group.iter() {
            // Cheap tests first: the case's own entry has the same source.
            if a.sig.source == source || a.sig.at > at || !same_key(&a.sig.attrs, attrs) {
                continue;
            }
            if &*a.case == case_id || (a.sig.at, &*a.case) >= (at, case_id) {
                continue;
            }
            if zone.day_of(at).0 - zone.day_of(a.sig.at).0 > window_days as i32 {
                continue;
            }
            if a.sig.withdrawn_at <= at {
                continue;
            }
            if best.is_none_or(|(bt, bc)| (a.sig.at, &*a.case) > (bt, &**bc)) {
                best = Some((a.sig.at, &a.case));
            }
        }
        best.map(|(_, c)| c.clone())
    }

    /// The entry of `case` in `group` (its latest, should an evicted case of
    /// the same id have left one).
    pub fn current(&self, group: NonZeroU64, case: &str) -> Option<&AcceptSig> {
        self.groups.get(&group)?.iter().rev().find(|a| &*a.case == case).map(|a| &a.sig)
    }

    /// The cases with an entry in `group`.
    pub fn cases_of(&self, group: NonZeroU64) -> impl Iterator<Item = &str> {
        self.groups.get(&group).into_iter().flat_map(|g| g.iter().map(|a| &*a.case))
    }

    /// Replaces a case's entry (in group `old`, if any) by `new`; returns the
    /// group of the new entry. Fills `touched` (given empty) with the other
    /// cases of the keys touched, sorted: they must be judged again.
    pub fn update(
        &mut self,
        case: &Arc<str>,
        old: Option<NonZeroU64>,
        new: Option<AcceptSig>,
        touched: &mut Vec<Arc<str>>,
    ) -> Option<NonZeroU64> {
        touched.clear();
        let mut old_attrs: Option<Arc<Attrs>> = None;
        if let Some(h) = old {
            self.mark(h);
            if let Some(g) = self.groups.get_mut(&h) {
                let attrs = g.iter().rev().find(|a| a.case == *case).map(|a| a.sig.attrs.clone());
                let mut v = std::mem::take(g).into_vec();
                v.retain(|a| a.case != *case);
                let same = |a: &&Acceptance| attrs.as_ref().is_none_or(|k| same_key(&a.sig.attrs, k));
                touched.extend(v.iter().filter(same).map(|a| a.case.clone()));
                if v.is_empty() {
                    self.groups.remove(&h);
                } else {
                    *g = v.into_boxed_slice();
                }
                old_attrs = attrs;
            }
        }
        let group = new.map(|new| {
            let h = group_of(&new.attrs);
            self.mark(h);
            let g = self.groups.entry(h).or_insert_with(|| Box::new([]));
            if old_attrs.is_none_or(|o| !same_key(&o, &new.attrs)) {
                touched.extend(g.iter().filter(|a| same_key(&a.sig.attrs, &new.attrs)).map(|a| a.case.clone()));
            }
            let mut v = std::mem::take(g).into_vec();
            v.reserve_exact(1);
            v.push(Acceptance { case: case.clone(), sig: new });
            *g = v.into_boxed_slice();
            h
        });
        touched.sort();
        touched.dedup();
        group
    }

    /// Drops a whole group (the acceptances of the key of `attrs`, in group
    /// `group`) once none of its cases is held any more.
    pub fn forget_group_if_unheld(&mut self, group: NonZeroU64, attrs: &Attrs, held: impl Fn(&str) -> bool) {
        self.mark(group);
        if let Some(g) = self.groups.get_mut(&group) {
            if !g.iter().filter(|a| same_key(&a.sig.attrs, attrs)).any(|a| held(&a.case)) {
                let mut v = std::mem::take(g).into_vec();
                v.retain(|a| !same_key(&a.sig.attrs, attrs));
                if v.is_empty() {
                    self.groups.remove(&group);
                } else {
                    *g = v.into_boxed_slice();
                }
            }
        }
    }

    /// Number of acceptances indexed.
    pub fn len(&self) -> usize {
        self.groups.values().map(|g| g.len()).sum()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(applicant: u8, item: u32, at: Instant, source: u32) -> AcceptSig {
        let attrs = Attrs { region: 0, department: 0, window: 0, item, applicant: [applicant; 32], parent: None };
        AcceptSig { attrs: Arc::new(attrs), at, source, withdrawn_at: super::super::case::NEVER }
    }

    #[test]
    fn update_moves_entries_and_reports_the_other_cases_of_the_keys() {
        let mut ix = DualIndex::default();
        let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("A".into(), "B".into(), "C".into());
        let mut touched = Vec::new();
        let ga = ix.update(&a, None, Some(sig(1, 7, 10, 0)), &mut touched);
        assert!(touched.is_empty());
        let gb = ix.update(&b, None, Some(sig(1, 7, 20, 1)), &mut touched);
        assert_eq!(ga, gb);
        assert_eq!(touched, vec![a.clone()]);
        let gc = ix.update(&c, None, Some(sig(2, 7, 30, 1)), &mut touched);
        assert!(touched.is_empty());
        assert_eq!(ix.len(), 3);
        assert_eq!(ix.current(gb.unwrap(), "B").map(|s| s.at), Some(20));

        // B moves to C's key: A and C are told.
        let gb2 = ix.update(&b, gb, Some(sig(2, 7, 25, 1)), &mut touched);
        assert_eq!(gb2, gc);
        assert_eq!(touched, vec![a.clone(), c.clone()]);
        assert!(ix.current(ga.unwrap(), "B").is_none());
        assert_eq!(ix.current(gc.unwrap(), "B").map(|s| s.at), Some(25));

        // Same key, new instant: only the other case of the key is told.
        ix.update(&b, gb2, Some(sig(2, 7, 26, 1)), &mut touched);
        assert_eq!(touched, vec![c.clone()]);

        // A leaves; its group goes.
        assert_eq!(ix.update(&a, ga, None, &mut touched), None);
        assert!(touched.is_empty());
        assert_eq!(ix.len(), 2);

        // The group of C and B is forgotten only once neither is held.
        let key = sig(2, 7, 0, 0).attrs;
        ix.forget_group_if_unheld(gc.unwrap(), &key, |c| c == "B");
        assert_eq!(ix.len(), 2);
        ix.forget_group_if_unheld(gc.unwrap(), &key, |_| false);
        assert!(ix.is_empty());
    }

    #[test]
    fn a_case_id_seen_again_after_eviction_finds_its_latest_entry() {
        let mut ix = DualIndex::default();
        let a: Arc<str> = "A".into();
        let mut touched = Vec::new();
        let g = ix.update(&a, None, Some(sig(1, 7, 10, 0)), &mut touched).unwrap();
        // The case was evicted with its entry kept, then came back.
        ix.update(&a, None, Some(sig(1, 7, 50, 0)), &mut touched);
        assert_eq!(ix.current(g, "A").map(|s| s.at), Some(50));
        ix.update(&a, Some(g), Some(sig(1, 7, 60, 0)), &mut touched);
        assert_eq!(ix.len(), 1);
    }

    #[test]
    fn snapshot_round_trip_rebuilds_the_groups() {
        let mut ix = DualIndex::default();
        let mut touched = Vec::new();
        let g = ix.update(&"A".into(), None, Some(sig(1, 7, 10, 0)), &mut touched).unwrap();
        ix.update(&"B".into(), None, Some(sig(1, 7, 20, 1)), &mut touched);
        let json = serde_json::to_string(&ix).unwrap();
        let back: DualIndex = serde_json::from_str(&json).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back.current(g, "B").map(|s| s.at), Some(20));
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }
}
