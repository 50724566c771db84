//! Kernel access: loads the eBPF programs, configures them for the running
//! kernel and the user's filters, attaches them, and gives access to their
//! maps. One file per job: the options and errors (`options`), the privilege
//! check (`privilege`), load-time offsets from BTF and tracefs (`offsets`),
//! attaching (`attach`), span marker uprobes (`uprobes`), map draining
//! (`maps`), the per-CPU view (`cpus`) and the benchmark floor (`floor`).
mod attach;
mod cpus;
mod floor;
mod maps;
mod offsets;
mod options;
mod privilege;
mod uprobes;

use std::time::Instant;

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, RingBuf},
};
use tracer_common::{
    HTTP_RING_BYTES, MAP_MARKER_EXITS, MAP_MARKER_RINGS, MARKER_EXIT_RING_BYTES, MAX_MARKER_RINGS, SPAN_RING_BYTES,
    STATS_MAP_ENTRIES,
    FILTER_FOLLOW_CHILDREN, FILTER_TGID,
    BlockKey, BucketStat, CpuQueue, Filter, GLOBAL_BLOCK_OFFSETS, GLOBAL_CPU_QUEUE_CONFIG, MAP_CPU_QUEUES, GLOBAL_FILTER, GLOBAL_SPAN_CONFIG, GLOBAL_SYSCALL_CONFIG,
    GLOBAL_TASK_OFFSETS, GLOBAL_TRACEPOINT_OFFSETS, MAP_BLOCK_STATS, MAP_COUNTERS, MAP_EXITS, MAP_HTTP_EVENTS,
    MAP_RUNQ_EVENTS, MAP_SPAN_EVENTS, MAP_SPANS, MAP_SYSCALL_ERRORS, MAP_SYSCALL_LATENCY, MAP_THREADS,
    MAP_TIMELINE_EVENTS, SpanConfig, SpanKey, SpanState, SyscallErrorKey, SyscallKey, ThreadStats,
    TracepointOffsets, WAIT_HOLDERS_ENTRIES, MAP_WAIT_HOLDERS, MAP_CPU_WAITERS, MAP_CPU_SLICES, MAX_CPUS, WaitHolderKey,
    programs,
};

pub use floor::load_empty_syscall_programs;
pub use options::{Attached, LoadError, LoadOptions, ProbeChoice, ProbeMode, SpanRequest, SyscallOptions};
pub use privilege::is_privileged;

use cpus::{attach_cpu_queues, cpu_queue_config, cpu_queue_entries};
use attach::{attach_btf, attach_tracepoint, attach_tracepoints, error_chain, optional, take_map};
use offsets::{
    HTTP_SYSCALL_EVENTS, WAIT_SYSCALL_EVENTS, block_offsets, http_syscall_record_offsets, http_syscalls,
    syscall_config, task_offsets, throttle_only_offsets, tracepoint_offsets,
};
use privilege::raise_memlock_limit;
use uprobes::attach_span_markers;

use crate::sys::{btf::Btf, markers::MarkerRing, procfs, tracefs::Format};

/// The eBPF object built from `tracer-ebpf` by build.rs.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer"));

pub struct Probes {
    /// Owns the programs and their links (dropping it detaches them).
    ebpf: Ebpf,
    pub mode: ProbeMode,
    pub attached: Attached,
    /// Syscall statistics are keyed by TID rather than TGID.
    pub syscalls_by_thread: bool,
    /// Span targets whose markers were not found (their HTTP exchanges are
    /// still spans with `--http`).
    pub without_markers: Vec<u32>,
    /// Span targets whose marker library has a ring (`sys::markers`): their
    /// spans are read from it and joined with the timeline, which is on for
    /// them. The session takes these over and turns them on.
    pub marker_rings: Vec<MarkerRing>,
    /// The rings whose unread records the kernel copies out when their
    /// process exits (PID -> address), and those records.
    marker_ring_addresses: HashMap<MapData, u32, u64>,
    marker_exits: RingBuf<MapData>,
    threads: HashMap<MapData, u32, ThreadStats>,
    runq_events: RingBuf<MapData>,
    exits: RingBuf<MapData>,
    counters: PerCpuArray<MapData, u64>,
    syscall_latency: HashMap<MapData, SyscallKey, BucketStat>,
    syscall_errors: HashMap<MapData, SyscallErrorKey, u64>,
    block_stats: HashMap<MapData, BlockKey, BucketStat>,
    wait_holders: HashMap<MapData, WaitHolderKey, u64>,
    /// The CPU holders of waits are summed (`LoadOptions::holders`).
    pub holders: bool,
    spans: HashMap<MapData, SpanKey, SpanState>,
    span_events: RingBuf<MapData>,
    http_events: RingBuf<MapData>,
    timeline_events: RingBuf<MapData>,
    /// Each CPU's run queue, when the per-CPU view is on.
    cpu_queues: Option<Array<MapData, CpuQueue>>,
    spans_expired: u64,
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
            ProbeChoice::Btf | ProbeChoice::BtfWakeups => Self::load_mode(options, ProbeMode::Btf),
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
        let http = options.spans.as_ref().is_some_and(|request| request.http);
        let http_only = http && options.syscalls.as_ref().is_some_and(|s| s.http_only);
        let (task_offsets, tp_offsets, btf, cpu_config) = match mode {
            ProbeMode::Btf => {
                let raw = Btf::from_sys_fs().map_err(|e| LoadError::Btf(e.to_string()))?;
                let parsed = Btf::parse(&raw).map_err(|e| LoadError::Btf(e.to_string()))?;
                let mut offsets = task_offsets(&parsed).map_err(|e| LoadError::Btf(e.to_string()))?;
                if options.probes == ProbeChoice::BtfWakeups {
                    offsets.wakeups_at_switch_in = 0;
                }
                let btf = aya::Btf::from_sys_fs().map_err(|e| LoadError::Btf(error_chain(&e)))?;
                let cpu_config = cpu_queue_config(options.cpu_queues, Some(&parsed));
                (offsets, TracepointOffsets::default(), Some(btf), cpu_config)
            }
            ProbeMode::Tracepoint => (
                throttle_only_offsets(),
                tracepoint_offsets(syscalls)?,
                None,
                cpu_queue_config(options.cpu_queues, None),
            ),
        };
        let mut tp_offsets = tp_offsets;
        // The lean path needs the `syscalls:*` events (CONFIG_FTRACE_SYSCALLS).
        let http_only = http_only
            && http_syscall_record_offsets(&mut tp_offsets)
                .map_err(|err| eprintln!("tracer: warning: {err}; tracing every syscall for --http"))
                .is_ok();
        let block = options.block_io.then(block_offsets).and_then(|r| optional("block I/O tracing", r));
        let syscall_config = syscall_config(options.syscalls.as_ref());
        // Span blame, the timeline's holder records and the holders' sums
        // of woken waits read the per-CPU run slices (`MAP_CPU_SLICES`);
        // the holders' sums of other waits follow each CPU's waiters
        // (`MAP_CPU_WAITERS`).
        // Marker rings first: their spans are joined with the timeline, so
        // it streams whenever there is one (or may be one later).
        let marker_rings: Vec<MarkerRing> = options
            .spans
            .iter()
            .filter(|request| request.ring)
            .flat_map(|request| request.pids.iter().filter_map(|&pid| MarkerRing::find(pid)))
            .collect();
        let watch_rings = options.spans.as_ref().is_some_and(|request| request.ring && request.later_markers);
        let rings_read = !marker_rings.is_empty() || watch_rings;
        let timeline = options.timeline || rings_read;
        let span_config = SpanConfig {
            enabled: u32::from(options.spans.is_some() || timeline),
            timeline: u32::from(timeline),
            http: u32::from(http),
            holders: u32::from(options.holders),
            runq_waits: u32::from(options.runq_waits),
            http_syscalls: http_syscalls(),
        };
        // As the kernel's `slices_kept`: spans, the timeline or the holders'
        // sums read the run slices.
        let slices_kept = span_config.enabled | span_config.holders != 0;
        let mut ebpf = EbpfLoader::new()
            .btf(btf.as_ref())
            .override_global(GLOBAL_FILTER, &options.filter, true)
            .override_global(GLOBAL_TASK_OFFSETS, &task_offsets, true)
            .override_global(GLOBAL_TRACEPOINT_OFFSETS, &tp_offsets, true)
            .override_global(GLOBAL_SYSCALL_CONFIG, &syscall_config, true)
            .override_global(GLOBAL_BLOCK_OFFSETS, &block.unwrap_or_default(), true)
            .override_global(GLOBAL_SPAN_CONFIG, &span_config, true)
            .override_global(GLOBAL_CPU_QUEUE_CONFIG, &cpu_config, true)
            .map_max_entries(MAP_CPU_QUEUES, cpu_queue_entries(&cpu_config))
            .map_max_entries(MAP_THREADS, options.max_threads)
            // Statistics maps are preallocated: a feature not asked for
            // keeps one entry, not 10 MiB of kernel memory.
            .map_max_entries(MAP_SYSCALL_LATENCY, entries_if(syscalls, STATS_MAP_ENTRIES))
            .map_max_entries(MAP_SYSCALL_ERRORS, entries_if(syscalls, STATS_MAP_ENTRIES))
            .map_max_entries(MAP_BLOCK_STATS, entries_if(block.is_some(), STATS_MAP_ENTRIES))
            .map_max_entries(MAP_WAIT_HOLDERS, entries_if(options.holders, WAIT_HOLDERS_ENTRIES))
            .map_max_entries(MAP_CPU_WAITERS, entries_if(options.holders, possible_cpus()))
            .map_max_entries(MAP_CPU_SLICES, entries_if(slices_kept, possible_cpus()))
            .map_max_entries(MAP_MARKER_RINGS, entries_if(rings_read, MAX_MARKER_RINGS))
            .map_max_entries(tracer_common::MAP_H2_SCRATCH, entries_if(http, possible_cpus()))
            // Rings of features not asked for shrink to one page: the kernel
            // maps a ring's data twice into the tracer, so the unused HTTP,
            // span and timeline rings cost 52 MiB of its RSS otherwise.
            .map_max_entries(MAP_HTTP_EVENTS, ring_bytes(http, HTTP_RING_BYTES))
            .map_max_entries(MAP_SPAN_EVENTS, ring_bytes(options.spans.is_some(), SPAN_RING_BYTES))
            .map_max_entries(MAP_TIMELINE_EVENTS, ring_bytes(timeline, options.timeline_ring_bytes))
            .map_max_entries(MAP_RUNQ_EVENTS, ring_bytes(options.runq_waits, options.runq_ring_bytes))
            .map_max_entries(MAP_MARKER_EXITS, ring_bytes(rings_read, MARKER_EXIT_RING_BYTES))
            .load(EBPF_OBJECT)
            .map_err(|e| LoadError::Load(error_chain(&e)))?;

        let switch = (programs::BTF_SCHED_SWITCH, programs::TP_SCHED_SWITCH, "sched", "sched_switch");
        let wakeups = [
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
        attach(&mut ebpf, switch)?;
        // Where the switch-in places wakeups (BTF, Linux 6.18 on), the
        // wakeup programs are not attached at all.
        let wakeups = if task_offsets.wakeups_at_switch_in != 0 { &wakeups[..0] } else { &wakeups[..] };
        for &program in wakeups {
            attach(&mut ebpf, program)?;
        }
        // Forks of the targets: followed with --children, else counted as
        // left out. The classic record names the child's thread, not its
        // process, so only BTF mode sees them.
        if options.filter.flags & FILTER_TGID != 0 {
            match &btf {
                Some(btf) => {
                    let fork = attach_btf(&mut ebpf, programs::BTF_SCHED_PROCESS_FORK, "sched_process_fork", btf);
                    optional("following child processes", fork);
                }
                None if options.filter.flags & FILTER_FOLLOW_CHILDREN != 0 => {
                    say!("tracer: warning: --children needs BTF tracepoints; child processes are not followed");
                }
                None => {}
            }
        }
        // Only when asked: they run on every syscall of the machine.
        let syscalls = syscalls
            && optional(
                "syscall tracing",
                if http_only {
                    attach_http_syscalls(&mut ebpf)
                } else {
                    syscall_programs.into_iter().try_for_each(|p| attach(&mut ebpf, p))
                },
            )
            .is_some();
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

        let cpu_queues = attach_cpu_queues(&mut ebpf, &cpu_config, btf.as_ref());

        // A ring's unread records go with its process's memory. Kernels whose
        // exit tracepoint says whether the thread is the last one report it
        // while that memory is still there (Linux 6.18 does, as a test
        // checks): the kernel copies them out then.
        if rings_read
            && let Some(btf) = &btf
            && Format::read("sched", "sched_process_exit").is_ok_and(|format| format.offset("group_dead").is_ok())
        {
            let exit = attach_btf(&mut ebpf, programs::BTF_SCHED_PROCESS_EXIT, "sched_process_exit", btf);
            optional("reading the marker rings of exiting processes", exit);
        }

        let mut spans_attached = false;
        let mut without_markers = Vec::new();
        if let Some(request) = &options.spans {
            spans_attached = !marker_rings.is_empty();
            // Uprobes where no ring was asked for (`--marker-uprobes`, or
            // `--http`, so that the kernel knows which marker span is open on
            // a thread when it makes an HTTP call) or found (a library built
            // before the ring): the kernel snapshots the thread at each marker.
            let with_ring: Vec<u32> = marker_rings.iter().map(|ring| ring.pid).collect();
            for &pid in request.pids.iter().filter(|pid| !with_ring.contains(pid)) {
                match attach_span_markers(&mut ebpf, pid) {
                    Ok(()) => spans_attached = true,
                    Err(LoadError::NoMarkers(pid)) => without_markers.push(pid),
                    Err(err) => return Err(err),
                }
            }
            if !spans_attached && request.required && !request.http {
                return Err(LoadError::NoMarkers(request.pids.first().copied().unwrap_or(0)));
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
            http_events: take_map(&mut ebpf, MAP_HTTP_EVENTS)?,
            timeline_events: take_map(&mut ebpf, MAP_TIMELINE_EVENTS)?,
            marker_ring_addresses: take_map(&mut ebpf, MAP_MARKER_RINGS)?,
            marker_exits: take_map(&mut ebpf, MAP_MARKER_EXITS)?,
            spans_expired: 0,
            threads: take_map(&mut ebpf, MAP_THREADS)?,
            runq_events: take_map(&mut ebpf, MAP_RUNQ_EVENTS)?,
            exits: take_map(&mut ebpf, MAP_EXITS)?,
            counters: take_map(&mut ebpf, MAP_COUNTERS)?,
            syscall_latency: take_map(&mut ebpf, MAP_SYSCALL_LATENCY)?,
            syscall_errors: take_map(&mut ebpf, MAP_SYSCALL_ERRORS)?,
            block_stats: take_map(&mut ebpf, MAP_BLOCK_STATS)?,
            wait_holders: take_map(&mut ebpf, MAP_WAIT_HOLDERS)?,
            holders: options.holders,
            cpu_queues,
            ebpf,
            mode,
            attached: Attached { syscalls, block_io, spans: spans_attached },
            syscalls_by_thread: options.syscalls.as_ref().is_some_and(|s| s.by_thread),
            without_markers,
            marker_rings,
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
}

/// The lean `--http` path: the syscall programs on the own tracepoints of
/// the HTTP syscalls and of the waits that end a response, only.
fn attach_http_syscalls(ebpf: &mut Ebpf) -> Result<(), LoadError> {
    let exists = |name: &&str| Format::read("syscalls", &format!("sys_enter_{name}")).is_ok();
    let waits = WAIT_SYSCALL_EVENTS.into_iter().filter(exists);
    let names: Vec<&str> = HTTP_SYSCALL_EVENTS.into_iter().chain(waits).collect();
    let events = |side: &str| names.iter().map(|name| format!("sys_{side}_{name}")).collect::<Vec<_>>();
    let (enter, exit) = (events("enter"), events("exit"));
    attach_tracepoints(ebpf, programs::TP_HTTP_SYSCALL_ENTER, "syscalls", enter.iter().map(String::as_str))?;
    attach_tracepoints(ebpf, programs::TP_HTTP_SYSCALL_EXIT, "syscalls", exit.iter().map(String::as_str))
}

/// A map's entries: `full` when its feature is on, else one.
/// Entries of a map indexed by CPU number.
fn possible_cpus() -> u32 {
    aya::util::nr_cpus().map_or(MAX_CPUS, |cpus| cpus as u32)
}

fn entries_if(enabled: bool, full: u32) -> u32 {
    if enabled { full } else { 1 }
}

/// A ring buffer's size: `full` when its feature is on, else the smallest
/// a ring can be (one page).
fn ring_bytes(enabled: bool, full: u32) -> u32 {
    if enabled { full } else { rustix::param::page_size() as u32 }
}

fn log_timing(mode: ProbeMode, started: Instant) {
    if std::env::var_os("TRACER_DEBUG").is_some() {
        eprintln!("tracer: attached {} probes in {:?}", mode.name(), started.elapsed());
    }
}
