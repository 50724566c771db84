//! `tracer spans --otlp` and `tracer spans join --otlp`: spans sent to an
//! OpenTelemetry collector, decoded by a receiver that uses the
//! OpenTelemetry project's own Python protobuf definitions
//! (`tests/otlp_receiver.py`, in the venv `cargo xtask test` installs).
use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use serde_json::Value;
use tracer_tests::*;

/// The receiver's interpreter, or None (skipped) outside `cargo xtask test`.
fn python(test: &str) -> Option<String> {
    reference_python(test, "TRACER_PYTHON_OTLP")
}

/// `tests/otlp_receiver.py` on a free loopback port; killed when dropped.
struct Receiver {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Receiver {
    fn start(python: &str, out: &Path) -> Receiver {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/otlp_receiver.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg(out)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{python} {script}: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().strip_prefix("ready ").unwrap_or_else(|| panic!("receiver said {line:?}")).parse().unwrap();
        Receiver { child, port, out: out.to_owned() }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The spans received so far; no body may have failed to decode.
    fn spans(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let records: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let errors: Vec<&Value> = records.iter().filter(|r| r.get("error").is_some()).collect();
        assert!(errors.is_empty(), "the receiver refused bodies: {errors:?}");
        records
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    let value = &span["attributes"][key];
    assert!(!value.is_null(), "no attribute {key}: {span}");
    value
}

fn attr_u64(span: &Value, key: &str) -> u64 {
    u(attr(span, key))
}

fn duration(span: &Value) -> u64 {
    u(&span["end_unix_ns"]) - u(&span["start_unix_ns"])
}

/// The five breakdown attributes sum to the span's duration within 1%.
fn assert_breakdown_sums_to_duration(span: &Value) {
    let sum: u64 = ["on_cpu", "runq_wait", "iowait", "uninterruptible", "sleep"]
        .iter()
        .map(|part| attr_u64(span, &format!("tracer.{part}_ns")))
        .sum();
    let wall = duration(span);
    assert!(wall > 0, "{span}");
    assert!(sum.abs_diff(wall) as f64 <= 0.01 * wall as f64, "parts {sum} vs duration {wall}: {span}");
    assert_eq!(attr_u64(span, "tracer.wall_ns"), wall);
}

/// The numbers of tracer's closing OTLP line: (sent, dropped, failed).
fn export_summary(stderr: &[String]) -> (u64, u64, u64) {
    let line = stderr.iter().find(|l| l.starts_with("tracer: OTLP export to")).unwrap_or_else(|| panic!("{stderr:?}"));
    let before = |word: &str| -> u64 {
        let at = line.find(word).unwrap_or_else(|| panic!("no {word:?} in {line}"));
        line[..at].split_whitespace().last().unwrap().parse().unwrap()
    };
    (before(" spans sent"), before(" dropped"), before(" failed"))
}

fn hex16(id: u64) -> String {
    format!("{id:016x}")
}

fn is_trace_id(id: &Value) -> bool {
    id.as_str().is_some_and(|id| id.len() == 32 && id.bytes().any(|b| b != b'0'))
}

#[test]
fn otlp_every_marker_and_joined_span_arrives_once_with_its_breakdown() {
    let Some(python) = python("otlp_every_marker_and_joined_span_arrives_once_with_its_breakdown") else { return };
    let dir = temp_dir("otlp-markers");
    let log = dir.join("spans.jsonl");
    let server = Server::start_with(Some(1), &["--span-log", log.to_str().unwrap()]);
    let pid = server.pid().to_string();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap().trim().to_owned();
    // A timeline meanwhile, to join the server's own span log with.
    let report = dir.join("record.json");
    let recording = Tracer::start(&["record", "-p", &pid, "--timeline", "-o", report.to_str().unwrap()]);
    let receiver = Receiver::start(&python, &dir.join("live.jsonl"));
    let mut busy_pids = Vec::new();
    let (lines, stderr) = spans_around(&server, &["--otlp", &receiver.url(), "--service-name", "shop"], || {
        for _ in 0..8 {
            server.get("/cpu?ms=3");
            server.get("/sleep?ms=3");
            server.get("/plain");
        }
        // Busy neighbours on the server's CPU: spans with CPU holders.
        let (_busy, pids) = busy_neighbours(1);
        busy_pids = pids;
        for _ in 0..3 {
            server.get("/cpu?ms=10");
        }
    });
    let (status, _, recorded) = recording.stop_with(libc::SIGINT);
    assert!(status.success(), "{recorded:?}");

    assert_eq!(lines.len(), 27, "{stderr:?}");
    let spans = receiver.spans();
    assert_eq!(spans.len(), lines.len(), "every span, once: {stderr:?}");
    let by_id: HashMap<&str, &Value> = spans.iter().map(|s| (s["span_id"].as_str().unwrap(), s)).collect();
    assert_eq!(by_id.len(), spans.len(), "no span twice");
    let mut trace_ids: Vec<&str> = spans.iter().map(|s| s["trace_id"].as_str().unwrap()).collect();
    trace_ids.sort();
    trace_ids.dedup();
    assert_eq!(trace_ids.len(), spans.len(), "a fresh trace per span without a traceparent");
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_owned();
    let mut blamed = 0;
    for line in &lines {
        let span = by_id.get(hex16(line.span_id).as_str()).unwrap_or_else(|| panic!("span {line:?} not received"));
        assert_eq!(span["name"], line.name.as_str());
        assert!(is_trace_id(&span["trace_id"]), "{span}");
        assert_eq!(span["parent_span_id"], "");
        assert_eq!(span["kind"], 1, "INTERNAL: {span}");
        assert_eq!(u(&span["start_unix_ns"]), line.start_unix_ns);
        assert_eq!(duration(span), line.wall_ns);
        assert_breakdown_sums_to_duration(span);
        for (key, value) in [
            ("process.pid", u64::from(line.pid)),
            ("thread.id", u64::from(line.tid)),
            ("tracer.on_cpu_ns", line.on_cpu_ns),
            ("tracer.runq_wait_ns", line.runq_wait_ns),
            ("tracer.iowait_ns", line.iowait_ns),
            ("tracer.uninterruptible_ns", line.uninterruptible_ns),
            ("tracer.sleep_ns", line.sleep_ns),
            ("tracer.unaccounted_ns", line.unaccounted_ns),
            ("tracer.syscall_ns", line.syscall_ns),
        ] {
            assert_eq!(attr_u64(span, key), value, "{key}: {span}\n{line:?}");
        }
        assert_eq!(attr(span, "tracer.verdict"), line.verdict.name());
        if line.blame.is_empty() {
            assert!(span["attributes"].get("tracer.blame.pids").is_none(), "{span}");
        } else {
            let pids: Vec<u64> = line.blame.iter().map(|h| u64::from(h.pid)).collect();
            let comms: Vec<&str> = line.blame.iter().map(|h| &*h.comm).collect();
            let ns: Vec<u64> = line.blame.iter().map(|h| h.ns).collect();
            assert_eq!(attr(span, "tracer.blame.pids"), &serde_json::json!(pids));
            assert_eq!(attr(span, "tracer.blame.comms"), &serde_json::json!(comms));
            assert_eq!(attr(span, "tracer.blame.ns"), &serde_json::json!(ns));
            if line.blame.iter().any(|h| busy_pids.contains(&h.pid)) {
                blamed += 1;
            }
        }
        let syscalls: Vec<&str> = line.top_syscalls.iter().map(|s| &*s.name).collect();
        if !syscalls.is_empty() {
            assert_eq!(attr(span, "tracer.top_syscalls.names"), &serde_json::json!(syscalls));
        }
        assert_eq!(span["scope"], "tracer");
        let resource = &span["resource"];
        assert_eq!(resource["service.name"], "shop", "{span}");
        assert_eq!(resource["host.name"], hostname.as_str());
        assert_eq!(resource["process.executable.name"], "tracer-test-server");
    }
    assert!(blamed >= 1, "some span's CPU holders are the busy neighbours: {lines:?}");
    assert_eq!(export_summary(&stderr), (27, 0, 0), "{stderr:?}");

    // The server's own log, as an application's trace: each span with a
    // trace id, joined afterwards and sent as the child of the logged span.
    let logged: Vec<Value> =
        std::fs::read_to_string(&log).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let with_traces = dir.join("traced.jsonl");
    let mut file = std::fs::File::create(&with_traces).unwrap();
    for (i, span) in logged.iter().enumerate() {
        let mut span = span.clone();
        span["trace_id"] = format!("4bf92f3577b34da6a3ce929d{:08x}", i + 1).into();
        writeln!(file, "{span}").unwrap();
    }
    drop(file);
    let joined_receiver = Receiver::start(&python, &dir.join("joined.jsonl"));
    let out = Command::new(tracer_bin())
        .args(["spans", "join", "--timeline", dir.join("record.timeline").to_str().unwrap(), "--spans"])
        .arg(&with_traces)
        .args(["--otlp", &joined_receiver.url()])
        .output()
        .unwrap();
    let stderr: Vec<String> = String::from_utf8_lossy(&out.stderr).lines().map(str::to_owned).collect();
    assert!(out.status.success(), "{stderr:?}");
    let joined_lines = span_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(joined_lines.len(), logged.len(), "every logged span joined: {stderr:?}");
    let joined = joined_receiver.spans();
    assert_eq!(joined.len(), logged.len(), "{stderr:?}");
    assert_eq!(export_summary(&stderr), (logged.len() as u64, 0, 0), "{stderr:?}");
    let by_parent: HashMap<&str, &Value> = joined.iter().map(|s| (s["parent_span_id"].as_str().unwrap(), s)).collect();
    for (i, input) in logged.iter().enumerate() {
        let id = hex16(u(&input["span_id"]));
        let span = by_parent.get(id.as_str()).unwrap_or_else(|| panic!("no child of {input}: {joined:?}"));
        assert_eq!(span["trace_id"], format!("4bf92f3577b34da6a3ce929d{:08x}", i + 1), "the application's trace");
        assert_ne!(span["span_id"], span["parent_span_id"]);
        assert_eq!(span["name"], input["name"]);
        assert_eq!(u(&span["start_unix_ns"]), u(&input["start_unix_ns"]));
        // The end goes through the timeline's clock pairs: within a microsecond.
        let end = u(&span["end_unix_ns"]);
        assert!(end.abs_diff(u(&input["end_unix_ns"])) <= 1_000, "{span}\n{input}");
        assert_breakdown_sums_to_duration(span);
        assert_eq!(span["resource"]["service.name"], comm.as_str(), "the recorded process's name by default");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn otlp_an_http_span_keeps_the_callers_trace_id_and_parent() {
    let Some(python) = python("otlp_an_http_span_keeps_the_callers_trace_id_and_parent") else { return };
    let dir = temp_dir("otlp-http");
    let server = Server::start_with(None, &["--no-markers"]);
    let receiver = Receiver::start(&python, &dir.join("http.jsonl"));
    let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let request = |headers: &str| {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        write!(stream, "GET /cpu?ms=5 HTTP/1.1\r\nHost: test\r\n{headers}Connection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        std::io::Read::read_to_string(&mut stream, &mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    };
    let (lines, stderr) = spans_around(&server, &["--http", "--otlp", &receiver.url()], || {
        request(&format!("traceparent: 00-{trace}-{parent}-01\r\nX-Request-Id: traced\r\n"));
        request("X-Request-Id: untraced\r\n");
    });
    assert_eq!(lines.len(), 2, "{stderr:?}");
    let spans = receiver.spans();
    assert_eq!(spans.len(), 2, "{stderr:?}");
    let by_request = |id: &str| -> &Value {
        spans.iter().find(|s| s["attributes"]["tracer.request_id"] == id).unwrap_or_else(|| panic!("{id}: {spans:?}"))
    };
    let traced = by_request("traced");
    assert_eq!(traced["trace_id"], trace, "{traced}");
    assert_eq!(traced["parent_span_id"], parent, "{traced}");
    let line = lines.iter().find(|l| l.trace_id.as_deref() == Some(trace)).expect("the span line has the trace id");
    assert_eq!(traced["span_id"], hex16(line.span_id));
    assert_eq!(traced["name"], "GET /cpu");
    assert_eq!(traced["kind"], 2, "SERVER: {traced}");
    assert_eq!(attr(traced, "http.request.method"), "GET");
    assert_eq!(attr(traced, "url.path"), "/cpu");
    assert_eq!(attr_u64(traced, "http.response.status_code"), 200);
    assert_eq!(attr_u64(traced, "process.pid"), u64::from(server.pid()));
    assert!(attr_u64(traced, "tracer.on_cpu_ns") >= 5_000_000, "{traced}");
    assert_breakdown_sums_to_duration(traced);

    let untraced = by_request("untraced");
    assert!(is_trace_id(&untraced["trace_id"]), "{untraced}");
    assert_ne!(untraced["trace_id"], trace);
    assert_eq!(untraced["parent_span_id"], "", "no traceparent, no parent");
    assert_breakdown_sums_to_duration(untraced);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn otlp_a_stopped_or_stalled_collector_costs_spans_not_tracing() {
    let Some(python) = python("otlp_a_stopped_or_stalled_collector_costs_spans_not_tracing") else { return };
    let dir = temp_dir("otlp-down");
    // Stopped: its port refuses connections.
    let receiver = Receiver::start(&python, &dir.join("none.jsonl"));
    let url = receiver.url();
    drop(receiver);
    let server = Server::start(None);
    let (lines, stderr) = spans_around(&server, &["--otlp", &url], || {
        for _ in 0..10 {
            server.get("/plain");
        }
    });
    assert_eq!(lines.len(), 10, "tracing went on: {stderr:?}");
    let warnings = stderr.iter().filter(|l| l.contains("cannot send spans to")).count();
    assert_eq!(warnings, 1, "one warning, not one per batch: {stderr:?}");
    assert_eq!(export_summary(&stderr), (0, 0, 10), "{stderr:?}");

    // Stalled: it accepts connections and never answers, so the queue fills
    // while 30,000 spans are made. In rounds of 1,000 with 40 ms between
    // them (under 25,000 a second; a round fits in the span ring even if the
    // loader sleeps through it), so spans lost would be the export's doing.
    // Back to back (300,000 a second here) a loaded CI host once lost two
    // thirds in the kernel's ring.
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", stalled.local_addr().unwrap());
    let mut load = Load::start(&["spans", "30000", "1000", "40"]);
    let pid = load.pid().to_string();
    // Lines to a file: 30,000 of them would fill a pipe read only at the end.
    let lines = dir.join("stalled.jsonl");
    let tracer = Tracer::start(&["spans", "-p", &pid, "--otlp", &url, "--keep-waiting", "--json", lines.to_str().unwrap()]);
    load.run_work();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (status, _, stderr) = tracer.stop_with(libc::SIGINT);
    assert!(status.success(), "{stderr:?}");
    let traced = std::fs::read_to_string(&lines).unwrap().lines().count() as u64;
    // Tracing went on: every span was made a line, or counted as lost by
    // the kernel side (never because of the export).
    let lost: u64 = stderr
        .iter()
        .find_map(|l| l.strip_prefix("tracer: warning: ")?.strip_suffix(" spans were lost (open-span table or span ring buffer full)"))
        .map_or(0, |n| n.parse().unwrap());
    assert_eq!(traced + lost, 30_000, "{stderr:?}");
    assert!(traced >= 20_000, "{traced} spans; {stderr:?}");
    let (sent, dropped, failed) = export_summary(&stderr);
    assert_eq!(sent, 0);
    assert!(dropped > 0, "the bounded queue overflowed: {stderr:?}");
    assert_eq!(dropped + failed, traced, "every span is accounted for: {stderr:?}");
    assert_eq!(stderr.iter().filter(|l| l.contains("cannot send spans to")).count(), 1, "{stderr:?}");
    load.finish();
    drop(stalled);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn otlp_a_bad_url_is_one_line_before_tracing() {
    let me = std::process::id().to_string();
    for (args, says) in [
        (vec!["spans", "-p", &me, "--otlp", "https://127.0.0.1:4318"], "only plain http:// is supported"),
        (vec!["spans", "-p", &me, "--otlp", "127.0.0.1:4318"], "is not a URL"),
        (vec!["spans", "join", "--timeline", "t", "--spans", "s", "--otlp", "http://h:99999"], "is not a URL"),
    ] {
        let line = one_line_error(&args);
        assert!(line.contains("--otlp") && line.contains(says), "{line}");
    }
}
