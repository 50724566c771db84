//! What the live view shows, computed from one interval of data.
use std::{collections::BTreeMap, time::Duration};

use crate::model::{
    aggregate::{Aggregator, OffCpuHistograms},
    hist::Buckets,
    intervals::IntervalView,
    names::syscall_name,
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
    pub runq_pct: f64,
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
    /// (pid, comm, wait ns): who had the CPU when this process's waits ended.
    pub holders: Vec<(u32, String, u64)>,
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

fn pct(ns: u64, interval: Duration) -> f64 {
    let wall = interval.as_nanos().max(1) as f64;
    ns as f64 * 100.0 / wall
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
        rows.push(ProcessRow {
            pid: *pid,
            comm: leader.map(|t| t.comm.clone()).unwrap_or_default(),
            threads: threads.iter().filter(|t| !t.exited).count(),
            cpu_pct: pct(on_cpu, interval),
            runq_pct: pct(runq, interval),
            runq_p50: runq_hist.percentile(0.5),
            runq_p99: runq_hist.percentile(0.99),
            runq_max: runq_hist.max(),
            iowait_pct: pct(iowait, interval),
            syscall_pct: syscalls_traced.then(|| pct(syscall_ns.get(pid).copied().unwrap_or(0), interval)),
            top_syscall: top_syscall.get(pid).map(|(_, nr)| syscall_name(u32::from(*nr))),
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
                cpu_pct: pct(delta.on_cpu_ns, interval),
                runq_pct: pct(delta.runq_wait_ns, interval),
                iowait_pct: pct(delta.iowait_ns, interval),
                sleep_pct: pct(delta.sleep_ns, interval),
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
            top_syscalls.push((syscall_name(u32::from(*nr)), stats.latency.count(), stats.latency.sum() as u64));
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
    let mut holders: Vec<(u32, String, u64)> = view
        .runq
        .last_holders
        .get(&pid)
        .map(|h| h.iter().map(|(holder, ns)| (*holder, agg.comm_of(*holder), *ns)).collect())
        .unwrap_or_default();
    holders.sort_by_key(|(_, _, ns)| std::cmp::Reverse(*ns));
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
