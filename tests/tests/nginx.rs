//! `tracer spans --http` on a server nobody here wrote: nginx (the Debian
//! package) with one worker, serving a static file under wrk.
use std::time::Duration;

use serde_json::Value;
use tracer_tests::*;

/// `tracer spans -p <worker> --http` while wrk runs.
fn spans_under_load(nginx: &Nginx, connections: u32) -> Vec<Value> {
    let worker = nginx.worker.to_string();
    let tracer = Tracer::start(&["spans", "-p", &worker, "--http"]);
    nginx.load(3, 0, connections);
    std::thread::sleep(Duration::from_millis(300));
    let (status, stdout, stderr) = tracer.stop_with(libc::SIGINT);
    assert!(status.success(), "{stderr:?}");
    stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

fn contention_share(spans: &[Value]) -> f64 {
    spans.iter().filter(|s| s["verdict"] == "cpu-contention").count() as f64 / spans.len() as f64
}

/// Share of all span time spent waiting for a CPU.
fn runq_share(spans: &[Value]) -> f64 {
    let total = |field: &str| spans.iter().map(|s| u(&s[field])).sum::<u64>() as f64;
    total("runq_wait_ns") / total("wall_ns")
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
        assert_eq!(span["pid"], nginx.worker);
        assert_eq!(span["http_method"], "GET", "{span}");
        assert_eq!(span["http_path"], "/index.html", "{span}");
        assert_eq!(span["http_status"], 200, "{span}");
        let id = span["request_id"].as_str().unwrap_or_else(|| panic!("nginx's $request_id: {span}"));
        assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{span}");
        assert!(ids.insert(id.to_owned()), "request ids are unique: {id}");
        assert_parts_sum_to_wall(span);
        let syscalls: Vec<&str> = span["top_syscalls"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert!(syscalls.contains(&"sendfile"), "the span covers the body sent with sendfile: {span}");
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
    for span in contended.iter().filter(|s| s["verdict"] == "cpu-contention") {
        waited += u(&span["runq_wait_ns"]);
        blamed_on_busy += blamed_on(span, &busy_pids);
    }
    assert!(blamed_on_busy * 10 >= waited * 8, "busy processes held {blamed_on_busy} of {waited} ns");
}
