//! The per-process (or per-cgroup) metrics: the model's processes summed
//! into bounded label sets, then their CPU, run-queue, off-CPU, syscall
//! and block I/O numbers.
use std::collections::{BTreeMap, HashMap};

use super::{
    By, Inputs,
    family::{Family, Labels, seconds},
    series::{Candidate, SeriesTable},
};
use crate::{
    model::{
        aggregate::Aggregator,
        hist::Buckets,
        kstats::{BlockStats, SyscallStats, block_op_name},
        names::syscall_name,
        thread::ThreadRecord,
    },
    output::report::Totals,
};

/// What a label set stands for: a process, or a cgroup v2 path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Pid(u32),
    Cgroup(String),
}

/// The label value of a cgroup tracer could not name (its processes
/// ended before it was read).
const UNKNOWN_CGROUP: &str = "(unknown)";
/// The label value of the series that sums the rest.
pub const OTHER: &str = "other";

/// One label set's sums.
#[derive(Default)]
struct Series {
    labels: Labels,
    totals: Totals,
    runq: Buckets,
}

/// The label sets of one snapshot, `other` last, and which one each
/// process is summed into.
struct Grouping {
    series: Vec<Series>,
    of_pid: HashMap<u32, usize>,
}

impl Grouping {
    /// The series `pid` is summed into (`other` when it has none).
    fn of(&self, pid: u32) -> usize {
        self.of_pid.get(&pid).copied().unwrap_or(self.series.len() - 1)
    }
}

type Processes<'a> = BTreeMap<u32, Vec<&'a ThreadRecord>>;

/// Each process's label set, and how live and busy each label set is.
fn candidates(processes: &Processes, inputs: &Inputs) -> (HashMap<u32, (Key, String)>, HashMap<Key, Candidate>) {
    let mut key_of = HashMap::new();
    let mut seen: HashMap<Key, Candidate> = HashMap::new();
    for (&pid, threads) in processes.iter().filter(|(pid, _)| **pid != 0) {
        let key = match inputs.by {
            By::Process => Key::Pid(pid),
            By::Cgroup => Key::Cgroup((inputs.cgroup_of)(pid).unwrap_or_else(|| UNKNOWN_CGROUP.to_owned())),
        };
        let leader = threads.iter().find(|t| t.tid == pid).or(threads.first());
        let comm = leader.map(|t| t.comm.clone()).unwrap_or_default();
        let entry = seen.entry(key.clone()).or_default();
        // A cgroup lives as long as any process of it is known: it keeps
        // its series while its processes come and go.
        entry.live |= inputs.by == By::Cgroup || threads.iter().any(|t| !t.exited);
        entry.busy += threads.iter().map(|t| t.totals.on_cpu_ns + t.totals.runq_wait_ns).sum::<u64>();
        key_of.insert(pid, (key, comm));
    }
    (key_of, seen)
}

fn group(agg: &Aggregator, inputs: &Inputs, table: &mut SeriesTable<Key>) -> Grouping {
    let processes = agg.processes();
    let (key_of, seen) = candidates(&processes, inputs);
    table.assign(&seen);
    let own = table.own_sorted();
    let index: HashMap<&Key, usize> = own.iter().enumerate().map(|(i, key)| (key, i)).collect();
    let mut series: Vec<Series> = own.iter().map(|_| Series::default()).collect();
    series.push(Series { labels: other_labels(inputs.by), ..Series::default() });
    let mut of_pid = HashMap::new();
    for (pid, (key, comm)) in &key_of {
        if let Some(&i) = index.get(key) {
            of_pid.insert(*pid, i);
            series[i].labels = match key {
                Key::Pid(pid) => Labels::new().with("pid", pid.to_string()).with("comm", comm.clone()),
                Key::Cgroup(path) => Labels::new().with("cgroup", path.clone()),
            };
        }
    }
    let mut grouping = Grouping { series, of_pid };
    for (&pid, threads) in &processes {
        let i = grouping.of(pid);
        threads.iter().for_each(|t| grouping.series[i].totals.add(&t.totals));
    }
    for (pid, runq) in &agg.runq.by_process {
        let i = grouping.of(*pid);
        grouping.series[i].runq.merge(runq);
    }
    grouping
}

fn other_labels(by: By) -> Labels {
    match by {
        By::Process => Labels::new().with("pid", OTHER).with("comm", OTHER),
        By::Cgroup => Labels::new().with("cgroup", OTHER),
    }
}

/// The per-label-set families, appended to `out`.
pub fn families(agg: &Aggregator, inputs: &Inputs, table: &mut SeriesTable<Key>, out: &mut Vec<prometheus::proto::MetricFamily>) {
    let grouping = group(agg, inputs, table);
    time_families(&grouping, out);
    syscall_families(agg, inputs, &grouping, out);
    block_families(agg, inputs, &grouping, out);
}

/// CPU, run-queue and off-CPU time.
fn time_families(grouping: &Grouping, out: &mut Vec<prometheus::proto::MetricFamily>) {
    let mut on_cpu = Family::counter("tracer_on_cpu_seconds_total", "Time running on a CPU.");
    let mut runq = Family::counter(
        "tracer_runq_wait_seconds_total",
        "Time runnable but waiting for a CPU (run-queue wait), after a wakeup or a preemption.",
    );
    let mut off_cpu = Family::counter(
        "tracer_off_cpu_seconds_total",
        "Time off the CPU by cause: waiting for a CPU while its cgroup was throttled by its CPU quota (throttled), \
         while the hypervisor had taken the CPU it held (stolen), \
         after a preemption (preempted) or a wakeup (woken), in I/O wait (iowait), in other uninterruptible waits \
         (other_uninterruptible), asleep (sleep).",
    );
    let mut latency = Family::histogram("tracer_runq_latency_seconds", "Run-queue latency: each wait for a CPU.");
    for series in &grouping.series {
        let (t, labels) = (&series.totals, &series.labels);
        on_cpu.add(labels, seconds(t.on_cpu_ns.into()));
        runq.add(labels, seconds(t.runq_wait_ns.into()));
        let runq_causes = t.runq_causes();
        let causes = [
            ("throttled", runq_causes.throttled_ns),
            ("stolen", runq_causes.stolen_ns),
            ("preempted", runq_causes.preempted_ns),
            ("woken", runq_causes.woken_ns),
            ("iowait", t.off_cpu.iowait_ns),
            ("other_uninterruptible", t.off_cpu.uninterruptible_ns.saturating_sub(t.off_cpu.iowait_ns)),
            ("sleep", t.off_cpu.sleep_ns),
        ];
        for (cause, ns) in causes {
            off_cpu.add(&labels.with("cause", cause), seconds(ns.into()));
        }
        latency.add_histogram(labels, &series.runq);
    }
    for family in [on_cpu, runq, off_cpu, latency] {
        family.push_into(out);
    }
}

/// Syscall latency and errors, per label set and syscall.
fn syscall_families(agg: &Aggregator, inputs: &Inputs, grouping: &Grouping, out: &mut Vec<prometheus::proto::MetricFamily>) {
    let by_thread = inputs.syscalls_by_thread;
    let stats: BTreeMap<(u32, u16), SyscallStats> = agg
        .kernel
        .syscalls(|id| grouping.of(if by_thread { agg.process_of(id) } else { id }) as u32);
    let mut latency = Family::histogram("tracer_syscall_latency_seconds", "Syscall latency, entry to exit (traced targets).");
    let mut errors = Family::counter("tracer_syscall_errors_total", "Syscalls that returned an error.");
    for ((i, nr), stat) in &stats {
        let labels = grouping.series[*i as usize].labels.with("syscall", syscall_name(u32::from(*nr)));
        if stat.latency.count() > 0 {
            latency.add_histogram(&labels, &stat.latency);
        }
        if stat.error_count() > 0 {
            errors.add(&labels, stat.error_count() as f64);
        }
    }
    latency.push_into(out);
    errors.push_into(out);
}

/// Block I/O latency and bytes, per label set, device and operation.
fn block_families(agg: &Aggregator, inputs: &Inputs, grouping: &Grouping, out: &mut Vec<prometheus::proto::MetricFamily>) {
    let stats: BTreeMap<(u32, u32, u8), BlockStats> = agg.kernel.block_io(|tgid| grouping.of(tgid) as u32);
    let mut latency = Family::histogram(
        "tracer_block_io_latency_seconds",
        "Block I/O latency, issue to completion (device time), charged to the submitting process.",
    );
    let mut bytes = Family::counter("tracer_block_io_bytes_total", "Bytes of block I/O requests completed.");
    for ((i, dev, op), io) in &stats {
        let labels = grouping.series[*i as usize]
            .labels
            .with("device", (inputs.disk_name)(*dev))
            .with("op", block_op_name(*op));
        latency.add_histogram(&labels, &io.latency);
        bytes.add(&labels, io.bytes() as f64);
    }
    latency.push_into(out);
    bytes.push_into(out);
}
