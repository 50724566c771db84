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
        // The kernel's run delay leaves out what the hypervisor took while
        // the thread ran; tracer counts it as a wait of its own.
        assert!(t.stolen_ns <= t.runq_wait_ns, "{t:?}");
        assert_close_given_unaccounted(
            &format!("tid {tid} run-queue wait"),
            t.runq_wait_ns - t.stolen_ns,
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
    let busy_cpu: u32 = BUSY_CPU.parse().unwrap();
    let steal_before = cpu_steal_ns(busy_cpu);
    let load = Load::start(&["spin", "1", BUSY_CPU]);
    sleep(Duration::from_secs(2));
    load.stop();
    let steal = cpu_steal_ns(busy_cpu) - steal_before;
    sleep(Duration::from_millis(200));
    let kernel = thread_schedstat(load.pid(), load.tids[0]);
    let report = tracer.report(Some(libc::SIGINT), &out);
    let t = &thread(process(&report, load.pid()), load.tids[0]).totals;
    let on_cpu = t.on_cpu_ns;
    // What the hypervisor took from its CPU while it ran is a wait of its
    // own, which the kernel's run delay leaves out: the CPU's steal (in
    // ticks, each reading up to one short), but for what it took while
    // other tasks ran there (the spinner held the CPU nearly throughout).
    let stolen = t.stolen_ns;
    let tick = clock_tick_ns();
    assert!(stolen <= steal + tick, "stolen {stolen} ns, the CPU's steal {steal} ns");
    assert!(stolen + 2 * tick >= steal * 8 / 10, "stolen {stolen} ns, the CPU's steal {steal} ns");
    let waited = t.runq_wait_ns - stolen;
    assert!(on_cpu > 1_500_000_000, "it ran for most of 2 s: {on_cpu}");
    assert!(waited * 50 < on_cpu, "waited {waited} ns while running {on_cpu} ns");
    let gap = t.unaccounted_ns;
    assert_close_given_unaccounted("on-CPU", on_cpu, gap, kernel.on_cpu_ns, 0.03, 0);
    assert_close_given_unaccounted("run-queue wait", waited, gap, kernel.run_delay_ns, 0.03, 1_000_000);
    // Stopped at the end, it is counted in that state until the recording
    // ended, not while the probes were being detached after it.
    let lived = on_cpu + t.runq_wait_ns + t.off_cpu.uninterruptible_ns + t.off_cpu.sleep_ns + gap;
    let window = report.meta.end_unix_ns - report.meta.start_unix_ns;
    eprintln!("thread's parts {lived} ns, recording {window} ns");
    assert!(lived <= window, "the thread's parts {lived} ns, longer than the recording's {window} ns: {t:?}");
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
    assert!(t.stolen_ns <= t.runq_wait_ns, "{t:?}");
    let waited = t.runq_wait_ns - t.stolen_ns;
    assert_close_given_unaccounted("exited run-queue wait", waited, gap, kernel.run_delay_ns, 0.03, 200_000);
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

/// The kernel's own run counts and CPU time of every kernel worker thread.
fn kernel_workers() -> std::collections::HashMap<u32, Schedstat> {
    let mut workers = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if !comm.starts_with("kworker/") {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/schedstat")) {
            let f: Vec<u64> = text.split_whitespace().filter_map(|v| v.parse().ok()).collect();
            workers.insert(pid, Schedstat { on_cpu_ns: f[0], run_delay_ns: f[1], timeslices: f[2] });
        }
    }
    workers
}

/// Busy kernel workers (the threads of issue 16's report, where a worker
/// seemed to run far more often than tracer saw): every run the kernel
/// counts while tracer records is a switch in tracer's report. Bounds: at
/// least the runs between two readings taken inside the recording, at most
/// the runs between readings taken before it started and after it ended.
/// `vm/stat_refresh` queues work on every CPU's worker and waits for it, so
/// each write is a run of a per-CPU kernel worker.
fn kernel_worker_switches_match_schedstat(probes: &str) {
    const WRITES: u64 = 300;
    let dir = temp_dir(&format!("kworkers-{probes}"));
    let out = dir.join("report.json");
    let before_start = kernel_workers();
    let tracer = Tracer::start(&["record", "--probes", probes, "--out", out.to_str().unwrap()]);
    let inside_first = kernel_workers();
    for _ in 0..WRITES {
        std::fs::write("/proc/sys/vm/stat_refresh", "1").expect("writing /proc/sys/vm/stat_refresh");
    }
    let inside_last = kernel_workers();
    let report = tracer.report(Some(libc::SIGINT), &out);
    let after_end = kernel_workers();

    let mut checked = 0;
    for (tid, last) in &inside_last {
        let (Some(first), Some(start), Some(end)) = (inside_first.get(tid), before_start.get(tid), after_end.get(tid))
        else {
            continue;
        };
        let runs_inside = last.timeslices - first.timeslices;
        if runs_inside < WRITES / 2 {
            continue;
        }
        checked += 1;
        let runs_around = end.timeslices - start.timeslices;
        let t = &thread(process(&report, *tid), *tid).totals;
        let switches = t.voluntary_switches + t.involuntary_switches;
        assert!(
            switches >= runs_inside && switches <= runs_around + 1,
            "kernel worker {tid}: {switches} switches in the report, the kernel counted {runs_inside} runs inside \
             the recording and {runs_around} around it ({probes})"
        );
        // Each run began after a wait for a CPU or a wake-up on an idle one,
        // or without a reported wake-up: classic tracepoints skip one that
        // fires while another tracing program runs on its CPU, and tracer
        // counts each such run as an accounting gap (not a wait).
        let starts = t.runq_waits + t.idle_wakeups;
        let unreported = report.meta.lost.accounting_gaps;
        assert!(
            starts + unreported >= runs_inside && starts <= runs_around + 1,
            "kernel worker {tid}: {} run-queue waits and {} idle wake-ups, {runs_inside}..{runs_around} runs, \
             {unreported} accounting gaps in the recording ({probes})",
            t.runq_waits,
            t.idle_wakeups
        );
        // Each run seen whole counts the kernel's own clock for it (its
        // `sum_exec_runtime` at the switch-out), so the worker's on-CPU lies
        // between the kernel's count inside the recording and around it.
        let on_inside = last.on_cpu_ns - first.on_cpu_ns;
        let on_around = end.on_cpu_ns - start.on_cpu_ns;
        assert!(
            t.on_cpu_ns * 100 >= on_inside * 99 && t.on_cpu_ns * 100 <= on_around * 101,
            "kernel worker {tid}: {} ns on a CPU ({} of them leaving idle), the kernel counted {on_inside} ns inside \
             the recording and {on_around} ns around it, {runs_around} runs ({probes})",
            t.on_cpu_ns,
            t.wakeup_idle_ns,
        );
    }
    assert!(checked >= 2, "every CPU's kernel worker ran once per write; {checked} were seen doing so");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn kernel_worker_switches_match_schedstat_btf() {
    if bpf_available("kernel_worker_switches_match_schedstat_btf") {
        kernel_worker_switches_match_schedstat("btf");
    }
}

#[test]
fn kernel_worker_switches_match_schedstat_classic_tracepoints() {
    if bpf_available("kernel_worker_switches_match_schedstat_classic_tracepoints") {
        kernel_worker_switches_match_schedstat("tracepoint");
    }
}

/// A thread that sleeps 1 ms and computes 20 µs, 3,000 times (most servers
/// look like this): tracer's on-CPU agrees with the thread's own CPU clock
/// within 1% (BTF probes; 3% with classic ones, below), because each run
/// counts the kernel's clock for it, and the CPU leaving idle after each
/// wakeup, which the kernel charges to the thread, is on-CPU time
/// (`wakeup_idle_ns`), not a wait for a CPU, and nobody is blamed for it.
fn sleepy_thread_on_cpu_matches_its_clock(probes: &str) {
    const ROUNDS: u64 = 3_000;
    let dir = temp_dir(&format!("sleepy-{probes}"));
    let out = dir.join("report.json");
    let mut load = Load::start(&["sleepwork", &ROUNDS.to_string(), "1000", "20"]);
    let tracer =
        Tracer::start(&["record", "--probes", probes, "--pid", &load.pid().to_string(), "--out", out.to_str().unwrap()]);
    let clock_ns: u64 = load.run_work().parse().expect("CPU clock delta");
    let report = tracer.report(Some(libc::SIGINT), &out);
    let t = &thread(process(&report, load.pid()), load.pid()).totals;
    // A wakeup the kernel did not report (classic tracepoints skip one that
    // fires while another classic program runs on its CPU) is a gap.
    let wakeups = t.idle_wakeups + t.runq_waits;
    let gaps = report.meta.lost.accounting_gaps;
    assert!(wakeups + gaps >= ROUNDS, "{wakeups} wakeups and {gaps} gaps for {ROUNDS} sleeps ({probes})");
    assert!(
        t.idle_wakeups * 10 >= ROUNDS * 9,
        "a lone sleeper wakes on an idle CPU: {} of {ROUNDS} wakeups were on one ({probes})",
        t.idle_wakeups
    );
    assert!(t.wakeup_idle_ns > 0 && t.wakeup_idle_ns < t.on_cpu_ns, "{t:?}");
    // Each run seen whole counts the kernel's own clock for it (its
    // `sum_exec_runtime` at the switch-out, in both probe modes): the
    // kernel starts a woken thread's clock at a clock read taken before the
    // wake-up tracepoint fires (at the enqueue, or at the wake-up when the
    // switch skips its clock update), stops it before the switch tracepoint,
    // and leaves out stolen time; tracepoint timestamps alone were 17% short
    // for this thread next to busy neighbours, or over by up to 3% when the
    // hypervisor stole time. Classic tracepoints are skipped while another
    // classic program runs on the CPU (other tracers): runs not seen whole
    // are split from the counters at the next event instead, 1.4% over in
    // one run on a machine shared with other tracers' tests, so 3% there.
    let tolerance = if probes == "btf" { 0.01 } else { 0.03 };
    assert_close(&format!("on-CPU of a sleepy thread against its CPU clock ({probes})"), t.on_cpu_ns, clock_ns, tolerance, 0);
    let _ = std::fs::remove_dir_all(dir);
}

/// A thread that sleeps 1 ms and computes 300 us, 1,500 times, on a CPU a
/// busy thread holds: after each wakeup it waits for the CPU. Its run-queue
/// wait and on-CPU time agree with the kernel's schedstat over the rounds
/// whether the wakeup program marks each wait's start (`btf-wakeups`, as on
/// kernels before 6.18) or the switch-in places it from the kernel's own
/// record of the wait (`btf`, no wakeup program, Linux 6.18 on). Either
/// way the busy thread is named as the holder of nearly all of the wait:
/// followed from the wakeup on the CPU's waiter list, or read back from
/// the CPU's run slices at the switch-in.
fn woken_waits_match_schedstat(probes: &str) {
    const ROUNDS: u64 = 1_500;
    let dir = temp_dir(&format!("woken-{probes}"));
    let out = dir.join("report.json");
    let busy = Load::start(&["spin", "1", BUSY_CPU]);
    let mut load = Load::start(&["sleepwork", &ROUNDS.to_string(), "1000", "300", BUSY_CPU]);
    let pid = load.pid().to_string();
    let tracer = Tracer::start(&["record", "--probes", probes, "--pid", &pid, "--out", out.to_str().unwrap()]);
    let before = thread_schedstat(load.pid(), load.pid());
    load.run_work();
    let after = thread_schedstat(load.pid(), load.pid());
    let report = tracer.report(Some(libc::SIGINT), &out);
    assert_eq!(report.meta.probe_mode, "tp_btf");
    let sleeper = process(&report, load.pid());
    let t = &thread(sleeper, load.pid()).totals;
    let waited = after.run_delay_ns - before.run_delay_ns;
    assert!(waited > 20_000_000, "behind a busy thread, each wakeup waits: {waited} ns over {ROUNDS} rounds");
    assert!(t.runq_waits + t.idle_wakeups >= ROUNDS, "{t:?}");
    let gap = t.unaccounted_ns;
    // Each wait as the switch tracepoints see it differs from the kernel's
    // clock by a few microseconds: 5 us a round at most.
    let lag = 5_000 * ROUNDS;
    let what = format!("woken waits ({probes})");
    assert_close_given_unaccounted(&what, t.runq_wait_ns - t.stolen_ns, gap, waited, 0.03, lag);
    let ran = after.on_cpu_ns - before.on_cpu_ns;
    assert_close_given_unaccounted(&format!("on-CPU ({probes})"), t.on_cpu_ns, gap, ran, 0.03, 0);
    let holders = sleeper.cpu_holders.as_ref().expect("the sleeper's cpu_holders");
    let top = &holders.holders[0];
    assert_eq!(top.pid, busy.pid(), "{holders:?}");
    // Kernel threads and the tracer itself take a little of the CPU too.
    let held = t.runq_wait_ns - t.stolen_ns;
    assert!(top.ns * 10 >= held * 8, "the busy thread held {} of {held} ns ({probes}): {holders:?}", top.ns);
    let unknown = holders.unknown_ns;
    assert!(unknown * 100 <= held, "{unknown} of {held} ns not followed ({probes}): {holders:?}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn woken_waits_match_schedstat_with_the_wakeup_program() {
    if bpf_available("woken_waits_match_schedstat_with_the_wakeup_program") {
        woken_waits_match_schedstat("btf-wakeups");
    }
}

#[test]
fn woken_waits_placed_at_the_switch_in_match_schedstat() {
    if bpf_available("woken_waits_placed_at_the_switch_in_match_schedstat") {
        woken_waits_match_schedstat("btf");
    }
}

#[test]
fn sleepy_thread_on_cpu_matches_its_clock_btf() {
    if bpf_available("sleepy_thread_on_cpu_matches_its_clock_btf") {
        sleepy_thread_on_cpu_matches_its_clock("btf");
    }
}

#[test]
fn sleepy_thread_on_cpu_matches_its_clock_classic_tracepoints() {
    if bpf_available("sleepy_thread_on_cpu_matches_its_clock_classic_tracepoints") {
        sleepy_thread_on_cpu_matches_its_clock("tracepoint");
    }
}
