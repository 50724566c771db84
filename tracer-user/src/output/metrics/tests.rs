use std::collections::BTreeMap;

use tracer_common::{
    BlockKey, BlockMetric, BlockOp, BucketStat, OFF_CPU_PREEMPTED, RunqEvent, SpanEvent, SyscallErrorKey, SyscallKey,
    ThreadExit, ThreadStats,
};

use super::*;
use crate::model::{aggregate::HistogramScope, names::Offline};

fn aggregator() -> Aggregator {
    Aggregator::new(HistogramScope { per_process: true, per_thread: false }, 0, Box::new(Offline))
}

/// A live thread `tid` of process `pid` that ran `on_cpu_ms` and waited `runq_ms`.
fn thread(agg: &mut Aggregator, pid: u32, tid: u32, comm: &str, on_cpu_ms: u64, runq_ms: u64) {
    let mut stats = ThreadStats { tgid: pid, ..Default::default() };
    stats.comm[..comm.len()].copy_from_slice(comm.as_bytes());
    stats.totals.on_cpu_ns = on_cpu_ms * 1_000_000;
    stats.totals.runq_wait_ns = runq_ms * 1_000_000;
    stats.totals.preempted_ns = runq_ms * 1_000_000 / 2;
    stats.totals.sleep_ns = 7_000_000;
    agg.on_thread_snapshot(tid, &stats, 0);
}

fn exit(agg: &mut Aggregator, pid: u32, tid: u32, on_cpu_ms: u64) {
    let mut stats = ThreadStats { tgid: pid, ..Default::default() };
    stats.totals.on_cpu_ns = on_cpu_ms * 1_000_000;
    agg.on_thread_exit(&ThreadExit { tid, _pad: 0, exit_ns: 0, stats });
}

fn inputs<'a>(by: By, disk: &'a dyn Fn(u32) -> String, cgroup: &'a dyn Fn(u32) -> Option<String>) -> Inputs<'a> {
    Inputs {
        by,
        probe_mode: "tp_btf".into(),
        probes: ProbesInUse { syscalls: true, block_io: true, spans: true },
        lost: Losses { runq_events: 3, threads_untracked: 2, ..Default::default() },
        syscalls_by_thread: false,
        start_unix_ns: 1_500_000_000,
        disk_name: disk,
        cgroup_of: cgroup,
    }
}

/// Every sample of an exposition: `name{labels}` -> value; and checks
/// each sample's family was declared with HELP and TYPE before it.
fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut declared = Vec::new();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            declared.push(rest.split(' ').next().unwrap().to_owned());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let name = series.split('{').next().unwrap();
        let family = declared.last().expect("a TYPE line first");
        assert!(name == family || name.strip_prefix(family.as_str()).is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s)), "{line}");
        assert!(out.insert(series.to_owned(), value.parse::<f64>().unwrap()).is_none(), "duplicate {series}");
    }
    out
}

fn encoded(exporter: &mut Exporter, agg: &Aggregator, by: By) -> BTreeMap<String, f64> {
    let disk = |dev: u32| format!("dev{dev}");
    let cgroup = |pid: u32| Some(if pid == 30 { "/b".to_owned() } else { "/a".to_owned() });
    let text = encode_text(&exporter.families(agg, &inputs(by, &disk, &cgroup))).unwrap();
    samples(&text)
}

fn sum_of(samples: &BTreeMap<String, f64>, prefix: &str) -> f64 {
    samples.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v).sum()
}

#[test]
fn processes_beyond_the_bound_are_summed_into_other() {
    let mut agg = aggregator();
    thread(&mut agg, 10, 10, "busy", 900, 100);
    thread(&mut agg, 20, 20, "idle", 1, 0);
    thread(&mut agg, 30, 30, "mid", 50, 10);
    thread(&mut agg, 30, 31, "mid", 50, 10);
    for (tid, tgid, latency_ns) in [(10, 10, 3_000u64), (10, 10, 5_000_000), (20, 20, 1_000)] {
        agg.on_runq_event(&RunqEvent { tid, tgid, latency_ns, blocked_state: OFF_CPU_PREEMPTED, ..Default::default() });
    }
    let mut exporter = Exporter::new(3);
    let s = encoded(&mut exporter, &agg, By::Process);
    assert_eq!(s[r#"tracer_on_cpu_seconds_total{pid="10",comm="busy"}"#], 0.9);
    assert_eq!(s[r#"tracer_on_cpu_seconds_total{pid="30",comm="mid"}"#], 0.1, "summed over its threads");
    assert_eq!(s[r#"tracer_on_cpu_seconds_total{pid="other",comm="other"}"#], 0.001, "the least busy, folded");
    assert_eq!(sum_of(&s, "tracer_on_cpu_seconds_total{").to_string(), "1.001");
    assert_eq!(s[r#"tracer_folded_label_sets{kind="process"}"#], 1.0);
    assert_eq!(s[r#"tracer_off_cpu_seconds_total{pid="10",comm="busy",cause="preempted"}"#], 0.05);
    assert_eq!(s[r#"tracer_off_cpu_seconds_total{pid="10",comm="busy",cause="woken"}"#], 0.05);
    assert_eq!(s[r#"tracer_off_cpu_seconds_total{pid="10",comm="busy",cause="sleep"}"#], 0.007);
    // The run-queue histogram: cumulative on powers of two of nanoseconds.
    let bucket = |le: &str| s[&format!(r#"tracer_runq_latency_seconds_bucket{{pid="10",comm="busy",le="{le}"}}"#)];
    assert_eq!((bucket("0.000001024"), bucket("0.000004096"), bucket("0.004194304")), (0.0, 1.0, 1.0));
    assert_eq!((bucket("0.008388608"), bucket("+Inf")), (2.0, 2.0));
    assert_eq!(s[r#"tracer_runq_latency_seconds_count{pid="10",comm="busy"}"#], 2.0);
    assert_eq!(s[r#"tracer_runq_latency_seconds_sum{pid="10",comm="busy"}"#], 0.005003);
    assert_eq!(s[r#"tracer_runq_latency_seconds_count{pid="other",comm="other"}"#], 1.0);
    let per_series = s.keys().filter(|k| k.starts_with("tracer_runq_latency_seconds_count")).count();
    assert_eq!(per_series, 3, "two processes and other");
    assert_eq!(s[r#"tracer_lost_events_total{kind="runq_events"}"#], 3.0);
    assert_eq!(s["tracer_untracked_threads_total"], 2.0);
    assert_eq!(s[r#"tracer_probe_in_use{probe="syscalls"}"#], 1.0);
    assert_eq!(s["tracer_tracked_threads"], 4.0);
}

#[test]
fn an_ended_process_gives_its_series_up_and_other_never_drops() {
    let mut agg = aggregator();
    thread(&mut agg, 10, 10, "a", 100, 0);
    thread(&mut agg, 20, 20, "b", 50, 0);
    let mut exporter = Exporter::new(2);
    let first = encoded(&mut exporter, &agg, By::Process);
    assert!(first.contains_key(r#"tracer_on_cpu_seconds_total{pid="10",comm="a"}"#));
    assert_eq!(first[r#"tracer_on_cpu_seconds_total{pid="other",comm="other"}"#], 0.05);
    // 10 ends; 30 starts: it takes the free place, 10 is summed into other.
    exit(&mut agg, 10, 10, 120);
    thread(&mut agg, 30, 30, "c", 5, 0);
    let second = encoded(&mut exporter, &agg, By::Process);
    assert!(!second.keys().any(|k| k.contains(r#"pid="10""#)));
    assert_eq!(second[r#"tracer_on_cpu_seconds_total{pid="30",comm="c"}"#], 0.005);
    let other = second[r#"tracer_on_cpu_seconds_total{pid="other",comm="other"}"#];
    assert!(other >= first[r#"tracer_on_cpu_seconds_total{pid="other",comm="other"}"#]);
    assert_eq!(other.to_string(), "0.17", "b and the ended a");
    // b, busier than c, stays in other: its counters must not move series.
    thread(&mut agg, 20, 20, "b", 500, 0);
    let third = encoded(&mut exporter, &agg, By::Process);
    assert!(third.contains_key(r#"tracer_on_cpu_seconds_total{pid="30",comm="c"}"#));
    assert_eq!(third[r#"tracer_on_cpu_seconds_total{pid="other",comm="other"}"#].to_string(), "0.62");
}

#[test]
fn cgroups_sum_their_processes() {
    let mut agg = aggregator();
    thread(&mut agg, 10, 10, "a", 100, 0);
    thread(&mut agg, 20, 20, "b", 50, 0);
    thread(&mut agg, 30, 30, "c", 5, 0);
    let s = encoded(&mut Exporter::new(10), &agg, By::Cgroup);
    assert_eq!(s[r#"tracer_on_cpu_seconds_total{cgroup="/a"}"#], 0.15);
    assert_eq!(s[r#"tracer_on_cpu_seconds_total{cgroup="/b"}"#], 0.005);
    assert_eq!(s[r#"tracer_on_cpu_seconds_total{cgroup="other"}"#], 0.0);
    assert_eq!(s[r#"tracer_folded_label_sets{kind="cgroup"}"#], 0.0);
}

#[test]
fn syscalls_and_block_io_are_labelled_by_name_device_and_op() {
    let mut agg = aggregator();
    thread(&mut agg, 10, 10, "a", 100, 0);
    agg.kernel.syscall_latency.insert(SyscallKey { id: 10, nr: 0, bucket: 900 }, BucketStat { count: 2, total: 9_000 });
    agg.kernel.syscall_errors.insert(SyscallErrorKey { id: 10, nr: 0, errno: 2 }, 1);
    for (metric, bucket, total) in [(BlockMetric::Latency as u8, 1_500, 300_000), (BlockMetric::Size as u8, 1_000, 4_096)] {
        let key = BlockKey { tgid: 10, dev: 7, op: BlockOp::Write as u8, sync: 1, metric, bucket, ..Default::default() };
        agg.kernel.block.insert(key, BucketStat { count: 1, total });
    }
    let s = encoded(&mut Exporter::new(10), &agg, By::Process);
    assert_eq!(s[r#"tracer_syscall_latency_seconds_count{pid="10",comm="a",syscall="read"}"#], 2.0);
    assert_eq!(s[r#"tracer_syscall_latency_seconds_sum{pid="10",comm="a",syscall="read"}"#], 0.000009);
    assert_eq!(s[r#"tracer_syscall_errors_total{pid="10",comm="a",syscall="read"}"#], 1.0);
    assert_eq!(s[r#"tracer_block_io_latency_seconds_count{pid="10",comm="a",device="dev7",op="write"}"#], 1.0);
    assert_eq!(s[r#"tracer_block_io_bytes_total{pid="10",comm="a",device="dev7",op="write"}"#], 4096.0);
}

#[test]
fn spans_by_name_and_verdict_bounded_and_within_the_slo() {
    let mut agg = aggregator();
    agg.set_slo(Some(5_000));
    for (name, wall, runq) in [("GET /a", 4_000, 0), ("GET /a", 9_000, 8_000), ("GET /b", 1_000, 0), ("GET /c", 1_000, 0)] {
        let mut span = SpanEvent { span_id: 1, tgid: 10, tid_begin: 10, tid_end: 10, end_ns: wall, ..Default::default() };
        span.name[..name.len()].copy_from_slice(name.as_bytes());
        span.delta.on_cpu_ns = wall - runq;
        span.delta.runq_wait_ns = runq;
        agg.on_span(&span);
    }
    let s = encoded(&mut Exporter::new(2), &agg, By::Process);
    let count = |name: &str, verdict: &str| {
        s.get(&format!(r#"tracer_span_duration_seconds_count{{name="{name}",verdict="{verdict}"}}"#)).copied()
    };
    assert_eq!((count("GET /a", "on-cpu"), count("GET /a", "cpu-contention")), (Some(1.0), Some(1.0)));
    assert_eq!((count("other", "on-cpu"), count("GET /b", "on-cpu")), (Some(2.0), None), "one name and other");
    assert_eq!(s[r#"tracer_spans_total{verdict="on-cpu"}"#], 3.0);
    assert_eq!(s[r#"tracer_spans_total{verdict="io"}"#], 0.0);
    assert_eq!(s[r#"tracer_spans_within_slo_total{name="GET /a"}"#], 1.0);
    assert_eq!(s[r#"tracer_spans_within_slo_total{name="other"}"#], 2.0);
    assert_eq!(s["tracer_span_slo_seconds"], 0.000005);
    assert_eq!(s[r#"tracer_folded_label_sets{kind="span_name"}"#], 2.0);
}

#[test]
fn label_values_are_escaped() {
    let mut agg = aggregator();
    thread(&mut agg, 10, 10, "a\"b\\c", 1, 0);
    let text = encode_text(&Exporter::new(5).families(&agg, &inputs(By::Process, &|_| String::new(), &|_| None))).unwrap();
    assert!(text.contains(r#"tracer_on_cpu_seconds_total{pid="10",comm="a\"b\\c"} 0.001"#), "{text}");
}
