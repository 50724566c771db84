//! `tracer spans --http` on a server nobody here wrote: nginx (the Debian
//! package) with one worker, serving a static file under wrk.
use std::time::Duration;

use tracer_tests::*;

/// `tracer spans -p <worker> --http` while wrk runs.
fn spans_under_load(nginx: &Nginx, connections: u32) -> Vec<SpanRecord> {
    let worker = nginx.worker.to_string();
    let tracer = Tracer::start(&["spans", "-p", &worker, "--http"]);
    nginx.load(3, 0, connections);
    std::thread::sleep(Duration::from_millis(300));
    let (status, stdout, stderr) = tracer.stop_with(libc::SIGINT);
    assert!(status.success(), "{stderr:?}");
    span_lines(&stdout)
}

fn contention_share(spans: &[SpanRecord]) -> f64 {
    spans.iter().filter(|s| s.verdict == Verdict::CpuContention).count() as f64 / spans.len() as f64
}

/// Share of all span time spent waiting for a CPU.
fn runq_share(spans: &[SpanRecord]) -> f64 {
    let total = |field: fn(&SpanRecord) -> u64| spans.iter().map(field).sum::<u64>() as f64;
    total(|s| s.runq_wait_ns) / total(|s| s.wall_ns)
}

#[test]
fn nginx_requests_are_spans_and_busy_neighbours_show_as_contention() {
    if !bpf_available("nginx_requests_are_spans_and_busy_neighbours_show_as_contention") {
        return;
    }
    let dir = temp_dir("nginx");
    let nginx = Nginx::start(&dir, Some(1));

    let alone = spans_under_load(&nginx, 4);
    assert!(alone.len() > 1000, "{} spans in 3 s of wrk", alone.len());
    let mut ids = std::collections::HashSet::new();
    for span in &alone {
        assert_eq!(span.pid, nginx.worker);
        let http = span.http.as_ref().unwrap_or_else(|| panic!("HTTP fields: {span:?}"));
        assert_eq!(http.http_method, "GET", "{span:?}");
        assert_eq!(http.http_path, "/index.html", "{span:?}");
        assert_eq!(http.http_status, Some(200), "{span:?}");
        let id = http.request_id.as_deref().unwrap_or_else(|| panic!("nginx's $request_id: {span:?}"));
        assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{span:?}");
        assert!(ids.insert(id.to_owned()), "request ids are unique: {id}");
        assert_parts_sum_to_wall(span);
        let syscalls: Vec<&str> = span.top_syscalls.iter().map(|s| &*s.name).collect();
        assert!(syscalls.contains(&"sendfile"), "the span covers the body sent with sendfile: {span:?}");
    }

    // One connection: nginx sleeps between requests, and each request
    // starts with its wakeup, so waits for the CPU land in the spans.
    let alone = spans_under_load(&nginx, 1);
    let (busy, busy_pids) = busy_neighbours(1);
    let contended = spans_under_load(&nginx, 1);
    drop(busy);
    let (before, after) = (contention_share(&alone), contention_share(&contended));
    let (waited_before, waited_after) = (runq_share(&alone), runq_share(&contended));
    eprintln!(
        "cpu-contention spans: {:.2}% alone, {:.2}% with 3 busy processes; waiting for a CPU: {:.0}% -> {:.0}% of span time",
        before * 100.0,
        after * 100.0,
        waited_before * 100.0,
        waited_after * 100.0
    );
    assert!(after >= 2.0 * before && after >= 0.01, "share of cpu-contention spans {before} -> {after}");
    assert!(waited_after >= 0.5 && waited_after >= waited_before + 0.2, "runq share {waited_before} -> {waited_after}");
    let mut blamed_on_busy = 0;
    let mut waited = 0;
    for span in contended.iter().filter(|s| s.verdict == Verdict::CpuContention) {
        waited += span.runq_wait_ns;
        blamed_on_busy += blamed_on(span, &busy_pids);
    }
    assert!(blamed_on_busy * 10 >= waited * 8, "busy processes held {blamed_on_busy} of {waited} ns");
}

/// HTTP/2 in cleartext (h2load's default, with prior knowledge): nginx with
/// `http2` on its plaintext listener and h2load itself, both traced in one
/// recording (a cgroup). Each stream is a server span in nginx and a client
/// span in h2load, with the method, target, status and request id that
/// nginx's access log has for it; its headers are decoded with the
/// connection's HPACK table, many streams at once on each connection.
#[test]
fn http2_streams_of_nginx_and_h2load_are_spans_with_their_headers() {
    if !bpf_available("http2_streams_of_nginx_and_h2load_are_spans_with_their_headers") {
        return;
    }
    const REQUESTS: usize = 400;
    let dir = temp_dir("nginx-h2c");
    let nginx = Nginx::start_h2c(&dir, None);
    let cgroup = TestCgroup::create("tracer-h2c");
    cgroup.add(nginx.worker);
    // Distinct targets, a tenth of them missing (404).
    let base = format!("http://127.0.0.1:{}", nginx.port);
    let uris: Vec<String> = (0..REQUESTS / 4)
        .map(|i| if i % 10 == 9 { format!("{base}/missing?n={i}") } else { format!("{base}/index.html?n={i}") })
        .collect();
    let uri_file = dir.join("uris");
    std::fs::write(&uri_file, uris.join("\n") + "\n").unwrap();
    let tracer = Tracer::start(&["spans", "--cgroup", cgroup.path.to_str().unwrap(), "--http", "--http-query"]);
    // 4 connections of 8 streams at once, each going through the targets.
    let h2load = format!(
        "echo $$ > {}/cgroup.procs && exec h2load -n {REQUESTS} -c 4 -m 8 -i {}",
        cgroup.path.display(),
        uri_file.display()
    );
    let output = std::process::Command::new("sh").args(["-c", &h2load]).output().expect("h2load (nghttp2-client)");
    let report = String::from_utf8_lossy(&output.stdout);
    // h2load counts the 404s as failed, and nothing as errored.
    assert!(report.contains(&format!("{REQUESTS} done")) && report.contains("0 errored"), "{report}");
    std::thread::sleep(Duration::from_millis(300));
    let (status, stdout, stderr) = tracer.stop_with(libc::SIGINT);
    assert!(status.success(), "{stderr:?}");
    let spans = span_lines(&stdout);

    // What nginx says it answered, by request id.
    let log = std::fs::read_to_string(dir.join("access.log")).unwrap();
    let answered: std::collections::HashMap<&str, (&str, &str, u16)> = log
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0], (f[1], f[2], f[3].parse().unwrap()))
        })
        .collect();
    assert_eq!(answered.len(), REQUESTS, "{log}");
    let missing = answered.values().filter(|(_, _, status)| *status == 404).count();
    assert_eq!(missing, REQUESTS / 10, "{log}");
    for kind in [SpanKind::Server, SpanKind::Client] {
        let of_kind: Vec<&SpanRecord> = spans.iter().filter(|s| s.kind == kind).collect();
        assert_eq!(of_kind.len(), REQUESTS, "{kind:?} spans, one per stream: {stderr:?}");
        let mut ids = std::collections::HashSet::new();
        for span in of_kind {
            let http = span.http.as_ref().unwrap_or_else(|| panic!("HTTP fields: {span:?}"));
            let id = http.request_id.as_deref().unwrap_or_else(|| panic!("nginx's request id: {span:?}"));
            assert!(ids.insert(id.to_owned()), "each stream once: {span:?}");
            let seen = (http.http_method.as_str(), http.http_path.as_str(), http.http_status.unwrap_or(0));
            assert_eq!(answered.get(id), Some(&seen), "as nginx logged it: {span:?}");
            assert_parts_sum_to_wall(span);
            assert!(span.wall_ns > 0 && http.response_bytes.unwrap_or(0) > 0, "{span:?}");
            if kind == SpanKind::Server {
                assert_eq!(span.pid, nginx.worker, "{span:?}");
                assert_ne!(span.verdict, Verdict::Moved, "nginx answers on the thread that read: {span:?}");
            } else {
                assert_eq!(http.peer.as_deref(), Some(&*format!("127.0.0.1:{}", nginx.port)), "{span:?}");
            }
        }
    }
    assert!(stderr.iter().any(|l| l.contains("HTTP/2: 8 connections") && l.contains(" 0 connections no longer followed")),
        "{stderr:?}");
}
