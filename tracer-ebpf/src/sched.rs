//! Per-thread accounting, shared by both attach mechanisms.
//!
//! A thread is always in one of: on a CPU (`on_cpu_since_ns`), runnable and
//! waiting for a CPU (`runnable_since_ns`), or blocked (`off_cpu_since_ns`,
//! with the state it blocked in). Each transition closes the current period
//! and adds it to the matching total, so at any moment
//! on-CPU + run-queue wait + uninterruptible + sleep covers all observed time.
use aya_ebpf::bindings::{BPF_NOEXIST, BPF_RB_NO_WAKEUP};
use tracer_common::{
    CPU_UNKNOWN, Counter, KernelSchedCounters, OffCpuState, RUNQ_WOKEN_ON_IDLE, RunqEvent, TASK_COMM_LEN,
    THREAD_KERNEL_SAMPLED, THREAD_THROTTLE_SAMPLED, THREAD_WOKEN_ON_IDLE, TIMELINE_ON_CPU,
    ThreadStats, ThreadTotals,
};

use crate::{
    clock, exits,
    kernel::{Task, TaskPtr, current_task, now_ns, runq_waits_enabled, spans_enabled, this_cpu},
    maps::{CLOCK_OFFSETS, RUNQ_EVENTS, THREADS, count},
    throttle, timeline,
};

/// How a thread left the CPU.
#[derive(Clone, Copy)]
pub struct SwitchOut {
    pub state: OffCpuState,
    /// The thread is exiting: this is its last switch.
    pub dead: bool,
}

/// `-EEXIST` from a `BPF_NOEXIST` insert: the key is already there.
const EEXIST: i32 = 17;

const TASK_RUNNING: u32 = 0;
const TASK_UNINTERRUPTIBLE: u32 = 0x2;
const TASK_DEAD: u32 = 0x80;
const TASK_NOLOAD: u32 = 0x400;

/// Classifies the raw `prev->__state` handed to the BTF tracepoint;
/// `in_iowait` is only consulted for uninterruptible sleeps.
#[inline(always)]
pub fn switch_out_from_raw_state(preempt: bool, state: u32, in_iowait: impl FnOnce() -> bool) -> SwitchOut {
    let state_class = if preempt || state == TASK_RUNNING {
        OffCpuState::Preempted
    } else if state & TASK_NOLOAD != 0 {
        // TASK_IDLE: kernel threads waiting for work, not load.
        OffCpuState::Sleep
    } else if state & TASK_UNINTERRUPTIBLE != 0 {
        if in_iowait() { OffCpuState::Iowait } else { OffCpuState::Uninterruptible }
    } else {
        OffCpuState::Sleep
    };
    SwitchOut {
        state: state_class,
        dead: !preempt && state & TASK_DEAD != 0,
    }
}

/// Classifies the classic tracepoint's `prev_state`, which the kernel
/// reports as `1 << (state index - 1)`, or `TASK_REPORT_MAX` when preempted.
#[inline(always)]
pub fn switch_out_from_reported_state(state: u64) -> SwitchOut {
    const REPORT_D: u64 = 0x2;
    const REPORT_X: u64 = 0x10;
    const REPORT_Z: u64 = 0x20;
    const REPORT_MAX: u64 = 0x100;
    let state_class = if state == 0 || state & REPORT_MAX != 0 {
        OffCpuState::Preempted
    } else if state == REPORT_D {
        OffCpuState::Uninterruptible
    } else {
        OffCpuState::Sleep
    };
    SwitchOut {
        state: state_class,
        dead: state & REPORT_MAX == 0 && state & (REPORT_X | REPORT_Z) != 0,
    }
}

/// The thread's entry, if it is tracked.
#[inline(always)]
pub fn lookup(tid: u32) -> Option<&'static mut ThreadStats> {
    // SAFETY: a map value stays valid for the program's run; concurrent
    // writers for one TID would be two CPUs switching the same thread, which
    // the scheduler excludes (wakeups only touch a thread that is off-CPU).
    THREADS.get_ptr_mut(tid).map(|entry| unsafe { &mut *entry })
}

/// The thread's entry, created on first sight. `comm` is only called then.
#[inline(always)]
pub fn lookup_or_track(
    tid: u32,
    tgid: u32,
    comm: impl FnOnce() -> [u8; TASK_COMM_LEN],
) -> Option<&'static mut ThreadStats> {
    if let Some(entry) = lookup(tid) {
        return Some(entry);
    }
    if !track(tid, tgid, comm()) {
        return None;
    }
    lookup(tid)
}

/// Creates the entry of a thread seen for the first time. Not inlined: the
/// new entry is built on the stack, and in the syscall programs its frame
/// would not fit next to the span code's.
#[inline(never)]
fn track(tid: u32, tgid: u32, comm: [u8; TASK_COMM_LEN]) -> bool {
    let fresh = ThreadStats {
        tgid,
        flags: 0,
        comm,
        on_cpu_since_ns: 0,
        runnable_since_ns: 0,
        off_cpu_since_ns: 0,
        off_cpu_state: OffCpuState::Unknown as u32,
        last_cpu: CPU_UNKNOWN,
        queued_cpu: CPU_UNKNOWN,
        queued_slot: 0,
        last_blocked_ns: 0,
        last_blocked_state: OffCpuState::Unknown as u32,
        syscall_nr: 0,
        syscall_since_ns: 0,
        span_id: 0,
        syscall_file: 0,
        syscall_buf: 0,
        http_file: 0,
        woken_at_ns: 0,
        last_wait_ns: 0,
        cfs_rq: 0,
        cfs_rq_throttled_at_wait_ns: 0,
        totals: ThreadTotals::ZERO,
        kernel: KernelSchedCounters { exec_ns: 0, run_delay_ns: 0, runs: 0 },
    };
    // Losing the NOEXIST race to another CPU is fine: the lookup finds theirs.
    if let Err(err) = THREADS.insert(tid, fresh, BPF_NOEXIST as u64)
        && err != -EEXIST
    {
        count(Counter::ThreadsMapFull);
        return false;
    }
    true
}

/// Closes a blocked period at wakeup (or at switch-in if the wakeup was not
/// seen) and credits it to the state the thread blocked in.
#[inline(always)]
pub fn close_blocked(stats: &mut ThreadStats, now: u64) {
    stats.last_blocked_ns = 0;
    stats.last_blocked_state = OffCpuState::Unknown as u32;
    if stats.off_cpu_since_ns != 0 && now > stats.off_cpu_since_ns {
        let blocked = now - stats.off_cpu_since_ns;
        credit_blocked(stats, blocked);
        stats.last_blocked_ns = blocked;
        stats.last_blocked_state = stats.off_cpu_state;
    }
    stats.off_cpu_since_ns = 0;
}

#[inline(always)]
fn credit_blocked(stats: &mut ThreadStats, blocked: u64) {
    match OffCpuState::from_u32(stats.off_cpu_state) {
        Some(OffCpuState::Uninterruptible) => stats.totals.uninterruptible_ns += blocked,
        Some(OffCpuState::Iowait) => {
            stats.totals.uninterruptible_ns += blocked;
            stats.totals.iowait_ns += blocked;
        }
        Some(OffCpuState::Sleep) => stats.totals.sleep_ns += blocked,
        _ => stats.totals.unaccounted_ns += blocked,
    }
}

/// What the kernel's counters say happened since the last sample.
#[inline(always)]
pub fn counted_since(stats: &ThreadStats, kernel: Option<KernelSchedCounters>) -> Option<KernelSchedCounters> {
    let kernel = kernel?;
    if stats.flags & THREAD_KERNEL_SAMPLED == 0 {
        return None;
    }
    Some(KernelSchedCounters {
        exec_ns: kernel.exec_ns.saturating_sub(stats.kernel.exec_ns),
        run_delay_ns: kernel.run_delay_ns.saturating_sub(stats.kernel.run_delay_ns),
        runs: kernel.runs.saturating_sub(stats.kernel.runs),
    })
}

#[inline(always)]
pub fn remember_sample(stats: &mut ThreadStats, kernel: Option<KernelSchedCounters>) {
    if let Some(kernel) = kernel {
        stats.kernel = kernel;
        stats.flags |= THREAD_KERNEL_SAMPLED;
    }
}

/// The period from the thread's last known transition until `until`, whose
/// switches the sched tracepoints did not report, split with the kernel's
/// counters: `counted.exec_ns` on a CPU, `counted.run_delay_ns` waiting for
/// one, the rest in the state it was last seen blocking in. Without the
/// counters all of it is unaccounted.
#[inline(always)]
fn fill_unreported(stats: &mut ThreadStats, until: u64, counted: Option<KernelSchedCounters>) {
    let known = if stats.runnable_since_ns != 0 { stats.runnable_since_ns } else { stats.off_cpu_since_ns };
    if known == 0 || until <= known {
        return;
    }
    count(Counter::AccountingGaps);
    let period = until - known;
    let Some(counted) = counted else {
        stats.totals.unaccounted_ns += period;
        return;
    };
    // Both clocks tick at the same rate but are read at slightly different
    // moments: never credit more than the period.
    let ran = counted.exec_ns.min(period);
    let waited = counted.run_delay_ns.min(period - ran);
    stats.totals.on_cpu_ns += ran;
    stats.totals.runq_wait_ns += waited;
    stats.totals.runq_waits += counted.runs;
    let rest = period - ran - waited;
    if stats.runnable_since_ns == 0 {
        credit_blocked(stats, rest);
    } else if counted.runs <= 1 {
        // Runnable throughout, given a CPU at most once: running or waiting.
        // What the kernel's clocks leave out (interrupts, steal, reads just
        // before the tracepoints) goes to the wait, as `clock::settle_run` does.
        stats.totals.runq_wait_ns += rest;
    } else {
        stats.totals.unaccounted_ns += rest;
    }
}

/// `fill_unreported` at a switch-out, for a thread whose wait began with a
/// reading of its run queue's throttled time: the throttled time since then
/// was part of the wait (a throttled thread does not run), so that much of
/// what the counters could not place, or of the run-queue wait they did
/// place, is throttled wait. Not for the uprobe programs, which have no room.
#[inline(always)]
fn fill_unreported_with_throttling(stats: &mut ThreadStats, until: u64, counted: Option<KernelSchedCounters>) {
    let throttled = if stats.flags & THREAD_THROTTLE_SAMPLED != 0 && stats.runnable_since_ns != 0 {
        throttle::throttled_part(stats, this_cpu(), until.saturating_sub(stats.runnable_since_ns), None)
    } else {
        0
    };
    let (unaccounted_before, waited_before) = (stats.totals.unaccounted_ns, stats.totals.runq_wait_ns);
    fill_unreported(stats, until, counted);
    let waited = stats.totals.runq_wait_ns - waited_before;
    let unplaced = stats.totals.unaccounted_ns - unaccounted_before;
    let placed_now = throttled.saturating_sub(waited).min(unplaced);
    stats.totals.unaccounted_ns -= placed_now;
    stats.totals.runq_wait_ns += placed_now;
    stats.totals.throttled_ns += throttled.min(waited + placed_now);
}

/// The thread left the CPU. `task` is the kernel's task, when readable.
#[inline(always)]
pub fn on_switch_out<const TYPED: bool>(
    tid: u32,
    stats: &mut ThreadStats,
    out: SwitchOut,
    now: u64,
    task: Option<Task<TYPED>>,
) {
    let kernel = task.and_then(Task::sched_counters);
    let counted = counted_since(stats, kernel);
    if stats.on_cpu_since_ns == 0 && stats.last_cpu != CPU_UNKNOWN {
        // It ran, but its switch-in was not reported.
        fill_unreported_with_throttling(stats, now, counted);
    }
    let mut left_early = 0;
    if stats.on_cpu_since_ns != 0 && now > stats.on_cpu_since_ns {
        let period = now - stats.on_cpu_since_ns;
        match counted {
            Some(counted) if counted.runs > 1 => {
                // It got a CPU more than once since its last switch-out: a
                // switch-out and a switch-in in between were not reported.
                // All its CPU time since then is inside this period.
                let ran = counted.exec_ns.min(period);
                let off = period - ran;
                let waited = counted.run_delay_ns.saturating_sub(stats.last_wait_ns).min(off);
                stats.totals.on_cpu_ns += ran;
                stats.totals.runq_wait_ns += waited;
                stats.totals.runq_waits += counted.runs - 1;
                stats.totals.unaccounted_ns += off - waited;
                count(Counter::AccountingGaps);
            }
            Some(counted) if counted.runs == 1 => {
                left_early = clock::settle_run(stats, period, counted.exec_ns, task);
                // Only the span programs convert arrivals (`catch_up_running`).
                if spans_enabled()
                    && let Some(task) = task
                {
                    learn_clock_offset(stats, task);
                }
            }
            _ => stats.totals.on_cpu_ns += period,
        }
    }
    let left = now - left_early;
    remember_sample(stats, kernel);
    stats.woken_at_ns = 0;
    stats.on_cpu_since_ns = 0;
    stats.last_blocked_ns = 0;
    stats.last_blocked_state = OffCpuState::Unknown as u32;
    stats.off_cpu_state = out.state as u32;
    if out.state == OffCpuState::Preempted {
        stats.totals.involuntary_switches += 1;
        stats.runnable_since_ns = left;
        stats.off_cpu_since_ns = 0;
    } else {
        stats.totals.voluntary_switches += 1;
        stats.runnable_since_ns = 0;
        stats.off_cpu_since_ns = left;
    }
    timeline::transition(tid, stats, now, out.state as u32);
    if out.dead {
        exits::finish_thread(tid, stats, now);
    }
}

/// A run-queue wait that just ended, and the off-CPU episode it closed.
pub struct Waited {
    pub wait_ns: u64,
    pub blocked_ns: u64,
    pub blocked_state: u32,
    /// Woken onto an idle CPU: `wait_ns` was the CPU leaving idle, which
    /// nobody is blamed for.
    pub idle: bool,
    /// The part of `wait_ns` its cgroup was throttled by its CPU quota: at
    /// the start of the wait (the throttle is why it left the CPU), and
    /// nobody is blamed for it either.
    pub throttled_ns: u64,
}

/// Called by a program running on behalf of the thread itself (a uprobe): if
/// its switch-in was not reported, the entry still says it is off the CPU.
/// The kernel knows when it got the CPU (`sched_info.last_arrival`); the
/// period before that is filled from the counters as at a switch-out, and the
/// current slice is counted from there on.
#[inline(always)]
pub fn catch_up_running(tid: u32, stats: &mut ThreadStats) {
    if stats.on_cpu_since_ns != 0 || stats.last_cpu == CPU_UNKNOWN {
        return;
    }
    // Read only now: a running thread whose switch-in was seen (nearly
    // always) needs none of them.
    let (task, now, cpu) = (current_task(), now_ns(), this_cpu());
    let (Some(kernel), Some(arrival), Some(offset)) = (task.sched_counters(), task.last_arrival(), clock_offset())
    else {
        return;
    };
    let arrived = arrival.wrapping_add(offset);
    let arrived = if arrived > now { now } else { arrived };
    // Only the wait is known up to the arrival: exec_ns already includes part
    // of the running slice.
    let counted = counted_since(stats, Some(kernel)).map(|counted| KernelSchedCounters { exec_ns: 0, ..counted });
    fill_unreported(stats, arrived, counted);
    stats.runnable_since_ns = 0;
    stats.off_cpu_since_ns = 0;
    stats.off_cpu_state = OffCpuState::Unknown as u32;
    stats.on_cpu_since_ns = arrived;
    stats.last_cpu = cpu;
    timeline::transition(tid, stats, arrived, TIMELINE_ON_CPU);
}

/// Learns this CPU's scheduler-clock offset from a thread whose switch-in was
/// seen, and was its only one since its last switch-out:
/// `on_cpu_since_ns` and `sched_info.last_arrival` mark the same switch.
#[inline(always)]
fn learn_clock_offset<const TYPED: bool>(stats: &ThreadStats, task: Task<TYPED>) {
    if stats.on_cpu_since_ns == 0 {
        return;
    }
    let (Some(arrival), Some(slot)) = (task.last_arrival(), CLOCK_OFFSETS.get_ptr_mut(0)) else { return };
    // SAFETY: this CPU's slot, written from sched_switch on this CPU only.
    unsafe { *slot = stats.on_cpu_since_ns.wrapping_sub(arrival) };
}

fn clock_offset() -> Option<u64> {
    // SAFETY: this CPU's slot; a torn read is impossible for an aligned u64.
    let offset = unsafe { *CLOCK_OFFSETS.get_ptr(0)? };
    (offset != 0).then_some(offset)
}

/// The running thread's own totals as of now, counting the on-CPU time of
/// the slice it is running, read consistently: uprobe
/// programs can be preempted, and the thread's own switch-out and
/// switch-in then update the entry between our reads. The switch-in
/// timestamp acts as a sequence number: the read is retried until it is
/// the same before and after (a preemption changes it).
#[inline(always)]
pub fn own_totals_now(stats: &ThreadStats) -> (ThreadTotals, u64) {
    // Each retry follows a preemption in the middle of the read; after this
    // many the last read is taken as it is (the loop must stay bounded).
    const RETRIES: u32 = 3;
    let since = |s: &ThreadStats| {
        // SAFETY: reading a field of a live map value.
        unsafe { core::ptr::read_volatile(&raw const s.on_cpu_since_ns) }
    };
    let mut attempt = 0;
    loop {
        let before = since(stats);
        // SAFETY: as above.
        let totals = unsafe { core::ptr::read_volatile(&raw const stats.totals) };
        let now = now_ns();
        if since(stats) == before || attempt == RETRIES {
            let mut totals = totals;
            if before != 0 && now > before {
                totals.on_cpu_ns += now - before;
            }
            return (totals, now);
        }
        attempt += 1;
    }
}

/// The thread got a CPU. Returns the run-queue wait that just ended.
/// `task` is the kernel's task when readable; `from_idle` says this CPU was
/// running its idle task until now.
#[inline(always)]
pub fn on_switch_in(
    tid: u32,
    stats: &mut ThreadStats,
    now: u64,
    cpu: u32,
    task: Option<TaskPtr>,
    from_idle: bool,
) -> Option<Waited> {
    let mut waited = None;
    if stats.on_cpu_since_ns != 0 && now > stats.on_cpu_since_ns {
        // The mirror of the gap in on_switch_out: no switch-out was reported
        // since it last got a CPU. The counters (exact now: it is not
        // running) say how long it ran; how it left and how long it then
        // blocked or waited is unknown.
        let kernel = task.and_then(TaskPtr::sched_counters);
        let period = now - stats.on_cpu_since_ns;
        let ran = counted_since(stats, kernel).map_or(0, |counted| counted.exec_ns.min(period));
        stats.totals.on_cpu_ns += ran;
        stats.totals.unaccounted_ns += period - ran;
        stats.runnable_since_ns = 0;
        stats.off_cpu_since_ns = 0;
        remember_sample(stats, kernel);
        count(Counter::AccountingGaps);
    }
    stats.woken_at_ns = 0;
    stats.last_wait_ns = 0;
    let throttle_sampled = stats.flags & THREAD_THROTTLE_SAMPLED != 0;
    stats.flags &= !(THREAD_WOKEN_ON_IDLE | THREAD_THROTTLE_SAMPLED);
    let woken = stats.runnable_since_ns != 0 && stats.off_cpu_state != OffCpuState::Preempted as u32;
    if woken && from_idle && now >= stats.runnable_since_ns {
        // Woken onto an idle CPU: until now the CPU was leaving idle. The
        // kernel starts the thread's CPU clock at the wakeup (the switch
        // reuses the clock read there), so this is CPU time, and no wait.
        let leaving_idle = now - stats.runnable_since_ns;
        stats.totals.on_cpu_ns += leaving_idle;
        stats.totals.wakeup_idle_ns += leaving_idle;
        stats.totals.idle_wakeups += 1;
        stats.last_wait_ns = leaving_idle;
        stats.woken_at_ns = stats.runnable_since_ns;
        stats.flags |= THREAD_WOKEN_ON_IDLE;
        waited = Some(Waited {
            wait_ns: leaving_idle,
            blocked_ns: stats.last_blocked_ns,
            blocked_state: stats.last_blocked_state,
            idle: true,
            throttled_ns: 0,
        });
    } else if stats.runnable_since_ns != 0 && now >= stats.runnable_since_ns {
        let wait = now - stats.runnable_since_ns;
        let throttled = if throttle_sampled { throttle::throttled_part(stats, cpu, wait, task) } else { 0 };
        stats.last_wait_ns = wait;
        stats.totals.runq_wait_ns += wait;
        stats.totals.runq_waits += 1;
        stats.totals.throttled_ns += throttled;
        if stats.off_cpu_state != OffCpuState::Preempted as u32 {
            stats.woken_at_ns = stats.runnable_since_ns;
        }
        waited = Some(if stats.off_cpu_state == OffCpuState::Preempted as u32 {
            stats.totals.preempted_ns += wait;
            stats.last_blocked_ns = 0;
            stats.last_blocked_state = OffCpuState::Preempted as u32;
            Waited {
                wait_ns: wait,
                blocked_ns: 0,
                blocked_state: OffCpuState::Preempted as u32,
                idle: false,
                throttled_ns: throttled,
            }
        } else {
            Waited {
                wait_ns: wait,
                blocked_ns: stats.last_blocked_ns,
                blocked_state: stats.last_blocked_state,
                idle: false,
                throttled_ns: throttled,
            }
        });
    } else {
        if stats.off_cpu_since_ns != 0 {
            // Blocked, and back on a CPU without a reported wakeup (classic
            // tracepoints skip one that fires while another classic program
            // runs on its CPU): the blocked period ends here instead.
            count(Counter::AccountingGaps);
        }
        close_blocked(stats, now);
    }
    // The blocked period and the wait before this run stay known until its
    // switch-out, which may move part of them into the run (`clock`).
    stats.runnable_since_ns = 0;
    stats.off_cpu_since_ns = 0;
    stats.off_cpu_state = OffCpuState::Unknown as u32;
    stats.on_cpu_since_ns = now;
    if stats.flags & THREAD_KERNEL_SAMPLED == 0 {
        // A first sample (exact: it is not running yet), so that switches
        // the kernel does not report during its first run are noticed too.
        remember_sample(stats, task.and_then(TaskPtr::sched_counters));
    }
    if stats.last_cpu != CPU_UNKNOWN && stats.last_cpu != cpu {
        stats.totals.migrations += 1;
    }
    stats.last_cpu = cpu;
    timeline::transition(tid, stats, now, TIMELINE_ON_CPU);
    waited
}

/// Streams one run-queue wait to the loader, which keeps the histograms.
#[inline(always)]
pub fn emit_runq_wait(tid: u32, tgid: u32, waited: &Waited, cpu: u32, prev_tgid: u32) {
    if !runq_waits_enabled() {
        return;
    }
    match RUNQ_EVENTS.reserve::<RunqEvent>(0) {
        Some(mut record) => {
            record.write(RunqEvent {
                tid,
                tgid,
                latency_ns: waited.wait_ns,
                cpu,
                prev_tgid,
                blocked_ns: waited.blocked_ns,
                blocked_state: waited.blocked_state,
                flags: if waited.idle { RUNQ_WOKEN_ON_IDLE } else { 0 },
                throttled_ns: waited.throttled_ns,
            });
            // The loader polls on a timer; waking it per event would cost
            // more than the event itself.
            record.submit(BPF_RB_NO_WAKEUP as u64);
        }
        None => count(Counter::LostRunqEvents),
    }
}
