//! `tracer record --perfetto` and `tracer timeline export --perfetto`:
//! traces decoded with Perfetto's own schema (`tests/perfetto_decode.py`,
//! in the venv `cargo xtask test` installs), whose thread states agree with
//! the kernel's schedstat, whose names are the processes' and threads' own,
//! and whose slices are the spans the server logged, with flows to the
//! holders that kept them waiting.
use std::{collections::BTreeMap, path::Path, process::Command, thread::sleep, time::Duration};

use serde_json::Value;
use tracer_tests::*;

/// The decoder's interpreter, or None (skipped) outside `cargo xtask test`.
fn python(test: &str) -> Option<String> {
    reference_python(test, "TRACER_PYTHON_PERFETTO")
}

fn decode(python: &str, trace: &Path) -> Value {
    perfetto_decode(python, trace)
}

/// Nanoseconds thread `tid` spent in `state` in the decoded trace.
fn state_ns(decoded: &Value, tid: u32, state: &str) -> u64 {
    decoded["states"][tid.to_string()][state].as_u64().unwrap_or(0)
}

fn comm(path: &str) -> String {
    std::fs::read_to_string(path).unwrap().trim_end().to_owned()
}

fn assert_within(what: &str, actual: u64, expected: u64, rel: f64, abs_ns: u64) {
    let allowed = (expected as f64 * rel) as u64 + abs_ns;
    assert!(
        actual.abs_diff(expected) <= allowed,
        "{what}: trace {actual} ns vs kernel {expected} ns (allowed {allowed})"
    );
}

#[test]
fn perfetto_traces_show_the_kernels_states_names_holders_and_spans() {
    let test = "perfetto_traces_show_the_kernels_states_names_holders_and_spans";
    let Some(python) = python(test) else { return };
    let dir = temp_dir("perfetto");
    // One busy thread pinned with three busy neighbours (preempted, waits
    // for its CPU), one that sleeps and wakes every 5 ms, and the test
    // server with span markers on the same CPU.
    let (_busy, busy_pids) = busy_neighbours(1);
    let log = dir.join("spans.jsonl");
    let server = Server::start_with(Some(1), &["--span-log", log.to_str().unwrap()]);
    let spin = Load::start(&["spin", "1", "1"]);
    let sleeper = Load::start(&["sleepers", "1", "5"]);
    // Stopped while the probes attach and again before the end, so the
    // kernel's totals move only inside the recording.
    spin.stop();
    sleeper.stop();
    sleep(Duration::from_millis(100));
    let (spin_tid, sleeper_tid) = (spin.tids[0], sleeper.tids[0]);
    let before = [thread_schedstat(spin.pid(), spin_tid), thread_schedstat(sleeper.pid(), sleeper_tid)];
    let (report, trace) = (dir.join("run.json"), dir.join("run.pftrace"));
    let pids = [server.pid(), spin.pid(), sleeper.pid()].map(|p| p.to_string());
    let tracer = Tracer::start(&[
        "record",
        "-p",
        &pids[0],
        "-p",
        &pids[1],
        "-p",
        &pids[2],
        "--timeline",
        "-o",
        report.to_str().unwrap(),
        "--perfetto",
        trace.to_str().unwrap(),
    ]);
    signal(spin.pid(), libc::SIGCONT);
    signal(sleeper.pid(), libc::SIGCONT);
    for _ in 0..3 {
        server.get("/cpu?ms=10");
        server.get("/sleep?ms=10");
    }
    sleep(Duration::from_secs(2));
    spin.stop();
    sleeper.stop();
    sleep(Duration::from_millis(300));
    let after = [thread_schedstat(spin.pid(), spin_tid), thread_schedstat(sleeper.pid(), sleeper_tid)];
    let (status, _, stderr) = tracer.stop_with(libc::SIGINT);
    assert!(status.success(), "{stderr:?}");
    assert!(stderr.iter().any(|l| l.starts_with("Perfetto trace written to")), "{stderr:?}");
    let decoded = decode(&python, &trace);

    // The busy thread: Running is its on-CPU time, Runnable (Preempted)
    // and Runnable its run-queue wait.
    let on_cpu = after[0].on_cpu_ns - before[0].on_cpu_ns;
    let waited = after[0].run_delay_ns - before[0].run_delay_ns;
    assert!(on_cpu > 200_000_000 && waited > 1_000_000_000, "a quarter of the CPU for 2 s: {on_cpu} {waited}");
    eprintln!(
        "busy thread: Running {} ns vs on-CPU {on_cpu} ns; Runnable {} ns vs run_delay {waited} ns",
        state_ns(&decoded, spin_tid, "Running"),
        state_ns(&decoded, spin_tid, "R+") + state_ns(&decoded, spin_tid, "R")
    );
    assert_within("busy thread Running", state_ns(&decoded, spin_tid, "Running"), on_cpu, 0.02, 0);
    let runnable = state_ns(&decoded, spin_tid, "R+") + state_ns(&decoded, spin_tid, "R");
    assert_within("busy thread Runnable", runnable, waited, 0.02, 0);
    assert!(state_ns(&decoded, spin_tid, "R+") * 10 >= runnable * 9, "nearly all of it preempted: {decoded:?}");

    // The sleeper: the kernel and tracer count a wake-up onto an idle CPU
    // as its CPU time, Perfetto as Runnable, so their sum is compared with
    // the report of the same recording (which includes the waits of
    // switches the kernel did not report, split from its counters: the
    // trace places them before the run they preceded). The report's on-CPU
    // is the kernel's clock (each run's `sum_exec_runtime`); the trace's
    // states change at the tracepoints, which the kernel's clock precedes
    // by a few microseconds a wake-up (it starts a woken thread's clock at
    // the enqueue), so the kernel only bounds the trace.
    let recorded = read_report(&report);
    let totals = &thread(process(&recorded, sleeper.pid()), sleeper_tid).totals;
    let reported = totals.on_cpu_ns + totals.runq_wait_ns;
    let kernel = after[1].on_cpu_ns + after[1].run_delay_ns - before[1].on_cpu_ns - before[1].run_delay_ns;
    let traced = ["Running", "R", "R+"].iter().map(|s| state_ns(&decoded, sleeper_tid, s)).sum();
    eprintln!("sleeper: trace Running + Runnable {traced} ns, report {reported} ns, kernel {kernel} ns");
    // Nearly every wake-up is onto an idle CPU, whose leaving idle
    // (`wakeup_idle_ns`, 20-25 us a wake-up on this VM) the report times
    // with the kernel's clock and the trace between the tracepoints: the
    // two differ by up to a quarter of it while the VM's host is busy (a
    // tenth when it is quiet).
    assert_within("sleeper Running + Runnable (report)", traced, reported, 0.02, totals.wakeup_idle_ns / 4);
    assert!(traced <= kernel + 1_000_000, "sleeper: trace {traced} ns, more than the kernel's {kernel} ns");
    let kernel_on_cpu = after[1].on_cpu_ns - before[1].on_cpu_ns;
    assert_within("sleeper on-CPU (report) against the kernel's", totals.on_cpu_ns, kernel_on_cpu, 0.01, 0);
    assert!(state_ns(&decoded, sleeper_tid, "S") > 1_500_000_000, "it sleeps most of 2 s: {decoded:?}");

    // Names: every traced process and thread, and the busy neighbours,
    // which held CPU 1 while the traced threads waited.
    for pid in [server.pid(), spin.pid(), sleeper.pid()] {
        assert_eq!(decoded["processes"][pid.to_string()], comm(&format!("/proc/{pid}/comm")), "{pid}");
    }
    for (pid, tid) in [(spin.pid(), spin_tid), (sleeper.pid(), sleeper_tid)] {
        let thread = &decoded["threads"][tid.to_string()];
        assert_eq!(thread["name"], comm(&format!("/proc/{pid}/task/{tid}/comm")));
        assert_eq!(thread["tgid"], pid);
    }
    for pid in &busy_pids {
        assert_eq!(decoded["processes"][pid.to_string()], "tracer-load");
        // Only the last 16 run slices of each wait are recorded (the
        // kernel side's ring): a CPU busy with short slices of others
        // leaves the neighbours only part of the time they held it.
        let held = decoded["cpus"]["1"][pid.to_string()].as_u64().unwrap_or(0);
        assert!(held > 0, "busy neighbour {pid} never shown on CPU 1: {:?}", decoded["cpus"]);
    }

    // Spans: one slice per span the server logged, with its name and its
    // wall time (the logged span encloses the marked one by a clock read).
    let logged: Vec<Value> =
        std::fs::read_to_string(&log).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let slices = decoded["slices"].as_array().unwrap();
    assert_eq!(slices.len(), logged.len(), "{slices:?}");
    assert_eq!(logged.len(), 6);
    for (slice, span) in slices.iter().zip(&logged) {
        assert_eq!((&slice["name"], &slice["tid"]), (&span["name"], &span["tid"]), "{slice:?} vs {span:?}");
        let wall = u(&span["end_unix_ns"]) - u(&span["start_unix_ns"]);
        let dur = u(&slice["dur"]);
        assert!(dur <= wall + 20_000 && dur * 50 >= wall * 49, "slice {dur} ns vs logged {wall} ns");
        assert_eq!(u(&slice["args"]["wall_ns"]), dur);
        let verdict = slice["args"]["verdict"].as_str().unwrap();
        if span["name"] == "GET /cpu" {
            assert_eq!(verdict, "cpu-contention", "{slice:?}");
            let blamed = slice["args"]["blame"].as_array().unwrap();
            assert!(blamed.iter().any(|h| busy_pids.contains(&(u(&h["pid"]) as u32))), "{slice:?}");
            assert_flows_lead_to_the_busy_neighbours(slice, &busy_pids);
        }
    }

    // The timeline converted afterwards, with the logged spans joined:
    // the same states, and the same spans as slices.
    let exported = dir.join("exported.pftrace");
    let out = Command::new(tracer_bin())
        .args(["timeline", "export", dir.join("run.timeline").to_str().unwrap(), "--perfetto"])
        .arg(&exported)
        .arg("--spans")
        .arg(&log)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = decode(&python, &exported);
    assert_eq!(again["states"], decoded["states"]);
    assert_eq!(again["processes"], decoded["processes"]);
    let names = |d: &Value| d["slices"].as_array().unwrap().iter().map(|s| s["name"].clone()).collect::<Vec<_>>();
    assert_eq!(names(&again), names(&decoded));
    let _ = std::fs::remove_dir_all(dir);
}

/// The flows of a span that waited on CPU 1 with busy neighbours: each
/// leads to a slice of a process that ran on the CPU inside the span, one
/// of them a busy neighbour, and every process the span blames (the
/// kernel's own account of the span's waits, at its wait ends) is reached
/// for at least the time it is blamed for (a flow reaches a holder's whole
/// run, which may go on after the wait; the CPU track trims a holder's run
/// where a traced thread's own switch says it ran, by the clocks of two
/// CPUs: 2% and 100 us allowed).
fn assert_flows_lead_to_the_busy_neighbours(slice: &Value, busy_pids: &[u32]) {
    let (start, end) = (u(&slice["ts"]), u(&slice["ts"]) + u(&slice["dur"]));
    let targets = slice["flows_to"].as_array().unwrap();
    let mut reached: BTreeMap<u64, u64> = BTreeMap::new();
    for target in targets {
        let (t_start, t_end) = (u(&target["ts"]), u(&target["ts"]) + u(&target["dur"]));
        assert!(t_start < end && t_end > start, "a holder slice inside the span: {target:?} vs {slice:?}");
        *reached.entry(u(&target["tgid"])).or_default() += t_end.min(end) - t_start.max(start);
    }
    let blamed: Vec<(u64, u64)> =
        slice["args"]["blame"].as_array().unwrap().iter().map(|h| (u(&h["pid"]), u(&h["ns"]))).collect();
    eprintln!("span {} ({} ns): flows reach {reached:?} (pid: ns), blamed {blamed:?}", slice["name"], slice["dur"]);
    assert!(reached.keys().any(|&pid| busy_pids.contains(&(pid as u32))), "a busy neighbour reached: {slice:?}");
    for (pid, ns) in blamed.into_iter().filter(|&(pid, _)| pid != 0) {
        let flows_ns = reached.get(&pid).copied().unwrap_or(0);
        assert!(flows_ns * 50 >= (ns * 49).saturating_sub(5_000_000), "blamed {pid} for {ns} ns, flows reach {flows_ns} ns: {slice:?}");
    }
}

/// `record --http --perfetto` on a server without markers: each HTTP
/// exchange is a slice named like its span line, with its HTTP fields.
#[test]
fn perfetto_http_spans_carry_their_http_fields() {
    let test = "perfetto_http_spans_carry_their_http_fields";
    let Some(python) = python(test) else { return };
    let dir = temp_dir("perfetto-http");
    let server = Server::start_with(None, &["--no-markers"]);
    let (report, trace) = (dir.join("run.json"), dir.join("run.pftrace"));
    let pid = server.pid().to_string();
    let tracer = Tracer::start(&[
        "record",
        "-p",
        &pid,
        "--http",
        "-o",
        report.to_str().unwrap(),
        "--perfetto",
        trace.to_str().unwrap(),
    ]);
    let paths = ["/cpu?ms=5", "/sleep?ms=5", "/plain"];
    for path in paths {
        server.get(path);
    }
    sleep(Duration::from_millis(300));
    let (status, _, stderr) = tracer.stop_with(libc::SIGINT);
    assert!(status.success(), "{stderr:?}");
    let decoded = decode(&python, &trace);
    let slices = decoded["slices"].as_array().unwrap();
    let names: Vec<&str> = slices.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["GET /cpu", "GET /sleep", "GET /plain"], "{slices:?}");
    for slice in slices {
        let args = &slice["args"];
        assert_eq!(format!("GET {}", args["http_path"].as_str().unwrap()), slice["name"].as_str().unwrap());
        assert_eq!((&args["http_method"], &args["http_status"]), (&Value::from("GET"), &Value::from(200)), "{slice:?}");
        assert_eq!(u(&args["wall_ns"]), u(&slice["dur"]));
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn perfetto_mistakes_are_one_line_before_anything_is_recorded() {
    let pid = std::process::id().to_string();
    let stderr = one_line_error(&["record", "-o", "/tmp/x.json", "--perfetto", "/tmp/x.pftrace"]);
    assert!(stderr.contains("--pid, --tid or --cgroup"), "{stderr}");
    let stderr = one_line_error(&["record", "-p", &pid, "-o", "/tmp/x.json", "--perfetto", "/no/such/dir/x.pftrace"]);
    assert!(stderr.contains("directory does not exist"), "{stderr}");
    let stderr = one_line_error(&["record", "-p", &pid, "-o", "/tmp/x.json", "--perfetto", "/tmp/x.json"]);
    assert!(stderr.contains("a file of its own"), "{stderr}");
    let dir = temp_dir("perfetto-errors");
    let not_a_timeline = dir.join("x.json");
    std::fs::write(&not_a_timeline, "{}").unwrap();
    let out = dir.join("x.pftrace");
    let stderr =
        one_line_error(&["timeline", "export", not_a_timeline.to_str().unwrap(), "--perfetto", out.to_str().unwrap()]);
    assert!(stderr.contains("not a tracer timeline"), "{stderr}");
    assert!(!out.exists(), "nothing written");
    let _ = std::fs::remove_dir_all(dir);
}
