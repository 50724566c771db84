//! Request spans: `tracer_span_begin`/`tracer_span_end` uprobes snapshot the
//! calling thread's totals; the difference is the span's breakdown. While a
//! span is open, its thread's syscalls and the CPU holders of its run-queue
//! waits are charged to it.
use aya_ebpf::{
    bindings::{BPF_ANY, BPF_RB_NO_WAKEUP},
    helpers::bpf_probe_read_user_str_bytes,
    macros::uprobe,
    programs::ProbeContext,
};
use tracer_common::{
    Counter, ExchangeEnd, SPAN_HANDED_OFF, SPAN_MOVED_THREAD, SPAN_NAME_LEN, SPAN_TOP, SpanEvent, SpanKey, SpanState,
    THREAD_IN_SPAN, THREAD_WOKEN_ON_IDLE, ThreadStats, ThreadTotals, TopEntry,
};

use crate::{
    filter,
    kernel::{current_comm, current_ids, now_ns},
    maps::{SPAN_EVENTS, SPAN_SCRATCH, SPANS, count, wake_when_filling},
    sched, slices,
};

#[uprobe]
pub fn uprobe_span_begin(ctx: ProbeContext) -> u32 {
    if let (Some(id), Some(name)) = (ctx.arg::<u64>(0), ctx.arg::<*const u8>(1)) {
        begin(id, name);
    }
    0
}

#[uprobe]
pub fn uprobe_span_end(ctx: ProbeContext) -> u32 {
    if let Some(id) = ctx.arg::<u64>(0) {
        end(id);
    }
    0
}

#[inline(always)]
fn begin(span_id: u64, name: *const u8) {
    let (tid, tgid) = current_ids();
    if !filter::current_passes(tid, tgid) {
        return;
    }
    let Some(stats) = sched::lookup_or_track(tid, tgid, current_comm) else { return };
    open(tid, tgid, stats, span_id, 0, 0, true, |buf| {
        if !name.is_null() {
            // SAFETY: a bounded read of user memory; a fault leaves the name empty.
            let _ = unsafe { bpf_probe_read_user_str_bytes(name, buf) };
        }
    });
}

/// Opens span `span_id` on the running thread: snapshots its totals now.
/// With `woken_at` (non-zero), the span starts instead when the thread was
/// woken for its current run: the wait for a CPU since then is the span's.
/// With `running_since` (non-zero, within the current run), it starts then.
/// With `claim_thread`, the thread's syscalls and waits are charged to this
/// span from now on; without (an outgoing call), they stay with the span
/// open on the thread, which becomes this one's parent.
/// Returns the start time, or `None` when the span could not be stored.
#[inline(always)]
pub fn open(
    tid: u32,
    tgid: u32,
    stats: &mut ThreadStats,
    span_id: u64,
    woken_at: u64,
    running_since: u64,
    claim_thread: bool,
    name: impl FnOnce(&mut [u8; SPAN_NAME_LEN]),
) -> Option<u64> {
    let state = SPAN_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: this CPU's scratch slot; programs do not nest on a CPU here.
    let state = unsafe { &mut *state };
    sched::catch_up_running(tid, stats);
    let (mut base, now) = sched::own_totals_now(stats);
    state.first_part = base;
    state.syscalls = [TopEntry { id: 0, count: 0, ns: 0 }; SPAN_TOP];
    state.holders = [TopEntry { id: 0, count: 0, ns: 0 }; SPAN_TOP];
    let mut start = now;
    let got_cpu = stats.on_cpu_since_ns;
    if woken_at != 0 && got_cpu != 0 && woken_at <= got_cpu && got_cpu <= now {
        // Back to the wakeup: its run-queue wait and the run since are the
        // span's (the thread has run on this CPU without a switch since, so
        // its totals are still those of the switch-in).
        base = stats.totals;
        before_wakeup(&mut base, stats, got_cpu - woken_at);
        start = woken_at;
        slices::for_each_holder(woken_at, got_cpu, |holder, ns| add_top(&mut state.holders, holder, ns));
    } else if running_since != 0 && got_cpu != 0 && got_cpu <= running_since && running_since <= now {
        // Back to an instant of the current run (the entry of the write
        // that sent an outgoing request: its peer may act on it before the
        // write returns): the thread ran throughout.
        base.on_cpu_ns = base.on_cpu_ns.saturating_sub(now - running_since);
        start = running_since;
    }
    state.tid = tid;
    state._pad = 0;
    state.start_ns = start;
    let in_span = stats.flags & THREAD_IN_SPAN != 0;
    state.parent_span_id = if in_span && !claim_thread { stats.span_id } else { 0 };
    state.name = [0; SPAN_NAME_LEN];
    name(&mut state.name);
    state.base = base;
    state.opened_ns = now;
    state.first_part.subtract(&state.base);
    let key = SpanKey { tgid, _pad: 0, span_id };
    if SPANS.get_ptr(&key).is_some() {
        count(Counter::SpanBeginDuplicate);
    }
    if SPANS.insert(&key, &*state, BPF_ANY as u64).is_err() {
        count(Counter::LostSpans);
        return None;
    }
    if claim_thread {
        stats.flags |= THREAD_IN_SPAN;
        stats.span_id = span_id;
    }
    Some(now)
}

/// Takes the wait of `waited` ns that ended at the thread's switch-in off
/// `totals` (its totals then): its totals at its wakeup.
#[inline(always)]
pub fn before_wakeup(totals: &mut ThreadTotals, stats: &ThreadStats, waited: u64) {
    if stats.flags & THREAD_WOKEN_ON_IDLE != 0 {
        totals.on_cpu_ns = totals.on_cpu_ns.saturating_sub(waited);
        totals.wakeup_idle_ns = totals.wakeup_idle_ns.saturating_sub(waited);
        totals.idle_wakeups = totals.idle_wakeups.saturating_sub(1);
    } else {
        totals.runq_wait_ns = totals.runq_wait_ns.saturating_sub(waited);
        totals.runq_waits = totals.runq_waits.saturating_sub(1);
    }
}

/// When span `key` was opened, if it is open.
#[inline(always)]
pub fn opened_at(key: &SpanKey) -> Option<u64> {
    // SAFETY: a map value, one field copied.
    SPANS.get_ptr(key).map(|state| unsafe { (*state).opened_ns })
}

/// The running thread's totals as of now, for a span boundary.
#[inline(always)]
pub fn own_totals(tid: u32, stats: &mut ThreadStats) -> (ThreadTotals, u64) {
    sched::catch_up_running(tid, stats);
    sched::own_totals_now(stats)
}

#[inline(always)]
fn end(span_id: u64) {
    let (tid, tgid) = current_ids();
    if !filter::current_passes(tid, tgid) {
        return;
    }
    let key = SpanKey { tgid, _pad: 0, span_id };
    if SPANS.get_ptr(&key).is_none() {
        count(Counter::SpanEndUnmatched);
        return;
    }
    let mut stats = sched::lookup(tid);
    let (totals, now) = match stats {
        Some(ref mut stats) => own_totals(tid, stats),
        None => (ThreadTotals::default(), now_ns()),
    };
    close(&key, tid, now, stats.is_some().then_some(&totals), 0, 0, None);
    if let Some(stats) = stats {
        release_thread(stats, span_id);
    }
}

/// The thread no longer charges its syscalls and waits to `span_id`.
#[inline(always)]
pub fn release_thread(stats: &mut ThreadStats, span_id: u64) {
    if stats.span_id == span_id {
        stats.flags &= !THREAD_IN_SPAN;
    }
}

/// Sends span `key`, ended at `end_ns` on thread `end_tid` whose totals were
/// then `end_totals`, and forgets it. The record is filled in place: a
/// `SpanEvent` does not fit on the BPF stack next to its callers' frames.
/// `resumed`: where the ending thread took the span up, if it is not the
/// one that began it (`SPAN_HANDED_OFF`).
#[inline(always)]
pub fn close(
    key: &SpanKey,
    end_tid: u32,
    end_ns: u64,
    end_totals: Option<&ThreadTotals>,
    flags: u32,
    response_bytes: u64,
    resumed: Option<&ExchangeEnd>,
) {
    let Some(state) = SPANS.get_ptr(key) else { return };
    // SAFETY: a map value, read before the entry is deleted below.
    let state = unsafe { &*state };
    match SPAN_EVENTS.reserve::<SpanEvent>(0) {
        Some(mut record) => {
            let moved = state.tid != end_tid;
            let resumed = resumed.filter(|r| moved && r.tid == end_tid && r.ns >= state.opened_ns && r.ns <= end_ns);
            let event = record.as_mut_ptr();
            // SAFETY: the reserved record is ours until submitted; every
            // field is written before it is.
            unsafe {
                (*event).span_id = key.span_id;
                (*event).tgid = key.tgid;
                (*event).tid_begin = state.tid;
                (*event).tid_end = end_tid;
                (*event).flags = flags
                    | match (moved, resumed) {
                        (false, _) => 0,
                        (true, Some(_)) => SPAN_HANDED_OFF,
                        (true, None) => SPAN_MOVED_THREAD,
                    };
                (*event).start_ns = state.start_ns;
                (*event).end_ns = end_ns;
                (*event).parent_span_id = state.parent_span_id;
                (*event).name = state.name;
                (*event).between_threads_ns = 0;
                match (end_totals, moved, resumed) {
                    (Some(totals), false, _) => (*event).delta.set_since(totals, &state.base),
                    (Some(totals), true, Some(resumed)) => {
                        (*event).delta.set_since(totals, &resumed.totals);
                        (*event).delta.add(&state.first_part);
                        (*event).between_threads_ns = resumed.ns - state.opened_ns;
                    }
                    _ => (*event).delta.set_since(&state.base, &state.base),
                }
                (*event).syscalls = state.syscalls;
                (*event).holders = state.holders;
                (*event).response_bytes = response_bytes;
            }
            // Two threads can end one span at once (the thread that wrote
            // an HTTP response moving on, and a read of the connection's
            // next request): the one that removes it sends it.
            if SPANS.remove(key).is_ok() {
                record.submit(wake_when_filling(&SPAN_EVENTS));
            } else {
                record.discard(BPF_RB_NO_WAKEUP as u64);
            }
        }
        None => {
            if SPANS.remove(key).is_ok() {
                count(Counter::LostSpans);
            }
        }
    }
}

/// Forgets a span that will not be sent (its request was never answered).
#[inline(always)]
pub fn discard(key: &SpanKey) {
    let _ = SPANS.remove(key);
}

/// Adds `ns` to `id`'s slot, taking an empty slot or the smallest one when
/// `id` has none (keeps the largest contributors).
#[inline(always)]
fn add_top(slots: &mut [TopEntry; SPAN_TOP], id: u32, ns: u64) {
    let mut smallest = 0;
    for i in 0..SPAN_TOP {
        if slots[i].count != 0 && slots[i].id == id {
            slots[i].count += 1;
            slots[i].ns += ns;
            return;
        }
        if slots[i].count == 0 || slots[i].ns < slots[smallest].ns {
            smallest = i;
        }
    }
    if slots[smallest].count == 0 || slots[smallest].ns < ns {
        slots[smallest] = TopEntry { id, count: 1, ns };
    }
}

/// The thread's open span, if any.
#[inline(always)]
fn open_span(tgid: u32, stats: &ThreadStats) -> Option<&'static mut SpanState> {
    if stats.flags & THREAD_IN_SPAN == 0 {
        return None;
    }
    let key = SpanKey { tgid, _pad: 0, span_id: stats.span_id };
    // SAFETY: a map value, updated by this thread's own events only.
    SPANS.get_ptr_mut(&key).map(|s| unsafe { &mut *s })
}

/// A syscall of a thread with an open span.
#[inline(always)]
pub fn charge_syscall(tgid: u32, stats: &ThreadStats, nr: u32, took: u64) {
    if let Some(span) = open_span(tgid, stats) {
        add_top(&mut span.syscalls, nr, took);
    }
}

/// A thread with an open span waited from `since` to `now` for this CPU:
/// charge each task that ran on it meanwhile with its share of the wait.
#[inline(always)]
pub fn charge_wait(tgid: u32, stats: &ThreadStats, since: u64, now: u64) {
    let Some(span) = open_span(tgid, stats) else { return };
    slices::for_each_holder(since, now, |holder, ns| add_top(&mut span.holders, holder, ns));
}
