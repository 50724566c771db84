//! Thread churn: a process that starts and ends thousands of threads a
//! second must not grow the recording without bound, and its totals must
//! still cover every thread that lived.
use std::time::{Duration, Instant};

use tracer_tests::*;

/// Threads started and ended per second, and for how long: long enough
/// that the growth measured before the fix (about 1.6 MB/s) shows.
const RATE: &str = "10000";
const SECONDS: u64 = 40;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("tracer's status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn thread_churn_keeps_memory_flat_and_totals_whole() {
    if !bpf_available("thread_churn_keeps_memory_flat_and_totals_whole") {
        return;
    }
    let dir = temp_dir("churn");
    let out = dir.join("churn.json");
    let mut churner = Load::start(&["churn", RATE, &SECONDS.to_string()]);
    let pid = churner.pid();
    let tracer = Tracer::start(&["record", "--pid", &pid.to_string(), "--out", out.to_str().unwrap()]);
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < Duration::from_secs(SECONDS - 2) {
        std::thread::sleep(Duration::from_secs(1));
        samples.push((started.elapsed().as_secs(), rss_kib(tracer.pid())));
    }
    let done = churner.next_line();
    let mut words = done.split_whitespace();
    let (cpu_ns, threads): (u64, u64) = match (words.next(), words.next(), words.next(), words.next()) {
        (Some("cpu"), Some(cpu), Some("threads"), Some(n)) => (cpu.parse().unwrap(), n.parse().unwrap()),
        _ => panic!("unexpected churn output {done:?}"),
    };
    // Its exits are drained at the next tick; then the report.
    std::thread::sleep(Duration::from_millis(1_500));
    let report = tracer.report(Some(libc::SIGINT), &out);
    drop(churner);

    let after_warmup = samples.iter().find(|(s, _)| *s >= 10).map(|(_, kib)| *kib).expect("a sample at 10 s");
    let peak = samples.iter().filter(|(s, _)| *s >= 10).map(|(_, kib)| *kib).max().unwrap();
    assert!(
        peak - after_warmup < 32 * 1024,
        "tracer grew {} KiB after the first 10 s of churning {threads} threads: {samples:?}",
        peak - after_warmup
    );
    assert!(threads > 100_000, "the churn ran ({threads} threads)");

    let process = process(&report, pid);
    assert!(process.threads.len() <= 64 + 2, "{} thread rows", process.threads.len());
    let other = process.threads.iter().find(|t| t.tid == 0).expect("a row of the other exited threads");
    assert!(other.comm.contains("other exited threads"), "{}", other.comm);
    // Every thread's time is in the process: against its own CPU clock,
    // read just before it exited.
    assert_close("churner on-CPU", process.totals.on_cpu_ns, cpu_ns, 0.05, 20_000_000);
    let size = std::fs::metadata(&out).unwrap().len();
    assert!(size < 2 << 20, "report of {size} bytes");
    let _ = std::fs::remove_dir_all(dir);
}
