//! Per-CPU ring of recent run slices: which process had this CPU, and when.
//! Written at every switch while spans or the timeline are on; read to tell
//! who held the CPU while a traced thread waited for it (span blame, the
//! timeline's holder records). A leaf module, so that both `spans` and
//! `timeline` can read it without depending on each other.
use tracer_common::CPU_SLICE_RING;

use crate::maps::CPU_SLICES;

/// Remembers that `tgid` had this CPU from the last switch until `now`.
#[inline(always)]
pub fn record(tgid: u32, now: u64) {
    let Some(ring) = CPU_SLICES.get_ptr_mut(0) else { return };
    // SAFETY: this CPU's slot, written only from sched_switch on this CPU.
    let ring = unsafe { &mut *ring };
    if ring.current_start != 0 {
        let at = (ring.head as usize) % CPU_SLICE_RING;
        ring.slices[at].tgid = tgid;
        ring.slices[at].start = ring.current_start;
        ring.slices[at].end = now;
        ring.head = ring.head.wrapping_add(1);
    }
    ring.current_start = now;
}

/// Calls `f(tgid, ns)` for each run slice of this CPU that overlapped
/// `since..now`, with the overlap.
#[inline(always)]
pub fn for_each_holder(since: u64, now: u64, mut f: impl FnMut(u32, u64)) {
    let Some(ring) = CPU_SLICES.get_ptr(0) else { return };
    // SAFETY: this CPU's slot, read on this CPU.
    let ring = unsafe { &*ring };
    for back in 1..=CPU_SLICE_RING {
        let at = (ring.head as usize).wrapping_sub(back) % CPU_SLICE_RING;
        let slice = ring.slices[at];
        if slice.end <= since {
            break;
        }
        let start = if slice.start > since { slice.start } else { since };
        let end = if slice.end < now { slice.end } else { now };
        if end > start {
            f(slice.tgid, end - start);
        }
    }
}
