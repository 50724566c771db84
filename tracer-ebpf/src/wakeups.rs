//! When a thread's wait for a CPU began: at its wakeup (the wakeup
//! programs), or, where the kernel allows it, placed at its switch-in from
//! the kernel's own record of the wait, so that no program runs at wakeups.
use tracer_common::{Counter, OffCpuState, TIMELINE_RUNNABLE, ThreadStats};

use crate::{
    kernel::TaskPtr,
    maps::count,
    sched::{close_blocked, counted_since, remember_sample},
    throttle, timeline,
};

/// The thread became runnable: its run-queue wait starts now, unless it is
/// still on a CPU (woken before it managed to block) or already queued.
/// `task` is the kernel's task when readable: if it says the thread is off
/// every CPU while the entry says it is on one, its switch-out was not
/// reported; the counters say how long it ran, and the kernel's record of
/// how it blocked gives the state of the rest. Returns whether a wait began.
#[inline(always)]
pub fn on_wakeup(tid: u32, stats: &mut ThreadStats, now: u64, task: Option<TaskPtr>) -> bool {
    if stats.on_cpu_since_ns != 0
        && now > stats.on_cpu_since_ns
        && let Some(task) = task
        && task.off_cpu() == Some(true)
    {
        let kernel = task.sched_counters();
        let period = now - stats.on_cpu_since_ns;
        let ran = counted_since(stats, kernel).map_or(0, |counted| counted.exec_ns.min(period));
        stats.totals.on_cpu_ns += ran;
        stats.totals.voluntary_switches += 1;
        stats.off_cpu_since_ns = stats.on_cpu_since_ns + ran;
        stats.off_cpu_state = task.blocked_state() as u32;
        stats.on_cpu_since_ns = 0;
        remember_sample(stats, kernel);
        count(Counter::AccountingGaps);
        timeline::transition(tid, stats, stats.off_cpu_since_ns, stats.off_cpu_state);
    }
    let began = begin_wait(tid, stats, now);
    if began {
        throttle::wait_begins(stats, task);
    }
    began
}

/// Where the wakeup programs are not attached (`wakeups_at_switch_in`):
/// the wakeup of a blocked thread (`task`) being switched in at `now`,
/// placed from the kernel's record of its wait (`Task::queued_here_ns`).
/// Such a kernel (Linux 6.18 on) throttles a thread by taking it off the
/// run queue on its way back to user space, never while it waits after a
/// wakeup, so nothing was to be read then.
#[inline(always)]
pub fn woken_before_switch_in(tid: u32, stats: &mut ThreadStats, now: u64, task: TaskPtr) {
    if stats.on_cpu_since_ns != 0 || stats.runnable_since_ns != 0 {
        return;
    }
    let Some(mut queued) = task.queued_here_ns() else { return };
    // Moved from another CPU's run queue while it waited: the kernel added
    // the wait there to `run_delay` at the move. Only when the counters saw
    // no run since its switch-out (one the tracepoints missed).
    if let Some(counted) = counted_since(stats, task.sched_counters())
        && counted.runs == 0
    {
        queued += counted.run_delay_ns;
    }
    let woken = now.saturating_sub(queued);
    let woken = if woken > stats.off_cpu_since_ns { woken } else { stats.off_cpu_since_ns };
    begin_wait(tid, stats, woken);
}

/// The wait for a CPU of a thread that is neither running nor waiting
/// (blocked, or never seen) begins at `at`, closing its blocked period.
/// Returns whether it began.
#[inline(always)]
fn begin_wait(tid: u32, stats: &mut ThreadStats, at: u64) -> bool {
    if stats.on_cpu_since_ns != 0 || stats.runnable_since_ns != 0 {
        return false;
    }
    close_blocked(stats, at);
    stats.off_cpu_state = OffCpuState::Unknown as u32;
    stats.runnable_since_ns = at;
    timeline::transition(tid, stats, at, TIMELINE_RUNNABLE);
    true
}
