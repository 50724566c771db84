//! A thread's cumulative totals: kept per thread in the kernel, and
//! differenced for spans and intervals.
use core::mem::size_of;

/// Cumulative totals of one thread since tracing started. Request spans are
/// measured as differences of two snapshots of these.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreadTotals {
    pub on_cpu_ns: u64,
    /// All time spent runnable but not running (includes `preempted_ns`).
    pub runq_wait_ns: u64,
    pub runq_waits: u64,
    /// Run-queue wait that started with an involuntary switch.
    pub preempted_ns: u64,
    /// Blocked in `TASK_UNINTERRUPTIBLE`, until woken (includes `iowait_ns`).
    pub uninterruptible_ns: u64,
    /// Blocked in any other sleep state, until woken.
    pub sleep_ns: u64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    /// The part of `uninterruptible_ns` spent waiting for I/O.
    pub iowait_ns: u64,
    /// Time inside traced syscalls (enter to exit), and their number.
    pub syscall_ns: u64,
    pub syscalls: u64,
    /// Times the thread was switched in on a different CPU than last time.
    pub migrations: u64,
    /// Time in an unknown state: the part of a period the sched tracepoints
    /// did not report that the kernel's counters could not place either
    /// (see `Counter::AccountingGaps`).
    pub unaccounted_ns: u64,
}
const _: () = assert!(size_of::<ThreadTotals>() == 13 * 8);

impl ThreadTotals {
    /// What accrued between `earlier` and `self` (a span, an interval).
    #[inline(always)]
    pub fn since(&self, earlier: &ThreadTotals) -> ThreadTotals {
        ThreadTotals {
            on_cpu_ns: self.on_cpu_ns.saturating_sub(earlier.on_cpu_ns),
            runq_wait_ns: self.runq_wait_ns.saturating_sub(earlier.runq_wait_ns),
            runq_waits: self.runq_waits.saturating_sub(earlier.runq_waits),
            preempted_ns: self.preempted_ns.saturating_sub(earlier.preempted_ns),
            uninterruptible_ns: self.uninterruptible_ns.saturating_sub(earlier.uninterruptible_ns),
            sleep_ns: self.sleep_ns.saturating_sub(earlier.sleep_ns),
            voluntary_switches: self.voluntary_switches.saturating_sub(earlier.voluntary_switches),
            involuntary_switches: self.involuntary_switches.saturating_sub(earlier.involuntary_switches),
            iowait_ns: self.iowait_ns.saturating_sub(earlier.iowait_ns),
            syscall_ns: self.syscall_ns.saturating_sub(earlier.syscall_ns),
            syscalls: self.syscalls.saturating_sub(earlier.syscalls),
            migrations: self.migrations.saturating_sub(earlier.migrations),
            unaccounted_ns: self.unaccounted_ns.saturating_sub(earlier.unaccounted_ns),
        }
    }

    /// `*self = later.since(earlier)`, written field by field in place (the
    /// BPF stack has no room for a temporary in the larger programs).
    #[inline(always)]
    pub fn set_since(&mut self, later: &ThreadTotals, earlier: &ThreadTotals) {
        self.on_cpu_ns = later.on_cpu_ns.saturating_sub(earlier.on_cpu_ns);
        self.runq_wait_ns = later.runq_wait_ns.saturating_sub(earlier.runq_wait_ns);
        self.runq_waits = later.runq_waits.saturating_sub(earlier.runq_waits);
        self.preempted_ns = later.preempted_ns.saturating_sub(earlier.preempted_ns);
        self.uninterruptible_ns = later.uninterruptible_ns.saturating_sub(earlier.uninterruptible_ns);
        self.sleep_ns = later.sleep_ns.saturating_sub(earlier.sleep_ns);
        self.voluntary_switches = later.voluntary_switches.saturating_sub(earlier.voluntary_switches);
        self.involuntary_switches = later.involuntary_switches.saturating_sub(earlier.involuntary_switches);
        self.iowait_ns = later.iowait_ns.saturating_sub(earlier.iowait_ns);
        self.syscall_ns = later.syscall_ns.saturating_sub(earlier.syscall_ns);
        self.syscalls = later.syscalls.saturating_sub(earlier.syscalls);
        self.migrations = later.migrations.saturating_sub(earlier.migrations);
        self.unaccounted_ns = later.unaccounted_ns.saturating_sub(earlier.unaccounted_ns);
    }
}

impl_pod!(ThreadTotals);
