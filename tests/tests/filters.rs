//! Kernel-side filters: only the selected tasks are measured.
use tracer_tests::*;

fn pids_in(report: &Report) -> Vec<u32> {
    report.processes.iter().map(|p| p.pid).collect()
}

#[test]
fn pid_filter_reports_that_process_only() {
    if !bpf_available("pid_filter_reports_that_process_only") {
        return;
    }
    let dir = temp_dir("pid-filter");
    let out = dir.join("report.json");
    let target = Load::start(&["spin", "2", "1"]);
    let other = Load::start(&["spin", "1", "1"]);
    let pid = target.pid().to_string();
    let tracer = Tracer::start(&["record", "--pid", &pid, "--duration", "1.5", "--out", out.to_str().unwrap()]);
    let report = tracer.report(None, &out);
    assert_eq!(pids_in(&report), vec![target.pid()]);
    let p = process(&report, target.pid());
    for tid in &target.tids {
        assert!(thread(p, *tid).totals.on_cpu_ns > 100_000_000, "busy thread {tid} ran");
    }
    assert!(report.histograms.runq_latency.count > 0);
    assert_eq!(report.meta.filters.pids.first(), Some(&target.pid()));
    drop(other);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cgroup_filter_reports_tasks_of_that_cgroup_only() {
    if !bpf_available("cgroup_filter_reports_tasks_of_that_cgroup_only") {
        return;
    }
    let dir = temp_dir("cgroup-filter");
    let out = dir.join("report.json");
    let cgroup = TestCgroup::create("tracer-test");
    let inside = Load::start(&["spin", "1", "1"]);
    let outside = Load::start(&["spin", "1", "1"]);
    cgroup.add(inside.pid());
    let tracer = Tracer::start(&[
        "record",
        "--cgroup",
        cgroup.path.to_str().unwrap(),
        "--duration",
        "1.5",
        "--out",
        out.to_str().unwrap(),
    ]);
    let report = tracer.report(None, &out);
    assert_eq!(pids_in(&report), vec![inside.pid()]);
    let t = &thread(process(&report, inside.pid()), inside.tids[0]).totals;
    assert!(t.on_cpu_ns > 100_000_000);
    assert!(t.runq_wait_ns > 0, "it shares CPU 1 with the outside process");
    drop(outside);
    drop(inside);
    drop(cgroup);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn runqlat_pid_filter_prints_runqlat_table_and_percentiles() {
    if !bpf_available("runqlat_pid_filter_prints_runqlat_table_and_percentiles") {
        return;
    }
    let load = Load::start(&["spin", "3", "1"]);
    let pid = load.pid().to_string();
    let tracer = Tracer::start(&["runqlat", "-p", &pid, "-P", "-m", "1", "2"]);
    let stdout = tracer.output(None);
    let header = format!("pid = {pid} tracer-load");
    assert_eq!(stdout.matches(&header).count(), 2, "two intervals for {pid}:\n{stdout}");
    assert!(stdout.contains("     msecs               : count    distribution"), "{stdout}");
    assert!(stdout.contains(" -> "), "{stdout}");
    let pct = stdout.lines().find(|l| l.starts_with("count = ")).expect("percentile line");
    for label in ["p50 = ", "p90 = ", "p99 = ", "p99.9 = ", "max = "] {
        assert!(pct.contains(label), "{pct}");
    }
    assert!(!stdout.contains("pid = 1 "), "other processes are filtered out:\n{stdout}");
}
