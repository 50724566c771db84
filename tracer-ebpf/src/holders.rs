//! Who held the CPU while a traced process waited for it, summed per
//! (waiting process, holding process) for the loader to read at each
//! interval. Nothing here runs unless the loader asked for the sums.
//!
//! A wait is charged when it ends, at the waiter's switch-in, from the run
//! slices its CPU kept (`slices`): each task that ran on the CPU during the
//! wait is charged the overlap. Nothing is done per switch beyond keeping
//! the slices, and nothing at the wakeup, which BTF mode does not trace on
//! kernels where the switch-in says when the wait began. Left out:
//! - a wake-up on an idle CPU: the idle task's run is no wait of the thread
//!   it switches to (such a wait has no held part);
//! - the time the waiter's cgroup was throttled by its CPU quota: nobody
//!   held the CPU from it (the throttled part is the start of the wait);
//! - what the slices cannot tell: the part of a wait spent on another CPU's
//!   run queue (before the thread moved), or older than the CPU's oldest
//!   kept slice. That is charged to `HOLDER_UNFOLLOWED`, so it is counted,
//!   never lost silently.
use tracer_common::{CPU_SLICE_RING, Counter, HOLDER_UNFOLLOWED, WaitHolderKey};

use crate::{
    kernel::holders_enabled,
    maps::{WAIT_HOLDERS, add_to_counter},
    slices,
};

#[inline(always)]
fn charge(waiter: u32, holder: u32, ns: u64) {
    add_to_counter(&WAIT_HOLDERS, &WaitHolderKey { waiter, holder }, ns, Counter::WaitHoldersMapFull);
}

/// A thread of `tgid` got this CPU at `now` after waiting `held_ns` for a
/// CPU others held (0: no such wait), the last `here_ns` of it on this CPU's
/// run queue.
#[inline(always)]
pub fn got_cpu(tgid: u32, held_ns: u64, here_ns: u64, now: u64) {
    if !holders_enabled() || held_ns == 0 {
        return;
    }
    let here_ns = if here_ns < held_ns { here_ns } else { held_ns };
    let mut named = 0;
    slices::for_each_holder::<CPU_SLICE_RING>(now - here_ns, now, |holder, ns| {
        charge(tgid, holder, ns);
        named += ns;
    });
    if held_ns > named {
        charge(tgid, HOLDER_UNFOLLOWED, held_ns - named);
    }
}
