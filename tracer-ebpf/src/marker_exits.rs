//! The span marker ring of a process whose last thread is exiting. The
//! tracer reads each ring a few times a second; the records written since
//! its last read would go with the process's memory, so they are copied
//! out here, while that memory is still there: kernels whose
//! `sched_process_exit` says whether the thread is the last one (Linux 6.18
//! does) report it before the exiting thread lets go of the memory.
use aya_ebpf::{
    cty::c_void, helpers::generated::bpf_loop, macros::btf_tracepoint, programs::BtfTracePointContext,
};
use tracer_common::{
    Counter, MARKER_HEAD_OFFSET, MARKER_RECORDS_OFFSET, MARKER_RING_RECORDS, MARKER_TAIL_OFFSET, MarkerExitRecord,
    MarkerRecord,
};

use crate::{
    kernel::{TaskPtr, read_user},
    maps::{MARKER_EXITS, MARKER_RINGS, count_many, wake_when_filling},
};

/// `sched_process_exit(task_struct *p, bool group_dead)`.
#[btf_tracepoint(function = "sched_process_exit")]
pub fn btf_sched_process_exit(ctx: BtfTracePointContext) -> u32 {
    if ctx.arg::<u8>(1) != 0 {
        copy_unread(TaskPtr::arg(&ctx, 0).tgid());
    }
    0
}

/// Copies the records of `tgid`'s ring the tracer has not read (from the
/// read position it leaves in the ring to the library's write position).
#[inline(always)]
fn copy_unread(tgid: u32) {
    // SAFETY: the value is copied out at once.
    let Some(&ring_at) = (unsafe { MARKER_RINGS.get(&tgid) }) else { return };
    let (Some(head), Some(tail)) =
        (read_user::<u64>(ring_at + MARKER_HEAD_OFFSET as u64), read_user::<u64>(ring_at + MARKER_TAIL_OFFSET as u64))
    else {
        return;
    };
    let unread = head.wrapping_sub(tail);
    let unread = if unread > MARKER_RING_RECORDS as u64 { MARKER_RING_RECORDS as u64 } else { unread };
    let mut copy = Copy { ring_at, first: head - unread, unread, tgid, _pad: 0 };
    // SAFETY: `copy_record` takes the `Copy` it is given; bpf_loop calls it
    // with that pointer only, at most `unread` (a ring's size) times.
    unsafe {
        bpf_loop(unread as u32, copy_record as *mut c_void, (&raw mut copy).cast(), 0);
    }
}

/// `bpf_loop`'s context: which ring, from which position.
#[repr(C)]
struct Copy {
    ring_at: u64,
    first: u64,
    unread: u64,
    tgid: u32,
    _pad: u32,
}

/// One step: the record at position `first + index`. Returns 1 to stop
/// when the record cannot be read or the ring buffer is full: the records
/// left, this one included, are counted lost.
extern "C" fn copy_record(index: u64, copy: *mut c_void) -> i64 {
    // SAFETY: bpf_loop passes back the `Copy` of `copy_unread`.
    let copy = unsafe { &*copy.cast::<Copy>() };
    let slot = (copy.first + index) % MARKER_RING_RECORDS as u64;
    let at = copy.ring_at + MARKER_RECORDS_OFFSET as u64 + slot * size_of::<MarkerRecord>() as u64;
    let entry = read_user::<MarkerRecord>(at)
        .and_then(|record| MARKER_EXITS.reserve::<MarkerExitRecord>(0).map(|entry| (entry, record)));
    let Some((mut entry, record)) = entry else {
        count_many(Counter::LostMarkerExits, copy.unread - index);
        return 1;
    };
    entry.write(MarkerExitRecord { tgid: copy.tgid, _pad: 0, record });
    entry.submit(wake_when_filling(&MARKER_EXITS));
    0
}
