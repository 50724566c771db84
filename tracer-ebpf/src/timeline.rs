//! `tracer record --timeline`: every state change of the traced threads,
//! with their totals, streamed for offline attribution of spans recorded
//! elsewhere. Nothing here runs unless the loader turned the timeline on.
use tracer_common::{Counter, ThreadStats, ThreadTotals, TimelineEvent, TimelineKind};

use crate::{
    kernel::{this_cpu, timeline_enabled},
    maps::{TIMELINE_EVENTS, count, wake_when_filling},
    slices,
};

#[inline(always)]
fn emit(kind: TimelineKind, tid: u32, tgid: u32, ts_ns: u64, value: u32, ns: u64, totals: &ThreadTotals) {
    match TIMELINE_EVENTS.reserve::<TimelineEvent>(0) {
        Some(mut record) => {
            record.write(TimelineEvent {
                kind: kind as u32,
                tid,
                tgid,
                cpu: this_cpu(),
                ts_ns,
                value,
                _pad: 0,
                ns,
                totals: *totals,
            });
            record.submit(wake_when_filling(&TIMELINE_EVENTS));
        }
        None => count(Counter::LostTimeline),
    }
}

/// The thread entered `state` (`TIMELINE_ON_CPU`, `TIMELINE_RUNNABLE` or an
/// `OffCpuState`) at `ts_ns`.
#[inline(always)]
pub fn transition(tid: u32, stats: &ThreadStats, ts_ns: u64, state: u32) {
    if timeline_enabled() {
        emit(TimelineKind::Transition, tid, stats.tgid, ts_ns, state, 0, &stats.totals);
    }
}

/// A syscall of the thread ended at `ts_ns` after `took` ns.
#[inline(always)]
pub fn syscall(tid: u32, tgid: u32, nr: u32, ts_ns: u64, took: u64) {
    if timeline_enabled() {
        emit(TimelineKind::Syscall, tid, tgid, ts_ns, nr, took, &ThreadTotals::default());
    }
}

/// The thread's run-queue wait `since..now` on this CPU ended: who held it.
#[inline(always)]
pub fn holders(tid: u32, tgid: u32, since: u64, now: u64) {
    if timeline_enabled() {
        let none = ThreadTotals::default();
        slices::for_each_holder(since, now, |holder, ns| emit(TimelineKind::Holder, tid, tgid, now, holder, ns, &none));
    }
}
