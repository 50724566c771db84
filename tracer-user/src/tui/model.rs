//! What the live view shows, computed from one interval of data.
use std::{collections::BTreeMap, time::Duration};

use crate::model::{
    aggregate::{Aggregator, OffCpuHistograms},
    flight::{FlightRing, WindowHeader},
    gantt::{self, Gantt},
    hist::Buckets,
    holders::Held,
    intervals::IntervalView,
    names::syscall_name,
    spans::SpanRecord,
};

/// A distribution the detail view can show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    Runq,
    Preempted,
    IoWait,
    OtherUninterruptible,
    Sleep,
    Syscalls,
    BlockIo,
}

impl Metric {
    pub const ALL: [Metric; 7] = [
        Metric::Runq,
        Metric::Preempted,
        Metric::IoWait,
        Metric::OtherUninterruptible,
        Metric::Sleep,
        Metric::Syscalls,
        Metric::BlockIo,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Metric::Runq => "runq",
            Metric::Preempted => "preempted",
            Metric::IoWait => "iowait",
            Metric::OtherUninterruptible => "other D",
            Metric::Sleep => "sleep",
            Metric::Syscalls => "syscalls",
            Metric::BlockIo => "block I/O",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessRow {
    pub pid: u32,
    pub comm: String,
    pub threads: usize,
    pub cpu_pct: f64,
    pub runq_pct: f64,
    pub runq_p50: u64,
    pub runq_p99: u64,
    pub runq_max: u64,
    pub iowait_pct: f64,
    /// None when syscalls are not traced.
    pub syscall_pct: Option<f64>,
    pub top_syscall: Option<String>,
    pub exited: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ThreadRow {
    pub tid: u32,
    pub comm: String,
    pub cpu_pct: f64,
    /// All its run-queue wait, including `throttled_pct`.
    pub runq_pct: f64,
    /// The part of the run-queue wait its cgroup was throttled by its CPU quota.
    pub throttled_pct: f64,
    pub iowait_pct: f64,
    pub sleep_pct: f64,
    pub exited: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Detail {
    pub pid: u32,
    pub comm: String,
    pub exited: bool,
    pub threads: Vec<ThreadRow>,
    pub hists: BTreeMap<Metric, Buckets>,
    /// (syscall, count, total ns), most time first.
    pub top_syscalls: Vec<(String, u64, u64)>,
    /// Who held the CPU while this process waited in the interval,
    /// largest first.
    pub holders: Vec<Held>,
}

impl Detail {
    /// Whether the interval held any distribution for this process.
    pub fn has_data(&self) -> bool {
        self.hists.values().any(|h| h.count() > 0)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Model {
    pub syscalls_traced: bool,
    pub rows: Vec<ProcessRow>,
    pub detail: Option<Detail>,
    pub lost_events: u64,
}

/// A span's gantt chart as the spans view shows it (Enter on a span).
#[derive(Clone, Debug)]
pub struct GanttView {
    pub span: SpanRecord,
    /// `None` when its window is no longer (or was never) in the ring.
    pub gantt: Option<Gantt>,
    /// Process names of the holders and thread names of the rows.
    pub names: BTreeMap<u32, String>,
}

impl GanttView {
    /// The chart of `span`, cut from the ring's timeline of the threads it
    /// touched (where it began and, if it moved, where it ended); spans are
    /// dated by the wall clock, states by CLOCK_MONOTONIC.
    pub fn of(span: SpanRecord, ring: Option<&FlightRing>, monotonic_to_unix_ns: i128) -> GanttView {
        let start = i128::from(span.start_unix_ns) - monotonic_to_unix_ns;
        let mut tids = vec![span.tid];
        if span.tid_end != 0 && span.tid_end != span.tid {
            tids.push(span.tid_end);
        }
        let gantt = match (ring, u64::try_from(start)) {
            (Some(ring), Ok(start)) => {
                let end = start + span.wall_ns;
                let timeline = ring.window(start, end, WindowHeader::default()).timeline();
                gantt::chart(&timeline, &tids, start, end)
            }
            _ => None,
        };
        let names = span.blame.iter().map(|h| (h.pid, h.comm.to_string())).collect();
        GanttView { span, gantt, names }
    }

    /// The PIDs and TIDs still to be named.
    pub fn unnamed(&self) -> Vec<u32> {
        let Some(gantt) = &self.gantt else { return Vec::new() };
        let ids = gantt.rows.iter().map(|r| r.tid).chain(gantt.holders.iter().map(|h| h.0));
        ids.filter(|id| !self.names.contains_key(id)).collect()
    }
}

/// The share of an interval that `ns` is, in percent, clamped to
/// [0, `max_pct`]: the one computation of every percentage shown. The
/// totals of an interval are read at slightly different instants than its
/// measured length, and an exited thread's final totals can arrive an
/// interval late, so a raw ratio can exceed what is possible (a thread
/// asleep 101% of the time, a process on 207% of 2 CPUs).
pub fn share(ns: u64, interval: Duration, max_pct: f64) -> f64 {
    let wall = interval.as_nanos().max(1) as f64;
    (ns as f64 * 100.0 / wall).clamp(0.0, max_pct)
}

/// A thread is in one state at a time: each of its shares is at most 100%.
pub const THREAD_MAX_PCT: f64 = 100.0;

/// A process's shares sum its threads' (`threads` of them, exited ones
/// included); on a CPU, at most one thread per CPU.
pub fn process_max_pct(threads: usize, cpus: u32, on_cpu: bool) -> f64 {
    let threads = threads.max(1) as f64;
    100.0 * if on_cpu { threads.min(f64::from(cpus.max(1))) } else { threads }
}

/// Builds the rows for every process active in the interval, and the detail
/// of `detail_pid` when one is open.
pub fn build(
    view: &IntervalView,
    agg: &Aggregator,
    interval: Duration,
    syscalls_traced: bool,
    detail_pid: Option<u32>,
    lost_events: u64,
) -> Model {
    let processes = agg.processes();
    let syscalls = view.kernel.syscalls(|id| id);
    let mut syscall_ns: BTreeMap<u32, u64> = BTreeMap::new();
    let mut top_syscall: BTreeMap<u32, (u64, u16)> = BTreeMap::new();
    for ((pid, nr), stats) in &syscalls {
        let total = stats.latency.sum() as u64;
        *syscall_ns.entry(*pid).or_default() += total;
        let best = top_syscall.entry(*pid).or_insert((0, *nr));
        if total > best.0 {
            *best = (total, *nr);
        }
    }
    let cpus = crate::sys::procfs::online_cpus();
    let mut rows = Vec::new();
    for (pid, threads) in &processes {
        let mut on_cpu = 0;
        let mut runq = 0;
        let mut iowait = 0;
        for t in threads {
            if let Some(delta) = view.totals.get(&(t.tgid, t.tid)) {
                on_cpu += delta.on_cpu_ns;
                runq += delta.runq_wait_ns;
                iowait += delta.iowait_ns;
            }
        }
        let exited = threads.iter().all(|t| t.exited);
        let active = on_cpu + runq + iowait > 0;
        if !active && Some(*pid) != detail_pid {
            continue;
        }
        let empty = Buckets::default();
        let runq_hist = view.runq.by_process.get(pid).unwrap_or(&empty);
        let leader = threads.iter().find(|t| t.tid == *pid).or(threads.first());
        let max_pct = process_max_pct(threads.len(), cpus, false);
        rows.push(ProcessRow {
            pid: *pid,
            comm: leader.map(|t| t.comm.clone()).unwrap_or_default(),
            threads: threads.iter().filter(|t| !t.exited).count(),
            cpu_pct: share(on_cpu, interval, process_max_pct(threads.len(), cpus, true)),
            runq_pct: share(runq, interval, max_pct),
            runq_p50: runq_hist.percentile(0.5),
            runq_p99: runq_hist.percentile(0.99),
            runq_max: runq_hist.max(),
            iowait_pct: share(iowait, interval, max_pct),
            syscall_pct: syscalls_traced.then(|| share(syscall_ns.get(pid).copied().unwrap_or(0), interval, max_pct)),
            top_syscall: top_syscall.get(pid).map(|(_, nr)| syscall_name(u32::from(*nr)).into_owned()),
            exited,
        });
    }
    let detail = detail_pid.map(|pid| build_detail(view, agg, interval, pid, &syscalls));
    Model { syscalls_traced, rows, detail, lost_events }
}

fn build_detail(
    view: &IntervalView,
    agg: &Aggregator,
    interval: Duration,
    pid: u32,
    syscalls: &BTreeMap<(u32, u16), crate::model::kstats::SyscallStats>,
) -> Detail {
    let processes = agg.processes();
    let threads = processes.get(&pid).cloned().unwrap_or_default();
    let thread_rows = threads
        .iter()
        .map(|t| {
            let delta = view.totals.get(&(t.tgid, t.tid)).copied().unwrap_or_default();
            ThreadRow {
                tid: t.tid,
                comm: t.comm.clone(),
                cpu_pct: share(delta.on_cpu_ns, interval, THREAD_MAX_PCT),
                runq_pct: share(delta.runq_wait_ns, interval, THREAD_MAX_PCT),
                throttled_pct: share(delta.throttled_ns, interval, THREAD_MAX_PCT),
                iowait_pct: share(delta.iowait_ns, interval, THREAD_MAX_PCT),
                sleep_pct: share(delta.sleep_ns, interval, THREAD_MAX_PCT),
                exited: t.exited,
            }
        })
        .collect();
    let off_cpu = view.runq.off_cpu_by_process.get(&pid).cloned().unwrap_or_else(OffCpuHistograms::default);
    let mut hists = BTreeMap::new();
    hists.insert(Metric::Runq, view.runq.by_process.get(&pid).cloned().unwrap_or_default());
    hists.insert(Metric::Preempted, off_cpu.preempted);
    hists.insert(Metric::IoWait, off_cpu.iowait);
    hists.insert(Metric::OtherUninterruptible, off_cpu.other_uninterruptible);
    hists.insert(Metric::Sleep, off_cpu.sleep);
    let mut all_syscalls = Buckets::default();
    let mut top_syscalls = Vec::new();
    for ((owner, nr), stats) in syscalls {
        if *owner == pid {
            all_syscalls.merge(&stats.latency);
            let name = syscall_name(u32::from(*nr)).into_owned();
            top_syscalls.push((name, stats.latency.count(), stats.latency.sum() as u64));
        }
    }
    top_syscalls.sort_by_key(|(_, _, total)| std::cmp::Reverse(*total));
    hists.insert(Metric::Syscalls, all_syscalls);
    let mut block = Buckets::default();
    for ((owner, _, _), io) in view.kernel.block_io(|tgid| tgid) {
        if owner == pid {
            block.merge(&io.latency);
        }
    }
    hists.insert(Metric::BlockIo, block);
    let holders = agg.holders.by_waiter(&view.holders).remove(&pid).unwrap_or_default();
    let leader = threads.iter().find(|t| t.tid == pid).or(threads.first());
    Detail {
        pid,
        comm: leader.map(|t| t.comm.clone()).unwrap_or_else(|| agg.comm_of(pid)),
        exited: !threads.is_empty() && threads.iter().all(|t| t.exited)
            || threads.is_empty() && !crate::sys::procfs::process_exists(pid),
        threads: thread_rows,
        hists,
        top_syscalls,
        holders,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_clamped_to_what_is_possible() {
        let second = Duration::from_secs(1);
        // The reported cases: a thread asleep 101% of the interval, an
        // exited process on 207% of 2 CPUs.
        assert_eq!(share(1_010_000_000, second, THREAD_MAX_PCT), 100.0);
        assert_eq!(share(2_070_000_000, second, process_max_pct(4, 2, true)), 200.0);
        assert_eq!(share(500_000_000, second, THREAD_MAX_PCT), 50.0);
        assert_eq!(share(0, Duration::ZERO, THREAD_MAX_PCT), 0.0);
        // One thread can use one CPU; waits of several threads add up.
        assert_eq!(process_max_pct(1, 8, true), 100.0);
        assert_eq!(process_max_pct(3, 2, false), 300.0);
        assert_eq!(process_max_pct(0, 0, true), 100.0);
    }
}
