//! `tracer record --timeline`: every state change of the traced threads,
//! streamed with their totals.
use core::mem::size_of;

use crate::{OffCpuState, ThreadTotals};

raw_enum! {
    /// What a [`TimelineEvent`] records (`TimelineEvent::kind`).
    pub enum TimelineKind: u32 {
        /// The thread entered state `value` at `ts_ns`; `totals` are its
        /// cumulative totals at that moment.
        Transition = 1,
        /// A syscall of the thread ended at `ts_ns`: `value` is its number,
        /// `ns` its duration.
        Syscall = 2,
        /// The thread's run-queue wait that ended at `ts_ns` was spent while
        /// process `value` (TGID; 0: the CPU was idle) held the CPU for `ns`.
        Holder = 3,
    }
}

// The raw values, for matching `TimelineEvent::kind` in patterns.
pub const TIMELINE_TRANSITION: u32 = TimelineKind::Transition as u32;
pub const TIMELINE_SYSCALL: u32 = TimelineKind::Syscall as u32;
pub const TIMELINE_HOLDER: u32 = TimelineKind::Holder as u32;

/// States of a [`TimelineKind::Transition`], besides the [`OffCpuState`]
/// ones (`Preempted`: runnable after an involuntary switch; the others:
/// blocked in that state). Distinct from every `OffCpuState` value.
pub const TIMELINE_ON_CPU: u32 = 8;
/// Woken, waiting for a CPU.
pub const TIMELINE_RUNNABLE: u32 = 9;

/// One state change (or syscall, or CPU holder) of a traced thread, for
/// `tracer record --timeline`. Times are `bpf_ktime_get_ns` (CLOCK_MONOTONIC).
/// The totals at any moment `t` are those of the thread's last transition
/// at or before `t`, plus `t - ts_ns` in the state it entered.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TimelineEvent {
    /// A [`TimelineKind`].
    pub kind: u32,
    pub tid: u32,
    pub tgid: u32,
    pub cpu: u32,
    pub ts_ns: u64,
    pub value: u32,
    pub _pad: u32,
    pub ns: u64,
    /// Valid for [`TimelineKind::Transition`] only.
    pub totals: ThreadTotals,
}
// The transition states share `TimelineEvent::value` with `OffCpuState`.
const _: () =
    assert!(OffCpuState::from_u32(TIMELINE_ON_CPU).is_none() && OffCpuState::from_u32(TIMELINE_RUNNABLE).is_none());
const _: () = assert!(size_of::<TimelineEvent>() == 40 + size_of::<ThreadTotals>());

impl_pod!(TimelineEvent);
