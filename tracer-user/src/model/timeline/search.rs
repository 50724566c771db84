//! Searches of a thread's time-ordered lists that start where the last one
//! ended. The live marker join breaks a thread's spans down in time order,
//! so each answer is a few items from the one before; a binary search over
//! the whole list (thousands of 160-byte transitions at saturation) missed
//! the cache at nearly every step, and was the join's largest cost.
use std::cell::Cell;

/// Where each list of a thread was last searched. Only a starting point:
/// a hint left stale by a change to the lists costs time, never a wrong
/// answer.
#[derive(Debug, Clone, Default)]
pub(super) struct SearchHints {
    pub transitions: Cell<usize>,
    pub syscalls: Cell<usize>,
    pub holders: Cell<usize>,
}

/// Hints are not part of a history's value.
impl PartialEq for SearchHints {
    fn eq(&self, _: &SearchHints) -> bool {
        true
    }
}

impl Eq for SearchHints {}

/// `items.partition_point(|item| ts(item) <= t)` for `items` sorted by
/// `ts`: galloping from `hint` (the last answer) to bracket the answer,
/// then a binary search inside the bracket. Leaves the answer in `hint`.
pub(super) fn first_after<T>(items: &[T], ts: impl Fn(&T) -> u64, t: u64, hint: &Cell<usize>) -> usize {
    let len = items.len();
    let at = hint.get().min(len);
    let (lo, hi) = if at < len && ts(&items[at]) <= t {
        // The answer is past the hint.
        let (mut lo, mut step) = (at + 1, 1);
        let hi = loop {
            let probe = at + step;
            if probe >= len {
                break len;
            }
            if ts(&items[probe]) > t {
                break probe;
            }
            lo = probe + 1;
            step *= 2;
        };
        (lo, hi)
    } else {
        // The answer is at the hint or before it.
        let (mut hi, mut step) = (at, 1);
        let lo = loop {
            if step > at {
                break 0;
            }
            let probe = at - step;
            if ts(&items[probe]) <= t {
                break probe + 1;
            }
            hi = probe;
            step *= 2;
        };
        (lo, hi)
    };
    let found = lo + items[lo..hi].partition_point(|item| ts(item) <= t);
    hint.set(found);
    found
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn the_same_answer_as_a_binary_search_from_any_hint(
            mut times in proptest::collection::vec(0u64..50, 0..80),
            asked in proptest::collection::vec(0u64..55, 1..10),
            hint in 0usize..100,
        ) {
            times.sort_unstable();
            let hint = Cell::new(hint);
            for t in asked {
                let expected = times.partition_point(|&ts| ts <= t);
                prop_assert_eq!(first_after(&times, |&ts| ts, t, &hint), expected);
                prop_assert_eq!(hint.get(), expected);
            }
        }
    }

    #[test]
    fn a_hint_beyond_a_shortened_list_is_only_a_starting_point() {
        let times = [10, 20, 30];
        let hint = Cell::new(1_000);
        assert_eq!(first_after(&times, |&ts| ts, 25, &hint), 2);
        assert_eq!(first_after(&times, |&ts| ts, 5, &hint), 0);
        assert_eq!(first_after(&times, |&ts| ts, 30, &hint), 3);
        assert_eq!(first_after(&[] as &[u64], |&ts| ts, 30, &hint), 0);
    }
}
