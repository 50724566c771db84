//! The JSON report (`tracer.report/1`, documented in docs/report-format.md)
//! and its atomic writing.
use std::{
    io::Write,
    path::{Path, PathBuf},
};

use base64::Engine;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use serde::Serialize;
use tracer_common::ThreadTotals;

use crate::{
    aggregate::{Aggregator, OffCpuHistograms},
    hist::Buckets,
    kstats::{BlockStats, block_op_name},
    loader::Losses,
    names::{Disks, errno_name, syscall_name},
};

pub const SCHEMA: &str = "tracer.report/1";

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{0}: directory does not exist")]
    NoDirectory(String),
    #[error("{0}: is a directory, expected a file name")]
    IsDirectory(String),
    #[error("{path}: cannot write here ({source})")]
    NotWritable { path: String, source: std::io::Error },
}

/// Histogram summary plus the full data: log2 buckets and HdrHistogram's
/// compressed V2 encoding (base64), which other HdrHistogram libraries decode.
#[derive(Debug, Serialize, PartialEq)]
pub struct HistJson {
    pub unit: &'static str,
    pub count: u64,
    pub min: u64,
    pub max: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    /// Non-empty power-of-two buckets: [lower_ns, upper_ns, count].
    pub buckets: Vec<[u64; 3]>,
    pub hdr: String,
}

impl HistJson {
    pub fn from_buckets(buckets: &Buckets) -> Self {
        let hdr = buckets.to_hdr();
        let mut encoded = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&hdr, &mut encoded)
            .expect("serializing into memory cannot fail");
        let q = |quantile: f64| if hdr.is_empty() { 0 } else { hdr.value_at_quantile(quantile) };
        let mut log2: Vec<[u64; 3]> = Vec::new();
        for (lower, _, count) in buckets.iter() {
            let power = 63 - lower.max(1).leading_zeros();
            let (lo, hi) = if power == 0 { (0, 1) } else { (1u64 << power, (1u64 << (power + 1)) - 1) };
            match log2.last_mut() {
                Some(last) if last[0] == lo => last[2] += count,
                _ => log2.push([lo, hi, count]),
            }
        }
        HistJson {
            unit: "ns",
            count: buckets.count(),
            min: buckets.min(),
            max: buckets.max(),
            mean: buckets.mean(),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            p9999: q(0.9999),
            buckets: log2,
            hdr: base64::engine::general_purpose::STANDARD.encode(encoded),
        }
    }
}

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
    pub spans: Option<crate::spans::SpansJson>,
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
    pub span_anomalies: Option<(crate::loader::SpanAnomalies, u64)>,
}

fn syscall_json(nr: u16, stats: &crate::kstats::SyscallStats) -> SyscallJson {
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
    pub fn build(meta: ReportMeta, agg: &Aggregator) -> Self {
        let empty = Buckets::default();
        let no_off_cpu = OffCpuHistograms::default();
        let disks = Disks::read();
        let by_thread = meta.syscalls_by_thread;
        let mut syscalls_of: std::collections::BTreeMap<u32, Vec<SyscallJson>> = Default::default();
        for ((pid, nr), stats) in agg.kernel.syscalls(|id| if by_thread { agg.process_of(id) } else { id }) {
            syscalls_of.entry(pid).or_default().push(syscall_json(nr, &stats));
        }
        let mut block_of: std::collections::BTreeMap<u32, Vec<BlockIoJson>> = Default::default();
        for ((pid, dev, op), io) in agg.kernel.block_io(|tgid| tgid) {
            block_of.entry(pid).or_default().push(BlockIoJson::new(disks.name(dev), op, &io));
        }
        let block_io = agg
            .kernel
            .block_io(|_| 0)
            .into_iter()
            .map(|((_, dev, op), io)| BlockIoJson::new(disks.name(dev), op, &io))
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
                .map(|(anomalies, lost)| crate::spans::SpansJson::new(&agg.spans, anomalies, lost)),
            meta,
            histograms: Histograms {
                runq_latency: HistJson::from_buckets(&agg.runq.system),
            },
            block_io,
            processes,
        }
    }
}

/// Checks, before anything is recorded, that `path` can be written: its
/// directory exists and accepts a new file, and it is not a directory.
pub fn check_output_path(path: &Path) -> Result<(), OutputError> {
    let shown = path.display().to_string();
    if path.is_dir() {
        return Err(OutputError::IsDirectory(shown));
    }
    let dir = parent_dir(path);
    if !dir.is_dir() {
        return Err(OutputError::NoDirectory(shown));
    }
    let probe = temp_path(path);
    std::fs::File::create(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|source| OutputError::NotWritable { path: shown, source })
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Where a file bound for `path` is written before it is renamed over it:
/// the same directory, so the rename is atomic.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    parent_dir(path).join(format!(".{name}.tmp.{}", std::process::id()))
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it
/// over `path`, so readers never see a partial report.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let tmp = temp_path(path);
    let shown = path.display().to_string();
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        OutputError::NotWritable { path: shown, source }
    })
}

pub fn write_report(path: &Path, report: &Report) -> Result<(), OutputError> {
    let mut json = serde_json::to_vec_pretty(report).expect("report serializes");
    json.push(b'\n');
    write_atomically(path, &json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::Deserializer;

    #[test]
    fn hist_json_encodes_what_it_summarises() {
        let mut b = Buckets::default();
        for v in 1..=10_000u64 {
            b.record(v * 1_000);
        }
        let json = HistJson::from_buckets(&b);
        assert_eq!((json.count, json.min, json.max), (10_000, 1_000, 10_000_000));
        let raw = base64::engine::general_purpose::STANDARD.decode(&json.hdr).unwrap();
        let hdr: hdrhistogram::Histogram<u64> =
            Deserializer::new().deserialize(&mut raw.as_slice()).unwrap();
        assert_eq!(hdr.len(), json.count);
        assert_eq!(hdr.value_at_quantile(0.99), json.p99);
        assert!((json.p50 as f64 - 5_000_000.0).abs() / 5_000_000.0 < 0.01);
        // Log2 buckets partition the count: 1 us .. 10 ms spans 1024 ns..16.7 ms.
        assert_eq!(json.buckets.iter().map(|b| b[2]).sum::<u64>(), 10_000);
        assert_eq!(json.buckets.first().unwrap()[..2], [512, 1023]);
        assert_eq!(json.buckets.last().unwrap()[..2], [8_388_608, 16_777_215]);
    }

    #[test]
    fn empty_hist_is_all_zero() {
        let json = HistJson::from_buckets(&Buckets::default());
        assert_eq!((json.count, json.p50, json.p9999, json.max), (0, 0, 0, 0));
        assert!(json.buckets.is_empty());
    }

    #[test]
    fn output_path_checks() {
        let dir = std::env::temp_dir().join(format!("tracer-report-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = dir.join("r.json");
        check_output_path(&ok).unwrap();
        assert!(!ok.exists(), "the check leaves nothing behind");
        let missing = dir.join("nope/r.json");
        assert_eq!(
            check_output_path(&missing).unwrap_err().to_string(),
            format!("{}: directory does not exist", missing.display())
        );
        assert!(matches!(check_output_path(&dir), Err(OutputError::IsDirectory(_))));
        write_atomically(&ok, b"{}").unwrap();
        assert_eq!(std::fs::read(&ok).unwrap(), b"{}");
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
