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
        let syscalls: Vec<&str> = span.top_syscalls.iter().map(|s| s.name.as_str()).collect();
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
