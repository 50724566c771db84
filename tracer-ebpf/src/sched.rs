//! Per-thread accounting, shared by both attach mechanisms.
//!
//! A thread is always in one of: on a CPU (`on_cpu_since_ns`), runnable and
//! waiting for a CPU (`runnable_since_ns`), or blocked (`off_cpu_since_ns`,
//! with the state it blocked in). Each transition closes the current period
//! and adds it to the matching total, so at any moment
//! on-CPU + run-queue wait + uninterruptible + sleep covers all observed time.
use aya_ebpf::bindings::BPF_RB_NO_WAKEUP;
use aya_ebpf::bindings::BPF_NOEXIST;
use tracer_common::{
    COUNTER_ACCOUNTING_GAPS, COUNTER_LOST_EXITS, COUNTER_LOST_RUNQ_EVENTS, COUNTER_THREADS_MAP_FULL, OFF_CPU_IOWAIT,
    CPU_UNKNOWN, OFF_CPU_NONE, OFF_CPU_PREEMPTED, OFF_CPU_SLEEP, OFF_CPU_UNINTERRUPTIBLE,
    RunqEvent, TASK_COMM_LEN, THREAD_DEAD, ThreadExit, ThreadStats, ThreadTotals,
};

use crate::maps::{EXITS, RUNQ_EVENTS, THREADS, count};

/// How a thread left the CPU.
#[derive(Clone, Copy)]
pub struct SwitchOut {
    /// One of the `OFF_CPU_*` constants.
    pub state: u32,
    /// The thread is exiting: this is its last switch.
    pub dead: bool,
}

const TASK_RUNNING: u32 = 0;
const TASK_UNINTERRUPTIBLE: u32 = 0x2;
const TASK_DEAD: u32 = 0x80;
const TASK_NOLOAD: u32 = 0x400;

/// Classifies the raw `prev->__state` handed to the BTF tracepoint;
/// `in_iowait` is only consulted for uninterruptible sleeps.
#[inline(always)]
pub fn switch_out_from_raw_state(preempt: bool, state: u32, in_iowait: impl FnOnce() -> bool) -> SwitchOut {
    let state_class = if preempt || state == TASK_RUNNING {
        OFF_CPU_PREEMPTED
    } else if state & TASK_NOLOAD != 0 {
        // TASK_IDLE: kernel threads waiting for work, not load.
        OFF_CPU_SLEEP
    } else if state & TASK_UNINTERRUPTIBLE != 0 {
        if in_iowait() { OFF_CPU_IOWAIT } else { OFF_CPU_UNINTERRUPTIBLE }
    } else {
        OFF_CPU_SLEEP
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
        OFF_CPU_PREEMPTED
    } else if state == REPORT_D {
        OFF_CPU_UNINTERRUPTIBLE
    } else {
        OFF_CPU_SLEEP
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
    let fresh = ThreadStats {
        tgid,
        flags: 0,
        comm: comm(),
        on_cpu_since_ns: 0,
        runnable_since_ns: 0,
        off_cpu_since_ns: 0,
        off_cpu_state: OFF_CPU_NONE,
        last_cpu: CPU_UNKNOWN,
        last_blocked_ns: 0,
        last_blocked_state: OFF_CPU_NONE,
        syscall_nr: 0,
        syscall_since_ns: 0,
        span_id: 0,
        totals: ThreadTotals {
            on_cpu_ns: 0,
            runq_wait_ns: 0,
            runq_waits: 0,
            preempted_ns: 0,
            uninterruptible_ns: 0,
            sleep_ns: 0,
            voluntary_switches: 0,
            involuntary_switches: 0,
            iowait_ns: 0,
            syscall_ns: 0,
            syscalls: 0,
            migrations: 0,
            unaccounted_ns: 0,
        },
    };
    // Losing the NOEXIST race to another CPU is fine: the lookup finds theirs.
    if let Err(err) = THREADS.insert(tid, fresh, BPF_NOEXIST as u64)
        && err != -17
    {
        count(COUNTER_THREADS_MAP_FULL);
        return None;
    }
    lookup(tid)
}

/// Closes a blocked period at wakeup (or at switch-in if the wakeup was not
/// seen) and credits it to the state the thread blocked in.
#[inline(always)]
fn close_blocked(stats: &mut ThreadStats, now: u64) {
    stats.last_blocked_ns = 0;
    stats.last_blocked_state = OFF_CPU_NONE;
    if stats.off_cpu_since_ns != 0 && now > stats.off_cpu_since_ns {
        let blocked = now - stats.off_cpu_since_ns;
        let state = stats.off_cpu_state;
        if state == OFF_CPU_UNINTERRUPTIBLE || state == OFF_CPU_IOWAIT {
            stats.totals.uninterruptible_ns += blocked;
            if state == OFF_CPU_IOWAIT {
                stats.totals.iowait_ns += blocked;
            }
        } else if state == OFF_CPU_SLEEP {
            stats.totals.sleep_ns += blocked;
        }
        stats.last_blocked_ns = blocked;
        stats.last_blocked_state = state;
    }
    stats.off_cpu_since_ns = 0;
}

/// The thread became runnable: its run-queue wait starts now, unless it is
/// still on a CPU (woken before it managed to block) or already queued.
#[inline(always)]
pub fn on_wakeup(stats: &mut ThreadStats, now: u64) {
    if stats.on_cpu_since_ns != 0 || stats.runnable_since_ns != 0 {
        return;
    }
    close_blocked(stats, now);
    stats.off_cpu_state = OFF_CPU_NONE;
    stats.runnable_since_ns = now;
}

/// The thread left the CPU.
#[inline(always)]
pub fn on_switch_out(tid: u32, stats: &mut ThreadStats, out: SwitchOut, now: u64) {
    if stats.on_cpu_since_ns == 0 && stats.last_cpu != CPU_UNKNOWN {
        // It ran, but its switch-in was not seen: the time since its last
        // known transition is unknown, and said so rather than guessed.
        let known = if stats.runnable_since_ns != 0 { stats.runnable_since_ns } else { stats.off_cpu_since_ns };
        if known != 0 && now > known {
            stats.totals.unaccounted_ns += now - known;
            count(COUNTER_ACCOUNTING_GAPS);
        }
    }
    if stats.on_cpu_since_ns != 0 && now > stats.on_cpu_since_ns {
        stats.totals.on_cpu_ns += now - stats.on_cpu_since_ns;
    }
    stats.on_cpu_since_ns = 0;
    stats.off_cpu_state = out.state;
    if out.state == OFF_CPU_PREEMPTED {
        stats.totals.involuntary_switches += 1;
        stats.runnable_since_ns = now;
        stats.off_cpu_since_ns = 0;
    } else {
        stats.totals.voluntary_switches += 1;
        stats.runnable_since_ns = 0;
        stats.off_cpu_since_ns = now;
    }
    if out.dead {
        finish_thread(tid, stats, now);
    }
}

/// Sends the final totals of an exiting thread and forgets it. When the
/// record cannot be sent, the entry stays, marked dead, for the loader to
/// collect from the map instead, so no totals are lost.
#[inline(always)]
fn finish_thread(tid: u32, stats: &mut ThreadStats, now: u64) {
    stats.off_cpu_since_ns = 0;
    stats.off_cpu_state = OFF_CPU_NONE;
    match EXITS.reserve::<ThreadExit>(0) {
        Some(mut record) => {
            record.write(ThreadExit {
                tid,
                _pad: 0,
                exit_ns: now,
                stats: *stats,
            });
            record.submit(0);
            let _ = THREADS.remove(tid);
        }
        None => {
            stats.flags |= THREAD_DEAD;
            count(COUNTER_LOST_EXITS);
        }
    }
}

/// A run-queue wait that just ended, and the off-CPU episode it closed.
pub struct Waited {
    pub wait_ns: u64,
    pub blocked_ns: u64,
    pub blocked_state: u32,
}

/// The running thread's own totals as of now, counting the on-CPU time of
/// the slice it is running, read consistently: uprobe
/// programs can be preempted, and the thread's own switch-out and
/// switch-in then update the entry between our reads. The switch-in
/// timestamp acts as a sequence number: the read is retried until it is
/// the same before and after (a preemption changes it).
#[inline(always)]
pub fn own_totals_now(stats: &ThreadStats) -> (ThreadTotals, u64) {
    let since = |s: &ThreadStats| {
        // SAFETY: reading a field of a live map value.
        unsafe { core::ptr::read_volatile(&raw const s.on_cpu_since_ns) }
    };
    let mut attempt = 0;
    loop {
        let before = since(stats);
        // SAFETY: as above.
        let totals = unsafe { core::ptr::read_volatile(&raw const stats.totals) };
        let now = crate::kernel::now_ns();
        if since(stats) == before || attempt == 3 {
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
#[inline(always)]
pub fn on_switch_in(stats: &mut ThreadStats, now: u64, cpu: u32) -> Option<Waited> {
    let mut waited = None;
    if stats.on_cpu_since_ns != 0 && now > stats.on_cpu_since_ns {
        // The mirror of the gap in on_switch_out: no switch-out was emitted
        // since it last got a CPU, so where that time went is unknown.
        stats.totals.unaccounted_ns += now - stats.on_cpu_since_ns;
        stats.runnable_since_ns = 0;
        stats.off_cpu_since_ns = 0;
        count(COUNTER_ACCOUNTING_GAPS);
    }
    if stats.runnable_since_ns != 0 && now >= stats.runnable_since_ns {
        let wait = now - stats.runnable_since_ns;
        stats.totals.runq_wait_ns += wait;
        stats.totals.runq_waits += 1;
        waited = Some(if stats.off_cpu_state == OFF_CPU_PREEMPTED {
            stats.totals.preempted_ns += wait;
            Waited { wait_ns: wait, blocked_ns: 0, blocked_state: OFF_CPU_PREEMPTED }
        } else {
            Waited {
                wait_ns: wait,
                blocked_ns: stats.last_blocked_ns,
                blocked_state: stats.last_blocked_state,
            }
        });
    } else {
        close_blocked(stats, now);
    }
    stats.last_blocked_ns = 0;
    stats.last_blocked_state = OFF_CPU_NONE;
    stats.runnable_since_ns = 0;
    stats.off_cpu_since_ns = 0;
    stats.off_cpu_state = OFF_CPU_NONE;
    stats.on_cpu_since_ns = now;
    if stats.last_cpu != CPU_UNKNOWN && stats.last_cpu != cpu {
        stats.totals.migrations += 1;
    }
    stats.last_cpu = cpu;
    waited
}

/// Streams one run-queue wait to the loader, which keeps the histograms.
#[inline(always)]
pub fn emit_runq_wait(tid: u32, tgid: u32, waited: &Waited, cpu: u32, prev_tgid: u32) {
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
                _pad: 0,
            });
            // The loader polls on a timer; waking it per event would cost
            // more than the event itself.
            record.submit(BPF_RB_NO_WAKEUP as u64);
        }
        None => count(COUNTER_LOST_RUNQ_EVENTS),
    }
}
