//! Names of the maps and load-time globals (the kernel's statics must be
//! named exactly so; the loader finds them by these names), and their
//! capacities.
#[cfg(doc)]
use crate::{
    BlockKey, BlockOffsets, BucketStat, Counter, Filter, HttpCapture, HttpConn, HttpConnKey, Inflight, InflightKey,
    RunqEvent, SpanConfig, SpanEvent, SpanKey, SpanState, SyscallConfig, SyscallErrorKey, SyscallKey, TaskOffsets,
    ThreadExit, TimelineEvent, TracepointOffsets, WaitHolderKey,
};

/// Per-thread cumulative accounting, keyed by TID.
pub const MAP_THREADS: &str = "THREADS";
/// Processes traced because a traced process forked them (`--children`):
/// TGID -> the TGID of the parent that forked it.
pub const MAP_FOLLOWED: &str = "FOLLOWED";
/// One [`RunqEvent`] per completed run-queue wait.
pub const MAP_RUNQ_EVENTS: &str = "RUNQ_EVENTS";
/// One [`ThreadExit`] per thread that exited while tracked.
pub const MAP_EXITS: &str = "EXITS";
/// Per-CPU loss counters, indexed by [`Counter`].
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
/// Ring buffer of [`TimelineEvent`]s (written only when `SpanConfig::timeline` is set).
pub const MAP_TIMELINE_EVENTS: &str = "TIMELINE_EVENTS";
/// Ring buffer of [`HttpCapture`]s.
pub const MAP_HTTP_EVENTS: &str = "HTTP_EVENTS";
/// Open HTTP connections of the traced process: [`HttpConnKey`] -> [`HttpConn`].
pub const MAP_HTTP_CONNS: &str = "HTTP_CONNS";
/// CPU holders of traced processes' run-queue waits:
/// [`WaitHolderKey`] -> nanoseconds (cumulative).
pub const MAP_WAIT_HOLDERS: &str = "WAIT_HOLDERS";
/// The marker rings whose records the kernel copies out when their process
/// exits: TGID -> the ring's address in the process.
pub const MAP_MARKER_RINGS: &str = "MARKER_RINGS";
/// Ring buffer of [`MarkerExitRecord`]s: what those rings held unread.
pub const MAP_MARKER_EXITS: &str = "MARKER_EXITS";

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

/// Default capacity of [`MAP_THREADS`]; the loader may raise it.
pub const DEFAULT_MAX_THREADS: u32 = 65_536;
/// Capacity of [`MAP_FOLLOWED`]: children followed at once (entries of
/// exited children are removed by the loader).
pub const MAX_FOLLOWED: u32 = 16_384;
/// Default size of [`MAP_RUNQ_EVENTS`] in bytes (power of two).
pub const DEFAULT_RUNQ_RING_BYTES: u32 = 4 << 20;
/// Size of [`MAP_EXITS`] in bytes (power of two).
pub const EXIT_RING_BYTES: u32 = 1 << 20;

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
/// Capacity of [`MAP_MARKER_RINGS`] (processes traced with `--cgroup` among them).
pub const MAX_MARKER_RINGS: u32 = 1_024;
/// Room for 13,000 records of marker rings whose processes exited (80 bytes
/// each with their headers): a drain period's worth at 65,000 spans a
/// second. Kept small: the kernel maps a ring's pages twice into the
/// tracer, so each MiB here is 2 MiB of its RSS. More are counted lost.
pub const MARKER_EXIT_RING_BYTES: u32 = 1 << 20;
/// Room for about 30,000 request and response heads: a few tenths of a
/// second at the highest rates measured (docs/performance.md).
pub const HTTP_RING_BYTES: u32 = 16 << 20;
pub const HTTP_CONNS_ENTRIES: u32 = 16_384;
/// Responses being written in rounds at once (each keeps where its span
/// ended so far).
pub const HTTP_ROUNDS_ENTRIES: u32 = 4_096;
