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

/// A target's child processes (fork, then exec or not) are left out unless
/// `--children` asks for them, and the report says how many were left out.
#[test]
fn children_are_followed_with_children_and_counted_without() {
    if !bpf_available("children_are_followed_with_children_and_counted_without") {
        return;
    }
    const CHILDREN: usize = 3;
    const BURN_MS: u64 = 60;
    for follow in [false, true] {
        let dir = temp_dir(&format!("children-{follow}"));
        let out = dir.join("report.json");
        let mut forker = Load::start(&["forker", &CHILDREN.to_string(), &BURN_MS.to_string()]);
        let target = forker.pid();
        let pid = target.to_string();
        let mut args = vec!["record", "--pid", &pid, "--out", out.to_str().unwrap()];
        if follow {
            args.push("--children");
        }
        let tracer = Tracer::start(&args);
        let children: Vec<u32> = forker.run_work().split(',').map(|p| p.parse().expect("child pid")).collect();
        let report = tracer.report(Some(libc::SIGINT), &out);
        forker.finish();
        assert_eq!(children.len(), CHILDREN);
        let traced = pids_in(&report);
        assert_eq!(report.meta.filters.children, follow);
        if follow {
            assert_eq!(report.meta.lost.children_left_out, 0);
            for child in &children {
                assert!(traced.contains(child), "child {child} traced: {traced:?}");
                // Each burned BURN_MS of its own CPU clock, all of it seen.
                let on_cpu = process(&report, *child).totals.on_cpu_ns;
                assert_close(&format!("child {child} on-CPU"), on_cpu, BURN_MS * 1_000_000, 0.05, 3_000_000);
            }
        } else {
            assert_eq!(traced, vec![target], "only the target");
            assert_eq!(report.meta.lost.children_left_out, CHILDREN as u64);
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
