//! `tracer record --timeline`: every state change of the traced threads,
//! with their totals, streamed for offline attribution of spans recorded
//! elsewhere. Nothing here runs unless the loader turned the timeline on.
use tracer_common::{Counter, ThreadStats, ThreadTotals, TimelineEvent, TimelineKind};

use crate::{
    kernel::{this_cpu, timeline_enabled},
    maps::{TIMELINE_EVENTS, count, wake_when_filling},
    slices,
};

/// Fills the reserved record field by field, in place: a whole
/// `TimelineEvent` built on the stack first (one per inlined call) left the
/// switch programs without stack. `totals`: `None` for all zero.
#[inline(always)]
fn emit(kind: TimelineKind, tid: u32, tgid: u32, ts_ns: u64, value: u32, ns: u64, totals: Option<&ThreadTotals>) {
    let Some(mut record) = TIMELINE_EVENTS.reserve::<TimelineEvent>(0) else {
        count(Counter::LostTimeline);
        return;
    };
    let event = record.as_mut_ptr();
    // SAFETY: `event` is the reserved record, valid for writes of a whole
    // `TimelineEvent`; every field is written once before it is submitted.
    unsafe {
        (&raw mut (*event).kind).write(kind as u32);
        (&raw mut (*event).tid).write(tid);
        (&raw mut (*event).tgid).write(tgid);
        (&raw mut (*event).cpu).write(this_cpu());
        (&raw mut (*event).ts_ns).write(ts_ns);
        (&raw mut (*event).value).write(value);
        (&raw mut (*event)._pad).write(0);
        (&raw mut (*event).ns).write(ns);
        match totals {
            Some(totals) => core::ptr::copy_nonoverlapping(totals, &raw mut (*event).totals, 1),
            None => core::ptr::write_bytes(&raw mut (*event).totals, 0, 1),
        }
    }
    record.submit(wake_when_filling(&TIMELINE_EVENTS));
}

/// The thread entered `state` (`TIMELINE_ON_CPU`, `TIMELINE_RUNNABLE` or an
/// `OffCpuState`) at `ts_ns`.
#[inline(always)]
pub fn transition(tid: u32, stats: &ThreadStats, ts_ns: u64, state: u32) {
    if timeline_enabled() {
        emit(TimelineKind::Transition, tid, stats.tgid, ts_ns, state, 0, Some(&stats.totals));
    }
}

/// A syscall of the thread ended at `ts_ns` after `took` ns.
#[inline(always)]
pub fn syscall(tid: u32, tgid: u32, nr: u32, ts_ns: u64, took: u64) {
    if timeline_enabled() {
        emit(TimelineKind::Syscall, tid, tgid, ts_ns, nr, took, None);
    }
}

/// The thread's run-queue wait `since..now` on this CPU ended: who held it.
#[inline(always)]
pub fn holders(tid: u32, tgid: u32, since: u64, now: u64) {
    if timeline_enabled() {
        slices::for_each_holder(since, now, |holder, ns| emit(TimelineKind::Holder, tid, tgid, now, holder, ns, None));
    }
}
