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

use crate::kernel::{Task, TaskPtr, cfs_rq_throttled_ns};

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
        wait_begins(stats, Some(task));
    }
}

/// A wait for a CPU begins: reads the throttled time of the run queue the
/// thread left last (`task` is the thread, when known).
#[inline(always)]
pub fn wait_begins<const TYPED: bool>(stats: &mut ThreadStats, task: Option<Task<TYPED>>) {
    if stats.cfs_rq == 0 {
        return;
    }
    if let Some(throttled) = throttled_ns(stats.cfs_rq, task) {
        stats.cfs_rq_throttled_at_wait_ns = throttled;
        stats.flags |= THREAD_THROTTLE_SAMPLED;
    }
}

/// The throttled part of a wait of `wait_ns` that ends now on `cpu`, for a
/// thread whose wait began with a reading. Only on the CPU it left: a thread
/// that moved waited on another CPU's run queue, which was not read.
#[inline(always)]
pub fn throttled_part(stats: &ThreadStats, cpu: u32, wait_ns: u64, task: Option<TaskPtr>) -> u64 {
    if cpu != stats.last_cpu {
        return 0;
    }
    let Some(throttled) = throttled_ns(stats.cfs_rq, task) else {
        return 0;
    };
    throttled
        .saturating_sub(stats.cfs_rq_throttled_at_wait_ns)
        .min(wait_ns)
}

/// The throttled time of run queue `cfs_rq`, through `task` when known.
#[inline(always)]
fn throttled_ns<const TYPED: bool>(cfs_rq: u64, task: Option<Task<TYPED>>) -> Option<u64> {
    match task {
        Some(task) => task.throttled_ns(cfs_rq),
        None => cfs_rq_throttled_ns(cfs_rq),
    }
}
