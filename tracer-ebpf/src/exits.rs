//! A thread's last switch: its final totals go to the loader.
use tracer_common::{Counter, OffCpuState, THREAD_DEAD, ThreadExit, ThreadStats};

use crate::maps::{EXITS, THREADS, count};

/// Sends the final totals of an exiting thread and forgets it. When the
/// record cannot be sent, the entry stays, marked dead, for the loader to
/// collect from the map instead, so no totals are lost.
#[inline(always)]
pub fn finish_thread(tid: u32, stats: &mut ThreadStats, now: u64) {
    stats.off_cpu_since_ns = 0;
    stats.off_cpu_state = OffCpuState::Unknown as u32;
    let Some(mut record) = EXITS.reserve::<ThreadExit>(0) else {
        stats.flags |= THREAD_DEAD;
        count(Counter::LostExits);
        return;
    };
    let exit = record.as_mut_ptr();
    // SAFETY: `exit` is the reserved record, valid for writes of a whole
    // `ThreadExit`; every field is written once before it is submitted. In
    // place: a `ThreadExit` (a whole `ThreadStats`) built on the stack first
    // left the switch programs without stack.
    unsafe {
        (&raw mut (*exit).tid).write(tid);
        (&raw mut (*exit)._pad).write(0);
        (&raw mut (*exit).exit_ns).write(now);
        core::ptr::copy_nonoverlapping(stats, &raw mut (*exit).stats, 1);
    }
    record.submit(0);
    let _ = THREADS.remove(tid);
}
