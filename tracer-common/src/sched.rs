//! Scheduler accounting: each tracked thread's state and totals, and the
//! records streamed when a run-queue wait ends or a thread exits.
use core::mem::size_of;

use crate::ThreadTotals;
#[cfg(doc)]
use crate::{Counter, HttpConnKey, MAP_THREADS};

pub const TASK_COMM_LEN: usize = 16;

raw_enum! {
    /// Why a thread left the CPU, which decides where its off-CPU time goes
    /// (`ThreadStats::off_cpu_state`, `RunqEvent::blocked_state`).
    pub enum OffCpuState: u32 {
        /// Not off the CPU, or off it for a reason that was not seen: such
        /// time is unaccounted.
        Unknown = 0,
        /// Preempted while runnable: the whole off-CPU period is run-queue wait.
        Preempted = 1,
        /// `TASK_UNINTERRUPTIBLE` (D): disk I/O, some locks, page faults.
        Uninterruptible = 2,
        /// Any other sleep (S, idle D, stopped): futex, epoll, network, timers.
        Sleep = 3,
        /// `TASK_UNINTERRUPTIBLE` with `in_iowait` set: waiting for I/O
        /// (`io_schedule`), the time `iowait` in /proc/stat accounts.
        Iowait = 4,
    }
}

// The raw values, for matching the integer fields in patterns (where
// `OffCpuState::Sleep as u32` cannot appear), as the loader does.
pub const OFF_CPU_PREEMPTED: u32 = OffCpuState::Preempted as u32;
pub const OFF_CPU_UNINTERRUPTIBLE: u32 = OffCpuState::Uninterruptible as u32;
pub const OFF_CPU_SLEEP: u32 = OffCpuState::Sleep as u32;
pub const OFF_CPU_IOWAIT: u32 = OffCpuState::Iowait as u32;

/// `ThreadStats::flags`: the thread has exited but its exit record could not
/// be sent; the loader collects the entry from the map and deletes it.
pub const THREAD_DEAD: u32 = 1 << 0;
/// `ThreadStats::flags`: a span is open on this thread (`span_id`).
pub const THREAD_IN_SPAN: u32 = 1 << 1;
/// `ThreadStats::kernel` holds a sample of the kernel's counters.
pub const THREAD_KERNEL_SAMPLED: u32 = 1 << 2;
/// The thread wrote an HTTP response on `http_fd` (or, with
/// `THREAD_HTTP_CLIENT`, read one); its span ends at the thread's first
/// syscall that is not another write (read) of that connection.
pub const THREAD_HTTP_RESPONDING: u32 = 1 << 3;
/// The thread's current run began with a wake-up on an idle CPU: the time
/// since `woken_at_ns` is in `wakeup_idle_ns`, not `runq_wait_ns`.
pub const THREAD_WOKEN_ON_IDLE: u32 = 1 << 4;
/// `ThreadStats::cfs_rq_throttled_at_wait_ns` holds a reading for the
/// current wait.
pub const THREAD_THROTTLE_SAMPLED: u32 = 1 << 5;
/// With `THREAD_HTTP_RESPONDING`: the exchange is outgoing, and its
/// response is being read (reads of `http_file` go on with it).
pub const THREAD_HTTP_CLIENT: u32 = 1 << 6;
/// With `THREAD_HTTP_RESPONDING`: the response begun on `http_file` is a
/// `101` (switching protocols), whose bytes are looked at for `h2c` at the
/// thread's next syscall (`HttpConn::switch_at`).
pub const THREAD_HTTP_SWITCHING_SHIFT: u32 = 7;
pub const THREAD_HTTP_SWITCHING: u32 = 1 << THREAD_HTTP_SWITCHING_SHIFT;
/// `ThreadStats::last_cpu` before the thread was first seen on a CPU.
pub const CPU_UNKNOWN: u32 = u32::MAX;

/// Value of [`MAP_THREADS`]: totals plus the state needed to extend them.
/// Timestamps are `bpf_ktime_get_ns` (CLOCK_MONOTONIC); 0 means "not known",
/// so a period whose start was not observed is never counted.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreadStats {
    /// 0 until known (classic tracepoints learn it at the first switch-out).
    pub tgid: u32,
    pub flags: u32,
    pub comm: [u8; TASK_COMM_LEN],
    pub on_cpu_since_ns: u64,
    pub runnable_since_ns: u64,
    pub off_cpu_since_ns: u64,
    /// An [`OffCpuState`]: why the thread last left the CPU.
    pub off_cpu_state: u32,
    /// CPU the thread last ran on.
    pub last_cpu: u32,
    /// The CPU whose waiter list holds the thread while it waits for a CPU
    /// (`CPU_UNKNOWN`: in none), and its slot there (`CpuWaiters`).
    pub queued_cpu: u32,
    pub queued_slot: u32,
    /// The blocked period closed by the last wakeup, reported with the
    /// run-queue wait that follows it.
    pub last_blocked_ns: u64,
    /// An [`OffCpuState`].
    pub last_blocked_state: u32,
    /// Syscall in progress (valid while `syscall_since_ns` != 0).
    pub syscall_nr: u32,
    pub syscall_since_ns: u64,
    /// The span open on this thread (valid with `THREAD_IN_SPAN`).
    pub span_id: u64,
    /// The socket syscall in progress (HTTP spans): the connection its
    /// descriptor names (see [`HttpConnKey::file`]) and its buffer argument.
    pub syscall_file: u64,
    pub syscall_buf: u64,
    /// Connection whose response this thread is writing (valid with
    /// `THREAD_HTTP_RESPONDING`).
    pub http_file: u64,
    /// When the thread was woken for the run it is in (0: it was preempted,
    /// or its wakeup was not seen, or a span already claimed it).
    pub woken_at_ns: u64,
    /// The run-queue wait that ended at its last switch-in.
    pub last_wait_ns: u64,
    /// The CFS run queue the thread was on at its last switch-out
    /// (`se.cfs_rq`: its cgroup's on that CPU), as an address; 0 if unknown.
    pub cfs_rq: u64,
    /// That run queue's throttled time (rq clock, ns) when the thread's
    /// current wait for a CPU began (valid with `THREAD_THROTTLE_SAMPLED`).
    pub cfs_rq_throttled_at_wait_ns: u64,
    pub totals: ThreadTotals,
    /// The kernel's counters when `totals` last agreed with them (at the
    /// last switch-out; valid with `THREAD_KERNEL_SAMPLED`).
    pub kernel: KernelSchedCounters,
}
const _: () = assert!(
    size_of::<ThreadStats>()
        == 8 + TASK_COMM_LEN + 3 * 8 + 8 + 8 + 8 + 8 + 8 + 8 + 24 + 8 + 8 + 16 + size_of::<ThreadTotals>()
            + size_of::<KernelSchedCounters>()
);

/// A task's own scheduler accounting, the numbers behind
/// `/proc/<pid>/task/<tid>/schedstat`. The sched tracepoints occasionally do
/// not report a switch (see [`Counter::AccountingGaps`]); the difference of
/// two samples of these says how much of the unreported period was on a CPU
/// and how much waiting for one.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelSchedCounters {
    /// `se.sum_exec_runtime`: time on a CPU.
    pub exec_ns: u64,
    /// `sched_info.run_delay`: time runnable, waiting for a CPU.
    pub run_delay_ns: u64,
    /// `sched_info.pcount`: times it got a CPU.
    pub runs: u64,
}
const _: () = assert!(size_of::<KernelSchedCounters>() == 3 * 8);

/// Final totals of a thread, sent when it leaves the CPU for the last time;
/// its [`MAP_THREADS`] entry is deleted after this record is written.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreadExit {
    pub tid: u32,
    pub _pad: u32,
    pub exit_ns: u64,
    pub stats: ThreadStats,
}
const _: () = assert!(size_of::<ThreadExit>() == 16 + size_of::<ThreadStats>());

/// One completed run-queue wait: `tid` became runnable and got a CPU
/// `latency_ns` later, when `prev_tgid` left that CPU. It also carries the
/// off-CPU episode that ended in this wait: `blocked_ns` in
/// `blocked_state` (an [`OffCpuState`]; for `Preempted` the episode is the
/// wait itself and `blocked_ns` is 0).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct RunqEvent {
    pub tid: u32,
    pub tgid: u32,
    pub latency_ns: u64,
    pub cpu: u32,
    pub prev_tgid: u32,
    pub blocked_ns: u64,
    pub blocked_state: u32,
    /// [`RUNQ_WOKEN_ON_IDLE`], or 0.
    pub flags: u32,
    /// The part of `latency_ns` during which the thread's cgroup was
    /// throttled by its CPU quota: nobody held the CPU from it then.
    pub throttled_ns: u64,
}
const _: () = assert!(size_of::<RunqEvent>() == 48);

/// `RunqEvent::flags`: the thread was woken onto an idle CPU; `latency_ns`
/// is the CPU leaving idle (on-CPU time, `wakeup_idle_ns`), not a wait for
/// a CPU. The event is sent for the off-CPU episode it ended.
pub const RUNQ_WOKEN_ON_IDLE: u32 = 1;

impl_pod!(ThreadStats, KernelSchedCounters, ThreadExit, RunqEvent);
