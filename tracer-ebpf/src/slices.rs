//! Per-CPU ring of recent run slices: which process had this CPU, and when.
//! Written at every switch while spans, the timeline or the holders' sums
//! are on; read at a switch-in to tell who held the CPU while the thread
//! waited for it (span blame, the timeline's holder records, the holders'
//! sums). A leaf module, so that `spans`, `timeline` and `holders` can read
//! it without depending on each other.
use tracer_common::{CPU_SLICE_RING, CpuSlice, CpuSlices, SPAN_SLICES_READ};

use crate::{kernel::this_cpu, maps::CPU_SLICES};

#[inline(always)]
fn ring() -> Option<&'static mut CpuSlices> {
    // SAFETY: this CPU's entry, written only from sched_switch on this CPU
    // and read on this CPU; a map value stays valid for the program's run.
    CPU_SLICES.get_ptr_mut(this_cpu()).map(|ring| unsafe { &mut *ring })
}

/// Remembers that `tgid` had this CPU from the last switch until `now`.
#[inline(always)]
pub fn record(tgid: u32, now: u64) {
    let Some(ring) = ring() else { return };
    if ring.current_start != 0 {
        let at = (ring.head as usize) % CPU_SLICE_RING;
        ring.slices[at].tgid = tgid;
        ring.slices[at].start = ring.current_start;
        ring.slices[at].end = now;
        ring.head = ring.head.wrapping_add(1);
    }
    ring.current_start = now;
}

/// The run slice of `cpu` that ended `back` switches ago (0: the newest).
/// Array lookups are inlined by the verifier: this is a bounds check and
/// an address, cheap enough for every step of a `bpf_loop`.
#[inline(always)]
pub fn back(cpu: u32, back: u64) -> Option<CpuSlice> {
    // SAFETY: a map value stays valid for the program's run.
    let ring = unsafe { &*CPU_SLICES.get_ptr(cpu)? };
    let at = (ring.head as usize).wrapping_sub(back as usize + 1) % CPU_SLICE_RING;
    Some(ring.slices[at])
}

/// Calls `f(tgid, ns)` for each run slice of this CPU that overlapped
/// `since..now`, with the overlap, newest first. Reads back at most
/// `SPAN_SLICES_READ` slices: the span programs' room under the verifier's
/// limits is small. The holders' sums read the whole ring with `bpf_loop`
/// (`holders`), one `overlap` per step.
#[inline(always)]
pub fn for_each_holder(since: u64, now: u64, mut f: impl FnMut(u32, u64)) {
    let Some(ring) = ring() else { return };
    for back in 1..=SPAN_SLICES_READ {
        let at = (ring.head as usize).wrapping_sub(back) % CPU_SLICE_RING;
        let slice = ring.slices[at];
        if slice.end <= since {
            break;
        }
        if let Some(ns) = overlap(&slice, since, now) {
            f(slice.tgid, ns);
        }
    }
}

/// How long `slice` overlapped `since..now`, if at all.
#[inline(always)]
pub fn overlap(slice: &CpuSlice, since: u64, now: u64) -> Option<u64> {
    let start = if slice.start > since { slice.start } else { since };
    let end = if slice.end < now { slice.end } else { now };
    (end > start).then(|| end - start)
}
