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
/// Per-CPU syscall latency buckets: [`SyscallKey`] -> [`BucketStat`].
pub const MAP_SYSCALL_LATENCY: &str = "SYSCALL_LATENCY";
/// Per-CPU failed syscall counts: [`SyscallErrorKey`] -> count.
pub const MAP_SYSCALL_ERRORS: &str = "SYSCALL_ERRORS";
/// Block requests in flight: [`InflightKey`] -> [`Inflight`].
pub const MAP_BLOCK_INFLIGHT: &str = "BLOCK_INFLIGHT";
/// Per-CPU block I/O buckets: [`BlockKey`] -> [`BucketStat`].
pub const MAP_BLOCK_STATS: &str = "BLOCK_STATS";
/// Open request spans: [`SpanKey`] -> [`SpanState`].
pub const MAP_SPANS: &str = "SPANS";
/// One [`SpanEvent`] per finished span.
pub const MAP_SPAN_EVENTS: &str = "SPAN_EVENTS";

/// Global: [`Filter`] applied to the task being measured.
pub const GLOBAL_FILTER: &str = "FILTER";
/// Global: [`TaskOffsets`] taken from the running kernel's BTF.
pub const GLOBAL_TASK_OFFSETS: &str = "TASK_OFFSETS";
/// Global: [`TracepointOffsets`] taken from tracefs format files.
pub const GLOBAL_TRACEPOINT_OFFSETS: &str = "TRACEPOINT_OFFSETS";
/// Global: [`SyscallConfig`].
pub const GLOBAL_SYSCALL_CONFIG: &str = "SYSCALL_CONFIG";
/// Global: [`BlockOffsets`] taken from tracefs format files.
pub const GLOBAL_BLOCK_OFFSETS: &str = "BLOCK_OFFSETS";
/// Global: [`SpanConfig`].
pub const GLOBAL_SPAN_CONFIG: &str = "SPAN_CONFIG";
/// Ring buffer of [`TimelineEvent`]s (written only when `SpanConfig::timeline` is set).
pub const MAP_TIMELINE_EVENTS: &str = "TIMELINE_EVENTS";

/// Program names, one set per attach mechanism; the loader picks one set.
pub mod programs {
    pub const BTF_SCHED_SWITCH: &str = "btf_sched_switch";
    pub const BTF_SCHED_WAKEUP: &str = "btf_sched_wakeup";
    pub const BTF_SCHED_WAKEUP_NEW: &str = "btf_sched_wakeup_new";
    pub const TP_SCHED_SWITCH: &str = "tp_sched_switch";
    pub const TP_SCHED_WAKEUP: &str = "tp_sched_wakeup";
    pub const TP_SCHED_WAKEUP_NEW: &str = "tp_sched_wakeup_new";
    pub const BTF_SYS_ENTER: &str = "btf_sys_enter";
    pub const BTF_SYS_EXIT: &str = "btf_sys_exit";
    pub const TP_SYS_ENTER: &str = "tp_sys_enter";
    pub const TP_SYS_EXIT: &str = "tp_sys_exit";
    pub const UPROBE_SPAN_BEGIN: &str = "uprobe_span_begin";
    pub const UPROBE_SPAN_END: &str = "uprobe_span_end";
    pub const BTF_SYS_ENTER_EMPTY: &str = "btf_sys_enter_empty";
    pub const BTF_SYS_EXIT_EMPTY: &str = "btf_sys_exit_empty";
    pub const TP_BLOCK_IO_START: &str = "tp_block_io_start";
    pub const TP_BLOCK_RQ_INSERT: &str = "tp_block_rq_insert";
    pub const TP_BLOCK_RQ_ISSUE: &str = "tp_block_rq_issue";
    pub const TP_BLOCK_RQ_COMPLETE: &str = "tp_block_rq_complete";
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
/// A syscall or block I/O statistics map was full; that sample was dropped.
pub const COUNTER_STATS_MAP_FULL: u32 = 3;
/// A block request could not be tracked: the in-flight table was full.
pub const COUNTER_BLOCK_INFLIGHT_FULL: u32 = 4;
/// `tracer_span_end` for a span that was never begun (or ended twice).
pub const COUNTER_SPAN_END_UNMATCHED: u32 = 5;
/// `tracer_span_begin` for an id already open (the earlier one is replaced).
pub const COUNTER_SPAN_BEGIN_DUPLICATE: u32 = 6;
/// A span was lost: the open-span table or the span ring buffer was full.
pub const COUNTER_LOST_SPANS: u32 = 7;
/// A thread was switched out while its entry said it was off the CPU, or
/// switched in while it said it was on one: the kernel did not emit the
/// transition in between. The period is split with the kernel's own
/// counters ([`KernelSchedCounters`]) when BTF gives their offsets;
/// otherwise, and for what they cannot place, it is `unaccounted_ns`.
pub const COUNTER_ACCOUNTING_GAPS: u32 = 8;
/// A [`TimelineEvent`] was dropped: the timeline ring buffer was full.
pub const COUNTER_LOST_TIMELINE: u32 = 9;
/// A request began on a connection whose previous request had no response
/// yet (HTTP pipelining): it is not made a span of its own.
pub const COUNTER_HTTP_PIPELINED: u32 = 10;
/// A connection closed between a request and its response.
pub const COUNTER_HTTP_UNANSWERED: u32 = 11;
pub const COUNTER_COUNT: u32 = 12;

/// Capacity of the syscall and block statistics maps (keys are
/// process x syscall-or-device x bucket).
pub const STATS_MAP_ENTRIES: u32 = 131_072;
/// Capacity of [`MAP_BLOCK_INFLIGHT`].
pub const BLOCK_INFLIGHT_ENTRIES: u32 = 16_384;
/// Capacity of [`MAP_SPANS`]; spans open longer than the loader's expiry
/// are removed and counted as never ended.
pub const MAX_OPEN_SPANS: u32 = 16_384;
pub const SPAN_RING_BYTES: u32 = 2 << 20;
pub const TIMELINE_RING_BYTES: u32 = 8 << 20;
pub const SPAN_NAME_LEN: usize = 32;
/// Syscalls and CPU holders kept per span (the largest by time).
pub const SPAN_TOP: usize = 4;
/// Recent run slices remembered per CPU, to tell who held a CPU while a
/// span's thread waited for it.
pub const CPU_SLICE_RING: usize = 16;

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
    /// The tracer's own process: its syscalls and I/O are never measured
    /// (reading the maps would otherwise show up as the busiest syscall).
    pub self_tgid: u32,
    pub _pad: u32,
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
    /// Byte holding the `task_struct.in_iowait` bit, and the bit's mask
    /// (0: unknown, so I/O waits count as plain uninterruptible waits).
    pub task_in_iowait_byte: u32,
    pub task_in_iowait_mask: u32,
    /// The kernel's own per-task scheduler counters (0: not available, and
    /// periods the sched tracepoints miss stay unaccounted):
    /// `task_struct.se.sum_exec_runtime`, `.sched_info.run_delay`,
    /// `.sched_info.pcount` and `.sched_info.last_arrival`.
    pub task_sum_exec_runtime: u32,
    pub task_run_delay: u32,
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
    /// `raw_syscalls:sys_enter.id` and `raw_syscalls:sys_exit.ret`.
    pub sys_enter_id: u32,
    pub sys_exit_ret: u32,
    /// `raw_syscalls:sys_enter.args` (the six arguments).
    pub sys_enter_args: u32,
}

/// Offsets of the `block:block_rq_*` records (the `block_rq` class, shared by
/// `block_io_start`, `block_rq_insert` and `block_rq_issue`) and of
/// `block:block_rq_complete`.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockOffsets {
    pub rq_dev: u32,
    pub rq_sector: u32,
    pub rq_bytes: u32,
    pub rq_rwbs: u32,
    pub done_dev: u32,
    pub done_sector: u32,
}

/// Length of the `rwbs` field read from block tracepoints.
pub const RWBS_LEN: usize = 8;

/// Syscall tracing options.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SyscallConfig {
    /// Aggregate per thread (key id = TID) instead of per process (TGID).
    pub by_thread: u32,
    /// Only syscalls whose bit is set in `numbers` are aggregated.
    pub only_listed: u32,
    pub numbers: [u64; SYSCALL_BITMAP_WORDS],
}

pub const SYSCALL_BITMAP_WORDS: usize = 8;
/// Highest syscall number the filter bitmap can hold, plus one.
pub const SYSCALL_BITMAP_BITS: u32 = 64 * SYSCALL_BITMAP_WORDS as u32;

/// Key of [`MAP_SYSCALL_LATENCY`].
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SyscallKey {
    /// TGID, or TID when aggregating per thread.
    pub id: u32,
    pub nr: u16,
    /// Log-linear bucket of the latency ([`bucket_index`]).
    pub bucket: u16,
}

/// Key of [`MAP_SYSCALL_ERRORS`].
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SyscallErrorKey {
    pub id: u32,
    pub nr: u16,
    pub errno: u16,
}

/// Count and sum of the values in one bucket.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketStat {
    pub count: u64,
    pub total: u64,
}

/// Block operation, decoded from the tracepoints' `rwbs` string.
pub const BLOCK_OP_READ: u8 = 0;
pub const BLOCK_OP_WRITE: u8 = 1;
pub const BLOCK_OP_FLUSH: u8 = 2;
pub const BLOCK_OP_DISCARD: u8 = 3;
pub const BLOCK_OP_OTHER: u8 = 4;

/// What a [`BlockKey`] bucket measures.
/// Issue to completion (device service time), ns.
pub const BLOCK_METRIC_LATENCY: u8 = 0;
/// Insert into the OS queue to issue, ns (0 when issued directly).
pub const BLOCK_METRIC_QUEUE: u8 = 1;
/// Insert (or issue, when not queued) to completion, ns.
pub const BLOCK_METRIC_TOTAL: u8 = 2;
/// Request size, bytes.
pub const BLOCK_METRIC_SIZE: u8 = 3;

/// Key of [`MAP_BLOCK_STATS`].
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct BlockKey {
    /// TGID of the process that submitted the request (0: unknown).
    pub tgid: u32,
    /// Kernel `dev_t` of the disk (major << 20 | minor).
    pub dev: u32,
    pub op: u8,
    pub sync: u8,
    pub metric: u8,
    pub _pad: u8,
    pub bucket: u16,
    pub _pad2: u16,
}

/// Key of [`MAP_BLOCK_INFLIGHT`]: a request is identified by its disk and
/// start sector while in flight.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct InflightKey {
    pub dev: u32,
    pub _pad: u32,
    pub sector: u64,
}

/// A block request between submission and completion.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Inflight {
    pub tgid: u32,
    pub bytes: u32,
    pub insert_ns: u64,
    pub issue_ns: u64,
    pub op: u8,
    pub sync: u8,
    pub _pad: [u8; 6],
}

/// Log-linear histogram bucketing shared by kernel and user side: values
/// below 128 are exact; above, 128 linear sub-buckets per power of two, so
/// a bucket is at most 1/128 (0.79%) of its lower bound wide.
pub const BUCKET_SUB_BITS: u32 = 7;
const BUCKET_SUB_COUNT: u64 = 1 << BUCKET_SUB_BITS;

#[inline(always)]
pub fn bucket_index(value: u64) -> u16 {
    if value < BUCKET_SUB_COUNT {
        return value as u16;
    }
    let msb = 63 - value.leading_zeros();
    let shift = msb - BUCKET_SUB_BITS;
    let sub = (value >> shift) - BUCKET_SUB_COUNT;
    (BUCKET_SUB_COUNT + u64::from(shift) * BUCKET_SUB_COUNT + sub) as u16
}

/// Inclusive value range `[lower, upper]` of a bucket.
pub fn bucket_range(index: u16) -> (u64, u64) {
    let index = u64::from(index);
    if index < BUCKET_SUB_COUNT {
        return (index, index);
    }
    let shift = (index - BUCKET_SUB_COUNT) / BUCKET_SUB_COUNT;
    let sub = (index - BUCKET_SUB_COUNT) % BUCKET_SUB_COUNT;
    let lower = (BUCKET_SUB_COUNT + sub) << shift;
    (lower, lower + (1 << shift) - 1)
}

/// Why a thread left the CPU, which decides where its off-CPU time goes.
pub const OFF_CPU_NONE: u32 = 0;
/// Preempted while runnable: the whole off-CPU period is run-queue wait.
pub const OFF_CPU_PREEMPTED: u32 = 1;
/// `TASK_UNINTERRUPTIBLE` (D): disk I/O, some locks, page faults.
pub const OFF_CPU_UNINTERRUPTIBLE: u32 = 2;
/// Any other sleep (S, idle D, stopped): futex, epoll, network, timers.
pub const OFF_CPU_SLEEP: u32 = 3;
/// `TASK_UNINTERRUPTIBLE` with `in_iowait` set: waiting for I/O
/// (`io_schedule`), the time `iowait` in /proc/stat accounts.
pub const OFF_CPU_IOWAIT: u32 = 4;

/// `ThreadStats::flags`: the thread has exited but its exit record could not
/// be sent; the loader collects the entry from the map and deletes it.
pub const THREAD_DEAD: u32 = 1 << 0;
/// `ThreadStats::flags`: a span is open on this thread (`span_id`).
pub const THREAD_IN_SPAN: u32 = 1 << 1;
/// `ThreadStats::kernel` holds a sample of the kernel's counters.
pub const THREAD_KERNEL_SAMPLED: u32 = 1 << 2;
/// The thread wrote an HTTP response on `http_fd`; its span ends at the
/// thread's first syscall that is not another write to that connection.
pub const THREAD_HTTP_RESPONDING: u32 = 1 << 3;
/// `ThreadStats::last_cpu` before the thread was first seen on a CPU.
pub const CPU_UNKNOWN: u32 = u32::MAX;

/// Span tracing options.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SpanConfig {
    /// Keep per-CPU run slices so span waits can be blamed on their holders.
    pub enabled: u32,
    /// Stream every state change of traced threads as [`TimelineEvent`]s.
    pub timeline: u32,
    /// Detect HTTP/1.x requests and responses in the traced process's
    /// socket syscalls and make each exchange a span.
    pub http: u32,
    pub _pad: u32,
}

/// Key of [`MAP_SPANS`].
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SpanKey {
    pub tgid: u32,
    pub _pad: u32,
    pub span_id: u64,
}

/// A syscall (`id` = number) or CPU holder (`id` = TGID) and its time.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TopEntry {
    pub id: u32,
    pub count: u32,
    pub ns: u64,
}

/// An open span: its thread's totals when it began, and what has been
/// charged to it since.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SpanState {
    pub tid: u32,
    pub _pad: u32,
    pub start_ns: u64,
    pub name: [u8; SPAN_NAME_LEN],
    pub base: ThreadTotals,
    pub syscalls: [TopEntry; SPAN_TOP],
    pub holders: [TopEntry; SPAN_TOP],
}

/// `SpanEvent::flags`: ended on another thread than it began; the
/// breakdown (which follows one thread) is left empty.
pub const SPAN_MOVED_THREAD: u32 = 1 << 0;
/// `SpanEvent::flags`: an HTTP exchange found in socket syscalls; its
/// request and response heads arrived before it as [`HttpCapture`]s.
pub const SPAN_HTTP: u32 = 1 << 1;

/// Ring buffer of [`HttpCapture`]s.
pub const MAP_HTTP_EVENTS: &str = "HTTP_EVENTS";
/// Open HTTP connections of the traced process: [`HttpConnKey`] -> [`HttpConn`].
pub const MAP_HTTP_CONNS: &str = "HTTP_CONNS";
/// Room for about 30,000 request and response heads: a few tenths of a
/// second at the highest rates measured (docs/performance.md).
pub const HTTP_RING_BYTES: u32 = 16 << 20;
pub const HTTP_CONNS_ENTRIES: u32 = 16_384;
/// Bytes of a request or response head copied per read or write.
pub const HTTP_CAPTURE_LEN: usize = 512;
/// Reads of one request whose bytes are copied (headers split over reads).
pub const HTTP_CAPTURE_READS: u32 = 4;
/// `HttpCapture::kind`.
pub const HTTP_CAPTURE_REQUEST: u32 = 1;
pub const HTTP_CAPTURE_RESPONSE: u32 = 2;

/// The first bytes of one read of a request, or of the write that began
/// its response, sent before the span they belong to.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct HttpCapture {
    pub span_id: u64,
    pub tgid: u32,
    pub tid: u32,
    pub kind: u32,
    /// Bytes of `data` that are valid.
    pub len: u32,
    pub data: [u8; HTTP_CAPTURE_LEN],
}

#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct HttpConnKey {
    pub tgid: u32,
    pub _pad: u32,
    /// The connection's `struct file` (shared by descriptors `dup`ed from
    /// one another), or its descriptor number when that cannot be read.
    pub file: u64,
}

/// `HttpConn::phase`.
pub const HTTP_PHASE_REQUEST: u32 = 1;
pub const HTTP_PHASE_RESPONSE: u32 = 2;

/// An HTTP exchange in progress on one connection. The span's end moves to
/// each response write; the span is sent when its thread does anything else.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpConn {
    pub span_id: u64,
    pub phase: u32,
    pub reads: u32,
    pub end_tid: u32,
    pub _pad: u32,
    pub end_ns: u64,
    /// The writing thread's totals at the end of the last response write.
    pub end: ThreadTotals,
}

/// A finished span: `delta` is its thread's totals at the end minus those
/// at the beginning.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SpanEvent {
    pub span_id: u64,
    pub tgid: u32,
    pub tid_begin: u32,
    pub tid_end: u32,
    pub flags: u32,
    pub start_ns: u64,
    pub end_ns: u64,
    pub name: [u8; SPAN_NAME_LEN],
    pub delta: ThreadTotals,
    pub syscalls: [TopEntry; SPAN_TOP],
    pub holders: [TopEntry; SPAN_TOP],
}

/// One run slice: `tgid` had a CPU from `start` to `end`.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuSlice {
    pub tgid: u32,
    pub _pad: u32,
    pub start: u64,
    pub end: u64,
}

/// Per-CPU ring of the last run slices, and the slice in progress.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CpuSlices {
    pub current_tgid: u32,
    pub head: u32,
    pub current_start: u64,
    pub slices: [CpuSlice; CPU_SLICE_RING],
}

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
    /// (see `COUNTER_ACCOUNTING_GAPS`).
    pub unaccounted_ns: u64,
}

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
    /// The blocked period closed by the last wakeup, reported with the
    /// run-queue wait that follows it.
    pub last_blocked_ns: u64,
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
    pub totals: ThreadTotals,
    /// The kernel's counters when `totals` last agreed with them (at the
    /// last switch-out; valid with `THREAD_KERNEL_SAMPLED`).
    pub kernel: KernelSchedCounters,
}

/// A task's own scheduler accounting, the numbers behind
/// `/proc/<pid>/task/<tid>/schedstat`. The sched tracepoints occasionally do
/// not report a switch (see `COUNTER_ACCOUNTING_GAPS`); the difference of two
/// samples of these says how much of the unreported period was on a CPU and
/// how much waiting for one.
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
/// `latency_ns` later, when `prev_tgid` left that CPU. It also carries the
/// off-CPU episode that ended in this wait: `blocked_ns` in
/// `blocked_state` (an `OFF_CPU_*` constant; for `OFF_CPU_PREEMPTED` the
/// episode is the wait itself and `blocked_ns` is 0).
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
    pub _pad: u32,
}

/// `TimelineEvent::kind`: the thread entered state `value` at `ts_ns`;
/// `totals` are its cumulative totals at that moment.
pub const TIMELINE_TRANSITION: u32 = 1;
/// A syscall of the thread ended at `ts_ns`: `value` is its number, `ns`
/// its duration.
pub const TIMELINE_SYSCALL: u32 = 2;
/// The thread's run-queue wait that ended at `ts_ns` was spent while
/// process `value` (TGID; 0: the CPU was idle) held the CPU for `ns`.
pub const TIMELINE_HOLDER: u32 = 3;

/// States of a [`TIMELINE_TRANSITION`], besides the `OFF_CPU_*` ones
/// (`OFF_CPU_PREEMPTED`: runnable after an involuntary switch; the others:
/// blocked in that state).
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
    /// One of the `TIMELINE_*` kinds.
    pub kind: u32,
    pub tid: u32,
    pub tgid: u32,
    pub cpu: u32,
    pub ts_ns: u64,
    pub value: u32,
    pub _pad: u32,
    pub ns: u64,
    /// Valid for [`TIMELINE_TRANSITION`] only.
    pub totals: ThreadTotals,
}

const _: () = {
    use core::mem::size_of;
    assert!(size_of::<Filter>() == 4 * (6 + MAX_FILTER_TGIDS) + 8);
    assert!(size_of::<TaskOffsets>() == 25 * 4);
    assert!(size_of::<TracepointOffsets>() == 9 * 4);
    assert!(size_of::<BlockOffsets>() == 6 * 4);
    assert!(size_of::<SyscallConfig>() == 8 + 8 * SYSCALL_BITMAP_WORDS);
    assert!(size_of::<ThreadTotals>() == 13 * 8);
    assert!(
        size_of::<ThreadStats>()
            == 8 + TASK_COMM_LEN + 3 * 8 + 8 + 8 + 8 + 8 + 8 + 24 + 8 + 8 + size_of::<ThreadTotals>()
                + size_of::<KernelSchedCounters>()
    );
    assert!(size_of::<KernelSchedCounters>() == 3 * 8);
    assert!(size_of::<SpanConfig>() == 16);
    assert!(size_of::<SpanKey>() == 16);
    assert!(size_of::<TopEntry>() == 16);
    assert!(size_of::<SpanState>() == 16 + SPAN_NAME_LEN + size_of::<ThreadTotals>() + 2 * 16 * SPAN_TOP);
    assert!(size_of::<SpanEvent>() == 40 + SPAN_NAME_LEN + size_of::<ThreadTotals>() + 2 * 16 * SPAN_TOP);
    assert!(size_of::<CpuSlices>() == 16 + 24 * CPU_SLICE_RING);
    assert!(size_of::<ThreadExit>() == 16 + size_of::<ThreadStats>());
    assert!(size_of::<RunqEvent>() == 40);
    assert!(size_of::<HttpCapture>() == 24 + HTTP_CAPTURE_LEN);
    assert!(size_of::<HttpConnKey>() == 16);
    assert!(size_of::<HttpConn>() == 32 + size_of::<ThreadTotals>());
    assert!(size_of::<TimelineEvent>() == 40 + size_of::<ThreadTotals>());
    assert!(size_of::<SyscallKey>() == 8);
    assert!(size_of::<SyscallErrorKey>() == 8);
    assert!(size_of::<BucketStat>() == 16);
    assert!(size_of::<BlockKey>() == 16);
    assert!(size_of::<InflightKey>() == 16);
    assert!(size_of::<Inflight>() == 32);
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
    unsafe impl aya::Pod for KernelSchedCounters {}
    unsafe impl aya::Pod for ThreadExit {}
    unsafe impl aya::Pod for RunqEvent {}
    unsafe impl aya::Pod for HttpCapture {}
    unsafe impl aya::Pod for HttpConnKey {}
    unsafe impl aya::Pod for HttpConn {}
    unsafe impl aya::Pod for TimelineEvent {}
    unsafe impl aya::Pod for BlockOffsets {}
    unsafe impl aya::Pod for SyscallConfig {}
    unsafe impl aya::Pod for SyscallKey {}
    unsafe impl aya::Pod for SyscallErrorKey {}
    unsafe impl aya::Pod for BucketStat {}
    unsafe impl aya::Pod for BlockKey {}
    unsafe impl aya::Pod for InflightKey {}
    unsafe impl aya::Pod for Inflight {}
    unsafe impl aya::Pod for SpanConfig {}
    unsafe impl aya::Pod for SpanKey {}
    unsafe impl aya::Pod for TopEntry {}
    unsafe impl aya::Pod for SpanState {}
    unsafe impl aya::Pod for SpanEvent {}
    unsafe impl aya::Pod for CpuSlice {}
    unsafe impl aya::Pod for CpuSlices {}
}
