//! `tracer spans --http` on a Go net/http server, not pinned, under h2load:
//! the runtime runs goroutines on a few OS threads, and its background
//! read of each keep-alive connection can take the first byte of the next
//! request on its own.
use std::time::Duration;

use tracer_tests::*;

/// `tracer spans -p <server> --http` while h2load sends `requests` over
/// `connections`; returns the spans and h2load's count of requests answered.
fn spans_under_h2load(server: &GoServer, requests: u32, connections: u32) -> (Vec<SpanRecord>, u64) {
    let pid = server.pid().to_string();
    let tracer = Tracer::start(&["spans", "-p", &pid, "--http"]);
    let answered = server.h2load_h1(requests, connections);
    std::thread::sleep(Duration::from_millis(300));
    let (status, stdout, stderr) = tracer.stop_with(libc::SIGINT);
    assert!(status.success(), "{stderr:?}");
    eprintln!("{}", stderr.join("\n"));
    (span_lines(&stdout), answered)
}

/// Spans whose parts sum to their wall time within 5%.
fn whole_share(spans: &[SpanRecord]) -> f64 {
    let whole = spans.iter().filter(|s| parts(s).abs_diff(s.wall_ns) as f64 <= 0.05 * s.wall_ns as f64).count();
    whole as f64 / spans.len() as f64
}

#[test]
fn go_net_http_requests_are_spans_with_whole_breakdowns_and_contention_is_blamed() {
    if !bpf_available("go_net_http_requests_are_spans_with_whole_breakdowns_and_contention_is_blamed") {
        return;
    }
    let dir = temp_dir("go");
    let server = GoServer::start(&dir);

    let (all, answered) = spans_under_h2load(&server, 40_000, 8);
    assert_eq!(answered, 40_000, "h2load's requests all answered");
    assert_eq!(all.len() as u64, answered, "one span per request h2load got an answer to");
    for span in &all {
        let http = span.http.as_ref().unwrap_or_else(|| panic!("HTTP fields: {span:?}"));
        assert_eq!((http.http_method.as_str(), http.http_path.as_str(), http.http_status), ("GET", "/plain", Some(200)), "{span:?}");
        assert_eq!(span.pid, server.pid());
    }
    let whole = whole_share(&all);
    let moved: Vec<&SpanRecord> = all.iter().filter(|s| s.moved_between_threads).collect();
    let between: u64 = moved.iter().map(|s| s.between_threads_ns).sum();
    let moved_wall: u64 = moved.iter().map(|s| s.wall_ns).sum();
    eprintln!(
        "{:.2}% of {} spans whole, {} moved between threads ({:.0}% of their time between the threads)",
        whole * 100.0,
        all.len(),
        moved.len(),
        between as f64 * 100.0 / moved_wall.max(1) as f64
    );
    assert!(whole >= 0.99, "{:.2}% of spans have parts summing to wall within 5%", whole * 100.0);
    // A request answered on another thread than the one that read it is
    // followed across both: no span is left without a breakdown.
    for span in &moved {
        assert_ne!(span.tid, span.tid_end, "{span:?}");
        assert!(parts(span).abs_diff(span.wall_ns) as f64 <= 0.05 * span.wall_ns as f64, "a breakdown: {span:?}");
    }

    // One connection: the server sleeps between requests, and each request
    // starts with its wakeup, so waits for a CPU land in the spans. Then
    // busy processes on both CPUs: the server's requests wait behind them.
    let (alone, _) = spans_under_h2load(&server, 2_000, 1);
    let (busy0, mut busy_pids) = busy_neighbours(0);
    let (busy1, pids1) = busy_neighbours(1);
    busy_pids.extend(pids1);
    let (contended, answered) = spans_under_h2load(&server, 2_000, 1);
    drop((busy0, busy1));
    assert_eq!(contended.len() as u64, answered, "one span per request answered under contention");
    assert!(whole_share(&contended) >= 0.99, "{:.2}% whole under contention", whole_share(&contended) * 100.0);
    // Contention is found: most of the span time goes to waiting for a CPU,
    // and the spans that waited say so: they hold most of that waiting
    // (how many requests hit a wait is the scheduler's doing: 6% to 47% of
    // them in runs here); and blamed: the busy processes held the CPU for
    // most of those waits.
    let share = |spans: &[SpanRecord]| {
        spans.iter().filter(|s| s.verdict == Verdict::CpuContention).count() as f64 / spans.len() as f64
    };
    let runq = |spans: &[SpanRecord]| {
        spans.iter().map(|s| s.runq_wait_ns).sum::<u64>() as f64 / spans.iter().map(|s| s.wall_ns).sum::<u64>() as f64
    };
    let (before, after) = (share(&alone), share(&contended));
    let (waited_before, waited_after) = (runq(&alone), runq(&contended));
    let (mut waited, mut blamed) = (0, 0);
    for span in contended.iter().filter(|s| s.verdict == Verdict::CpuContention) {
        waited += span.runq_wait_ns;
        blamed += blamed_on(span, &busy_pids);
    }
    let all_waits: u64 = contended.iter().map(|s| s.runq_wait_ns).sum();
    eprintln!(
        "cpu-contention spans: {:.1}% alone, {:.1}% with busy neighbours; waiting for a CPU: {:.0}% -> {:.0}% of span time; \
         {waited} of the {all_waits} ns waited are in cpu-contention spans, busy processes held {blamed} ns of it",
        before * 100.0,
        after * 100.0,
        waited_before * 100.0,
        waited_after * 100.0
    );
    assert!(waited_after >= 0.5 && waited_after >= waited_before + 0.2, "runq share {waited_before} -> {waited_after}");
    assert!(after >= 0.01, "share of cpu-contention spans {before} -> {after}");
    assert!(waited * 10 >= all_waits * 8, "{waited} of the {all_waits} ns waited are in cpu-contention spans");
    assert!(blamed * 10 >= waited * 8, "busy processes held {blamed} of {waited} ns of the contended spans' waits");
}

/// `Upgrade: h2c`: nghttp asks, on its first HTTP/1.1 request, to switch the
/// connection to HTTP/2, the Go server (x/net's h2c) answers `101` and then
/// that request as stream 1 in HTTP/2, and the other requests go as HTTP/2
/// streams. Both traced in one recording: each request is one span on each
/// side, the upgrading one too, from its start to the end of its answer in
/// HTTP/2 (not the `101`), as long as nghttp itself timed it.
#[test]
fn requests_on_a_connection_upgraded_to_h2c_are_spans_on_both_sides() {
    if !bpf_available("requests_on_a_connection_upgraded_to_h2c_are_spans_on_both_sides") {
        return;
    }
    const SLEEP_MS: u64 = 20;
    let dir = temp_dir("go-h2c");
    let server = GoServer::start(&dir);
    let cgroup = TestCgroup::create("tracer-h2c-upgrade");
    cgroup.add(server.pid());
    let tracer = Tracer::start(&["spans", "--cgroup", cgroup.path.to_str().unwrap(), "--http", "--http-query"]);
    let mut timed = Vec::new();
    for connection in 0..3 {
        let paths: Vec<String> = (0..3).map(|n| format!("/sleep?ms={SLEEP_MS}&c={connection}&n={n}")).collect();
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        let request_id = format!("upgrade-{connection}");
        for request in server.nghttp_upgrade(&cgroup.path, &request_id, &paths) {
            timed.push((request_id.clone(), request));
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let (status, stdout, stderr) = tracer.stop_with(libc::SIGINT);
    assert!(status.success(), "{stderr:?}");
    let spans = span_lines(&stdout);
    let status = |s: &SpanRecord| s.http.as_ref().and_then(|h| h.http_status);
    assert!(spans.iter().all(|s| status(s) != Some(101)), "no span ends at the 101: {spans:?}");
    for (request_id, request) in &timed {
        assert_eq!(request.status, 200, "{request:?}");
        let of_request = |kind: SpanKind| -> &SpanRecord {
            let found: Vec<&SpanRecord> = spans
                .iter()
                .filter(|s| s.kind == kind && s.http.as_ref().is_some_and(|h| h.http_path == request.path))
                .collect();
            assert_eq!(found.len(), 1, "one {kind:?} span of {request:?}: {spans:?} {stderr:?}");
            found[0]
        };
        let (server_span, client_span) = (of_request(SpanKind::Server), of_request(SpanKind::Client));
        for span in [server_span, client_span] {
            let http = span.http.as_ref().unwrap();
            assert_eq!((http.http_method.as_str(), http.http_status), ("GET", Some(200)), "{span:?}");
            assert_eq!(http.request_id.as_deref(), Some(request_id.as_str()), "{span:?}");
            assert_parts_sum_to_wall(span);
            assert!(span.wall_ns >= SLEEP_MS * 1_000_000, "the handler's sleep is inside: {span:?}");
        }
        assert_eq!(server_span.pid, server.pid());
        assert_eq!(client_span.http.as_ref().unwrap().peer.as_deref(), Some(&*format!("127.0.0.1:{}", server.port)));
        // The client's span is the request as nghttp timed it (within 2 ms
        // and 10%: its clock is read around the syscalls the kernel saw),
        // and the server's is inside it, within 1 ms at each end. (A server
        // span starts at the wakeup of the run in which its thread read the
        // request: for a new connection's first request, that can be the
        // wakeup for its accept, a little before the request was written.
        // It ends when the write of the response's end returns, which can
        // be after the client's read of it returned on the other CPU.)
        let diff = client_span.wall_ns.abs_diff(request.process_ns);
        assert!(diff <= 2_000_000 + request.process_ns / 10, "client span {} ns, nghttp {request:?}", client_span.wall_ns);
        assert!(server_span.start_unix_ns + 1_000_000 >= client_span.start_unix_ns, "{server_span:?} {client_span:?}");
        let end = |s: &SpanRecord| s.start_unix_ns + s.wall_ns;
        assert!(end(server_span) <= end(client_span) + 1_000_000, "{server_span:?} {client_span:?}");
    }
    let upgrading = timed.iter().filter(|(_, r)| r.stream == 1).count();
    assert_eq!(upgrading, 3, "each connection's first request asked for the upgrade: {timed:?}");
    assert!(
        stderr.iter().any(|l| l.contains("HTTP/2: 6 connections") && l.contains(" 0 connections no longer followed")),
        "{stderr:?}"
    );
}
