//! Run-queue and CPU accounting of the real probes against the kernel's own
//! per-thread schedstat, for both attach mechanisms.
use std::{thread::sleep, time::Duration};

use tracer_tests::*;

/// CPU the contention tests pile their threads on.
const BUSY_CPU: &str = "1";

/// 4 busy threads on one CPU: each thread's on-CPU and run-queue totals
/// equal the kernel's schedstat over the same window (within 3%), and the
/// run-queue p50 is what the timeslices imply.
fn contention_matches_schedstat(probes: &str) {
    let dir = temp_dir(&format!("contention-{probes}"));
    let out = dir.join("report.json");
    let tracer = Tracer::start(&["record", "--probes", probes, "--out", out.to_str().unwrap()]);
    // Started after the probes attached, so its whole life is traced.
    let load = Load::start(&["spin", "4", BUSY_CPU]);
    sleep(Duration::from_secs(3));
    // Freeze the threads so the kernel's totals stop moving, then read them.
    load.stop();
    sleep(Duration::from_millis(300));
    let kernel: Vec<Schedstat> = load.tids.iter().map(|&t| thread_schedstat(load.pid(), t)).collect();
    let report = tracer.report(Some(libc::SIGINT), &out);
    assert_eq!(report.meta.probe_mode, if probes == "btf" { "tp_btf" } else { "tracepoint" });
    let proc_ = process(&report, load.pid());
    assert!(!proc_.exited);
    for (tid, kernel) in load.tids.iter().zip(&kernel) {
        let t = &thread(proc_, *tid).totals;
        assert!(kernel.on_cpu_ns > 300_000_000, "each thread ran ~750 ms: {kernel:?}");
        assert!(kernel.run_delay_ns > 1_000_000_000, "each thread waited ~2 s: {kernel:?}");
        let gap = t.unaccounted_ns;
        assert_close_given_unaccounted(&format!("tid {tid} on-CPU"), t.on_cpu_ns, gap, kernel.on_cpu_ns, 0.03, 0);
        assert_close_given_unaccounted(
            &format!("tid {tid} run-queue wait"),
            t.runq_wait_ns,
            gap,
            kernel.run_delay_ns,
            0.03,
            0,
        );
        let waits = t.runq_waits;
        assert!(
            waits.abs_diff(kernel.timeslices) <= kernel.timeslices / 20 + 2,
            "tid {tid}: {waits} run-queue waits vs {} timeslices",
            kernel.timeslices
        );
        // Preempted by each other: nearly all the wait follows preemption.
        assert!(t.off_cpu.preempted_ns * 10 >= t.runq_wait_ns * 9);
        assert!(t.involuntary_switches > 10);
    }

    // Each wait is about three other threads' timeslices.
    let total_delay: u64 = kernel.iter().map(|k| k.run_delay_ns).sum();
    let total_slices: u64 = kernel.iter().map(|k| k.timeslices).sum();
    let mean_wait = total_delay as f64 / total_slices as f64;
    let p50 = proc_.histograms.runq_latency.p50 as f64;
    assert!(
        p50 > mean_wait * 0.5 && p50 < mean_wait * 2.0,
        "runq p50 {p50} ns, but schedstat implies a mean wait of {mean_wait} ns per timeslice"
    );
    assert!(p50 > 500_000.0, "waiting behind 3 busy threads takes at least 0.5 ms, got {p50} ns");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn contention_matches_schedstat_btf() {
    if bpf_available("contention_matches_schedstat_btf") {
        contention_matches_schedstat("btf");
    }
}

#[test]
fn contention_matches_schedstat_classic_tracepoints() {
    if bpf_available("contention_matches_schedstat_classic_tracepoints") {
        contention_matches_schedstat("tracepoint");
    }
}

/// One busy thread alone: almost no run-queue wait, in agreement with the kernel.
#[test]
fn quiet_cpu_has_near_zero_runq_wait() {
    if !bpf_available("quiet_cpu_has_near_zero_runq_wait") {
        return;
    }
    let dir = temp_dir("quiet");
    let out = dir.join("report.json");
    let tracer = Tracer::start(&["record", "--out", out.to_str().unwrap()]);
    let load = Load::start(&["spin", "1", BUSY_CPU]);
    sleep(Duration::from_secs(2));
    load.stop();
    sleep(Duration::from_millis(200));
    let kernel = thread_schedstat(load.pid(), load.tids[0]);
    let report = tracer.report(Some(libc::SIGINT), &out);
    let t = &thread(process(&report, load.pid()), load.tids[0]).totals;
    let on_cpu = t.on_cpu_ns;
    let waited = t.runq_wait_ns;
    assert!(on_cpu > 1_500_000_000, "it ran for most of 2 s: {on_cpu}");
    assert!(waited * 50 < on_cpu, "waited {waited} ns while running {on_cpu} ns");
    let gap = t.unaccounted_ns;
    assert_close_given_unaccounted("on-CPU", on_cpu, gap, kernel.on_cpu_ns, 0.03, 0);
    assert_close_given_unaccounted("run-queue wait", waited, gap, kernel.run_delay_ns, 0.03, 1_000_000);
    let _ = std::fs::remove_dir_all(dir);
}

/// A process that exits mid-recording is reported, marked exited, with the
/// totals of its final schedstat (read from the zombie before reaping it).
fn exited_process_keeps_final_totals(probes: &str) {
    let dir = temp_dir(&format!("exit-{probes}"));
    let out = dir.join("report.json");
    let tracer = Tracer::start(&["record", "--probes", probes, "--out", out.to_str().unwrap()]);
    let mut load = Load::start(&["burn", "300"]);
    let pid = load.pid();
    // Wait for exit without reaping, so /proc/<pid> still holds the totals.
    // SAFETY: waitid on our own child with a zeroed siginfo.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT) };
    assert_eq!(rc, 0, "waitid: {}", std::io::Error::last_os_error());
    let kernel = schedstat(&format!("/proc/{pid}/schedstat"));
    load.child.wait().expect("reaping");
    sleep(Duration::from_millis(300));
    let report = tracer.report(Some(libc::SIGINT), &out);
    let p = process(&report, pid);
    assert!(p.exited);
    assert_eq!(p.comm, "tracer-load");
    let t = thread(p, pid);
    assert!(t.exited);
    assert!(kernel.on_cpu_ns >= 300_000_000);
    let t = &t.totals;
    let gap = t.unaccounted_ns;
    assert_close_given_unaccounted("exited on-CPU", t.on_cpu_ns, gap, kernel.on_cpu_ns, 0.03, 0);
    assert_close_given_unaccounted("exited run-queue wait", t.runq_wait_ns, gap, kernel.run_delay_ns, 0.03, 200_000);
    assert_eq!(report.meta.lost.thread_exits, 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn exited_process_keeps_final_totals_btf() {
    if bpf_available("exited_process_keeps_final_totals_btf") {
        exited_process_keeps_final_totals("btf");
    }
}

#[test]
fn exited_process_keeps_final_totals_classic_tracepoints() {
    if bpf_available("exited_process_keeps_final_totals_classic_tracepoints") {
        exited_process_keeps_final_totals("tracepoint");
    }
}
