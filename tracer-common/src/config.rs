//! Load-time globals: the loader writes them into the object before loading
//! it, from the command line and from the running kernel's BTF and tracefs.
use core::mem::size_of;

#[cfg(doc)]
use crate::TimelineEvent;

/// Gives each load-time global its unset value, all zero, as `const ZERO`
/// (the kernel's statics start from it, before the loader writes theirs) and
/// as `Default` (what the loader leaves unset), so it is defined once.
/// Zero is "unknown" for an offset and "off" for an option.
macro_rules! zero_when_unset {
    ($($ty:ident),* $(,)?) => {
        $(
            impl $ty {
                /// All zero: unset.
                // SAFETY: the type is made only of integers (it is Pod), so
                // all-zero bytes are a valid value of it.
                pub const ZERO: $ty = unsafe { core::mem::zeroed() };
            }

            impl Default for $ty {
                fn default() -> $ty {
                    $ty::ZERO
                }
            }
        )*
    };
}

pub const MAX_FILTER_TGIDS: usize = 16;

/// `Filter::flags` bits. A task passes when it matches every enabled filter.
pub const FILTER_TGID: u32 = 1 << 0;
pub const FILTER_TID: u32 = 1 << 1;
pub const FILTER_CGROUP: u32 = 1 << 2;
/// With [`FILTER_TGID`]: processes forked by a traced process are traced
/// too (`--children`), found in [`crate::MAP_FOLLOWED`].
pub const FILTER_FOLLOW_CHILDREN: u32 = 1 << 3;

/// Filters, evaluated in the kernel on the task being measured (the wakee in
/// `sched_wakeup`, `next` when it is switched in, `prev` when switched out),
/// never on `current`.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub flags: u32,
    pub tid: u32,
    pub tgid_count: u32,
    pub tgids: [u32; MAX_FILTER_TGIDS],
    /// Depth of the target cgroup below the cgroup v2 root (root = 0).
    pub cgroup_level: u32,
    /// The tracer's own process: its syscalls and I/O are never measured
    /// (reading the maps would otherwise show up as the busiest syscall).
    pub self_tgid: u32,
    pub _pad: u32,
    /// Kernfs id (the directory's inode number) of the target cgroup.
    pub cgroup_id: u64,
}
const _: () = assert!(size_of::<Filter>() == 4 * (6 + MAX_FILTER_TGIDS) + 8);

raw_enum! {
    /// How `cgroup` ancestry can be read on the running kernel
    /// (`TaskOffsets::cgroup_ancestry`).
    pub enum CgroupAncestry: u32 {
        /// Neither array below: only a task's own cgroup is compared.
        Unavailable = 0,
        /// `struct cgroup { struct cgroup *ancestors[]; }` (Linux 6.0+).
        Pointers = 1,
        /// `struct cgroup { u64 ancestor_ids[]; }` (Linux 4.x-5.x).
        Ids = 2,
    }
}

/// Byte offsets of the kernel struct members the programs read, taken from
/// the running kernel's BTF at load time, never from the build machine.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TaskOffsets {
    /// `task_struct.pid`, followed by `.tgid` (read together).
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_comm: u32,
    pub task_cgroups: u32,
    pub css_set_dfl_cgrp: u32,
    pub cgroup_kn: u32,
    pub cgroup_level: u32,
    pub cgroup_ancestors: u32,
    pub kernfs_node_id: u32,
    /// A [`CgroupAncestry`].
    pub cgroup_ancestry: u32,
    /// Byte holding the `task_struct.in_iowait` bit, and the bit's mask
    /// (0: unknown, so I/O waits count as plain uninterruptible waits).
    pub task_in_iowait_byte: u32,
    pub task_in_iowait_mask: u32,
    /// The kernel's own per-task scheduler counters (0: not available, and
    /// periods the sched tracepoints miss stay unaccounted):
    /// `task_struct.se.sum_exec_runtime`, `.sched_info.pcount` (followed by
    /// `.run_delay`: read together) and `.sched_info.last_arrival`.
    pub task_sum_exec_runtime: u32,
    pub task_pcount: u32,
    pub task_last_arrival: u32,
    /// `task_struct.on_cpu` (0: unknown), and the byte and mask of the
    /// `sched_contributes_to_load` bit (set when it blocked uninterruptibly):
    /// at a wakeup they tell that, and how, a thread left the CPU when that
    /// switch was not reported.
    pub task_on_cpu: u32,
    pub task_contributes_byte: u32,
    pub task_contributes_mask: u32,
    /// `pt_regs` members holding a syscall's first two arguments (x86-64:
    /// `di`, `si`), for `raw_syscalls:sys_enter`'s `regs`.
    pub regs_arg0: u32,
    pub regs_arg1: u32,
    /// `task_struct.files`, `files_struct.fdt`, `fdtable.fd` and
    /// `fdtable.max_fds`: from a descriptor to its `struct file` (0: unknown).
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdtable_fd: u32,
    pub fdtable_max_fds: u32,
    /// CPU-quota throttling (0: unknown, and no wait is told apart as
    /// throttled): `task_struct.se.cfs_rq`; `cfs_rq.throttled_clock_self`,
    /// followed by `throttled_clock_self_time`; `cfs_rq.rq`; `rq.clock`.
    pub task_cfs_rq: u32,
    pub cfs_rq_throttled_clock_self: u32,
    pub cfs_rq_rq: u32,
    pub rq_clock: u32,
    /// The CPU whose run queue the task is on: `task_struct.cpu`, or
    /// `thread_info.cpu` inside it (0: unknown, and the holders' sums do not
    /// follow waits that begin with a wakeup).
    pub task_cpu: u32,
    /// `task_struct.sched_info.last_queued` (0: unknown), read against the
    /// throttling offsets' `rq.clock`.
    pub task_last_queued: u32,
    /// Non-zero: the wakeup programs are not attached, and a thread's wakeup
    /// is placed at its switch-in from `last_queued` (see `wakeups`).
    pub wakeups_at_switch_in: u32,
}
const _: () = assert!(size_of::<TaskOffsets>() == 31 * 4);

/// Offsets of the classic tracepoint record fields, from tracefs format files.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TracepointOffsets {
    pub switch_prev_pid: u32,
    pub switch_prev_state: u32,
    pub switch_next_pid: u32,
    pub switch_next_comm: u32,
    pub wakeup_pid: u32,
    pub wakeup_comm: u32,
    /// `sched_wakeup.target_cpu`: the CPU the woken task is queued on.
    pub wakeup_target_cpu: u32,
    /// `raw_syscalls:sys_enter.id` and `raw_syscalls:sys_exit.ret`.
    pub sys_enter_id: u32,
    pub sys_exit_ret: u32,
    /// `raw_syscalls:sys_enter.args` (the six arguments).
    pub sys_enter_args: u32,
    /// The lean HTTP path's `syscalls:sys_enter_*` and `sys_exit_*` records
    /// (one layout for every syscall): the syscall number (an int), the
    /// first argument, and the return value.
    pub syscall_enter_nr: u32,
    pub syscall_enter_args: u32,
    pub syscall_exit_ret: u32,
}
const _: () = assert!(size_of::<TracepointOffsets>() == 13 * 4);

/// Offsets of the `block:block_rq_*` records (the `block_rq` class, shared by
/// `block_io_start`, `block_rq_insert` and `block_rq_issue`) and of
/// `block:block_rq_complete`.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BlockOffsets {
    pub rq_dev: u32,
    pub rq_sector: u32,
    pub rq_bytes: u32,
    pub rq_rwbs: u32,
    pub done_dev: u32,
    pub done_sector: u32,
}
const _: () = assert!(size_of::<BlockOffsets>() == 6 * 4);

pub const SYSCALL_BITMAP_WORDS: usize = 8;
/// Highest syscall number the filter bitmap can hold, plus one.
pub const SYSCALL_BITMAP_BITS: u32 = u64::BITS * SYSCALL_BITMAP_WORDS as u32;

/// Syscall tracing options.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SyscallConfig {
    /// Aggregate per thread (key id = TID) instead of per process (TGID).
    pub by_thread: u32,
    /// Only syscalls whose bit is set in `numbers` are aggregated.
    pub only_listed: u32,
    pub numbers: [u64; SYSCALL_BITMAP_WORDS],
}
const _: () = assert!(size_of::<SyscallConfig>() == 8 + 8 * SYSCALL_BITMAP_WORDS);

/// Span tracing options.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SpanConfig {
    /// Spans or the timeline are on; they read the per-CPU run slices
    /// (kept for the holders' sums too).
    pub enabled: u32,
    /// Stream every state change of traced threads as [`TimelineEvent`]s.
    pub timeline: u32,
    /// Detect HTTP/1.x requests and responses in the traced process's
    /// socket syscalls and make each exchange a span.
    pub http: u32,
    /// Sum, per waiting process, who held the CPU during its run-queue
    /// waits (`WAIT_HOLDERS`): following each CPU's traced waiters
    /// (`CPU_WAITERS`) from a preemption (or a reported wakeup), and from
    /// the per-CPU run slices (`CPU_SLICES`) for a wakeup placed at the
    /// switch-in.
    pub holders: u32,
    /// Stream each traced run-queue wait (`RUNQ_EVENTS`) for the loader's
    /// histograms; off where nothing reads them (`tracer spans` without
    /// `--listen`), which saves a ring record per wait.
    pub runq_waits: u32,
    /// The syscalls HTTP detection watches, numbered for the running
    /// kernel's architecture (the eBPF object is the same on every one).
    pub http_syscalls: HttpSyscalls,
}
const _: () = assert!(size_of::<SpanConfig>() == 20 + size_of::<HttpSyscalls>());

/// Numbers of the syscalls that carry HTTP on a socket, filled by the
/// loader from its architecture's syscall table (x86-64 and arm64 have
/// them all, under different numbers).
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct HttpSyscalls {
    pub read: u32,
    pub write: u32,
    pub close: u32,
    pub readv: u32,
    pub writev: u32,
    pub sendfile: u32,
    pub sendto: u32,
    pub recvfrom: u32,
    pub sendmsg: u32,
    pub recvmsg: u32,
    /// Its address names the peer of the connection's outgoing exchanges.
    pub connect: u32,
}
const _: () = assert!(size_of::<HttpSyscalls>() == 4 * 11);

zero_when_unset!(Filter, TaskOffsets, TracepointOffsets, BlockOffsets, SyscallConfig, SpanConfig);
impl_pod!(Filter, TaskOffsets, TracepointOffsets, BlockOffsets, SyscallConfig, SpanConfig);
