//! A reverse proxy in front of the application, as the tracing talks set it
//! up (nginx `proxy_pass` with `proxy_set_header X-Request-ID $request_id`),
//! both traced in one `tracer spans --http` run: one request is a span in
//! each process, and the request id nginx made ties them together.
use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use tracer_tests::*;
use tracer_user::model::spans::SpanKind;

/// GET `path` through the proxy on a connection of its own; the client's
/// own time for it.
fn get_through(port: u16, path: &str) -> Duration {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{}", &response[..response.len().min(300)]);
    started.elapsed()
}

fn end_ns(span: &SpanRecord) -> u64 {
    span.start_unix_ns + span.wall_ns
}

fn request_id(span: &SpanRecord) -> Option<&str> {
    span.http.as_ref().and_then(|h| h.request_id.as_deref())
}

/// The one span of `spans` that `matches`.
fn the<'a>(spans: &'a [SpanRecord], what: &str, matches: impl Fn(&SpanRecord) -> bool) -> &'a SpanRecord {
    let found: Vec<&SpanRecord> = spans.iter().filter(|s| matches(s)).collect();
    assert_eq!(found.len(), 1, "one {what}: {spans:#?}");
    found[0]
}

/// One request's spans: the proxy's own (the root), its outgoing call, and
/// the application's.
struct Flow<'a> {
    root: &'a SpanRecord,
    call: &'a SpanRecord,
    app: &'a SpanRecord,
}

/// GETs of `paths` through the proxy under one `tracer spans --http` of
/// both processes; the spans and the client's time for each request.
fn traced_flows(proxy: &Nginx, app: &Server, paths: &[String]) -> (Vec<SpanRecord>, Vec<Duration>) {
    let (worker, app_pid) = (proxy.worker.to_string(), app.pid().to_string());
    let tracer = Tracer::start(&["spans", "--http", "-p", &worker, "-p", &app_pid]);
    let took: Vec<Duration> = paths.iter().map(|path| get_through(proxy.port, path)).collect();
    let slowest = took.iter().max().copied().unwrap_or_default();
    std::thread::sleep(Duration::from_millis(300));
    let (status, stdout, stderr) = tracer.stop_with(libc::SIGINT);
    assert!(status.success(), "{stderr:?}");
    let spans = span_lines(&stdout);
    let count = |pid: u32, kind: SpanKind| spans.iter().filter(|s| s.pid == pid && s.kind == kind).count();
    let requests = paths.len();
    assert_eq!(
        (count(proxy.worker, SpanKind::Server), count(proxy.worker, SpanKind::Client), count(app.pid(), SpanKind::Server)),
        (requests, requests, requests),
        "{spans:#?}\n{stderr:?}"
    );
    for span in &spans {
        assert_parts_sum_to_wall(span);
        assert!(span.wall_ns <= slowest.as_nanos() as u64, "no longer than the client waited: {span:?}");
    }
    (spans, took)
}

fn flows<'a>(spans: &'a [SpanRecord], proxy: &Nginx) -> Vec<Flow<'a>> {
    let mut ids = std::collections::HashSet::new();
    let roots = spans.iter().filter(|s| s.pid == proxy.worker && s.kind == SpanKind::Server);
    roots
        .map(|root| {
            let id = request_id(root).unwrap_or_else(|| panic!("nginx's $request_id: {root:?}"));
            assert!(ids.insert(id.to_owned()), "request ids are unique: {id}");
            let call = the(spans, "call of the root", |s| s.kind == SpanKind::Client && s.parent_span_id == Some(root.span_id));
            assert_eq!(request_id(call), Some(id), "the call carried the request id: {call:?}");
            let app = the(spans, "application span of the call", |s| s.parent_span_id == Some(call.span_id));
            assert_eq!((app.parent_pid, request_id(app)), (Some(proxy.worker), Some(id)), "{app:?}");
            for (outer, inner) in [(root, call), (call, app)] {
                assert!(inner.start_unix_ns >= outer.start_unix_ns && end_ns(inner) <= end_ns(outer), "{outer:?}\n{inner:?}");
            }
            Flow { root, call, app }
        })
        .collect()
}

#[test]
fn a_proxied_request_is_one_flow_across_the_proxy_and_the_application() {
    if !bpf_available("a_proxied_request_is_one_flow_across_the_proxy_and_the_application") {
        return;
    }
    const REQUESTS: usize = 20;
    const SLEEP_MS: u64 = 20;
    let dir = temp_dir("proxy");
    // The application on CPU 1, where busy processes run later; the proxy
    // on CPU 0.
    let app = Server::start_with(Some(1), &["--no-markers"]);
    let proxy = Nginx::start_proxy(&dir.join("alone"), Some(0), app.port);

    let (spans, _) = traced_flows(&proxy, &app, &vec![format!("/sleep?ms={SLEEP_MS}"); REQUESTS]);
    for Flow { root, call, app: inner } in flows(&spans, &proxy) {
        assert_eq!(call.http.as_ref().unwrap().peer, Some(format!("127.0.0.1:{}", app.port)), "{call:?}");
        assert!(inner.wall_ns >= SLEEP_MS * 1_000_000 && inner.verdict == Verdict::Blocked, "{inner:?}");
        assert!(root.downstream_ns >= SLEEP_MS * 1_000_000, "the proxy waited on the application: {root:?}");
        let verdict = root.downstream_verdict.as_deref().unwrap_or_else(|| panic!("downstream verdict: {root:?}"));
        assert!(verdict.contains("`GET /sleep` (pid ") && verdict.ends_with(" was blocked"), "{verdict}");
    }

    // The application's CPU is taken by busy processes: the proxy's spans
    // say that their time went to a cpu-contention span downstream, blamed
    // on them.
    // A proxy of its own: an application thread that was already waiting
    // in a read of a kept upstream connection when tracing began would not
    // make its next request a span (the read's start was not seen).
    drop(proxy);
    let proxy = Nginx::start_proxy(&dir.join("contended"), Some(0), app.port);
    let (busy, busy_pids) = busy_neighbours(1);
    let (spans, _) = traced_flows(&proxy, &app, &vec!["/cpu?ms=5".to_owned(); REQUESTS]);
    drop(busy);
    let flows = flows(&spans, &proxy);
    let blamed = flows
        .iter()
        .filter(|flow| {
            let verdict = flow.root.downstream_verdict.as_deref().unwrap_or_default();
            verdict.contains(" was cpu-contention behind ")
                && busy_pids.iter().any(|pid| verdict.contains(&format!("(pid {pid})")))
        })
        .count();
    eprintln!("{blamed} of {} proxy spans say their time went to cpu-contention downstream behind a busy process", flows.len());
    let verdicts: Vec<_> = flows.iter().map(|f| (&f.root.downstream_verdict, f.app.verdict)).collect();
    assert!(blamed * 10 >= flows.len() * 8, "{blamed} of {} roots blame the busy processes: {verdicts:#?}", flows.len());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_response_streamed_through_the_proxy_ends_with_its_last_byte() {
    if !bpf_available("a_response_streamed_through_the_proxy_ends_with_its_last_byte") {
        return;
    }
    const BODY: u64 = 1 << 20;
    const ROUNDS: u64 = 8;
    const PAUSE_MS: u64 = 20;
    let dir = temp_dir("proxy-stream");
    let app = Server::start_with(Some(1), &["--no-markers"]);
    let proxy = Nginx::start_proxy(&dir, Some(0), app.port);
    // 1 MiB in 8 rounds 20 ms apart, with a length and chunked: nginx
    // passes each on to the client as it reads it from the application.
    let stream = format!("/stream?kib={}&chunks={ROUNDS}&ms={PAUSE_MS}", BODY / 1024);
    let paths = [stream.clone(), format!("{stream}&chunked=1"), stream.clone(), format!("{stream}&chunked=1")];
    let (spans, took) = traced_flows(&proxy, &app, &paths);
    let streamed_ns = (ROUNDS - 1) * PAUSE_MS * 1_000_000;
    let fastest = took.iter().min().unwrap().as_nanos() as u64;
    let flows = flows(&spans, &proxy);
    assert_eq!(flows.len(), paths.len());
    for Flow { root, call, app: inner } in &flows {
        for span in [root, call, inner] {
            let bytes = span.http.as_ref().and_then(|h| h.response_bytes).unwrap_or_default();
            assert!(span.wall_ns >= streamed_ns && bytes >= BODY, "the whole response, not its first round: {span:?}");
        }
        // The proxy writes its last byte after the application wrote its
        // own, and the client read it then.
        assert!(end_ns(root) >= end_ns(inner), "{root:?}\n{inner:?}");
        assert!(root.wall_ns * 100 >= fastest * 95, "{} of the client's {fastest} ns: {root:?}", root.wall_ns);
        // Its wait on the application: the call, but for the time nginx ran
        // meanwhile (passing the rounds on).
        assert!(root.downstream_ns * 10 >= call.wall_ns * 9, "the proxy waited on the application: {root:?}\n{call:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
