//! A run's on-CPU time as the thread's own CPU clock counts it
//! (`se.sum_exec_runtime`: schedstat, `CLOCK_THREAD_CPUTIME_ID`, top).
//!
//! The kernel charges a run from `se.exec_start`, the run queue's clock when
//! the thread was picked; when the switch skipped its clock update (after a
//! wake-up that preempted the running task, or on an idle CPU) that is the
//! clock read at the wake-up's enqueue, before the wake-up tracepoint fires,
//! so the wait that follows is the thread's CPU time there. The run ends at
//! the clock's last update in `__schedule`, before the switch tracepoint
//! fires (picking the next task, balancing an idle CPU, in between), and the
//! clock leaves out time the hypervisor gave the virtual CPU to others
//! (steal, with paravirtual steal accounting). At a switch-out the counter
//! is exact, so a run seen whole (one switch-in, one switch-out) counts what
//! it says, and the difference with the tracepoints' period moves to the
//! run's neighbours, so that the parts still sum to wall time:
//! - the kernel counted more: the run began before its switch-in, in the
//!   wait before it, then in the blocked period before that;
//! - it counted less: the run ended before its switch-out, and the state the
//!   thread leaves into begins that much earlier; except the time taken
//!   from the thread while it held the CPU (steal), which the kernel counts
//!   neither as its CPU time nor as waiting (`run_delay`): that is a wait
//!   for a CPU of its own (`stolen_ns`). The kernel's tracepoints lag its
//!   clock by a few microseconds at a switch; only a larger shortfall is
//!   worth the reads that tell steal from that lag.
use tracer_common::{OffCpuState, THREAD_WOKEN_ON_IDLE, ThreadStats};

use crate::kernel::Task;

/// A run the kernel counted shorter than its tracepoints by more than this
/// is checked for steal (see the module's documentation).
const STEAL_CHECKED_ABOVE_NS: u64 = 10_000;

/// Credits a run of `period` ns by the tracepoints that the kernel's clock
/// counted as `exec_ns` (`task`: the thread, at its switch-out). Returns how
/// much earlier than the switch-out the run ended by the kernel's clock
/// (more than `period` when the kernel did not charge the idle wake-up
/// before it either: the state the thread leaves into then covers that too).
#[inline(always)]
pub fn settle_run<const TYPED: bool>(
    stats: &mut ThreadStats,
    period: u64,
    exec_ns: u64,
    task: Option<Task<TYPED>>,
) -> u64 {
    // A wake-up on an idle CPU was counted on-CPU at the switch-in already.
    let woken_on_idle = stats.flags & THREAD_WOKEN_ON_IDLE != 0;
    let counted = if woken_on_idle { period + stats.last_wait_ns } else { period };
    if exec_ns < counted {
        // A wake-up on an idle CPU that the kernel did not charge (its clock
        // was read after the CPU left idle) gives back the part credited at
        // the switch-in too: the thread was not running yet.
        let short = counted - exec_ns;
        let from_wakeup = short.saturating_sub(period);
        stats.totals.on_cpu_ns = stats.totals.on_cpu_ns.saturating_sub(from_wakeup) + period - short.min(period);
        stats.totals.wakeup_idle_ns = stats.totals.wakeup_idle_ns.saturating_sub(from_wakeup);
        let in_run = short.min(period);
        let stolen = match task {
            Some(task) if in_run > STEAL_CHECKED_ABOVE_NS => task.stolen_during_run(exec_ns).unwrap_or(0).min(in_run),
            _ => 0,
        };
        stats.totals.runq_wait_ns += stolen;
        stats.totals.stolen_ns += stolen;
        return short - stolen;
    }
    let mut earlier = exec_ns - counted;
    stats.totals.on_cpu_ns += period;
    if !woken_on_idle {
        // The throttled part of the wait is its start: never the run's.
        let movable = stats.totals.runq_wait_ns.saturating_sub(stats.totals.throttled_ns);
        let from_wait = earlier.min(stats.last_wait_ns).min(movable);
        stats.totals.runq_wait_ns -= from_wait;
        if stats.last_blocked_state == OffCpuState::Preempted as u32 {
            stats.totals.preempted_ns = stats.totals.preempted_ns.saturating_sub(from_wait);
        }
        stats.totals.on_cpu_ns += from_wait;
        earlier -= from_wait;
    }
    let from_blocked = earlier.min(stats.last_blocked_ns);
    let taken = match OffCpuState::from_u32(stats.last_blocked_state) {
        Some(OffCpuState::Sleep) => &mut stats.totals.sleep_ns,
        Some(OffCpuState::Uninterruptible) => &mut stats.totals.uninterruptible_ns,
        Some(OffCpuState::Iowait) => {
            stats.totals.iowait_ns = stats.totals.iowait_ns.saturating_sub(from_blocked);
            &mut stats.totals.uninterruptible_ns
        }
        Some(OffCpuState::Preempted) => return 0,
        _ => &mut stats.totals.unaccounted_ns,
    };
    let from_blocked = from_blocked.min(*taken);
    *taken -= from_blocked;
    stats.totals.on_cpu_ns += from_blocked;
    0
}
