//! The JSON report (`tracer.report/1`, documented in docs/report-format.md).
use std::path::Path;

use serde::Serialize;
use tracer_common::ThreadTotals;

use super::{
    atomic::{OutputError, write_atomically},
    hist_json::HistJson,
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


#[derive(Debug, Serialize)]
pub struct Histograms {
    pub runq_latency: HistJson,
}

/// Episode-length histograms per off-CPU cause.
#[derive(Debug, Serialize)]
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

#[derive(Debug, Serialize, Default)]
pub struct OffCpu {
    pub preempted_ns: u64,
    pub uninterruptible_ns: u64,
    pub iowait_ns: u64,
    pub sleep_ns: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histograms: Option<OffCpuHistJson>,
}

/// Totals shared by threads and processes (flattened into both).
#[derive(Debug, Serialize, Default)]
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
}

impl Totals {
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
    }
}

#[derive(Debug, Serialize)]
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

#[derive(Debug, Serialize)]
pub struct BlockIoJson {
    pub device: String,
    pub op: &'static str,
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
        size.unit = "bytes";
        BlockIoJson {
            device,
            op: block_op_name(op),
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

#[derive(Debug, Serialize)]
pub struct ThreadJson {
    pub tid: u32,
    pub comm: String,
    pub exited: bool,
    #[serde(flatten)]
    pub totals: Totals,
}

#[derive(Debug, Serialize)]
pub struct ProcessJson {
    pub pid: u32,
    pub comm: String,
    pub exited: bool,
    #[serde(flatten)]
    pub totals: Totals,
    pub threads: Vec<ThreadJson>,
    pub histograms: Histograms,
    pub syscalls: Vec<SyscallJson>,
    pub block_io: Vec<BlockIoJson>,
}

#[derive(Debug, Serialize, Clone)]
pub struct Filters {
    pub pids: Vec<u32>,
    pub tid: Option<u32>,
    pub cgroup: Option<String>,
    /// Processes the targets forked were traced too (`--children`).
    pub children: bool,
}

/// What was traced besides the scheduler.
#[derive(Debug, Serialize, Clone, Copy)]
pub struct Traced {
    pub syscalls: bool,
    pub block_io: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub tool_version: &'static str,
    #[serde(flatten)]
    pub meta: ReportMeta,
    pub histograms: Histograms,
    /// Block I/O of all traced processes, per device and operation.
    pub block_io: Vec<BlockIoJson>,
    /// Request spans, when the target has span markers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spans: Option<SpansJson>,
    pub processes: Vec<ProcessJson>,
}

/// How and when the recording was made.
#[derive(Debug, Serialize)]
pub struct ReportMeta {
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    pub probe_mode: &'static str,
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
        name: syscall_name(u32::from(nr)),
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
        let mut syscalls_of: std::collections::BTreeMap<u32, Vec<SyscallJson>> = Default::default();
        for ((pid, nr), stats) in agg.kernel.syscalls(|id| if by_thread { agg.process_of(id) } else { id }) {
            syscalls_of.entry(pid).or_default().push(syscall_json(nr, &stats));
        }
        let mut block_of: std::collections::BTreeMap<u32, Vec<BlockIoJson>> = Default::default();
        for ((pid, dev, op), io) in agg.kernel.block_io(|tgid| tgid) {
            block_of.entry(pid).or_default().push(BlockIoJson::new(disk_name(dev), op, &io));
        }
        let block_io = agg
            .kernel
            .block_io(|_| 0)
            .into_iter()
            .map(|((_, dev, op), io)| BlockIoJson::new(disk_name(dev), op, &io))
            .collect();
        let processes = agg
            .processes()
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
                }
            })
            .collect();
        Report {
            schema: SCHEMA,
            tool_version: env!("CARGO_PKG_VERSION"),
            spans: meta
                .span_anomalies
                .map(|(anomalies, lost)| SpansJson::new(&agg.spans, anomalies, lost)),
            meta,
            histograms: Histograms {
                runq_latency: HistJson::from_buckets(&agg.runq.system),
            },
            block_io,
            processes,
        }
    }
}

pub fn write_report(path: &Path, report: &Report) -> Result<(), OutputError> {
    let mut json = serde_json::to_vec_pretty(report).expect("report serializes");
    json.push(b'\n');
    write_atomically(path, &json)
}
