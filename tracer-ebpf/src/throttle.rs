//! CPU-quota throttling: the part of a wait for a CPU during which the
//! thread's cgroup (or an ancestor) was throttled on that CPU by its quota.
//!
//! The kernel keeps, per cgroup and CPU, how long that CFS run queue has been
//! throttled while it had tasks (`cfs_rq.throttled_clock_self_time`, plus the
//! throttle in progress). Read when a wait begins and when it ends, on the
//! run queue the thread was on, its growth is the throttled part of the wait.
//! Since Linux 6.18 a throttled thread leaves the run queue on its way back to
//! user space and is put back at the unthrottle without a wakeup, so the
//! sched tracepoints see a switch-out while runnable and a later switch-in:
//! one wait, mostly throttled. Nobody held the CPU from it meanwhile.
use tracer_common::{CPU_UNKNOWN, THREAD_THROTTLE_SAMPLED, ThreadStats};

use crate::kernel::{Task, cfs_rq_throttled_ns};

/// The thread is leaving `cpu` (`task` is the thread): remembers its run
/// queue, and when it stays runnable, its wait begins now.
#[inline(always)]
pub fn on_switch_out<const TYPED: bool>(stats: &mut ThreadStats, task: Task<TYPED>, cpu: u32, runnable: bool) {
    stats.cfs_rq = task.cfs_rq().unwrap_or(0);
    if stats.last_cpu == CPU_UNKNOWN {
        // Tracked from this switch-out on (classic tracepoints with a
        // filter): the run queue read is this CPU's, which the switch-in
        // compares with.
        stats.last_cpu = cpu;
    }
    stats.flags &= !THREAD_THROTTLE_SAMPLED;
    if runnable {
        wait_begins(stats);
    }
}

/// A wait for a CPU begins: reads the throttled time of the run queue the
/// thread left last.
#[inline(always)]
pub fn wait_begins(stats: &mut ThreadStats) {
    if stats.cfs_rq == 0 {
        return;
    }
    if let Some(throttled) = cfs_rq_throttled_ns(stats.cfs_rq) {
        stats.cfs_rq_throttled_at_wait_ns = throttled;
        stats.flags |= THREAD_THROTTLE_SAMPLED;
    }
}

/// The throttled part of a wait of `wait_ns` that ends now on `cpu`, for a
/// thread whose wait began with a reading. Only on the CPU it left: a thread
/// that moved waited on another CPU's run queue, which was not read.
#[inline(always)]
pub fn throttled_part(stats: &ThreadStats, cpu: u32, wait_ns: u64) -> u64 {
    if cpu != stats.last_cpu {
        return 0;
    }
    let Some(throttled) = cfs_rq_throttled_ns(stats.cfs_rq) else {
        return 0;
    };
    throttled
        .saturating_sub(stats.cfs_rq_throttled_at_wait_ns)
        .min(wait_ns)
}
