//! Which label sets get a series of their own, so that their number stays
//! bounded (`--max-series`) however many processes come and go.
//!
//! A label set that gets a series keeps it while it lives, so its counters
//! only grow; the ones beyond the bound, and those that ended, are summed
//! into the one `other` series. That one only grows too: what joins it
//! never leaves it (an ended label set does not come back, and one summed
//! there for lack of room stays there). New label sets take the free
//! places busiest first.
use std::{
    collections::{HashMap, HashSet},
    hash::Hash,
};

/// A label set seen now: whether it still lives, and how busy it is.
#[derive(Clone, Copy, Debug, Default)]
pub struct Candidate {
    pub live: bool,
    pub busy: u64,
}

#[derive(Debug)]
pub struct SeriesTable<K> {
    /// Label sets with a series of their own.
    own: HashSet<K>,
    /// Label sets summed into `other` once: they never get a series later.
    folded: HashSet<K>,
    /// Series of their own at most (`--max-series` less `other`).
    capacity: usize,
}

impl<K: Clone + Eq + Hash + Ord> SeriesTable<K> {
    /// At most `max_series` series, `other` included.
    pub fn new(max_series: usize) -> SeriesTable<K> {
        SeriesTable { own: HashSet::new(), folded: HashSet::new(), capacity: max_series.saturating_sub(1) }
    }

    /// Decides the series of every label set seen now: those that ended
    /// give their series up, new live ones take the free places, busiest
    /// first. Label sets no longer seen are forgotten.
    pub fn assign(&mut self, now: &HashMap<K, Candidate>) {
        self.own.retain(|key| now.get(key).is_some_and(|c| c.live));
        self.folded.retain(|key| now.contains_key(key));
        let mut new: Vec<(&K, &Candidate)> = now
            .iter()
            .filter(|(key, c)| c.live && !self.own.contains(*key) && !self.folded.contains(*key))
            .collect();
        new.sort_by(|a, b| b.1.busy.cmp(&a.1.busy).then_with(|| a.0.cmp(b.0)));
        for (key, _) in new {
            if self.own.len() < self.capacity {
                self.own.insert(key.clone());
            } else {
                self.folded.insert(key.clone());
            }
        }
        for key in now.keys() {
            if !self.own.contains(key) {
                self.folded.insert(key.clone());
            }
        }
    }

    /// Whether `key` has a series of its own (else it is in `other`).
    pub fn has_own(&self, key: &K) -> bool {
        self.own.contains(key)
    }

    /// The label sets with a series of their own, sorted.
    pub fn own_sorted(&self) -> Vec<K> {
        let mut keys: Vec<K> = self.own.iter().cloned().collect();
        keys.sort();
        keys
    }

    /// Label sets seen at the last `assign` that are summed into `other`.
    pub fn folded(&self) -> usize {
        self.folded.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(entries: &[(u32, bool, u64)]) -> HashMap<u32, Candidate> {
        entries.iter().map(|&(key, live, busy)| (key, Candidate { live, busy })).collect()
    }

    #[test]
    fn the_busiest_get_series_and_keep_them_while_they_live() {
        let mut table = SeriesTable::new(3);
        table.assign(&seen(&[(1, true, 10), (2, true, 30), (3, true, 20), (4, false, 99)]));
        assert_eq!(table.own_sorted(), [2, 3], "two places and `other`; ended ones never get one");
        assert_eq!(table.folded(), 2);
        // 1 becomes the busiest: it stays in `other`, whose counters must not drop.
        table.assign(&seen(&[(1, true, 100), (2, true, 30), (3, true, 20)]));
        assert_eq!(table.own_sorted(), [2, 3]);
        // 3 ends: its place goes to a new one, not back to 1.
        table.assign(&seen(&[(1, true, 100), (2, true, 30), (3, false, 20), (5, true, 1)]));
        assert_eq!(table.own_sorted(), [2, 5]);
        assert!(table.has_own(&5) && !table.has_own(&3) && !table.has_own(&1));
        assert_eq!(table.folded(), 2, "1 and 3");
        // Forgotten once no longer seen.
        table.assign(&seen(&[(2, true, 30)]));
        assert_eq!((table.own_sorted(), table.folded()), (vec![2], 0));
    }

    #[test]
    fn a_bound_of_one_sums_everything_into_other() {
        let mut table = SeriesTable::new(1);
        table.assign(&seen(&[(1, true, 10), (2, true, 30)]));
        assert!(table.own_sorted().is_empty());
        assert_eq!(table.folded(), 2);
    }
}
