//! The per-CPU view: how many tasks wait in each CPU's run queue, over time.
//! Kept by the kernel's own run-queue changes (`sched_update_nr_running_tp`,
//! a BTF-only tracepoint), so it is exact, not sampled like `runqlen`.
use core::mem::size_of;

/// Per-CPU run-queue state: an array indexed by CPU number -> [`CpuQueue`].
pub const MAP_CPU_QUEUES: &str = "CPU_QUEUES";
/// Global: [`CpuQueueConfig`].
pub const GLOBAL_CPU_QUEUE_CONFIG: &str = "CPU_QUEUE_CONFIG";
/// Entries of [`MAP_CPU_QUEUES`] in the object; the loader sizes the map to
/// the machine's possible CPUs.
pub const MAX_CPUS: u32 = 4096;
/// Run-queue lengths kept apart; the last slot holds that length and more.
pub const RUNQ_LEN_SLOTS: usize = 32;

/// What the run-queue program needs: whether it is on, and where
/// `struct rq` keeps its task count and CPU number (from the running
/// kernel's BTF).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuQueueConfig {
    pub enabled: u32,
    pub rq_nr_running: u32,
    pub rq_cpu: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<CpuQueueConfig>() == 16);

impl CpuQueueConfig {
    pub const ZERO: CpuQueueConfig = CpuQueueConfig { enabled: 0, rq_nr_running: 0, rq_cpu: 0, _pad: 0 };
}

/// One CPU's run queue. Written under that run queue's lock (the
/// tracepoint's caller holds it), so writers never race; the loader reads
/// a copy and adds the period still open (`len` since `since_ns`).
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CpuQueue {
    /// When `len` last changed (0: no change seen yet).
    pub since_ns: u64,
    /// Tasks waiting for this CPU (runnable, not running) since `since_ns`.
    pub len: u32,
    pub _pad: u32,
    /// Nanoseconds spent at each length, up to `since_ns`; the last slot
    /// collects the lengths from `RUNQ_LEN_SLOTS - 1` up.
    pub time_at_len: [u64; RUNQ_LEN_SLOTS],
}
const _: () = assert!(size_of::<CpuQueue>() == 16 + 8 * RUNQ_LEN_SLOTS);

impl Default for CpuQueue {
    fn default() -> Self {
        CpuQueue { since_ns: 0, len: 0, _pad: 0, time_at_len: [0; RUNQ_LEN_SLOTS] }
    }
}

impl_pod!(CpuQueueConfig, CpuQueue);
