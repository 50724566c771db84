//! What to load and attach, and what can go wrong doing it.
use tracer_common::Filter;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "tracer needs root (or CAP_BPF and CAP_PERFMON) to load its eBPF programs; run it with sudo"
    )]
    NotPrivileged,
    #[error("this tracer binary was built without its eBPF programs; build it with `cargo xtask build`")]
    NoObject,
    #[error("kernel BTF unusable ({0}); try --probes tracepoint")]
    Btf(String),
    #[error("{0}")]
    Tracefs(#[from] crate::sys::tracefs::TracefsError),
    #[error("loading the eBPF programs failed: {0}")]
    Load(String),
    #[error("attaching {what} failed: {reason}")]
    Attach { what: String, reason: String },
    #[error(
        "process {0} has no span markers (tracer_span_begin/tracer_span_end in its executable or \
         libraries): link libtracer_span.so or the tracer-span crate and mark requests (README, \
         \"Instrumenting an application\"), or, for an HTTP/1.x server, add --http to find requests \
         in its socket syscalls"
    )]
    NoMarkers(u32),
}

/// How the scheduler tracepoints are attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeChoice {
    /// BTF tracepoints when the kernel has BTF, classic tracepoints otherwise.
    Auto,
    /// BTF tracepoints (tp_btf): the cheapest; needs /sys/kernel/btf/vmlinux.
    Btf,
    /// Classic tracepoints: any kernel with tracefs.
    Tracepoint,
    /// BTF tracepoints with the wakeup programs attached even where the
    /// switch-in places each wakeup from the kernel's own record (Linux 6.18
    /// on): as on older kernels, to compare the two.
    BtfWakeups,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeMode {
    Btf,
    Tracepoint,
}

impl ProbeMode {
    pub fn name(self) -> &'static str {
        match self {
            ProbeMode::Btf => "tp_btf",
            ProbeMode::Tracepoint => "tracepoint",
        }
    }
}

/// Syscall tracing, when enabled.
#[derive(Clone, Debug)]
pub struct SyscallOptions {
    /// Aggregate per thread instead of per process.
    pub by_thread: bool,
    /// Only these syscall numbers (empty: all).
    pub only: Vec<u32>,
    /// Keep per-syscall latency histograms and errno counts. Without them
    /// syscalls still count in thread totals and span top-syscall lists,
    /// and each costs the traced process one map update less.
    pub histograms: bool,
    /// Trace only the syscalls HTTP detection needs, on their own
    /// tracepoints, instead of every syscall on `raw_syscalls` (the lean
    /// `--http` path): the others cost the traced process nothing, and are
    /// missing from thread totals and span top-syscall lists.
    pub http_only: bool,
}

#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub filter: Filter,
    pub probes: ProbeChoice,
    pub max_threads: u32,
    pub syscalls: Option<SyscallOptions>,
    pub block_io: bool,
    /// Attach the span marker uprobes in a process.
    pub spans: Option<SpanRequest>,
    /// Stream every state change of the traced threads (`record --timeline`).
    pub timeline: bool,
    /// Stream each run-queue wait of the traced threads, for the loader's
    /// histograms (without: a ring record less per wait).
    pub runq_waits: bool,
    /// The kernel's ring buffers for the streamed run-queue waits and the
    /// timeline (power-of-two bytes): each costs twice its size in the
    /// tracer's RSS, because the kernel maps a ring's pages twice.
    pub runq_ring_bytes: u32,
    pub timeline_ring_bytes: u32,
    /// Keep each CPU's run-queue length over time (the per-CPU view).
    pub cpu_queues: bool,
    /// Sum who held the CPU during the traced processes' run-queue waits.
    pub holders: bool,
}

#[derive(Clone, Debug)]
pub struct SpanRequest {
    /// The processes whose span markers to attach.
    pub pids: Vec<u32>,
    /// Without markers in the target, fail (`tracer spans`) or go on
    /// without spans (`tracer record`).
    pub required: bool,
    /// Also make spans of the HTTP exchanges in its socket syscalls
    /// (markers are then optional).
    pub http: bool,
    /// Read the markers from the library's ring where it has one (`spans`'
    /// default without `--http`, or `--marker-ring`), else by uprobes.
    pub ring: bool,
    /// With `ring`: processes that join the targets later (a cgroup's) are
    /// looked for marker rings too, so the timeline their spans need streams
    /// from the start.
    pub later_markers: bool,
}

/// What is attached besides the scheduler probes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attached {
    pub syscalls: bool,
    pub block_io: bool,
    pub spans: bool,
}
