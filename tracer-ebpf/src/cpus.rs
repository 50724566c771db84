//! The per-CPU view: each CPU's run-queue length over time, from the
//! kernel's own count of its runnable tasks. One event per change of a run
//! queue (an enqueue or a dequeue), not per sample, so the time-weighted
//! length is exact.
use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};
use tracer_common::RUNQ_LEN_SLOTS;

use crate::{
    kernel::{RqPtr, cpu_queues_enabled, now_ns},
    maps::CPU_QUEUES,
};

/// `sched_update_nr_running_tp(struct rq *rq, int change)`: called with
/// `rq`'s lock held, after its count changed.
#[btf_tracepoint(function = "sched_update_nr_running_tp")]
pub fn btf_sched_update_nr_running(ctx: BtfTracePointContext) -> u32 {
    if cpu_queues_enabled() {
        on_change(RqPtr(ctx.arg::<*const u8>(0)));
    }
    0
}

#[inline(always)]
fn on_change(rq: RqPtr) {
    let (Some(running), Some(cpu)) = (rq.nr_running(), rq.cpu()) else { return };
    let Some(queue) = CPU_QUEUES.get_ptr_mut(cpu) else { return };
    // SAFETY: this CPU's run-queue entry; every writer holds its rq lock.
    let queue = unsafe { &mut *queue };
    let now = now_ns();
    if queue.since_ns != 0 && now > queue.since_ns {
        let slot = (queue.len as usize).min(RUNQ_LEN_SLOTS - 1);
        queue.time_at_len[slot] += now - queue.since_ns;
    }
    // The running task is on the queue too; the others wait.
    queue.len = running.saturating_sub(1);
    queue.since_ns = now;
}
