//! Who held the CPU while a traced process waited for it, summed per
//! (waiting process, holding process) for the loader to read at each
//! interval. Runs only at a switch-in that ended a run-queue wait (not an
//! idle wake-up), and only when the loader asked for the sums.
use tracer_common::{Counter, WaitHolderKey};

use crate::{
    kernel::holders_enabled,
    maps::{WAIT_HOLDERS, add_to_counter},
    slices,
};

/// A thread of `waiter` waited from `since` to `now` for this CPU: adds each
/// holder's share of the wait to its sum.
#[inline(always)]
pub fn charge(waiter: u32, since: u64, now: u64) {
    if holders_enabled() {
        slices::for_each_holder(since, now, |holder, ns| {
            add_to_counter(&WAIT_HOLDERS, &WaitHolderKey { waiter, holder }, ns, Counter::WaitHoldersMapFull)
        });
    }
}
