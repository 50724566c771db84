//! Who held the CPU while a traced process waited for one, summed per
//! (waiting process, holding process) over the whole recording.
use core::mem::size_of;

#[cfg(doc)]
use crate::MAP_WAIT_HOLDERS;

/// Key of [`MAP_WAIT_HOLDERS`]; the value is the nanoseconds `holder` ran
/// on the CPU while a thread of `waiter` waited for that CPU (cumulative).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct WaitHolderKey {
    /// TGID of the waiting process.
    pub waiter: u32,
    /// TGID of the process that had the CPU (0: the CPU was idle;
    /// [`HOLDER_UNFOLLOWED`]: the wait could not be followed).
    pub holder: u32,
}
const _: () = assert!(size_of::<WaitHolderKey>() == 8);

/// Capacity of [`MAP_WAIT_HOLDERS`]: pairs beyond it are dropped and
/// counted (`Counter::WaitHoldersMapFull`).
pub const WAIT_HOLDERS_ENTRIES: u32 = 16_384;

/// [`WaitHolderKey::holder`] of wait time that could not be followed: the
/// waiter list of its CPU was full when the wait began, or the thread moved
/// to another CPU's run queue while it waited (from that move on).
pub const HOLDER_UNFOLLOWED: u32 = u32::MAX;

/// The traced threads queued on one CPU's run queue: each switch on that CPU
/// charges the outgoing task's run, since each waiter's `since_ns`, to
/// (waiter, outgoing task). Every writer holds that CPU's run-queue lock
/// (the switch on it, and the wakeups that put a thread on it), except
/// that a thread that moved clears its own slot from its new CPU.
pub const MAP_CPU_WAITERS: &str = "CPU_WAITERS";

/// Waiters followed per CPU at once.
pub const CPU_WAITER_SLOTS: usize = 16;

/// One traced thread waiting on a CPU's run queue (`tid` 0: a free slot).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct QueuedWaiter {
    pub tid: u32,
    /// Its process, the waiter of [`WaitHolderKey`].
    pub tgid: u32,
    /// Charged up to here (`bpf_ktime_get_ns`).
    pub since_ns: u64,
    /// Its CFS run queue on this CPU (address; 0: unknown, or never
    /// throttled when the wait began), whose throttled time is not charged
    /// to anyone.
    pub cfs_rq: u64,
    /// That run queue's throttled time (rq clock ns) at `since_ns`.
    pub throttled_ns: u64,
}
const _: () = assert!(size_of::<QueuedWaiter>() == 32);

/// Value of [`MAP_CPU_WAITERS`], one per CPU.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuWaiters {
    /// Slots in use (changed with atomic adds), so that a switch stops
    /// looking once it has seen them all.
    pub queued: u64,
    pub slots: [QueuedWaiter; CPU_WAITER_SLOTS],
}
const _: () = assert!(size_of::<CpuWaiters>() == 8 + 32 * CPU_WAITER_SLOTS);

impl_pod!(WaitHolderKey, QueuedWaiter, CpuWaiters);
