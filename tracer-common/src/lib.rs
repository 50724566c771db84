//! Types and names shared by the kernel programs (`tracer-ebpf`) and the
//! loader (`tracer-user`).
//!
//! Every type here crosses the kernel/user boundary as raw bytes, so each is
//! `#[repr(C)]`, `Copy`, and laid out without implicit padding (checked by the
//! `const` assertions at the bottom). The `user` feature adds `aya::Pod`.
#![no_std]

/// Per-thread cumulative accounting, keyed by TID.
pub const MAP_THREADS: &str = "THREADS";
/// One [`RunqEvent`] per completed run-queue wait.
pub const MAP_RUNQ_EVENTS: &str = "RUNQ_EVENTS";
/// One [`ThreadExit`] per thread that exited while tracked.
pub const MAP_EXITS: &str = "EXITS";
/// Per-CPU loss counters, indexed by the `COUNTER_*` constants.
pub const MAP_COUNTERS: &str = "COUNTERS";

/// Global: [`Filter`] applied to the task being measured.
pub const GLOBAL_FILTER: &str = "FILTER";
/// Global: [`TaskOffsets`] taken from the running kernel's BTF.
pub const GLOBAL_TASK_OFFSETS: &str = "TASK_OFFSETS";
/// Global: [`TracepointOffsets`] taken from tracefs format files.
pub const GLOBAL_TRACEPOINT_OFFSETS: &str = "TRACEPOINT_OFFSETS";

/// Program names, one set per attach mechanism; the loader picks one set.
pub mod programs {
    pub const BTF_SCHED_SWITCH: &str = "btf_sched_switch";
    pub const BTF_SCHED_WAKEUP: &str = "btf_sched_wakeup";
    pub const BTF_SCHED_WAKEUP_NEW: &str = "btf_sched_wakeup_new";
    pub const TP_SCHED_SWITCH: &str = "tp_sched_switch";
    pub const TP_SCHED_WAKEUP: &str = "tp_sched_wakeup";
    pub const TP_SCHED_WAKEUP_NEW: &str = "tp_sched_wakeup_new";
}

/// Default capacity of [`MAP_THREADS`]; the loader may raise it.
pub const DEFAULT_MAX_THREADS: u32 = 65_536;
/// Default size of [`MAP_RUNQ_EVENTS`] in bytes (power of two).
pub const DEFAULT_RUNQ_RING_BYTES: u32 = 4 << 20;
/// Size of [`MAP_EXITS`] in bytes (power of two).
pub const EXIT_RING_BYTES: u32 = 1 << 20;

/// A run-queue event could not be written: the ring buffer was full.
pub const COUNTER_LOST_RUNQ_EVENTS: u32 = 0;
/// A thread exit record could not be written; the entry stays in the map.
pub const COUNTER_LOST_EXITS: u32 = 1;
/// A new thread could not be tracked: [`MAP_THREADS`] was full.
pub const COUNTER_THREADS_MAP_FULL: u32 = 2;
pub const COUNTER_COUNT: u32 = 4;

pub const TASK_COMM_LEN: usize = 16;
pub const MAX_FILTER_TGIDS: usize = 16;

/// `Filter::flags` bits. A task passes when it matches every enabled filter.
pub const FILTER_TGID: u32 = 1 << 0;
pub const FILTER_TID: u32 = 1 << 1;
pub const FILTER_CGROUP: u32 = 1 << 2;

/// How `cgroup` ancestry can be read on the running kernel.
pub const CGROUP_ANCESTRY_NONE: u32 = 0;
/// `struct cgroup { struct cgroup *ancestors[]; }` (Linux 6.0+).
pub const CGROUP_ANCESTRY_POINTERS: u32 = 1;
/// `struct cgroup { u64 ancestor_ids[]; }` (Linux 4.x-5.x).
pub const CGROUP_ANCESTRY_IDS: u32 = 2;

/// Filters, evaluated in the kernel on the task being measured (the wakee in
/// `sched_wakeup`, `next` when it is switched in, `prev` when switched out),
/// never on `current`.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub flags: u32,
    pub tid: u32,
    pub tgid_count: u32,
    pub tgids: [u32; MAX_FILTER_TGIDS],
    /// Depth of the target cgroup below the cgroup v2 root (root = 0).
    pub cgroup_level: u32,
    /// Kernfs id (the directory's inode number) of the target cgroup.
    pub cgroup_id: u64,
}

/// Byte offsets of the kernel struct members the programs read, taken from
/// the running kernel's BTF at load time, never from the build machine.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskOffsets {
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_comm: u32,
    pub task_cgroups: u32,
    pub css_set_dfl_cgrp: u32,
    pub cgroup_kn: u32,
    pub cgroup_level: u32,
    pub cgroup_ancestors: u32,
    pub kernfs_node_id: u32,
    /// One of the `CGROUP_ANCESTRY_*` constants.
    pub cgroup_ancestry: u32,
}

/// Offsets of the classic tracepoint record fields, from tracefs format files.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TracepointOffsets {
    pub switch_prev_pid: u32,
    pub switch_prev_state: u32,
    pub switch_next_pid: u32,
    pub switch_next_comm: u32,
    pub wakeup_pid: u32,
    pub wakeup_comm: u32,
}

/// Why a thread left the CPU, which decides where its off-CPU time goes.
pub const OFF_CPU_NONE: u32 = 0;
/// Preempted while runnable: the whole off-CPU period is run-queue wait.
pub const OFF_CPU_PREEMPTED: u32 = 1;
/// `TASK_UNINTERRUPTIBLE` (D): disk I/O, some locks, page faults.
pub const OFF_CPU_UNINTERRUPTIBLE: u32 = 2;
/// Any other sleep (S, idle D, stopped): futex, epoll, network, timers.
pub const OFF_CPU_SLEEP: u32 = 3;

/// `ThreadStats::flags`: the thread has exited but its exit record could not
/// be sent; the loader collects the entry from the map and deletes it.
pub const THREAD_DEAD: u32 = 1 << 0;

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
    /// Blocked in `TASK_UNINTERRUPTIBLE`, until woken.
    pub uninterruptible_ns: u64,
    /// Blocked in any other sleep state, until woken.
    pub sleep_ns: u64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
}

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
    /// One of the `OFF_CPU_*` constants: why the thread last left the CPU.
    pub off_cpu_state: u32,
    /// CPU the thread last ran on.
    pub last_cpu: u32,
    pub totals: ThreadTotals,
}

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

/// One completed run-queue wait: `tid` became runnable and got a CPU
/// `latency_ns` later, when `prev_tgid` left that CPU.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct RunqEvent {
    pub tid: u32,
    pub tgid: u32,
    pub latency_ns: u64,
    pub cpu: u32,
    pub prev_tgid: u32,
}

const _: () = {
    use core::mem::size_of;
    assert!(size_of::<Filter>() == 4 * (4 + MAX_FILTER_TGIDS) + 8);
    assert!(size_of::<TaskOffsets>() == 10 * 4);
    assert!(size_of::<TracepointOffsets>() == 6 * 4);
    assert!(size_of::<ThreadTotals>() == 8 * 8);
    assert!(size_of::<ThreadStats>() == 8 + TASK_COMM_LEN + 3 * 8 + 8 + size_of::<ThreadTotals>());
    assert!(size_of::<ThreadExit>() == 16 + size_of::<ThreadStats>());
    assert!(size_of::<RunqEvent>() == 24);
};

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all are repr(C), Copy, made only of integers, with no padding
    // (asserted above), so every bit pattern is a valid value.
    unsafe impl aya::Pod for Filter {}
    unsafe impl aya::Pod for TaskOffsets {}
    unsafe impl aya::Pod for TracepointOffsets {}
    unsafe impl aya::Pod for ThreadTotals {}
    unsafe impl aya::Pod for ThreadStats {}
    unsafe impl aya::Pod for ThreadExit {}
    unsafe impl aya::Pod for RunqEvent {}
}
