//! `tracer spans --http`: request spans of a server without markers, found
//! in its socket syscalls.
use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use tracer_tests::*;
use tracer_user::model::http::HttpFields;

/// Sends `parts` on one connection (pausing between them) and reads `responses`
/// responses of the test server.
fn exchange(server: &Server, parts: &[&str], responses: usize) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(30));
        }
        stream.write_all(part.as_bytes()).unwrap();
    }
    let mut received = String::new();
    let mut buf = [0u8; 4096];
    while received.matches("HTTP/1.1 ").count() < responses || !received.ends_with('\n') {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed after {received:?}");
        received.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    }
    received
}

fn get(path: &str, request_id: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\nX-Request-Id: {request_id}\r\n\r\n")
}

fn by_request_id<'a>(spans: &'a [SpanRecord], id: &str) -> &'a SpanRecord {
    let found: Vec<&SpanRecord> = spans.iter().filter(|s| request_id(s) == Some(id)).collect();
    assert_eq!(found.len(), 1, "one span with request id {id}: {spans:?}");
    found[0]
}

/// The HTTP fields of a span of `--http`.
fn http(span: &SpanRecord) -> &HttpFields {
    span.http.as_ref().unwrap_or_else(|| panic!("no HTTP fields: {span:?}"))
}

fn request_id(span: &SpanRecord) -> Option<&str> {
    span.http.as_ref().and_then(|h| h.request_id.as_deref())
}

#[test]
fn http_spans_of_a_server_without_markers() {
    if !bpf_available("http_spans_of_a_server_without_markers") {
        return;
    }
    let server = Server::start_with(None, &["--no-markers"]);
    let (spans, stderr) = spans_around(&server, &["--http"], || {
        for i in 0..3 {
            exchange(&server, &[&get(&format!("/cpu?ms=30&i={i}"), &format!("cpu-{i}"))], 1);
            exchange(&server, &[&get("/sleep?ms=20", &format!("sleep-{i}"))], 1);
            exchange(&server, &[&get("/io", &format!("io-{i}"))], 1);
        }
        // Keep-alive: three requests on one connection, one at a time.
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        for i in 0..3 {
            stream.write_all(get("/plain", &format!("keep-{i}")).as_bytes()).unwrap();
            let mut buf = [0u8; 1024];
            let n = stream.read(&mut buf).unwrap();
            assert!(std::str::from_utf8(&buf[..n]).unwrap().starts_with("HTTP/1.1 200"));
        }
        drop(stream);
        // A request head split over two reads: its id is in the second.
        exchange(&server, &["GET /plain HTTP/1.1\r\nHost: te", "st\r\nX-Request-Id: split\r\n\r\n"], 1);
        // Not HTTP: ignored.
        let mut other = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        other.write_all(b"HELLO there\r\nConnection: close\r\n\r\n").unwrap();
        let mut sink = Vec::new();
        let _ = other.read_to_end(&mut sink);
    });
    assert_eq!(spans.len(), 9 + 3 + 1, "{spans:#?}\n{stderr:?}");
    for span in &spans {
        assert_parts_sum_to_wall(span);
        assert_eq!(span.pid, server.pid());
        assert_eq!(http(span).http_method, "GET", "{span:?}");
        assert_eq!(http(span).http_status, Some(200), "{span:?}");
        assert!(!span.moved_between_threads, "{span:?}");
        let path = &http(span).http_path;
        assert!(!path.contains('?'), "query strings are dropped: {span:?}");
        assert_eq!(span.name, format!("GET {path}"));
        let syscalls: Vec<&str> = span.top_syscalls.iter().map(|s| &*s.name).collect();
        assert!(syscalls.contains(&"sendto"), "the span ends after its response is written: {span:?}");
    }
    for i in 0..3 {
        let cpu = by_request_id(&spans, &format!("cpu-{i}"));
        assert_eq!(http(cpu).http_path, "/cpu");
        assert_eq!(cpu.verdict, Verdict::OnCpu, "{cpu:?}");
        assert!(cpu.on_cpu_ns >= 30_000_000, "{cpu:?}");
        let sleep = by_request_id(&spans, &format!("sleep-{i}"));
        assert_eq!(sleep.verdict, Verdict::Blocked, "{sleep:?}");
        assert!(sleep.sleep_ns >= 19_000_000, "{sleep:?}");
        let io = by_request_id(&spans, &format!("io-{i}"));
        assert_eq!(io.verdict, Verdict::Io, "{io:?}");
        let keep = by_request_id(&spans, &format!("keep-{i}"));
        assert_eq!(http(keep).http_path, "/plain");
    }
    let keep_tids: Vec<u32> = (0..3).map(|i| by_request_id(&spans, &format!("keep-{i}")).tid).collect();
    assert!(keep_tids.iter().all(|t| *t == keep_tids[0]), "one connection, one server thread");
    // It began at the first read, so it includes the 30 ms the server then
    // waited in recvfrom for the rest of the head.
    let split = by_request_id(&spans, "split");
    assert!(split.sleep_ns >= 25_000_000, "{split:?}");
    assert_eq!(split.top_syscalls.first().map(|s| &*s.name), Some("recvfrom"), "{split:?}");
}

#[test]
fn http_spans_under_busy_neighbours_are_cpu_contention() {
    if !bpf_available("http_spans_under_busy_neighbours_are_cpu_contention") {
        return;
    }
    let server = Server::start_with(Some(1), &["--no-markers"]);
    let (busy, busy_pids) = busy_neighbours(1);
    let (spans, _) = spans_around(&server, &["--http"], || {
        for i in 0..5 {
            exchange(&server, &[&get("/cpu?ms=20", &format!("busy-{i}"))], 1);
        }
    });
    drop(busy);
    assert_eq!(spans.len(), 5, "{spans:?}");
    for span in &spans {
        assert_contended(span, &busy_pids);
    }
}

#[test]
fn a_request_answered_by_another_thread_keeps_its_breakdown() {
    if !bpf_available("a_request_answered_by_another_thread_keeps_its_breakdown") {
        return;
    }
    const WORK_MS: u64 = 10;
    let server = Server::start_with(Some(1), &["--no-markers"]);
    // The connection's thread reads each request and hands it to a worker
    // thread, woken for it, which works 10 ms on it (unpreempted, the test
    // server makes it SCHED_FIFO) and writes the response.
    let (spans, _) = spans_around(&server, &["--http"], || {
        for i in 0..5 {
            exchange(&server, &[&get(&format!("/handoff?ms={WORK_MS}"), &format!("handoff-{i}"))], 1);
        }
    });
    assert_eq!(spans.len(), 5, "{spans:?}");
    for span in &spans {
        assert!(span.moved_between_threads && span.tid_end != span.tid, "answered on another thread: {span:?}");
        assert_parts_sum_to_wall(span);
        // The worker's work is its own part, not the time between threads:
        // that is only the handing over (a channel send and a wakeup).
        assert!(span.on_cpu_ns >= WORK_MS * 900_000, "the worker's 10 ms: {span:?}");
        assert!(span.between_threads_ns < 2_000_000, "handed over in microseconds: {span:?}");
        assert_eq!(span.verdict, Verdict::OnCpu, "{span:?}");
    }
}

#[test]
fn pipelined_http_requests_are_counted_not_mismeasured() {
    if !bpf_available("pipelined_http_requests_are_counted_not_mismeasured") {
        return;
    }
    let server = Server::start_with(None, &["--no-markers"]);
    let (spans, stderr) = spans_around(&server, &["--http"], || {
        let two = format!("{}{}", get("/plain", "first"), get("/plain", "second"));
        exchange(&server, &[&two], 2);
    });
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!(request_id(&spans[0]), Some("first"));
    let note = stderr.iter().find(|l| l.contains("HTTP requests not made spans")).expect("a note on stderr");
    assert!(note.contains("1 pipelined"), "{note}");
}

#[test]
fn a_connection_written_through_a_dup_descriptor_is_one_exchange() {
    if !bpf_available("a_connection_written_through_a_dup_descriptor_is_one_exchange") {
        return;
    }
    let server = Server::start_with(None, &["--no-markers", "--dup-writer"]);
    let (spans, stderr) = spans_around(&server, &["--http"], || {
        exchange(&server, &[&get("/sleep?ms=5", "dup")], 1);
    });
    assert_eq!(spans.len(), 1, "{spans:?} {stderr:?}");
    let span = &spans[0];
    assert_eq!((request_id(span), span.http.as_ref().and_then(|h| h.http_status)), (Some("dup"), Some(200)), "{span:?}");
    assert_eq!(span.verdict, Verdict::Blocked, "{span:?}");
    assert!(!stderr.iter().any(|l| l.contains("unanswered")), "{stderr:?}");
}

/// `tracer spans --http` traces only the socket syscalls, on their own
/// tracepoints; a `tracer record --pid` of the same server at the same time
/// still sees every syscall. Ground truth: the client's requests, each on
/// its own connection, which the test server serves on a thread of its own.
/// Both probe modes (the syscall programs are classic tracepoints in both,
/// next to different scheduler programs).
#[test]
fn http_spans_and_record_of_one_server_at_once() {
    if !bpf_available("http_spans_and_record_of_one_server_at_once") {
        return;
    }
    const REQUESTS: u64 = 25;
    for probes in ["btf", "tracepoint"] {
        let server = Server::start_with(None, &["--no-markers"]);
        let dir = temp_dir("http_spans_and_record");
        let out = dir.join("report.json");
        let pid = server.pid().to_string();
        let record = Tracer::start(&["record", "--pid", &pid, "--out", out.to_str().unwrap()]);
        let (spans, stderr) = spans_around(&server, &["--http", "--probes", probes], || {
            for _ in 0..REQUESTS {
                server.get("/plain");
            }
        });
        let report = record.report(Some(libc::SIGINT), &out);
        let _ = std::fs::remove_dir_all(dir);

        assert_eq!(spans.len() as u64, REQUESTS, "{probes}: {spans:#?}\n{stderr:?}");
        for span in &spans {
            // Classic tracepoints time a thread from its first switch; these
            // threads are new and may not have had one yet (as before the
            // lean path).
            if probes == "btf" {
                assert_parts_sum_to_wall(span);
            }
            assert_eq!(span.name, "GET /plain", "{span:?}");
            assert_eq!(http(span).http_status, Some(200), "{span:?}");
            let syscalls: Vec<&str> = span.top_syscalls.iter().map(|s| &*s.name).collect();
            assert!(syscalls.contains(&"sendto"), "the span ends after its response is written: {span:?}");
        }
        let server_process = process(&report, server.pid());
        let count = |name: &str| server_process.syscalls.iter().find(|s| s.name == name).map_or(0, |s| s.count);
        let all = &server_process.syscalls;
        // One response write, one close and one thread per connection; the
        // first accept4 may have begun before the recording did.
        assert_eq!(count("sendto"), REQUESTS, "{probes}: {all:?}");
        assert_eq!(count("close"), REQUESTS, "{probes}: {all:?}");
        assert_eq!(count("clone3") + count("clone"), REQUESTS, "{probes}: {all:?}");
        assert!((REQUESTS - 1..=REQUESTS).contains(&count("accept4")), "{probes}: {all:?}");
        assert!(count("recvfrom") >= REQUESTS, "{probes}: {all:?}");
    }
}
