//! A map that keeps its most recent insertions: for what waits on a record
//! that may never come (a parent span whose request was never answered, a
//! call whose response never came), so that waiting costs bounded memory.
use std::{collections::VecDeque, hash::Hash};

use foldhash::{HashMap, HashMapExt};

pub struct Recent<K, V> {
    map: HashMap<K, V>,
    /// Keys by insertion, oldest first (removed ones too, until their turn).
    order: VecDeque<K>,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V> Recent<K, V> {
    /// Keeps the entries of the last `capacity` insertions at most.
    pub fn new(capacity: usize) -> Self {
        Recent { map: HashMap::new(), order: VecDeque::new(), capacity }
    }

    /// The entry of `key`, inserted with `V::default()` when absent (which
    /// may forget the oldest entry).
    pub fn entry(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        if !self.map.contains_key(&key) {
            self.order.push_back(key.clone());
            if self.order.len() > self.capacity
                && let Some(oldest) = self.order.pop_front()
            {
                self.map.remove(&oldest);
            }
        }
        self.map.entry(key).or_default()
    }

    pub fn insert(&mut self, key: K, value: V)
    where
        V: Default,
    {
        *self.entry(key) = value;
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.map.remove(key)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.map.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_insertions_are_forgotten_first() {
        let mut recent = Recent::new(3);
        for key in 0..5 {
            recent.insert(key, key * 10);
        }
        assert_eq!(recent.len(), 3);
        assert!(!recent.contains_key(&0) && !recent.contains_key(&1));
        assert_eq!((recent.get(&2), recent.get(&4)), (Some(&20), Some(&40)));
        *recent.entry(4) += 1;
        assert_eq!(recent.remove(&4), Some(41));
        assert_eq!(recent.len(), 2);
    }
}
