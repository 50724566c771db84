//! `tracer spans --flight-recorder DIR --slow MS`: among many fast requests
//! only the slow ones are written, each as a Perfetto trace (decoded with
//! Perfetto's own schema) holding its span as a slice of its wall time and
//! the other threads around it, with its span line beside it; dumps beyond
//! `--max-dumps-per-min` are counted, a failed one is one line and the
//! recording goes on; memory stays within `--max-mib` + 32 MiB at a high
//! span rate.
use std::{
    path::{Path, PathBuf},
    process::Command,
    thread::sleep,
    time::{Duration, Instant},
};

use serde_json::Value;
use tracer_tests::*;

fn python(test: &str) -> Option<String> {
    reference_python(test, "TRACER_PYTHON_PERFETTO")
}

/// The files in `dir` with extension `ext`, sorted.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == ext)).collect())
        .unwrap_or_default();
    found.sort();
    found
}

/// The span id a test-server response names.
fn span_id(response: &str) -> u64 {
    response.lines().find_map(|l| l.strip_prefix("X-Span-Id: ")).and_then(|v| v.trim().parse().ok()).expect("X-Span-Id")
}

fn flight_recorder(server: &Server, dir: &Path, extra: &[&str]) -> Tracer {
    let pid = server.pid().to_string();
    let mut args = vec!["spans", "-p", &pid, "--slow", "100", "--flight-recorder", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    Tracer::start(&args)
}

fn written(line: &str) -> bool {
    line.starts_with("tracer: flight recorder: span") && line.contains("written to")
}

fn state_ns(decoded: &Value, tid: u32, state: &str) -> u64 {
    decoded["states"][tid.to_string()][state].as_u64().unwrap_or(0)
}

#[test]
fn flight_recorder_writes_each_slow_span_with_its_window() {
    let test = "flight_recorder_writes_each_slow_span_with_its_window";
    let Some(python) = python(test) else { return };
    let dir = temp_dir("flight");
    // The server shares CPU 1 with three busy neighbours: a CPU-bound
    // request waits for it, a sleeping one does not.
    let (_busy, busy_pids) = busy_neighbours(1);
    let server = Server::start(Some(1));
    let mut tracer = flight_recorder(&server, &dir, &["--after", "0.5"]);
    let fast = |n| {
        for _ in 0..n {
            let latency = server.get("/plain");
            assert!(latency < Duration::from_millis(100), "a fast request took {latency:?}");
        }
    };
    fast(150);
    let (cpu_latency, cpu) = server.get_with_headers("/cpu?ms=40");
    fast(100);
    let (sleep_latency, slept) = server.get_with_headers("/sleep?ms=150");
    fast(50);
    let slow = [(span_id(&cpu), cpu_latency), (span_id(&slept), sleep_latency)];
    tracer.wait_for_stderr("the first dump", written);
    tracer.wait_for_stderr("the second dump", written);
    let (status, stdout, stderr) = tracer.stop_with(libc::SIGINT);
    assert!(status.success(), "{stderr:?}");
    assert!(stderr.iter().any(|l| l.starts_with("Flight recorder: 2 slow spans, 2 dumps written")), "{stderr:?}");
    assert_eq!(span_lines(&stdout).len(), 2, "--slow still selects the lines printed: {stdout}");

    // Exactly the two slow spans, each a trace and its line; nothing else
    // (no temporary file) left in the directory.
    let (traces, lines) = (files(&dir, "pftrace"), files(&dir, "json"));
    assert_eq!((traces.len(), lines.len()), (2, 2), "{traces:?} {lines:?}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 4);
    for ((trace, line), (id, latency)) in traces.iter().zip(&lines).zip(slow) {
        let span = &span_lines(&std::fs::read_to_string(line).unwrap())[0];
        assert_eq!(span.span_id, id, "{line:?}");
        assert!(trace.file_name().unwrap().to_str().unwrap().ends_with(&format!("-{id}.pftrace")), "{trace:?}");
        let decoded = perfetto_decode(&python, trace);
        // Its slice, of its wall time, which the client's latency encloses.
        let slice = slice_of(&decoded, id);
        let dur = u(&slice["dur"]);
        assert_eq!((dur, slice["name"].as_str().unwrap()), (span.wall_ns, span.name.as_str()), "{slice:?}");
        assert!(dur <= latency.as_nanos() as u64 && dur >= 100_000_000, "slice {dur} ns, client {latency:?}");
        // The other threads around it: fast requests' spans and the
        // server's other threads (its accepting thread, its other requests).
        let others = decoded["slices"].as_array().unwrap().iter().filter(|s| u(&s["args"]["span_id"]) != id).count();
        assert!(others > 0, "no other span in the window");
        let server_threads = decoded["threads"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(tid, t)| t["tgid"] == server.pid() && **tid != span.tid.to_string())
            .count();
        assert!(server_threads >= 2, "the server's other threads: {:?}", decoded["threads"]);
        let running = state_ns(&decoded, span.tid, "Running");
        if span.name == "GET /cpu" {
            // It ran its 40 ms, and waited behind the neighbours, who are
            // on CPU 1's track, named.
            assert!(running >= 40_000_000, "Running {running} ns");
            let waited = state_ns(&decoded, span.tid, "R+") + state_ns(&decoded, span.tid, "R");
            assert!(waited >= 40_000_000, "Runnable {waited} ns: {:?}", decoded["states"][span.tid.to_string()]);
            let held =
                busy_pids.iter().map(|pid| decoded["cpus"]["1"][pid.to_string()].as_u64().unwrap_or(0)).sum::<u64>();
            assert!(held >= 40_000_000, "the neighbours held CPU 1 {held} ns: {:?}", decoded["cpus"]);
            assert_eq!(decoded["processes"][busy_pids[0].to_string()], "tracer-load");
        } else {
            assert!(state_ns(&decoded, span.tid, "S") >= 140_000_000, "{:?}", decoded["states"][span.tid.to_string()]);
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// With `--http` (a server without markers) and `--max-dumps-per-min 2`:
/// the first slow request is written, the second fails (its directory is
/// gone: one line, and tracing goes on), the third is over the limit and
/// counted.
#[test]
fn flight_recorder_counts_dumps_over_the_limit_and_survives_a_failed_one() {
    let test = "flight_recorder_counts_dumps_over_the_limit_and_survives_a_failed_one";
    if !bpf_available(test) {
        return;
    }
    let dir = temp_dir("flight-limit");
    let server = Server::start_with(None, &["--no-markers"]);
    let mut tracer = flight_recorder(&server, &dir, &["--http", "--after", "0.2", "--max-dumps-per-min", "2"]);
    server.get("/sleep?ms=120");
    let first = tracer.wait_for_stderr("the first dump", written);
    std::fs::remove_dir_all(&dir).unwrap();
    server.get("/sleep?ms=120");
    let failed = tracer.wait_for_stderr("the failed dump", |l| l.contains("not written"));
    assert!(
        failed.starts_with("tracer: warning: flight recorder: span") && failed.contains("recording goes on"),
        "{failed}"
    );
    server.get("/sleep?ms=120");
    server.get("/plain");
    sleep(Duration::from_millis(500));
    let (status, stdout, stderr) = tracer.stop_with(libc::SIGINT);
    assert!(status.success(), "{stderr:?}");
    assert_eq!(span_lines(&stdout).len(), 3, "every slow span still printed: {stdout}");
    let limited: Vec<&String> = stderr.iter().filter(|l| l.contains("--max-dumps-per-min")).collect();
    assert_eq!(limited.len(), 2, "one line when the limit is first hit, and the summary: {stderr:?}");
    let summary = stderr.iter().find(|l| l.starts_with("Flight recorder:")).expect("the summary line");
    assert!(summary.starts_with("Flight recorder: 3 slow spans, 1 dumps written"), "{summary}");
    assert!(summary.contains("1 not written (over --max-dumps-per-min 2), 1 failed"), "{summary}");
    assert!(first.contains(dir.to_str().unwrap()) && first.contains("(GET /sleep "), "{first}");
    assert!(!dir.exists(), "nothing recreated it");
}

#[test]
fn flight_recorder_mistakes_are_one_line_before_anything_is_recorded() {
    let pid = std::process::id().to_string();
    let stderr = one_line_error(&["spans", "-p", &pid, "--slow", "100", "--flight-recorder", "/no/such/dir"]);
    assert!(stderr.contains("--flight-recorder /no/such/dir: no such directory"), "{stderr}");
    let out = Command::new(tracer_bin()).args(["spans", "-p", &pid, "--flight-recorder", "/tmp"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--slow"), "a trigger is required");
}

/// For 60 s at 20,000 spans/s with the default `--max-mib` (64), a dump
/// made halfway, tracer's peak RSS, the kernel's BPF rings mapped into it
/// included, stays within `--max-mib` + 32 MiB.
#[test]
fn flight_recorder_memory_stays_within_its_limit_at_a_high_span_rate() {
    let test = "flight_recorder_memory_stays_within_its_limit_at_a_high_span_rate";
    if !bpf_available(test) {
        return;
    }
    const SECONDS: u64 = 60;
    let dir = temp_dir("flight-memory");
    let server = Server::start(None);
    let mut tracer = flight_recorder(&server, &dir, &["--after", "0.5"]);
    let port = server.port.to_string();
    let load = Command::new(load_bin())
        .args(["http", &port, "20000", &SECONDS.to_string(), "/plain"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut slow_sent = false;
    while started.elapsed() < Duration::from_secs(SECONDS) {
        sleep(Duration::from_millis(500));
        if !slow_sent && started.elapsed() > Duration::from_secs(SECONDS / 2) {
            server.get("/sleep?ms=150");
            slow_sent = true;
        }
    }
    let load = load.wait_with_output().unwrap();
    assert!(load.status.success());
    let rate = String::from_utf8_lossy(&load.stdout).trim().to_string();
    tracer.wait_for_stderr("the dump made under load", written);
    let peak = peak_rss_kib(tracer.pid());
    let (status, _, stderr) = tracer.stop_with(libc::SIGINT);
    assert!(status.success(), "{stderr:?}");
    let summary = stderr.iter().find(|l| l.starts_with("Flight recorder:")).expect("the summary line");
    let spans = stderr.iter().find(|l| l.contains(" spans (")).expect("the spans line");
    eprintln!("tracer's peak RSS {peak} KiB; {rate}; {spans}; {summary}");
    let count: u64 = spans.split_whitespace().next().unwrap().parse().unwrap();
    assert!(count >= 15_000 * SECONDS, "the load ran at its rate: {count} spans in {SECONDS} s ({rate})");
    assert!(peak < (64 + 32) << 10, "peak RSS {peak} KiB over --max-mib 64 + 32 MiB");
    assert!(summary.contains("of its 24.0 MiB)"), "the ring's share of --max-mib: {summary}");
    assert!(!summary.contains("timeline events were lost"), "{summary}");
    assert_eq!(files(&dir, "pftrace").len(), 1);
    let _ = std::fs::remove_dir_all(dir);
}
