//! Entry points. Each reads its arguments, filters, and hands over to
//! `sched`; nothing else happens here.
use aya_ebpf::{
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use tracer_common::{OffCpuState, TASK_COMM_LEN, ThreadStats};

use crate::{
    filter,
    kernel::{
        TaskPtr, current_comm, current_ids, current_task, now_ns, read_field, slices_kept, this_cpu,
        tracepoint_offsets, wakeups_at_switch_in,
    },
    holders, sched, slices, spans, throttle, timeline, wakeups,
};


// ---- BTF tracepoints: arguments are the kernel's own task_struct pointers.

/// `sched_switch(bool preempt, task_struct *prev, task_struct *next,
/// unsigned int prev_state)`.
#[btf_tracepoint(function = "sched_switch")]
pub fn btf_sched_switch(ctx: BtfTracePointContext) -> u32 {
    btf_switch(&ctx)
}

/// Switch-out of `prev`, then switch-in of `next`, each when measured.
#[inline(always)]
fn btf_switch(ctx: &BtfTracePointContext) -> u32 {
    let preempt = ctx.arg::<u8>(0) != 0;
    let prev = TaskPtr::arg(ctx, 1);
    let next = TaskPtr::arg(ctx, 2);
    let prev_state = ctx.arg::<u32>(3);
    let now = now_ns();
    let cpu = this_cpu();

    let (prev_tid, prev_tgid) = prev.ids();
    let (next_tid, next_tgid) = next.ids();
    if slices_kept() {
        slices::record(prev_tgid, now);
    }
    holders::on_switch(cpu, prev_tgid, prev_tid == 0, next_tid, now);
    if prev_tid != 0 && filter::task_passes(prev, prev_tid, prev_tgid) {
        if let Some(stats) = sched::lookup_or_track(prev_tid, prev_tgid, || prev.comm()) {
            let out = sched::switch_out_from_raw_state(preempt, prev_state, || prev.in_iowait());
            holders::leave(prev_tid, stats);
            if out.dead {
                stats.comm = prev.comm();
                if prev_tid == prev_tgid {
                    filter::on_process_exit(prev_tgid);
                }
            }
            sched::on_switch_out(prev_tid, stats, out, now, Some(prev));
            if !out.dead {
                let preempted = out.state == OffCpuState::Preempted;
                throttle::on_switch_out(stats, prev, cpu, preempted);
                if preempted {
                    holders::wait_begins(prev_tid, stats, cpu, now);
                }
            }
        }
    }

    if next_tid == 0 {
        return 0;
    }
    if !filter::task_passes(next, next_tid, next_tgid) {
        return 0;
    }
    if let Some(stats) = sched::lookup_or_track(next_tid, next_tgid, || next.comm()) {
        if wakeups_at_switch_in() {
            wakeups::woken_before_switch_in(next_tid, stats, now, next);
        }
        let waited = sched::on_switch_in(next_tid, stats, now, cpu, Some(next), prev_tid == 0);
        let held_ns = waited.as_ref().map_or(0, |waited| switched_in_after_wait(next_tid, next_tgid, stats, waited, cpu, prev_tgid, now));
        holders::got_cpu(next_tid, stats, cpu, held_ns, || next.queued_here_ns(), now);
    }
    0
}

/// What follows a switch-in that ended a wait for a CPU: the holders of
/// spans and the timeline, and the wait's record. Returns the part of the
/// wait that other tasks held the CPU.
#[inline(always)]
fn switched_in_after_wait(
    tid: u32,
    tgid: u32,
    stats: &mut ThreadStats,
    waited: &sched::Waited,
    cpu: u32,
    prev_tgid: u32,
    now: u64,
) -> u64 {
    let mut held_ns = 0;
    if !waited.idle {
        // The throttled start of the wait is nobody's doing.
        held_ns = waited.wait_ns - waited.throttled_ns;
        let held_since = now - held_ns;
        spans::charge_wait(tgid, stats, held_since, now);
        timeline::holders(tid, tgid, held_since, now);
    }
    sched::emit_runq_wait(tid, tgid, waited, cpu, prev_tgid);
    held_ns
}

/// `sched_wakeup(task_struct *p)`.
#[btf_tracepoint(function = "sched_wakeup")]
pub fn btf_sched_wakeup(ctx: BtfTracePointContext) -> u32 {
    btf_wakeup(&ctx)
}

/// `sched_process_fork(task_struct *parent, task_struct *child)`: children
/// of traced processes (`--children`). BTF only: the classic record names
/// the child's thread, not its process.
#[btf_tracepoint(function = "sched_process_fork")]
pub fn btf_sched_process_fork(ctx: BtfTracePointContext) -> u32 {
    let parent = TaskPtr::arg(&ctx, 0);
    let child = TaskPtr::arg(&ctx, 1);
    filter::on_fork(parent.tgid(), child.tgid());
    0
}

/// `sched_wakeup_new(task_struct *p)`: a new task's first wait for a CPU.
#[btf_tracepoint(function = "sched_wakeup_new")]
pub fn btf_sched_wakeup_new(ctx: BtfTracePointContext) -> u32 {
    btf_wakeup(&ctx)
}

fn btf_wakeup(ctx: &BtfTracePointContext) -> u32 {
    let task = TaskPtr::arg(ctx, 0);
    let (tid, tgid) = task.ids();
    if tid == 0 {
        return 0;
    }
    if !filter::task_passes(task, tid, tgid) {
        return 0;
    }
    if let Some(stats) = sched::lookup_or_track(tid, tgid, || task.comm()) {
        let now = now_ns();
        if wakeups::on_wakeup(tid, stats, now, Some(task)) {
            wait_begins(tid, stats, task.cpu(), now);
        }
    }
    0
}

// ---- Classic tracepoints: record fields at offsets from the format files.
// Only `current` can be inspected beyond the record, so a thread's TGID and
// cgroup are learned when it is switched out (as `current`); with a filter
// set, a thread is tracked from its first switch-out (the loader seeds the
// threads that already exist).

fn read_comm(ctx: &TracePointContext, offset: u32) -> [u8; TASK_COMM_LEN] {
    read_field::<[u8; TASK_COMM_LEN]>(ctx, offset).unwrap_or([0; TASK_COMM_LEN])
}

#[tracepoint]
pub fn tp_sched_switch(ctx: TracePointContext) -> u32 {
    tp_switch(&ctx)
}

/// As `btf_switch`, from the record's fields and `current` (which is `prev`).
#[inline(always)]
fn tp_switch(ctx: &TracePointContext) -> u32 {
    let offsets = tracepoint_offsets();
    let now = now_ns();
    let (current_tid, current_tgid) = current_ids();
    let prev_tid = read_field::<i32>(ctx, offsets.switch_prev_pid).unwrap_or(0) as u32;
    let prev_state = read_field::<i64>(ctx, offsets.switch_prev_state).unwrap_or(0) as u64;
    let prev_tgid = if current_tid == prev_tid { current_tgid } else { 0 };
    let next_tid = read_field::<i32>(ctx, offsets.switch_next_pid).unwrap_or(0) as u32;
    let cpu = this_cpu();
    if slices_kept() {
        slices::record(prev_tgid, now);
    }
    holders::on_switch(cpu, prev_tgid, prev_tid == 0, next_tid, now);

    if prev_tid != 0 && prev_tgid != 0 {
        let stats = if filter::current_passes(prev_tid, prev_tgid) {
            sched::lookup_or_track(prev_tid, prev_tgid, current_comm)
        } else {
            None
        };
        if let Some(stats) = stats {
            stats.tgid = prev_tgid;
            let out = sched::switch_out_from_reported_state(prev_state);
            holders::leave(prev_tid, stats);
            if out.dead {
                stats.comm = current_comm();
            }
            // `current` is still the task switched out: its counters are
            // readable when BTF gave their offsets.
            sched::on_switch_out(prev_tid, stats, out, now, Some(current_task()));
            if !out.dead {
                let preempted = out.state == OffCpuState::Preempted;
                throttle::on_switch_out(stats, current_task(), cpu, preempted);
                if preempted {
                    holders::wait_begins(prev_tid, stats, cpu, now);
                }
            }
        }
    }

    if next_tid == 0 {
        return 0;
    }
    let stats = if filter::active() {
        sched::lookup(next_tid)
    } else {
        sched::lookup_or_track(next_tid, 0, || read_comm(ctx, offsets.switch_next_comm))
    };
    if let Some(stats) = stats {
        let waited = sched::on_switch_in(next_tid, stats, now, cpu, None, prev_tid == 0);
        let tgid = stats.tgid;
        let held_ns = waited.as_ref().map_or(0, |waited| switched_in_after_wait(next_tid, tgid, stats, waited, cpu, prev_tgid, now));
        holders::got_cpu(next_tid, stats, cpu, held_ns, || None, now);
    }
    0
}

#[tracepoint]
pub fn tp_sched_wakeup(ctx: TracePointContext) -> u32 {
    tp_wakeup(&ctx)
}

#[tracepoint]
pub fn tp_sched_wakeup_new(ctx: TracePointContext) -> u32 {
    tp_wakeup(&ctx)
}

fn tp_wakeup(ctx: &TracePointContext) -> u32 {
    let offsets = tracepoint_offsets();
    let tid = read_field::<i32>(ctx, offsets.wakeup_pid).unwrap_or(0) as u32;
    if tid == 0 {
        return 0;
    }
    let stats = if filter::active() {
        sched::lookup(tid)
    } else {
        sched::lookup_or_track(tid, 0, || read_comm(ctx, offsets.wakeup_comm))
    };
    if let Some(stats) = stats {
        let now = now_ns();
        if wakeups::on_wakeup(tid, stats, now, None) {
            let target_cpu = read_field::<i32>(ctx, offsets.wakeup_target_cpu).map(|cpu| cpu as u32);
            wait_begins(tid, stats, target_cpu, now);
        }
    }
    0
}

/// A wakeup began the thread's wait on `cpu`'s run queue (`None`: unknown,
/// and the wait is not followed for the holders' sums).
#[inline(always)]
fn wait_begins(tid: u32, stats: &mut ThreadStats, cpu: Option<u32>, now: u64) {
    match cpu {
        Some(cpu) => holders::wait_begins(tid, stats, cpu, now),
        None => holders::leave(tid, stats),
    }
}

