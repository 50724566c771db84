//! Loads the kernel programs, configures them for the running kernel and the
//! user's filters, attaches them, and gives access to their maps.
use std::time::Instant;

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::{BtfTracePoint, TracePoint, UProbe, uprobe::UProbeScope},
};
use tracer_common::{
    BlockKey, BlockOffsets, BucketStat, CgroupAncestry, Counter, Filter,
    GLOBAL_BLOCK_OFFSETS, GLOBAL_FILTER, GLOBAL_SYSCALL_CONFIG, GLOBAL_TASK_OFFSETS,
    GLOBAL_TRACEPOINT_OFFSETS, MAP_BLOCK_STATS, MAP_COUNTERS, MAP_EXITS, MAP_RUNQ_EVENTS,
    MAP_SYSCALL_ERRORS, MAP_SYSCALL_LATENCY, MAP_THREADS, RunqEvent, SYSCALL_BITMAP_BITS,
    GLOBAL_SPAN_CONFIG, MAP_SPAN_EVENTS, MAP_SPANS, SpanConfig, SpanEvent, SpanKey, SpanState,
    SyscallConfig, SyscallErrorKey, SyscallKey, TaskOffsets, ThreadExit, ThreadStats,
    TracepointOffsets, programs, HttpCapture, TimelineEvent,
};

use crate::{btf::Btf, procfs, tracefs::Format};

/// The eBPF object built from `tracer-ebpf` by build.rs.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer"));

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
    Tracefs(#[from] crate::tracefs::TracefsError),
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
}

#[derive(Clone, Copy, Debug)]
pub struct SpanRequest {
    pub pid: u32,
    /// Without markers in the target, fail (`tracer spans`) or go on
    /// without spans (`tracer record`).
    pub required: bool,
    /// Also make spans of the HTTP/1.x exchanges in its socket syscalls
    /// (markers are then optional).
    pub http: bool,
}

/// Counts of what the kernel side could not deliver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Losses {
    pub runq_events: u64,
    pub thread_exits: u64,
    pub threads_untracked: u64,
    /// Syscall or block I/O samples dropped because a statistics map was full.
    pub stats_samples: u64,
    /// Block requests not tracked because the in-flight table was full.
    pub block_requests: u64,
    /// Spans lost because the open-span table or the span ring was full.
    pub spans: u64,
    /// Scheduler switches the kernel did not report (see
    /// docs/report-format.md).
    pub accounting_gaps: u64,
    /// Timeline events dropped because the timeline ring was full.
    pub timeline_events: u64,
}

/// Marker calls that did not pair up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SpanAnomalies {
    /// `tracer_span_end` for an id that was not open (never begun, or ended twice).
    pub end_without_begin: u64,
    /// `tracer_span_begin` for an id already open.
    pub begun_twice: u64,
    /// Spans still open after the expiry time, removed.
    pub never_ended: u64,
    /// HTTP requests sent before the previous one on their connection was
    /// answered (pipelining): not made spans of their own.
    pub http_pipelined: u64,
    /// HTTP connections closed between a request and its response.
    pub http_unanswered: u64,
}

/// What is attached besides the scheduler probes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attached {
    pub syscalls: bool,
    pub block_io: bool,
    pub spans: bool,
}

pub struct Probes {
    _ebpf: Ebpf,
    pub mode: ProbeMode,
    pub attached: Attached,
    /// Syscall statistics are keyed by TID rather than TGID.
    pub syscalls_by_thread: bool,
    threads: HashMap<MapData, u32, ThreadStats>,
    runq_events: RingBuf<MapData>,
    exits: RingBuf<MapData>,
    counters: PerCpuArray<MapData, u64>,
    syscall_latency: PerCpuHashMap<MapData, SyscallKey, BucketStat>,
    syscall_errors: PerCpuHashMap<MapData, SyscallErrorKey, u64>,
    block_stats: PerCpuHashMap<MapData, BlockKey, BucketStat>,
    spans: HashMap<MapData, SpanKey, SpanState>,
    span_events: RingBuf<MapData>,
    http_events: RingBuf<MapData>,
    timeline_events: RingBuf<MapData>,
    spans_expired: u64,
}

/// Whether this process may load tracing programs: root, or CAP_BPF with
/// CAP_PERFMON, or CAP_SYS_ADMIN.
pub fn is_privileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let caps = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0);
    let has = |bit: u32| caps & (1u64 << bit) != 0;
    has(21) || (has(38) && has(39))
}

fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: valid resource and struct. Kernels before 5.11 charge BPF maps
    // to RLIMIT_MEMLOCK; newer ones ignore it, so failure is harmless.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) };
}

fn task_offsets(btf: &Btf) -> Result<TaskOffsets, crate::btf::BtfError> {
    let (cgroup_ancestry, cgroup_ancestors) = if btf.has_member("cgroup", "ancestors") {
        (CgroupAncestry::Pointers as u32, btf.member_offset("cgroup", "ancestors")?)
    } else if btf.has_member("cgroup", "ancestor_ids") {
        (CgroupAncestry::Ids as u32, btf.member_offset("cgroup", "ancestor_ids")?)
    } else {
        (CgroupAncestry::Unavailable as u32, 0)
    };
    // A missing in_iowait only loses the I/O-wait split, not the probes.
    let (task_in_iowait_byte, task_in_iowait_mask) = btf
        .member_bit_offset("task_struct", "in_iowait")
        .map_or((0, 0), |bit| (bit / 8, 1 << (bit % 8)));
    // Without them the HTTP probes cannot see syscall arguments (x86-64 names).
    let regs_arg0 = btf.member_offset("pt_regs", "di").unwrap_or(0);
    let regs_arg1 = btf.member_offset("pt_regs", "si").unwrap_or(0);
    // Missing scheduler counters only lose the filling of unreported switches.
    let nested = |outer: &str, inner_struct: &str, inner: &str| -> u32 {
        match (btf.member_offset("task_struct", outer), btf.member_offset(inner_struct, inner)) {
            (Ok(outer), Ok(inner)) => outer + inner,
            _ => 0,
        }
    };
    let task_sum_exec_runtime = nested("se", "sched_entity", "sum_exec_runtime");
    let (task_run_delay, task_pcount, task_last_arrival) =
        match [nested("sched_info", "sched_info", "run_delay"), nested("sched_info", "sched_info", "pcount"), nested("sched_info", "sched_info", "last_arrival")] {
            [delay, pcount, arrival] if delay != 0 && pcount != 0 && arrival != 0 && task_sum_exec_runtime != 0 => (delay, pcount, arrival),
            _ => (0, 0, 0),
        };
    let (task_contributes_byte, task_contributes_mask) = btf
        .member_bit_offset("task_struct", "sched_contributes_to_load")
        .map_or((0, 0), |bit| (bit / 8, 1 << (bit % 8)));
    // Without them a connection is its descriptor number, and one read and
    // written through dup'ed descriptors is not matched.
    let fd_offsets = [
        btf.member_offset("task_struct", "files"),
        btf.member_offset("files_struct", "fdt"),
        btf.member_offset("fdtable", "fd"),
        btf.member_offset("fdtable", "max_fds"),
    ];
    let [task_files, files_fdt, fdtable_fd, fdtable_max_fds] = match fd_offsets {
        [Ok(files), Ok(fdt), Ok(fd), Ok(max)] if files != 0 => [files, fdt, fd, max],
        _ => [0; 4],
    };
    Ok(TaskOffsets {
        task_files,
        files_fdt,
        fdtable_fd,
        fdtable_max_fds,
        regs_arg0,
        regs_arg1,
        task_on_cpu: btf.member_offset("task_struct", "on_cpu").unwrap_or(0),
        task_contributes_byte,
        task_contributes_mask,
        task_sum_exec_runtime: if task_run_delay == 0 { 0 } else { task_sum_exec_runtime },
        task_run_delay,
        task_pcount,
        task_last_arrival,
        task_in_iowait_byte,
        task_in_iowait_mask,
        task_pid: btf.member_offset("task_struct", "pid")?,
        task_tgid: btf.member_offset("task_struct", "tgid")?,
        task_comm: btf.member_offset("task_struct", "comm")?,
        task_cgroups: btf.member_offset("task_struct", "cgroups")?,
        css_set_dfl_cgrp: btf.member_offset("css_set", "dfl_cgrp")?,
        cgroup_kn: btf.member_offset("cgroup", "kn")?,
        cgroup_level: btf.member_offset("cgroup", "level")?,
        cgroup_ancestors,
        kernfs_node_id: btf.member_offset("kernfs_node", "id")?,
        cgroup_ancestry,
    })
}

fn tracepoint_offsets(syscalls: bool) -> Result<TracepointOffsets, LoadError> {
    let switch = Format::read("sched", "sched_switch")?;
    let wakeup = Format::read("sched", "sched_wakeup")?;
    Format::read("sched", "sched_wakeup_new")?;
    let (sys_enter_id, sys_enter_args, sys_exit_ret) = if syscalls {
        let enter = Format::read("raw_syscalls", "sys_enter")?;
        (enter.offset("id")?, enter.offset("args")?, Format::read("raw_syscalls", "sys_exit")?.offset("ret")?)
    } else {
        (0, 0, 0)
    };
    Ok(TracepointOffsets {
        switch_prev_pid: switch.offset("prev_pid")?,
        switch_prev_state: switch.offset("prev_state")?,
        switch_next_pid: switch.offset("next_pid")?,
        switch_next_comm: switch.offset("next_comm")?,
        wakeup_pid: wakeup.offset("pid")?,
        wakeup_comm: wakeup.offset("comm")?,
        sys_enter_id,
        sys_exit_ret,
        sys_enter_args,
    })
}

fn block_offsets() -> Result<BlockOffsets, LoadError> {
    let issue = Format::read("block", "block_rq_issue")?;
    let complete = Format::read("block", "block_rq_complete")?;
    Ok(BlockOffsets {
        rq_dev: issue.offset("dev")?,
        rq_sector: issue.offset("sector")?,
        rq_bytes: issue.offset("bytes")?,
        rq_rwbs: issue.offset("rwbs")?,
        done_dev: complete.offset("dev")?,
        done_sector: complete.offset("sector")?,
    })
}

fn syscall_config(options: Option<&SyscallOptions>) -> SyscallConfig {
    let mut config = SyscallConfig::default();
    if let Some(options) = options {
        config.by_thread = u32::from(options.by_thread);
        // No histograms: an empty list of the only syscalls to keep.
        config.only_listed = u32::from(!options.only.is_empty() || !options.histograms);
        for &nr in options.only.iter().filter(|&&nr| nr < SYSCALL_BITMAP_BITS) {
            config.numbers[(nr / 64) as usize] |= 1 << (nr % 64);
        }
    }
    config
}

fn attach_failed(what: impl Into<String>) -> impl FnOnce(aya::programs::ProgramError) -> LoadError {
    let what = what.into();
    move |err| LoadError::Attach {
        what,
        reason: error_chain(&err),
    }
}

/// An error and its sources on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl Probes {
    /// Loads and attaches the scheduler probes. With `ProbeChoice::Auto`, a
    /// failure of the BTF path falls back to classic tracepoints (and says so).
    pub fn load(options: &LoadOptions) -> Result<Self, LoadError> {
        if EBPF_OBJECT.is_empty() {
            return Err(LoadError::NoObject);
        }
        if !is_privileged() {
            return Err(LoadError::NotPrivileged);
        }
        raise_memlock_limit();
        let has_btf = std::path::Path::new("/sys/kernel/btf/vmlinux").exists();
        match options.probes {
            ProbeChoice::Btf => Self::load_mode(options, ProbeMode::Btf),
            ProbeChoice::Tracepoint => Self::load_mode(options, ProbeMode::Tracepoint),
            ProbeChoice::Auto if !has_btf => Self::load_mode(options, ProbeMode::Tracepoint),
            ProbeChoice::Auto => Self::load_mode(options, ProbeMode::Btf).or_else(|err| match err {
                // Not about BTF: classic tracepoints would fail the same way.
                LoadError::NoMarkers(_) | LoadError::NotPrivileged | LoadError::NoObject => Err(err),
                _ => {
                    eprintln!("tracer: {err}; falling back to classic tracepoints");
                    Self::load_mode(options, ProbeMode::Tracepoint)
                }
            }),
        }
    }

    fn load_mode(options: &LoadOptions, mode: ProbeMode) -> Result<Self, LoadError> {
        let started = Instant::now();
        let syscalls = options.syscalls.is_some();
        let (task_offsets, tp_offsets, btf) = match mode {
            ProbeMode::Btf => {
                let raw = Btf::from_sys_fs().map_err(|e| LoadError::Btf(e.to_string()))?;
                let parsed = Btf::parse(&raw).map_err(|e| LoadError::Btf(e.to_string()))?;
                let offsets = task_offsets(&parsed).map_err(|e| LoadError::Btf(e.to_string()))?;
                let btf = aya::Btf::from_sys_fs().map_err(|e| LoadError::Btf(error_chain(&e)))?;
                (offsets, TracepointOffsets::default(), Some(btf))
            }
            ProbeMode::Tracepoint => (TaskOffsets::default(), tracepoint_offsets(syscalls)?, None),
        };
        let block = options.block_io.then(block_offsets).and_then(|r| optional("block I/O tracing", r));
        let syscall_config = syscall_config(options.syscalls.as_ref());
        // The timeline names who held the CPU during waits, from the same
        // per-CPU run slices as span blame.
        let span_config = SpanConfig {
            enabled: u32::from(options.spans.is_some() || options.timeline),
            timeline: u32::from(options.timeline),
            http: u32::from(options.spans.is_some_and(|request| request.http)),
            _pad: 0,
        };
        let mut ebpf = EbpfLoader::new()
            .btf(btf.as_ref())
            .override_global(GLOBAL_FILTER, &options.filter, true)
            .override_global(GLOBAL_TASK_OFFSETS, &task_offsets, true)
            .override_global(GLOBAL_TRACEPOINT_OFFSETS, &tp_offsets, true)
            .override_global(GLOBAL_SYSCALL_CONFIG, &syscall_config, true)
            .override_global(GLOBAL_BLOCK_OFFSETS, &block.unwrap_or_default(), true)
            .override_global(GLOBAL_SPAN_CONFIG, &span_config, true)
            .map_max_entries(MAP_THREADS, options.max_threads)
            .load(EBPF_OBJECT)
            .map_err(|e| LoadError::Load(error_chain(&e)))?;

        let sched = [
            (programs::BTF_SCHED_SWITCH, programs::TP_SCHED_SWITCH, "sched", "sched_switch"),
            (programs::BTF_SCHED_WAKEUP, programs::TP_SCHED_WAKEUP, "sched", "sched_wakeup"),
            (programs::BTF_SCHED_WAKEUP_NEW, programs::TP_SCHED_WAKEUP_NEW, "sched", "sched_wakeup_new"),
        ];
        let syscall_programs = [
            (programs::BTF_SYS_ENTER, programs::TP_SYS_ENTER, "raw_syscalls", "sys_enter"),
            (programs::BTF_SYS_EXIT, programs::TP_SYS_EXIT, "raw_syscalls", "sys_exit"),
        ];
        let attach = |ebpf: &mut Ebpf, (btf_name, tp_name, category, event): (&str, &str, &str, &str)| match mode {
            ProbeMode::Btf => attach_btf(ebpf, btf_name, event, btf.as_ref().expect("loaded above for BTF mode")),
            ProbeMode::Tracepoint => attach_tracepoint(ebpf, tp_name, category, event),
        };
        // The scheduler probes are the tool; the others add detail, and a
        // kernel that refuses one of them gets a warning, not an abort.
        for program in sched {
            attach(&mut ebpf, program)?;
        }
        let syscalls = syscalls
            && optional("syscall tracing", syscall_programs.into_iter().try_for_each(|p| attach(&mut ebpf, p))).is_some();
        let block_io = block.is_some()
            && optional("block I/O tracing", (|| {
                let block_programs = [
                    (programs::TP_BLOCK_RQ_INSERT, "block_rq_insert"),
                    (programs::TP_BLOCK_RQ_ISSUE, "block_rq_issue"),
                    (programs::TP_BLOCK_RQ_COMPLETE, "block_rq_complete"),
                ];
                for (name, event) in block_programs {
                    attach_tracepoint(&mut ebpf, name, "block", event)?;
                }
                // Linux 6.5+: names the submitter even when a kworker issues.
                if Format::read("block", "block_io_start").is_ok() {
                    attach_tracepoint(&mut ebpf, programs::TP_BLOCK_IO_START, "block", "block_io_start")?;
                }
                Ok(())
            })())
            .is_some();

        let mut spans_attached = false;
        if let Some(request) = options.spans {
            match attach_span_markers(&mut ebpf, request.pid) {
                Ok(()) => spans_attached = true,
                Err(LoadError::NoMarkers(_)) if !request.required || request.http => {}
                Err(err) => return Err(err),
            }
            if request.http {
                if !syscalls {
                    return Err(LoadError::Attach {
                        what: "HTTP spans".into(),
                        reason: "they need the syscall probes, which did not attach".into(),
                    });
                }
                spans_attached = true;
            }
        }

        let mut probes = Probes {
            spans: take_map(&mut ebpf, MAP_SPANS)?,
            span_events: take_map(&mut ebpf, MAP_SPAN_EVENTS)?,
            http_events: take_map(&mut ebpf, tracer_common::MAP_HTTP_EVENTS)?,
            timeline_events: take_map(&mut ebpf, tracer_common::MAP_TIMELINE_EVENTS)?,
            spans_expired: 0,
            threads: take_map(&mut ebpf, MAP_THREADS)?,
            runq_events: take_map(&mut ebpf, MAP_RUNQ_EVENTS)?,
            exits: take_map(&mut ebpf, MAP_EXITS)?,
            counters: take_map(&mut ebpf, MAP_COUNTERS)?,
            syscall_latency: take_map(&mut ebpf, MAP_SYSCALL_LATENCY)?,
            syscall_errors: take_map(&mut ebpf, MAP_SYSCALL_ERRORS)?,
            block_stats: take_map(&mut ebpf, MAP_BLOCK_STATS)?,
            _ebpf: ebpf,
            mode,
            attached: Attached { syscalls, block_io, spans: spans_attached },
            syscalls_by_thread: options.syscalls.as_ref().is_some_and(|s| s.by_thread),
        };
        if mode == ProbeMode::Tracepoint && options.filter.tgid_count > 0 {
            probes.seed_threads(&options.filter);
        }
        log_timing(mode, started);
        Ok(probes)
    }

    /// Classic tracepoints learn a thread's process only when it leaves a
    /// CPU; pre-register the target processes' existing threads so they are
    /// measured from the start.
    fn seed_threads(&mut self, filter: &Filter) {
        for &pid in &filter.tgids[..filter.tgid_count as usize] {
            for tid in procfs::threads_of(pid) {
                let mut stats = ThreadStats {
                    tgid: pid,
                    ..Default::default()
                };
                let comm = procfs::comm_of(tid).unwrap_or_default();
                let len = comm.len().min(stats.comm.len() - 1);
                stats.comm[..len].copy_from_slice(&comm.as_bytes()[..len]);
                let _ = self.threads.insert(tid, stats, 0);
            }
        }
    }

    pub fn drain_runq_events(&mut self, mut on_event: impl FnMut(&RunqEvent)) -> usize {
        drain(&mut self.runq_events, &mut on_event)
    }

    pub fn drain_exits(&mut self, mut on_exit: impl FnMut(&ThreadExit)) -> usize {
        drain(&mut self.exits, &mut on_exit)
    }

    /// Every tracked thread's current entry.
    pub fn threads(&self) -> Vec<(u32, ThreadStats)> {
        self.threads.iter().filter_map(Result::ok).collect()
    }

    pub fn forget_thread(&mut self, tid: u32) {
        let _ = self.threads.remove(&tid);
    }

    pub fn losses(&self) -> Losses {
        let sum = |index: u32| {
            self.counters
                .get(&index, 0)
                .map(|values| values.iter().sum())
                .unwrap_or(0)
        };
        Losses {
            runq_events: sum(Counter::LostRunqEvents as u32),
            thread_exits: sum(Counter::LostExits as u32),
            threads_untracked: sum(Counter::ThreadsMapFull as u32),
            stats_samples: sum(Counter::StatsMapFull as u32),
            block_requests: sum(Counter::BlockInflightFull as u32),
            spans: sum(Counter::LostSpans as u32),
            accounting_gaps: sum(Counter::AccountingGaps as u32),
            timeline_events: sum(Counter::LostTimeline as u32),
        }
    }

    pub fn span_anomalies(&self) -> SpanAnomalies {
        let sum = |index: u32| self.counters.get(&index, 0).map(|v| v.iter().sum()).unwrap_or(0);
        SpanAnomalies {
            end_without_begin: sum(Counter::SpanEndUnmatched as u32),
            begun_twice: sum(Counter::SpanBeginDuplicate as u32),
            never_ended: self.spans_expired,
            http_pipelined: sum(Counter::HttpPipelined as u32),
            http_unanswered: sum(Counter::HttpUnanswered as u32),
        }
    }

    /// HTTP request and response heads (sent before their span; see
    /// `session::drain_spans` for the order to drain them in).
    pub fn drain_http_captures(&mut self, mut on_capture: impl FnMut(&HttpCapture)) -> usize {
        drain(&mut self.http_events, &mut on_capture)
    }

    pub fn drain_span_events(&mut self, mut on_span: impl FnMut(&SpanEvent)) -> usize {
        drain(&mut self.span_events, &mut on_span)
    }

    pub fn drain_timeline(&mut self, mut on_event: impl FnMut(&TimelineEvent)) -> usize {
        drain(&mut self.timeline_events, &mut on_event)
    }

    /// Removes spans open since before `older_than_ns` (CLOCK_MONOTONIC),
    /// so a program that never ends its spans cannot fill the table.
    pub fn expire_spans(&mut self, older_than_ns: u64) -> u64 {
        let stale: Vec<SpanKey> = self
            .spans
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, state)| state.start_ns < older_than_ns)
            .map(|(key, _)| key)
            .collect();
        for key in &stale {
            let _ = self.spans.remove(key);
        }
        self.spans_expired += stale.len() as u64;
        stale.len() as u64
    }

    /// Cumulative syscall latency buckets, summed over CPUs.
    pub fn syscall_latency(&self) -> Vec<(SyscallKey, BucketStat)> {
        read_per_cpu(&self.syscall_latency, |values| {
            values.iter().fold(BucketStat::default(), |acc, v| BucketStat {
                count: acc.count + v.count,
                total: acc.total + v.total,
            })
        })
    }

    /// Cumulative failed-syscall counts, summed over CPUs.
    pub fn syscall_errors(&self) -> Vec<(SyscallErrorKey, u64)> {
        read_per_cpu(&self.syscall_errors, |values| values.iter().sum())
    }

    /// Cumulative block I/O buckets, summed over CPUs.
    pub fn block_stats(&self) -> Vec<(BlockKey, BucketStat)> {
        read_per_cpu(&self.block_stats, |values| {
            values.iter().fold(BucketStat::default(), |acc, v| BucketStat {
                count: acc.count + v.count,
                total: acc.total + v.total,
            })
        })
    }
}

/// The benchmark floor: empty programs on the syscall tracepoints. Kept
/// attached while the returned object lives.
pub fn load_empty_syscall_programs() -> Result<Ebpf, LoadError> {
    if EBPF_OBJECT.is_empty() {
        return Err(LoadError::NoObject);
    }
    if !is_privileged() {
        return Err(LoadError::NotPrivileged);
    }
    raise_memlock_limit();
    let btf = aya::Btf::from_sys_fs().map_err(|e| LoadError::Btf(error_chain(&e)))?;
    let mut ebpf = EbpfLoader::new()
        .btf(Some(&btf))
        .load(EBPF_OBJECT)
        .map_err(|e| LoadError::Load(error_chain(&e)))?;
    attach_btf(&mut ebpf, programs::BTF_SYS_ENTER_EMPTY, "sys_enter", &btf)?;
    attach_btf(&mut ebpf, programs::BTF_SYS_EXIT_EMPTY, "sys_exit", &btf)?;
    Ok(ebpf)
}

fn log_timing(mode: ProbeMode, started: Instant) {
    if std::env::var_os("TRACER_DEBUG").is_some() {
        eprintln!("tracer: attached {} probes in {:?}", mode.name(), started.elapsed());
    }
}

fn program<'a, P>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut P, LoadError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let program = ebpf
        .program_mut(name)
        .ok_or_else(|| LoadError::Load(format!("program {name} missing from the eBPF object")))?;
    program.try_into().map_err(attach_failed(name))
}

fn take_map<M>(ebpf: &mut Ebpf, name: &str) -> Result<M, LoadError>
where
    M: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| LoadError::Load(format!("map {name} missing from the eBPF object")))?;
    M::try_from(map).map_err(|e| LoadError::Load(format!("map {name}: {}", error_chain(&e))))
}

/// The result of an optional step (syscall or block I/O probes); on
/// failure, says on stderr what the run goes on without.
fn optional<T>(what: &str, result: Result<T, LoadError>) -> Option<T> {
    result
        .map_err(|err| eprintln!("tracer: warning: {err}; continuing without {what}"))
        .ok()
}

fn read_per_cpu<K: aya::Pod, V: aya::Pod, S>(
    map: &PerCpuHashMap<MapData, K, V>,
    sum: impl Fn(&aya::maps::PerCpuValues<V>) -> S,
) -> Vec<(K, S)> {
    map.iter()
        .filter_map(Result::ok)
        .map(|(key, values)| (key, sum(&values)))
        .collect()
}

/// Files mapped executable by `pid` (its executable and libraries).
fn mapped_objects(pid: u32) -> Vec<std::path::PathBuf> {
    let mut paths = Vec::new();
    if let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) {
        paths.push(exe);
    }
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let perms = fields.nth(1).unwrap_or("");
        if let Some(path) = fields.nth(3).filter(|p| p.starts_with('/')) {
            let path = std::path::PathBuf::from(path);
            if perms.contains('x') && !paths.contains(&path) {
                paths.push(path);
            }
        }
    }
    paths
}

/// Attaches the span uprobes to every object of `pid` that exports the
/// markers; none is an error that says how to add them.
fn attach_span_markers(ebpf: &mut Ebpf, pid: u32) -> Result<(), LoadError> {
    let scope = std::num::NonZeroU32::new(pid).map_or(UProbeScope::AllProcesses, UProbeScope::OneProcess);
    let markers = [(programs::UPROBE_SPAN_BEGIN, "tracer_span_begin"), (programs::UPROBE_SPAN_END, "tracer_span_end")];
    for (name, _) in markers {
        let program: &mut UProbe = program(ebpf, name)?;
        program.load().map_err(attach_failed(name))?;
    }
    let mut attached = 0;
    for object in mapped_objects(pid) {
        let mut complete = true;
        for (name, symbol) in markers {
            let program: &mut UProbe = program(ebpf, name)?;
            complete &= program.attach(symbol, &object, scope).is_ok();
        }
        attached += usize::from(complete);
    }
    if attached == 0 {
        return Err(LoadError::NoMarkers(pid));
    }
    Ok(())
}

fn attach_btf(ebpf: &mut Ebpf, name: &str, event: &str, btf: &aya::Btf) -> Result<(), LoadError> {
    let what = format!("tp_btf/{event}");
    let program: &mut BtfTracePoint = program(ebpf, name)?;
    program.load(event, btf).map_err(attach_failed(&what))?;
    program.attach().map_err(attach_failed(&what))?;
    Ok(())
}

fn attach_tracepoint(ebpf: &mut Ebpf, name: &str, category: &str, event: &str) -> Result<(), LoadError> {
    let what = format!("tracepoint {category}:{event}");
    let program: &mut TracePoint = program(ebpf, name)?;
    program.load().map_err(attach_failed(&what))?;
    program.attach(category, event).map_err(attach_failed(&what))?;
    Ok(())
}

fn drain<T: Copy>(ring: &mut RingBuf<MapData>, on_item: &mut impl FnMut(&T)) -> usize {
    let mut seen = 0;
    while let Some(item) = ring.next() {
        let bytes: &[u8] = &item;
        if bytes.len() >= std::mem::size_of::<T>() {
            // SAFETY: the kernel wrote a T (Pod, no padding) at the start of
            // the record; read_unaligned does not assume alignment.
            let value = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) };
            on_item(&value);
            seen += 1;
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_histograms_can_be_left_out() {
        let all = SyscallOptions { by_thread: false, only: vec![], histograms: true };
        assert_eq!(syscall_config(Some(&all)).only_listed, 0);
        let listed = syscall_config(Some(&SyscallOptions { only: vec![0, 65], ..all.clone() }));
        assert_eq!((listed.only_listed, listed.numbers[0], listed.numbers[1]), (1, 1, 2));
        let none = syscall_config(Some(&SyscallOptions { histograms: false, ..all }));
        assert_eq!((none.only_listed, none.numbers), (1, [0; tracer_common::SYSCALL_BITMAP_WORDS]), "nothing kept");
    }

    #[test]
    fn optional_probes_degrade_instead_of_failing_the_run() {
        assert_eq!(optional("x", Ok::<u32, LoadError>(7)), Some(7));
        let refused = Err::<(), _>(LoadError::Load("tracepoint block:block_rq_issue refused".into()));
        assert_eq!(optional("block I/O tracing", refused), None);
    }
}
