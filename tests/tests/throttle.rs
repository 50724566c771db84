//! A server limited by its cgroup's CPU quota (20% of a CPU): the time it
//! waited for its quota is told apart from waiting behind other tasks, in
//! its spans and in its threads' totals, and agrees with the kernel's count
//! of the cgroup's throttled time (`cpu.stat`).
use std::time::Duration;

use tracer_tests::*;

const REQUESTS: usize = 5;
/// CPU per request: more than two periods' quota, so every request waits for it.
const REQUEST: &str = "/cpu?ms=50";

/// Runs `work`; returns what it returned and the cgroup's throttled time
/// meanwhile, as the kernel counts it.
fn throttled_during<T>(cgroup: &QuotaCgroup, work: impl FnOnce() -> T) -> (T, u64) {
    let before = cgroup.throttled_ns();
    let result = work();
    (result, cgroup.throttled_ns() - before)
}

/// The requests, then time for the server's last thread to finish (it may
/// be throttled once more on its way out after answering), so that every
/// throttle the tracer sees is inside the window the kernel's count covers.
fn requests(server: &Server) {
    for _ in 0..REQUESTS {
        server.get(REQUEST);
    }
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn cpu_quota_throttling_is_its_own_wait_in_spans_and_totals() {
    if !bpf_available("cpu_quota_throttling_is_its_own_wait_in_spans_and_totals") {
        return;
    }
    let cgroup = QuotaCgroup::create("tracer-throttle", 20_000, 100_000)
        .expect("a cgroup hierarchy with the cpu controller");
    let server = Server::start(Some(0));
    cgroup.add(server.pid());
    let cgroup_name = cgroup
        .path
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();

    // Spans: each request is `cpu-throttled`, naming the cgroup and its
    // quota, and the throttled part of its wait is blamed on nobody.
    let ((spans, _), kernel) =
        throttled_during(&cgroup, || spans_around(&server, &[], || requests(&server)));
    let cpu = named(&spans, "GET /cpu");
    assert_eq!(cpu.len(), REQUESTS, "{spans:?}");
    for span in &cpu {
        assert_parts_sum_to_wall(span);
        assert_eq!(span.verdict, Verdict::CpuThrottled, "{span:?}");
        let limit = span
            .throttle
            .as_ref()
            .unwrap_or_else(|| panic!("the quota of {span:?}"));
        assert!(limit.cgroup.ends_with(&cgroup_name), "{limit:?}");
        assert_eq!(limit.cpu_max, "20000 100000");
        assert!(span.throttled_ns <= span.runq_wait_ns, "{span:?}");
        let blamed: u64 = span.blame.iter().filter(|h| h.pid != 0).map(|h| h.ns).sum();
        let behind_others = span.runq_wait_ns - span.throttled_ns;
        assert!(
            blamed <= behind_others + 1_000_000,
            "{blamed} ns blamed of {behind_others} ns behind others: {span:?}"
        );
    }
    let traced: u64 = cpu.iter().map(|s| s.throttled_ns).sum();
    assert_close("spans' throttled_ns", traced, kernel, 0.10, 0);

    // Per-thread totals of a recording, in both probe modes: a busy loop in
    // the cgroup is runnable all the time it is not stopped, so it waited
    // for the quota exactly as long as the kernel counts the cgroup
    // throttled. It runs only between SIGCONT and SIGSTOP, inside the
    // recording and the kernel's count.
    drop(server);
    let spinner = Load::start(&["spin", "1", "0"]);
    cgroup.add(spinner.pid());
    spinner.stop();
    let pid = spinner.pid().to_string();
    for probes in ["btf", "tracepoint"] {
        let out = temp_dir("throttle").join(format!("report-{probes}.json"));
        let tracer = Tracer::start(&[
            "record",
            "--probes",
            probes,
            "--pid",
            &pid,
            "--out",
            out.to_str().unwrap(),
        ]);
        let ((), kernel) = throttled_during(&cgroup, || {
            signal(spinner.pid(), libc::SIGCONT);
            std::thread::sleep(Duration::from_millis(1500));
            spinner.stop();
            // A throttled thread stops only once it gets the CPU back.
            std::thread::sleep(Duration::from_millis(300));
        });
        let report = tracer.report(Some(libc::SIGINT), &out);
        let process = process(&report, spinner.pid());
        let busy = thread(process, spinner.tids[0]);
        assert!(
            busy.totals.throttled_ns <= busy.totals.runq_wait_ns,
            "{:?}",
            busy.totals
        );
        assert_close(
            &format!("{probes}: the busy thread's throttled_ns"),
            busy.totals.throttled_ns,
            kernel,
            0.10,
            0,
        );
        let by_thread: u64 = process.threads.iter().map(|t| t.totals.throttled_ns).sum();
        assert_eq!(
            process.totals.throttled_ns, by_thread,
            "the process sums its threads"
        );
    }
}
