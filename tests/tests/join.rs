//! `tracer record --timeline` + `tracer spans join`: spans the application
//! logged itself, attributed after the fact, agree with the live spans.
use std::{collections::HashMap, process::Command};

use serde_json::Value;
use tracer_tests::*;

fn join(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(tracer_bin()).args(["spans", "join"]).args(args).output().expect("tracer");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The test server's own span log: its format, not tracer's, so untyped.
fn log_lines(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

/// Runs the test server with its own span log (`DIR/spans.jsonl`) under
/// `tracer record --timeline` (`DIR/record.json`, `DIR/record.timeline`)
/// while `work` drives it.
fn recorded_with_timeline<T>(test: &str, work: impl FnOnce(&Server) -> T) -> (std::path::PathBuf, T) {
    let dir = temp_dir(test);
    let log = dir.join("spans.jsonl");
    let report = dir.join("record.json");
    let server = Server::start_with(None, &["--span-log", log.to_str().unwrap()]);
    let pid = server.pid().to_string();
    let recording = Tracer::start(&["record", "-p", &pid, "--timeline", "-o", report.to_str().unwrap()]);
    let result = work(&server);
    let (status, _, stderr) = recording.stop_with(libc::SIGINT);
    assert!(status.success(), "{stderr:?}");
    assert!(stderr.iter().any(|l| l.contains("Timeline written to")), "{stderr:?}");
    (dir, result)
}

#[test]
fn joined_spans_match_the_live_ones() {
    if !bpf_available("joined_spans_match_the_live_ones") {
        return;
    }
    let (dir, live) = recorded_with_timeline("join", |server| {
        spans_around(server, &[], || {
            for _ in 0..3 {
                server.get("/cpu?ms=10");
                server.get("/sleep?ms=10");
                server.get("/io");
            }
        })
        .0
    });
    let log = dir.join("spans.jsonl");

    let joined_path = dir.join("joined.jsonl");
    let (ok, _, stderr) = join(&[
        "--timeline",
        dir.join("record.timeline").to_str().unwrap(),
        "--spans",
        log.to_str().unwrap(),
        "--json",
        joined_path.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let joined = span_lines(&std::fs::read_to_string(&joined_path).unwrap());
    assert_eq!(joined.len(), 9, "{stderr}");
    let live: HashMap<u64, &SpanRecord> = live.iter().map(|s| (s.span_id, s)).collect();
    for span in &joined {
        let twin = live[&span.span_id];
        assert_eq!(span.name, twin.name);
        assert_eq!(span.tid, twin.tid);
        assert_eq!(span.verdict, twin.verdict, "joined {span:?}\nlive {twin:?}");
        // Within 2% of the span, plus however much longer the logged span
        // is than the marked one it encloses (by a clock read and the
        // marker's own uprobe on each side: microseconds, unless an
        // interrupt lands in between).
        let wall = twin.wall_ns;
        let enclosing = span.wall_ns.saturating_sub(wall);
        assert!(span.wall_ns + 20_000 >= wall, "the logged span encloses the marked one: {span:?}\nlive {twin:?}");
        let tolerance = wall / 50 + enclosing;
        let parts = |s: &SpanRecord| {
            [
                ("wall_ns", s.wall_ns),
                ("on_cpu_ns", s.on_cpu_ns),
                ("runq_wait_ns", s.runq_wait_ns),
                ("iowait_ns", s.iowait_ns),
                ("uninterruptible_ns", s.uninterruptible_ns),
                ("sleep_ns", s.sleep_ns),
            ]
        };
        for ((part, a), (_, b)) in parts(span).into_iter().zip(parts(twin)) {
            assert!(a.abs_diff(b) <= tolerance, "{part}: joined {a} vs live {b}\njoined {span:?}\nlive {twin:?}");
        }
        assert_parts_sum_to_wall(span);
    }
}

/// The same spans as an OTLP/JSON trace export (one pretty-printed
/// document, ids in hex, times as strings, the thread in `thread.id`).
fn as_otlp(lines: &[Value]) -> String {
    let spans: Vec<Value> = lines
        .iter()
        .map(|span| {
            serde_json::json!({
                "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
                "spanId": format!("{:016x}", u(&span["span_id"])),
                "name": span["name"],
                "startTimeUnixNano": u(&span["start_unix_ns"]).to_string(),
                "endTimeUnixNano": u(&span["end_unix_ns"]).to_string(),
                "attributes": [{"key": "thread.id", "value": {"intValue": u(&span["tid"]).to_string()}}],
            })
        })
        .collect();
    let document = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]});
    serde_json::to_string_pretty(&document).unwrap()
}

#[test]
fn otlp_exports_join_like_span_lines() {
    if !bpf_available("otlp_exports_join_like_span_lines") {
        return;
    }
    let (dir, ()) = recorded_with_timeline("join-otlp", |server| {
        server.get("/cpu?ms=10");
        server.get("/sleep?ms=10");
    });
    let log = dir.join("spans.jsonl");
    let otlp = dir.join("trace.json");
    std::fs::write(&otlp, as_otlp(&log_lines(&std::fs::read_to_string(&log).unwrap()))).unwrap();
    let timeline = dir.join("record.timeline");
    let (ok, from_lines, stderr) = join(&["--timeline", timeline.to_str().unwrap(), "--spans", log.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let (ok, from_otlp, stderr) = join(&["--timeline", timeline.to_str().unwrap(), "--spans", otlp.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let (from_lines, from_otlp) = (span_lines(&from_lines), span_lines(&from_otlp));
    assert_eq!(from_otlp.len(), 2, "{stderr}");
    for (a, b) in from_lines.iter().zip(&from_otlp) {
        assert_eq!(b.trace_id.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!((a.span_id, &a.name, a.tid), (b.span_id, &b.name, b.tid), "span_id, name, tid: {a:?} vs {b:?}");
        let times = |s: &SpanRecord| (s.wall_ns, s.on_cpu_ns, s.runq_wait_ns, s.sleep_ns);
        assert_eq!(times(a), times(b), "wall, on-CPU, runq, sleep ns: {a:?} vs {b:?}");
        assert_eq!(a.verdict, b.verdict, "verdict: {a:?} vs {b:?}");
    }
}

#[test]
fn join_reports_bad_input_by_line_and_keeps_going() {
    if !bpf_available("join_reports_bad_input_by_line_and_keeps_going") {
        return;
    }
    let (dir, ()) = recorded_with_timeline("join-bad", |server| {
        server.get("/cpu?ms=5");
        server.get("/sleep?ms=5");
    });
    let (log, report) = (dir.join("spans.jsonl"), dir.join("record.json"));

    let good = std::fs::read_to_string(&log).unwrap();
    let good: Vec<&str> = good.lines().collect();
    let tid = serde_json::from_str::<Value>(good[0]).unwrap()["tid"].clone();
    let mixed = [
        good[0].to_owned(),
        "{\"span_id\": 90, \"name\": \"no thread\", \"start_unix_ns\": 1, \"end_unix_ns\": 2}".to_owned(),
        "this is not JSON".to_owned(),
        format!("{{\"span_id\": 91, \"name\": \"too early\", \"tid\": {tid}, \"start_unix_ns\": 1000, \"end_unix_ns\": 2000}}"),
        good[1].to_owned(),
    ];
    let spans = dir.join("mixed.jsonl");
    std::fs::write(&spans, mixed.join("\n") + "\n").unwrap();
    let timeline = dir.join("record.timeline");
    let (ok, stdout, stderr) = join(&["--timeline", timeline.to_str().unwrap(), "--spans", spans.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let joined = span_lines(&stdout);
    let names: Vec<&str> = joined.iter().map(|s| &*s.name).collect();
    assert_eq!(names, ["GET /cpu", "GET /sleep"], "{stderr}");
    assert!(stderr.contains("without a thread id (line 2)"), "{stderr}");
    assert!(stderr.contains("malformed span (line 3)"), "{stderr}");
    assert!(stderr.contains("line 4"), "the span outside the recording: {stderr}");

    // Not a timeline: one line, non-zero exit.
    let stderr = one_line_error(&["spans", "join", "--timeline", report.to_str().unwrap(), "--spans", spans.to_str().unwrap()]);
    assert!(stderr.contains("not a tracer timeline"), "{stderr}");
}

#[test]
fn timeline_needs_a_target_and_its_own_file() {
    let stderr = one_line_error(&["record", "--timeline", "-o", "/tmp/x.json"]);
    assert!(stderr.contains("--pid, --tid or --cgroup"), "{stderr}");
    let pid = std::process::id().to_string();
    let stderr = one_line_error(&["record", "--pid", &pid, "--timeline", "-o", "/tmp/x.timeline"]);
    assert!(stderr.contains("another name"), "{stderr}");
}

/// Peak resident memory of a process so far (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()
}

#[test]
fn an_endless_spans_input_fails_in_bounded_memory() {
    if !bpf_available("an_endless_spans_input_fails_in_bounded_memory") {
        return;
    }
    let (dir, ()) = recorded_with_timeline("join-dev-zero", |server| {
        server.get("/cpu?ms=5");
    });
    let timeline = dir.join("record.timeline");
    let mut child = Command::new(tracer_bin())
        .args(["spans", "join", "--timeline", timeline.to_str().unwrap(), "--spans", "/dev/zero"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tracer");
    let started = std::time::Instant::now();
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = peak_rss_kib(child.id()) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > std::time::Duration::from_secs(10) {
            let _ = child.kill();
            panic!("still reading /dev/zero after 10 s, peak RSS {peak} KiB");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("/dev/zero: line 1 goes on for more than 256 MiB without a line end"),
        "{stderr}"
    );
    assert!(peak < 100 * 1024, "peak RSS {peak} KiB");

    // Standard input, a pipe: read to its end like a file.
    let log = std::fs::File::open(dir.join("spans.jsonl")).unwrap();
    let out = Command::new(tracer_bin())
        .args(["spans", "join", "--timeline", timeline.to_str().unwrap(), "--spans", "-"])
        .stdin(log)
        .output()
        .expect("tracer");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(span_lines(&String::from_utf8_lossy(&out.stdout)).len(), 1, "{stderr}");
}
