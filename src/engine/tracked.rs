//! A hash map of the engine's state that can remember which keys changed,
//! so that a checkpoint writes those only (see [`super::delta`]).
//!
//! Every method that can change an entry marks its key while tracking is
//! on: a key marked that did not really change costs a few bytes in the
//! next delta, a key changed and not marked would be a wrong state after a
//! restart, so the methods err on the side of marking. The one way around
//! it, [`Tracked::iter_mut_untracked`], says so in its name.

use super::state::sorted;
use super::{Map, Set};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// A map whose changed keys are remembered while tracking is on. It is
/// serialized as the plain map (sorted), never with its marks.
#[derive(Clone, Debug)]
pub(super) struct Tracked<K, V> {
    map: Map<K, V>,
    /// Keys changed since the last [`Tracked::take_changes`]; `None` while
    /// tracking is off (replay, tests), which costs nothing.
    dirty: Option<Set<K>>,
}

impl<K, V> Default for Tracked<K, V> {
    fn default() -> Self {
        Tracked { map: Map::default(), dirty: None }
    }
}

/// The changes of a map: each changed key with its value now, or `None`
/// when it was removed; in no order (a delta sorts them when encoded).
pub(super) type Changes<K, V> = Vec<(K, Option<V>)>;

impl<K: Hash + Eq + Clone, V> Tracked<K, V> {
    fn mark_key(&mut self, k: &K) {
        if let Some(d) = &mut self.dirty {
            if !d.contains(k) {
                d.insert(k.clone());
            }
        }
    }

    /// Marks `k` as changed by the caller (after [`Tracked::iter_mut_untracked`]).
    pub(super) fn mark<Q>(&mut self, k: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(d) = &mut self.dirty {
            if !d.contains(k) {
                if let Some((key, _)) = self.map.get_key_value(k) {
                    d.insert(key.clone());
                }
            }
        }
    }

    pub(super) fn get<Q>(&self, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(k)
    }

    pub(super) fn get_key_value<Q>(&self, k: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get_key_value(k)
    }

    pub(super) fn contains_key<Q>(&self, k: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.contains_key(k)
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &K> {
        self.map.keys()
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &V> {
        self.map.values()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter()
    }

    /// The value of `k`, to change: `k` is marked.
    pub(super) fn get_mut<Q>(&mut self, k: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.mark(k);
        self.map.get_mut(k)
    }

    pub(super) fn insert(&mut self, k: K, v: V) -> Option<V> {
        self.mark_key(&k);
        self.map.insert(k, v)
    }

    pub(super) fn remove<Q>(&mut self, k: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (key, v) = self.map.remove_entry(k)?;
        self.mark_key(&key);
        Some(v)
    }

    pub(super) fn entry(&mut self, k: K) -> Entry<'_, K, V> {
        self.mark_key(&k);
        self.map.entry(k)
    }

    /// Keeps the entries `keep` says to (it cannot change them); the keys
    /// removed are marked.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        let dirty = &mut self.dirty;
        self.map.retain(|k, v| {
            let kept = keep(k, v);
            if !kept {
                if let Some(d) = dirty {
                    d.insert(k.clone());
                }
            }
            kept
        });
    }

    pub(super) fn clear(&mut self) {
        if let Some(d) = &mut self.dirty {
            d.extend(self.map.keys().cloned());
        }
        self.map.clear();
    }

    /// Every entry, to change, marking none: the caller marks what it
    /// changes (with [`Tracked::mark`]), or changes only what is not in
    /// snapshots.
    pub(super) fn iter_mut_untracked(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.map.iter_mut()
    }

    /// Starts remembering changed keys (forgetting any remembered).
    pub(super) fn track(&mut self) {
        self.dirty = Some(Set::default());
    }

    /// Whether changed keys are remembered.
    pub(super) fn tracking(&self) -> bool {
        self.dirty.is_some()
    }

    /// Keys changed since tracking began or since the last call.
    pub(super) fn changed_keys(&self) -> usize {
        self.dirty.as_ref().map_or(0, |d| d.len())
    }

    /// The changes since tracking began or since the last call, each value
    /// copied by `copy`; in no order. Tracking goes on.
    pub(super) fn take_changes(&mut self, copy: impl Fn(&V) -> V) -> Changes<K, V> {
        let Some(d) = &mut self.dirty else { return Vec::new() };
        let map = &self.map;
        d.drain()
            .map(|k| {
                let value = map.get(&k).map(&copy);
                (k, value)
            })
            .collect()
    }

    /// Applies changes taken by [`Tracked::take_changes`] (marking nothing).
    pub(super) fn apply(&mut self, changes: Changes<K, V>) {
        for (k, v) in changes {
            match v {
                Some(v) => self.map.insert(k, v),
                None => self.map.remove(&k),
            };
        }
    }

    /// Removes `k`, marking nothing (applying changes).
    pub(super) fn remove_untracked<Q>(&mut self, k: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.remove(k)
    }

    /// Inserts, marking nothing (applying changes).
    pub(super) fn insert_untracked(&mut self, k: K, v: V) {
        self.map.insert(k, v);
    }
}

impl<K: Ord + Serialize, V: Serialize> Serialize for Tracked<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        sorted::serialize(&self.map, s)
    }
}

impl<'de, K: Eq + Hash + Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for Tracked<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Tracked { map: sorted::deserialize(d)?, dirty: None })
    }
}

/// A value shared by the map and the cuts taken of it until one side
/// changes it (copy on write): a cut of a changed entry costs a reference
/// count, and the map's value is copied only when it is changed while a
/// cut not yet written still holds it. Changing it goes through
/// [`DerefMut`], which makes the copy when needed. Serialized as the value.
#[derive(Debug, Default)]
pub(super) struct Shared<T>(Arc<T>);

impl<T> Shared<T> {
    pub(super) fn new(v: T) -> Shared<T> {
        Shared(Arc::new(v))
    }
}

impl<T> Clone for Shared<T> {
    /// Shares the value (no copy until one side changes it).
    fn clone(&self) -> Shared<T> {
        Shared(Arc::clone(&self.0))
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Clone> DerefMut for Shared<T> {
    /// The value, to change: copied first if a cut still shares it.
    fn deref_mut(&mut self) -> &mut T {
        Arc::make_mut(&mut self.0)
    }
}

impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Shared<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Shared::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The changes taken, sorted.
    fn taken<V: Clone>(t: &mut Tracked<String, V>) -> Changes<String, V> {
        let mut v = t.take_changes(V::clone);
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    #[test]
    fn every_change_is_marked_and_taken_once() {
        let mut t: Tracked<String, u32> = Tracked::default();
        t.insert("untracked".into(), 0);
        assert!(taken(&mut t).is_empty());
        t.track();
        t.insert("a".into(), 1);
        t.insert("b".into(), 2);
        *t.entry("c".into()).or_default() += 3;
        *t.get_mut("untracked").unwrap() += 1;
        t.remove("b");
        let _ = t.get("a");
        assert_eq!(
            taken(&mut t),
            vec![("a".into(), Some(1)), ("b".into(), None), ("c".into(), Some(3)), ("untracked".into(), Some(1))]
        );
        assert!(taken(&mut t).is_empty(), "taken once");
        t.retain(|k, _| k != "a");
        for (_, v) in t.iter_mut_untracked() {
            *v += 10;
        }
        t.mark("c");
        assert_eq!(taken(&mut t), vec![("a".into(), None), ("c".into(), Some(13))]);
        t.clear();
        assert_eq!(t.changed_keys(), 2);
        let mut copy: Tracked<String, u32> = Tracked::default();
        copy.apply(vec![("c".into(), Some(13)), ("untracked".into(), Some(11))]);
        copy.apply(taken(&mut t));
        assert!(copy.is_empty());
    }

    #[test]
    fn a_shared_value_is_copied_when_changed_while_a_cut_holds_it() {
        let mut t: Tracked<String, Shared<Vec<u32>>> = Tracked::default();
        t.insert("a".into(), Shared::new(vec![1]));
        t.track();
        t.get_mut("a").unwrap().push(2);
        let cut = t.take_changes(Shared::clone);
        let held = cut[0].1.as_ref().unwrap();
        assert!(std::ptr::eq(&**held, &**t.get("a").unwrap()), "the cut shares the value");
        t.get_mut("a").unwrap().push(3);
        assert_eq!(**held, vec![1, 2], "the cut keeps the value as it was cut");
        assert_eq!(**t.get("a").unwrap(), vec![1, 2, 3]);
        drop(cut);
        let before: *const Vec<u32> = &**t.get("a").unwrap();
        t.get_mut("a").unwrap().push(4);
        assert!(std::ptr::eq(before, &**t.get("a").unwrap()), "no copy once no cut holds it");
    }
}
