//! The JSON report (`tracer.report/1`, documented in docs/report-format.md).
use std::{borrow::Cow, path::Path};

use serde::{Deserialize, Serialize};
use tracer_common::ThreadTotals;

use super::{
    atomic::{OutputError, write_atomically},
    cpus_json::CpuJson,
    hist_json::HistJson,
    holders_json::CpuHoldersJson,
    spans_json::SpansJson,
};
use crate::model::{
    aggregate::{Aggregator, OffCpuHistograms},
    hist::Buckets,
    kstats::{BlockStats, SyscallStats, block_op_name},
    losses::{Losses, SpanAnomalies},
    names::{errno_name, syscall_name},
};

pub const SCHEMA: &str = "tracer.report/1";


#[derive(Debug, Serialize, Deserialize)]
pub struct Histograms {
    pub runq_latency: HistJson,
}

/// Episode-length histograms per off-CPU cause.
#[derive(Debug, Serialize, Deserialize)]
pub struct OffCpuHistJson {
    pub preempted: HistJson,
    pub iowait: HistJson,
    pub other_uninterruptible: HistJson,
    pub sleep: HistJson,
}

impl OffCpuHistJson {
    fn from(h: &OffCpuHistograms) -> Self {
        OffCpuHistJson {
            preempted: HistJson::from_buckets(&h.preempted),
            iowait: HistJson::from_buckets(&h.iowait),
            other_uninterruptible: HistJson::from_buckets(&h.other_uninterruptible),
            sleep: HistJson::from_buckets(&h.sleep),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, Default)]
pub struct OffCpu {
    pub preempted_ns: u64,
    pub uninterruptible_ns: u64,
    pub iowait_ns: u64,
    pub sleep_ns: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histograms: Option<OffCpuHistJson>,
}

/// Totals shared by threads and processes (flattened into both).
#[derive(Debug, Serialize, Deserialize, Default)]
pub struct Totals {
    pub on_cpu_ns: u64,
    pub runq_wait_ns: u64,
    pub runq_waits: u64,
    pub off_cpu: OffCpu,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    pub syscall_ns: u64,
    pub syscalls: u64,
    pub migrations: u64,
    pub unaccounted_ns: u64,
    /// The part of `on_cpu_ns` spent by the CPU leaving idle after a wakeup.
    #[serde(default)]
    pub wakeup_idle_ns: u64,
    /// Wake-ups onto an idle CPU (not in `runq_waits`).
    #[serde(default)]
    pub idle_wakeups: u64,
    /// The part of `runq_wait_ns` its cgroup was throttled by its CPU quota.
    #[serde(default)]
    pub throttled_ns: u64,
    /// The part of `runq_wait_ns` taken from its threads while they held a
    /// CPU (the hypervisor's steal).
    #[serde(default)]
    pub stolen_ns: u64,
}

/// Run-queue wait split by why it began, disjoint: its cgroup was throttled
/// by its CPU quota, or the hypervisor took the CPU from it, or it was
/// preempted, or woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunqCauses {
    pub throttled_ns: u64,
    pub stolen_ns: u64,
    pub preempted_ns: u64,
    pub woken_ns: u64,
}

impl Totals {
    /// A thread throttled by its quota leaves the CPU runnable, as if
    /// preempted: its throttled time is taken out of the preempted waits first.
    pub fn runq_causes(&self) -> RunqCauses {
        let preempted_ns = self.off_cpu.preempted_ns.saturating_sub(self.throttled_ns);
        let stolen_ns = self.stolen_ns.min(self.runq_wait_ns.saturating_sub(self.throttled_ns));
        let woken_ns =
            self.runq_wait_ns.saturating_sub(self.throttled_ns).saturating_sub(stolen_ns).saturating_sub(preempted_ns);
        RunqCauses { throttled_ns: self.throttled_ns, stolen_ns, preempted_ns, woken_ns }
    }

    pub fn add(&mut self, t: &ThreadTotals) {
        self.on_cpu_ns += t.on_cpu_ns;
        self.runq_wait_ns += t.runq_wait_ns;
        self.runq_waits += t.runq_waits;
        self.off_cpu.preempted_ns += t.preempted_ns;
        self.off_cpu.uninterruptible_ns += t.uninterruptible_ns;
        self.off_cpu.iowait_ns += t.iowait_ns;
        self.off_cpu.sleep_ns += t.sleep_ns;
        self.voluntary_switches += t.voluntary_switches;
        self.involuntary_switches += t.involuntary_switches;
        self.syscall_ns += t.syscall_ns;
        self.syscalls += t.syscalls;
        self.migrations += t.migrations;
        self.unaccounted_ns += t.unaccounted_ns;
        self.wakeup_idle_ns += t.wakeup_idle_ns;
        self.idle_wakeups += t.idle_wakeups;
        self.throttled_ns += t.throttled_ns;
        self.stolen_ns += t.stolen_ns;
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SyscallJson {
    pub name: String,
    pub nr: u16,
    pub count: u64,
    pub errors: u64,
    /// Failures by errno name (`ENOENT`), or number when unnamed.
    pub errors_by_errno: std::collections::BTreeMap<String, u64>,
    pub total_ns: u64,
    pub hist: HistJson,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BlockIoJson {
    pub device: String,
    pub op: Cow<'static, str>,
    pub count: u64,
    pub bytes: u64,
    /// Requests flagged synchronous.
    pub sync: u64,
    /// Issue to completion (device time).
    pub latency: HistJson,
    /// Insert to issue (OS queue time; 0 for requests issued directly).
    pub queue: HistJson,
    /// Insert (or issue) to completion: what biolatency -Q measures.
    pub total: HistJson,
    /// Request sizes, in bytes (`unit` says "bytes").
    pub size: HistJson,
}

impl BlockIoJson {
    pub fn new(device: String, op: u8, io: &BlockStats) -> Self {
        let mut size = HistJson::from_buckets(&io.size);
        size.unit = Cow::Borrowed("bytes");
        BlockIoJson {
            device,
            op: Cow::Borrowed(block_op_name(op)),
            count: io.count(),
            bytes: io.bytes(),
            sync: io.sync_count,
            latency: HistJson::from_buckets(&io.latency),
            queue: HistJson::from_buckets(&io.queue),
            total: HistJson::from_buckets(&io.total),
            size,
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ThreadJson {
    pub tid: u32,
    pub comm: String,
    pub exited: bool,
    /// On a row summing exited threads (`tid` 0): how many it sums.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub folded_threads: u64,
    #[serde(flatten)]
    pub totals: Totals,
}

/// A process. Its JSON object has the key `syscalls` twice: first the
/// count of its flattened totals, then the list of its syscalls (readers
/// that keep the last of duplicate keys see the list). Deserializing
/// assigns each to its field (see the `Deserialize` impl below).
#[derive(Debug, Serialize)]
pub struct ProcessJson {
    pub pid: u32,
    pub comm: String,
    pub exited: bool,
    /// On the entry summing exited processes (`pid` 0): how many it sums.
    #[serde(skip_serializing_if = "is_zero")]
    pub folded_processes: u64,
    #[serde(flatten)]
    pub totals: Totals,
    pub threads: Vec<ThreadJson>,
    pub histograms: Histograms,
    pub syscalls: Vec<SyscallJson>,
    pub block_io: Vec<BlockIoJson>,
    /// Who held the CPU while it waited for one (when summed: `record`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_holders: Option<CpuHoldersJson>,
}

/// `ProcessJson` but the list of syscalls, whose key derived code would
/// take for the totals' count (or refuse as a duplicate).
#[derive(Deserialize)]
struct ProcessFields {
    pid: u32,
    comm: String,
    exited: bool,
    #[serde(default)]
    folded_processes: u64,
    #[serde(flatten)]
    totals: Totals,
    threads: Vec<ThreadJson>,
    histograms: Histograms,
    block_io: Vec<BlockIoJson>,
    #[serde(default)]
    cpu_holders: Option<CpuHoldersJson>,
}

impl<'de> Deserialize<'de> for ProcessJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{Error, MapAccess, Visitor};
        use serde_json::{Map, Value};

        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = ProcessJson;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a process object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ProcessJson, A::Error> {
                let mut fields = Map::new();
                let mut list = None;
                while let Some(key) = map.next_key::<String>()? {
                    let value: Value = map.next_value()?;
                    match value {
                        Value::Array(_) if key == "syscalls" => list = Some(value),
                        _ => {
                            fields.insert(key, value);
                        }
                    }
                }
                let rest = ProcessFields::deserialize(Value::Object(fields)).map_err(A::Error::custom)?;
                let list = list.ok_or_else(|| A::Error::missing_field("syscalls"))?;
                Ok(ProcessJson {
                    pid: rest.pid,
                    comm: rest.comm,
                    exited: rest.exited,
                    folded_processes: rest.folded_processes,
                    totals: rest.totals,
                    threads: rest.threads,
                    histograms: rest.histograms,
                    syscalls: Vec::deserialize(list).map_err(A::Error::custom)?,
                    block_io: rest.block_io,
                    cpu_holders: rest.cpu_holders,
                })
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct Filters {
    pub pids: Vec<u32>,
    pub tid: Option<u32>,
    pub cgroup: Option<String>,
    /// Processes the targets forked were traced too (`--children`).
    pub children: bool,
}

/// What was traced besides the scheduler.
#[derive(Debug, Serialize, Deserialize, Clone, Copy)]
pub struct Traced {
    pub syscalls: bool,
    pub block_io: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    pub schema: Cow<'static, str>,
    pub tool_version: Cow<'static, str>,
    #[serde(flatten)]
    pub meta: ReportMeta,
    pub histograms: Histograms,
    /// Block I/O of all traced processes, per device and operation.
    pub block_io: Vec<BlockIoJson>,
    /// Request spans, when the target has span markers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spans: Option<SpansJson>,
    /// Each CPU's run-queue length and busy share (BTF probes only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<CpuJson>,
    pub processes: Vec<ProcessJson>,
}

/// How and when the recording was made.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReportMeta {
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    /// Written while recording (`record --checkpoint`): the recording
    /// went on after `end_unix_ns`; the final report lacks the field.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub checkpoint: bool,
    pub probe_mode: Cow<'static, str>,
    pub filters: Filters,
    pub traced: Traced,
    pub lost: Losses,
    /// Syscall statistics are keyed by TID (else by TGID); not in the JSON,
    /// where syscalls are always listed per process.
    #[serde(skip)]
    pub syscalls_by_thread: bool,
    /// Span markers were attached, with these anomalies and losses.
    #[serde(skip)]
    pub span_anomalies: Option<(SpanAnomalies, u64)>,
}

fn syscall_json(nr: u16, stats: &SyscallStats) -> SyscallJson {
    SyscallJson {
        name: syscall_name(u32::from(nr)).into_owned(),
        nr,
        count: stats.latency.count(),
        errors: stats.error_count(),
        errors_by_errno: stats.errors.iter().map(|(e, n)| (errno_name(*e), *n)).collect(),
        total_ns: stats.latency.sum() as u64,
        hist: HistJson::from_buckets(&stats.latency),
    }
}

impl Report {
    /// `disk_name` names a block device by its kernel `dev_t`.
    pub fn build(meta: ReportMeta, agg: &Aggregator, disk_name: impl Fn(u32) -> String) -> Self {
        let empty = Buckets::default();
        let no_off_cpu = OffCpuHistograms::default();
        let by_thread = meta.syscalls_by_thread;
        let processes = agg.processes();
        // Syscalls and block I/O of processes summed into the "other exited
        // processes" entry are summed there too; those of no known process
        // (TGID 0: block I/O submitted from interrupts) stay out of them.
        let entry_of = |pid: u32| match pid {
            0 => u32::MAX,
            _ if processes.contains_key(&pid) || !processes.contains_key(&0) => pid,
            _ => 0,
        };
        let mut syscalls_of: std::collections::BTreeMap<u32, Vec<SyscallJson>> = Default::default();
        for ((pid, nr), stats) in agg.kernel.syscalls(|id| entry_of(if by_thread { agg.process_of(id) } else { id })) {
            syscalls_of.entry(pid).or_default().push(syscall_json(nr, &stats));
        }
        let mut block_of: std::collections::BTreeMap<u32, Vec<BlockIoJson>> = Default::default();
        for ((pid, dev, op), io) in agg.kernel.block_io(entry_of) {
            block_of.entry(pid).or_default().push(BlockIoJson::new(disk_name(dev), op, &io));
        }
        let block_io = agg
            .kernel
            .block_io(|_| 0)
            .into_iter()
            .map(|((_, dev, op), io)| BlockIoJson::new(disk_name(dev), op, &io))
            .collect();
        let mut holders = agg.holders.by_waiter(agg.holders.sums());
        let processes = processes
            .into_iter()
            .map(|(pid, threads)| {
                let mut totals = Totals::default();
                threads.iter().for_each(|t| totals.add(&t.totals));
                totals.off_cpu.histograms = Some(OffCpuHistJson::from(
                    agg.runq.off_cpu_by_process.get(&pid).unwrap_or(&no_off_cpu),
                ));
                let leader = threads.iter().find(|t| t.tid == pid).or(threads.first());
                ProcessJson {
                    pid,
                    comm: leader.map(|t| t.comm.clone()).unwrap_or_default(),
                    exited: threads.iter().all(|t| t.exited),
                    folded_processes: if pid == 0 { agg.exited_processes_folded() } else { 0 },
                    totals,
                    threads: threads
                        .iter()
                        .map(|t| {
                            let mut totals = Totals::default();
                            totals.add(&t.totals);
                            ThreadJson {
                                tid: t.tid,
                                comm: t.comm.clone(),
                                exited: t.exited,
                                folded_threads: t.folded,
                                totals,
                            }
                        })
                        .collect(),
                    histograms: Histograms {
                        runq_latency: HistJson::from_buckets(
                            agg.runq.by_process.get(&pid).unwrap_or(&empty),
                        ),
                    },
                    syscalls: syscalls_of.remove(&pid).unwrap_or_default(),
                    block_io: block_of.remove(&pid).unwrap_or_default(),
                    cpu_holders: holders.remove(&pid).map(|held| CpuHoldersJson::new(&held)),
                }
            })
            .collect();
        Report {
            schema: Cow::Borrowed(SCHEMA),
            tool_version: Cow::Borrowed(env!("CARGO_PKG_VERSION")),
            spans: meta
                .span_anomalies
                .map(|(anomalies, lost)| SpansJson::new(&agg.spans, agg.goodput.as_ref(), anomalies, lost)),
            meta,
            histograms: Histograms {
                runq_latency: HistJson::from_buckets(&agg.runq.system),
            },
            block_io,
            cpus: Vec::new(),
            processes,
        }
    }
}

pub fn write_report(path: &Path, report: &Report) -> Result<(), OutputError> {
    let mut json = serde_json::to_vec_pretty(report).expect("report serializes");
    json.push(b'\n');
    write_atomically(path, &json)
}

#[cfg(test)]
mod tests {
    use tracer_common::{
        BlockKey, BlockMetric, BlockOp, BucketStat, OFF_CPU_IOWAIT,
        OFF_CPU_PREEMPTED, RunqEvent, SpanEvent, SyscallErrorKey, SyscallKey, ThreadStats, TopEntry,
    };

    use super::*;
    use crate::model::{aggregate::HistogramScope, names::Offline};

    /// A report with every part filled: threads, off-CPU histograms,
    /// syscalls with errors, block I/O, and spans of two verdicts.
    fn report() -> Report {
        let scope = HistogramScope { per_process: true, per_thread: false };
        let mut agg = Aggregator::new(scope, 1_000, Box::new(Offline));
        let mut stats = ThreadStats { tgid: 42, ..Default::default() };
        stats.comm[..4].copy_from_slice(b"work");
        stats.totals.on_cpu_ns = 5_000_000;
        stats.totals.runq_wait_ns = 700_000;
        stats.totals.syscalls = 3;
        agg.on_thread_snapshot(42, &stats, 0);
        agg.on_thread_snapshot(43, &stats, 0);
        for (latency_ns, blocked_state) in [(1_000, OFF_CPU_PREEMPTED), (3_000, OFF_CPU_IOWAIT)] {
            let (tid, tgid, blocked_ns) = (43, 42, 2_000_000);
            agg.on_runq_event(&RunqEvent { tid, tgid, latency_ns, blocked_state, blocked_ns, ..Default::default() });
        }
        let read = SyscallKey { id: 42, nr: 0, bucket: 900 };
        agg.kernel.syscall_latency.insert(read, BucketStat { count: 2, total: 9_000 });
        agg.kernel.syscall_errors.insert(SyscallErrorKey { id: 42, nr: 0, errno: 2 }, 1);
        for (metric, bucket, total) in [(BlockMetric::Latency as u8, 1_500, 300_000), (BlockMetric::Size as u8, 1_000, 4_096)] {
            let (tgid, dev, op, sync) = (42, 8 << 20, BlockOp::Write as u8, 1);
            let key = BlockKey { tgid, dev, op, sync, metric, bucket, ..Default::default() };
            agg.kernel.block.insert(key, BucketStat { count: 1, total });
        }
        let mut span =
            SpanEvent { span_id: 1, tgid: 42, tid_begin: 43, tid_end: 43, end_ns: 10_000, ..Default::default() };
        span.name[..4].copy_from_slice(b"GET ");
        span.delta.on_cpu_ns = 2_000;
        span.delta.runq_wait_ns = 8_000;
        span.holders[0] = TopEntry { id: 42, count: 1, ns: 8_000 };
        agg.on_span(&span);
        span.delta.runq_wait_ns = 0;
        agg.on_span(&span);
        let meta = ReportMeta {
            start_unix_ns: 1,
            end_unix_ns: 2,
            checkpoint: false,
            probe_mode: "tp_btf".into(),
            filters: Filters { pids: vec![42], tid: None, cgroup: Some("/sys/fs/cgroup/x".into()), children: false },
            traced: Traced { syscalls: true, block_io: true },
            lost: Losses { spans: 1, accounting_gaps: 2, ..Default::default() },
            syscalls_by_thread: false,
            span_anomalies: Some((SpanAnomalies { never_ended: 3, ..Default::default() }, 4)),
        };
        Report::build(meta, &agg, |dev| format!("dev{dev}"))
    }


    #[test]
    fn runq_causes_are_disjoint_and_take_throttling_out_of_preemptions_first() {
        let mut totals = Totals { runq_wait_ns: 100, throttled_ns: 30, ..Default::default() };
        totals.off_cpu.preempted_ns = 50;
        let causes = totals.runq_causes();
        assert_eq!(causes, RunqCauses { throttled_ns: 30, stolen_ns: 0, preempted_ns: 20, woken_ns: 50 });
        totals.throttled_ns = 70;
        assert_eq!(totals.runq_causes(), RunqCauses { throttled_ns: 70, stolen_ns: 0, preempted_ns: 0, woken_ns: 30 });
        // Stolen while running, whatever the wait after the run: out of neither preemptions nor throttling.
        totals.stolen_ns = 10;
        assert_eq!(totals.runq_causes(), RunqCauses { throttled_ns: 70, stolen_ns: 10, preempted_ns: 0, woken_ns: 20 });
    }
    #[test]
    fn report_round_trips_through_json() {
        let json = serde_json::to_string_pretty(&report()).unwrap();
        let read: Report = serde_json::from_str(&json).expect("the report deserializes");
        assert_eq!(serde_json::to_string_pretty(&read).unwrap(), json);

        // What was read is typed, not just re-serialized.
        assert_eq!((read.schema.as_ref(), read.meta.probe_mode.as_ref()), (SCHEMA, "tp_btf"));
        let p = &read.processes[0];
        assert_eq!((p.pid, p.comm.as_str(), p.threads.len()), (42, "work", 2));
        assert_eq!(p.totals.on_cpu_ns, 10_000_000, "flattened totals");
        assert_eq!((p.totals.syscalls, p.syscalls.len()), (6, 1), "both keys `syscalls`");
        assert_eq!(p.totals.off_cpu.histograms.as_ref().unwrap().iowait.count, 1);
        assert_eq!((p.syscalls[0].errors, p.syscalls[0].errors_by_errno["ENOENT"]), (1, 1));
        assert_eq!((p.block_io[0].op.as_ref(), p.block_io[0].size.unit.as_ref()), ("write", "bytes"));
        let spans = read.spans.as_ref().expect("spans");
        let verdicts: Vec<&str> = spans.by_verdict.keys().map(|v| v.name()).collect();
        assert_eq!(verdicts, ["cpu-contention", "on-cpu"]);
        assert_eq!((spans.anomalies.never_ended, spans.lost, read.meta.lost.accounting_gaps), (3, 4, 2));
        assert!(json.contains("\"by_verdict\": {\n      \"cpu-contention\": {"), "verdicts keyed by name");
        // Not in the JSON, so read back as their defaults.
        assert!(!read.meta.syscalls_by_thread && read.meta.span_anomalies.is_none());
    }

    #[test]
    fn report_without_spans_or_histograms_round_trips() {
        let mut report = report();
        report.spans = None;
        report.processes[0].totals.off_cpu.histograms = None;
        let json = serde_json::to_string(&report).unwrap();
        assert!(!json.contains("\"by_verdict\""), "no spans object");
        let read: Report = serde_json::from_str(&json).unwrap();
        assert!(read.spans.is_none() && read.processes[0].totals.off_cpu.histograms.is_none());
        assert_eq!(serde_json::to_string(&read).unwrap(), json);
    }
}
