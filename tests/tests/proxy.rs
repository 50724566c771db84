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

/// GET `path` through the proxy on a connection of its own; the client's
/// own time for it.
fn get_through(port: u16, path: &str) -> Duration {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: proxy\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    started.elapsed()
}

fn end_ns(span: &SpanRecord) -> u64 {
    span.start_unix_ns + span.wall_ns
}

#[test]
fn a_proxied_request_is_one_span_in_the_proxy_and_one_in_the_application_sharing_its_request_id() {
    if !bpf_available("a_proxied_request_is_one_span_in_the_proxy_and_one_in_the_application_sharing_its_request_id") {
        return;
    }
    const REQUESTS: usize = 20;
    const SLEEP_MS: u64 = 20;
    let dir = temp_dir("proxy");
    let app = Server::start_with(None, &["--no-markers"]);
    let proxy = Nginx::start_proxy(&dir, None, app.port);
    let (worker, app_pid) = (proxy.worker.to_string(), app.pid().to_string());
    let tracer = Tracer::start(&["spans", "--http", "-p", &worker, "-p", &app_pid]);
    let path = format!("/sleep?ms={SLEEP_MS}");
    let slowest = (0..REQUESTS).map(|_| get_through(proxy.port, &path)).max().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (status, stdout, stderr) = tracer.stop_with(libc::SIGINT);
    assert!(status.success(), "{stderr:?}");
    let spans = span_lines(&stdout);

    let in_proxy: Vec<&SpanRecord> = spans.iter().filter(|s| s.pid == proxy.worker).collect();
    let in_app: Vec<&SpanRecord> = spans.iter().filter(|s| s.pid == app.pid()).collect();
    assert_eq!((in_proxy.len(), in_app.len()), (REQUESTS, REQUESTS), "{spans:#?}\n{stderr:?}");
    let mut ids = std::collections::HashSet::new();
    for outer in &in_proxy {
        let http = outer.http.as_ref().unwrap_or_else(|| panic!("HTTP fields: {outer:?}"));
        assert_eq!((http.http_path.as_str(), http.http_status), ("/sleep", Some(200)), "{outer:?}");
        let id = http.request_id.as_deref().unwrap_or_else(|| panic!("nginx's $request_id: {outer:?}"));
        assert!(ids.insert(id.to_owned()), "request ids are unique: {id}");
        let inner: Vec<&&SpanRecord> =
            in_app.iter().filter(|s| s.http.as_ref().and_then(|h| h.request_id.as_deref()) == Some(id)).collect();
        assert_eq!(inner.len(), 1, "the application's span of request {id}: {in_app:#?}");
        let inner = inner[0];
        assert_eq!(inner.http.as_ref().unwrap().http_path, "/sleep", "{inner:?}");
        // The application's span lies within the proxy's, which waited on it.
        assert!(inner.start_unix_ns >= outer.start_unix_ns && end_ns(inner) <= end_ns(outer), "{outer:?}\n{inner:?}");
        assert!(inner.wall_ns >= SLEEP_MS * 1_000_000, "{inner:?}");
        assert!(outer.wall_ns <= slowest.as_nanos() as u64, "no longer than the client waited: {outer:?}");
        assert_parts_sum_to_wall(outer);
        assert_parts_sum_to_wall(inner);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
