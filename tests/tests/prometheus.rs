//! The Prometheus endpoint, scraped by a real Prometheus server (the
//! Debian package, which `cargo xtask test` installs): its queries over
//! tracer's metrics agree with the kernel's own accounting, the
//! exposition passes `promtool check metrics`, and the number of series
//! stays bounded while hundreds of short-lived processes come and go.
use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use serde_json::Value;
use tracer_tests::*;

/// A Prometheus server on a free loopback port, with its own storage,
/// scraping the given jobs every second; stopped when dropped.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Prometheus {
    fn start(dir: &Path, jobs: &[(&str, u16)]) -> Prometheus {
        let port = free_port();
        let mut config = "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n".to_owned();
        for (job, target) in jobs {
            config += &format!("  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n");
        }
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus (the Debian package; `cargo xtask test` installs it)");
        let prometheus = Prometheus { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(port, "/-/ready").is_none_or(|(status, _)| status != 200) {
            assert!(Instant::now() < deadline, "prometheus did not get ready: {}", log(dir));
            sleep(Duration::from_millis(100));
        }
        prometheus
    }

    /// The result list of an instant query, evaluated now.
    fn query(&self, promql: &str) -> Vec<Value> {
        self.query_path(&format!("/api/v1/query?query={}", url_encode(promql)), promql)
    }

    /// The result list of an instant query, evaluated at `unix_secs`.
    fn query_at(&self, promql: &str, unix_secs: f64) -> Vec<Value> {
        self.query_path(&format!("/api/v1/query?query={}&time={unix_secs:.3}", url_encode(promql)), promql)
    }

    fn query_path(&self, path: &str, promql: &str) -> Vec<Value> {
        let (status, body) = http_get(self.port, path).expect("prometheus answers");
        let answer: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!((status, answer["status"].as_str()), (200, Some("success")), "{promql}: {body}");
        answer["data"]["result"].as_array().expect("a vector").clone()
    }

    /// The value of a query that has exactly one series.
    fn value(&self, promql: &str) -> f64 {
        one_value(promql, &self.query(promql))
    }

    /// The same, evaluated at `unix_secs`.
    fn value_at(&self, promql: &str, unix_secs: f64) -> f64 {
        one_value(promql, &self.query_at(promql, unix_secs))
    }
}

fn one_value(promql: &str, result: &[Value]) -> f64 {
    assert_eq!(result.len(), 1, "{promql}: {result:?}");
    result[0]["value"][1].as_str().expect("a sample").parse().expect("a number")
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

/// The kernel's counters of one thread, read every 50 ms with the time.
struct KernelSamples(Vec<(f64, Schedstat)>);

impl KernelSamples {
    fn record(pid: u32, tid: u32, secs: u64) -> KernelSamples {
        let until = Instant::now() + Duration::from_secs(secs);
        let mut samples = Vec::new();
        while Instant::now() < until {
            samples.push((unix_now(), thread_schedstat(pid, tid)));
            sleep(Duration::from_millis(50));
        }
        KernelSamples(samples)
    }

    /// A counter at `t`, interpolated between the samples around it.
    fn at(&self, t: f64, counter: fn(&Schedstat) -> u64) -> f64 {
        let after = self.0.iter().position(|(at, _)| *at >= t).expect("sampled until then");
        assert!(after > 0, "sampled from before {t}");
        let ((t0, s0), (t1, s1)) = (&self.0[after - 1], &self.0[after]);
        let (v0, v1) = (counter(s0) as f64, counter(s1) as f64);
        v0 + (v1 - v0) * (t - t0) / (t1 - t0)
    }

    /// A counter's rate per second from `from` to `to`.
    fn rate(&self, from: f64, to: f64, counter: fn(&Schedstat) -> u64) -> f64 {
        (self.at(to, counter) - self.at(from, counter)) / (to - from)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        signal(self.child.id(), libc::SIGTERM);
        let _ = self.child.wait();
    }
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
}

/// GET on loopback (HTTP/1.0: a plain body up to the close): status, body.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// tracer's exposition, as scraped.
fn scrape(port: u16) -> String {
    let (status, body) = http_get(port, "/metrics").expect("tracer answers /metrics");
    assert_eq!(status, 200, "{body}");
    body
}

/// `promtool check metrics` (same package) on an exposition.
fn promtool_check(exposition: &str, dir: &Path) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (the Debian package `prometheus`)");
    child.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let saved: PathBuf = dir.join("failed-exposition.txt");
    if !out.status.success() {
        std::fs::write(&saved, exposition).unwrap();
    }
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}) on {}: {}{}",
        out.status,
        saved.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Label sets of `tracer_on_cpu_seconds_total` in an exposition.
fn series_count(exposition: &str) -> usize {
    exposition.lines().filter(|l| l.starts_with("tracer_on_cpu_seconds_total{")).count()
}

/// Seconds over which the rates are compared with the kernel's counters.
const WINDOW_SECS: u64 = 15;
/// Short-lived processes, and the CPU each burns.
const CHILDREN: u32 = 500;
const CHILD_MS: u64 = 10;
const MAX_SERIES: usize = 10;

/// The factor by which Prometheus' `rate()` over `[window]` evaluated at
/// `eval` scales the slope between its first and last samples (`times`):
/// the span it extrapolates to, over the window. Its rule: an edge closer
/// than 1.1 average sample intervals is extrapolated to, a farther one by
/// half an interval.
fn extrapolated_coverage(times: &[f64], eval: f64, window: f64) -> f64 {
    let (first, last) = (times[0], times[times.len() - 1]);
    let sampled = last - first;
    let average = sampled / (times.len() - 1) as f64;
    let edge = |gap: f64| if gap < average * 1.1 { gap } else { average / 2.0 };
    (sampled + edge(first - (eval - window)) + edge(eval - last)) / window
}

#[test]
fn prometheus_scrapes_agree_with_schedstat_and_series_stay_bounded() {
    if !bpf_available("prometheus_scrapes_agree_with_schedstat_and_series_stay_bounded") {
        return;
    }
    let dir = temp_dir("prometheus");
    let (busy_port, churn_port) = (free_port(), free_port());
    let prometheus = Prometheus::start(&dir, &[("busy", busy_port), ("churn", churn_port)]);

    // Four busy processes pinned to one CPU: each waits for the others.
    let busy: Vec<Load> = (0..4).map(|_| Load::start(&["spin", "1", "1"])).collect();
    let pids: Vec<String> = busy.iter().map(|l| l.pid().to_string()).collect();
    let mut args = vec!["serve".to_owned(), "--listen".into(), format!("127.0.0.1:{busy_port}")];
    pids.iter().for_each(|pid| args.extend(["--pid".to_owned(), pid.clone()]));
    let tracer = Tracer::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (pid, tid) = (busy[0].pid(), busy[0].tids[0]);
    // A few scrapes in before the kernel's counters are sampled, then the
    // window, and the query evaluated at its end.
    sleep(Duration::from_secs(3));
    let kernel = KernelSamples::record(pid, tid, WINDOW_SECS + 1);
    // At the last kernel sample: every sample of the window is within them.
    let eval = kernel.0.last().unwrap().0;
    let exposition = scrape(busy_port);
    let selector = format!(r#"job="busy",pid="{pid}""#);
    let window = format!("[{WINDOW_SECS}s]");
    // The kernel's rates over the span of the samples Prometheus has in
    // the window (the span its rate() is computed over).
    let raw = prometheus.query_at(&format!("tracer_on_cpu_seconds_total{{{selector}}}{window}"), eval);
    let times: Vec<f64> = raw[0]["values"].as_array().unwrap().iter().map(|v| v[0].as_f64().unwrap()).collect();
    let (first, last) = (times[0], *times.last().unwrap());
    assert!(times.len() >= WINDOW_SECS as usize - 2, "scraped every second: {times:?}");

    // rate() extrapolates the increase between the first and last samples
    // to the window, but by only half a scrape interval past an edge that
    // has a scrape missing: the kernel's rate over the samples' span is
    // scaled the same way (a missed scrape at an edge lowers rate() by up
    // to 7% of a 15 s window, which no tracer error causes).
    let coverage = extrapolated_coverage(&times, eval, WINDOW_SECS as f64);
    let on_cpu = prometheus.value_at(&format!("rate(tracer_on_cpu_seconds_total{{{selector}}}{window})"), eval);
    let kernel_on_cpu = kernel.rate(first, last, |s| s.on_cpu_ns) / 1e9 * coverage;
    eprintln!("on-CPU rate: prometheus {on_cpu:.4}, schedstat {kernel_on_cpu:.4}");
    assert!((on_cpu - kernel_on_cpu).abs() <= 0.05 * kernel_on_cpu, "on-CPU rate {on_cpu} vs schedstat {kernel_on_cpu}");

    // The run-queue histogram holds every wait, in seconds: its sum and
    // count per second are the kernel's run delay and timeslices.
    let histogram = "tracer_runq_latency_seconds";
    let wait_rate = prometheus.value_at(&format!("rate({histogram}_sum{{{selector}}}{window})"), eval);
    let kernel_wait_rate = kernel.rate(first, last, |s| s.run_delay_ns) / 1e9 * coverage;
    eprintln!("run-queue wait rate: prometheus {wait_rate:.4}, schedstat {kernel_wait_rate:.4}");
    assert!((wait_rate - kernel_wait_rate).abs() <= 0.05 * kernel_wait_rate, "wait {wait_rate} vs {kernel_wait_rate}");
    let waits = prometheus.value_at(&format!("rate({histogram}_count{{{selector}}}{window})"), eval);
    let kernel_waits = kernel.rate(first, last, |s| s.timeslices) * coverage;
    eprintln!("run-queue waits/s: prometheus {waits:.2}, schedstat {kernel_waits:.2}");
    assert!((waits - kernel_waits).abs() <= 0.05 * kernel_waits, "waits/s {waits} vs timeslices/s {kernel_waits}");
    // Its p99, from the log2 buckets: a wait at least as long as the mean
    // wait the kernel counted (within a bucket's factor of 2), and the
    // median no longer than the p99.
    let quantile = |q: f64| {
        let promql = format!("histogram_quantile({q}, rate({histogram}_bucket{{{selector}}}{window}))");
        prometheus.value_at(&promql, eval)
    };
    let (p50, p99) = (quantile(0.5), quantile(0.99));
    let mean_wait = kernel_wait_rate / kernel_waits;
    eprintln!("run-queue latency: p50 {p50:.6} s, p99 {p99:.6} s, schedstat mean {mean_wait:.6} s");
    assert!(p99.is_finite() && p99 >= mean_wait / 2.0 && p99 <= 64.0 * mean_wait, "p99 {p99} vs mean wait {mean_wait}");
    assert!(p50 <= p99 && p50 >= mean_wait / 8.0, "p50 {p50}, p99 {p99}, mean {mean_wait}");
    drop(tracer);
    drop(busy);
    promtool_check(&exposition, &dir);
    for family in [
        "tracer_on_cpu_seconds_total counter",
        "tracer_off_cpu_seconds_total counter",
        "tracer_runq_latency_seconds histogram",
        "tracer_lost_events_total counter",
        "tracer_untracked_threads_total counter",
        "tracer_probe_in_use gauge",
    ] {
        assert!(exposition.contains(&format!("# TYPE {family}\n")), "{family} missing: {exposition}");
    }
    assert!(exposition.contains("tracer_probe_in_use{probe=\"syscalls\"} 1\n"), "targets' syscalls are traced");

    // Short-lived processes: never more series than --max-series.
    let mut forker = Load::start(&["forker", &CHILDREN.to_string(), &CHILD_MS.to_string()]);
    let tracer = Tracer::start(&[
        "serve",
        "--listen",
        &format!("127.0.0.1:{churn_port}"),
        "--pid",
        &forker.pid().to_string(),
        "--children",
        "--max-series",
        &MAX_SERIES.to_string(),
    ]);
    let started = Instant::now();
    forker.cue();
    let (mut most, mut folded_seen, mut last) = (0, false, String::new());
    // The children burn 5 s of CPU between them, on two CPUs or fewer.
    while started.elapsed() < Duration::from_secs(6) {
        let exposition = scrape(churn_port);
        most = most.max(series_count(&exposition));
        folded_seen |= exposition.lines().any(|l| {
            l.strip_prefix(r#"tracer_folded_label_sets{kind="process"} "#).is_some_and(|n| n.parse::<f64>().unwrap() > 0.0)
        });
        last = exposition;
        sleep(Duration::from_millis(250));
    }
    let children = forker.wait_done();
    assert_eq!(children.split(',').count(), CHILDREN as usize);
    // A few scrapes of the end.
    sleep(Duration::from_secs(3));
    let exposition = scrape(churn_port);
    most = most.max(series_count(&exposition));
    eprintln!("series while {CHILDREN} processes came and went: at most {most}");
    assert!(folded_seen, "the bound was reached, so some label sets were folded into other: {last}");
    assert!((2..=MAX_SERIES).contains(&most), "{most} label sets, --max-series {MAX_SERIES}");
    let in_prometheus = prometheus.value(r#"max_over_time(count(tracer_on_cpu_seconds_total{job="churn"})[30s:1s])"#);
    assert!(in_prometheus <= MAX_SERIES as f64 && in_prometheus >= 2.0, "{in_prometheus} series in prometheus");
    // Folded, not lost: every child's CPU time is in some series.
    let on_cpu = prometheus.value(r#"sum(tracer_on_cpu_seconds_total{job="churn"})"#);
    let least = f64::from(CHILDREN) * CHILD_MS as f64 / 1e3 * 0.99;
    assert!(on_cpu >= least, "{on_cpu} s on-CPU in all series, the children burned {least} s");
    promtool_check(&exposition, &dir);
    drop(tracer);
    forker.finish();
    drop(prometheus);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn prometheus_listen_address_bad_or_taken_fails_in_one_line() {
    if !bpf_available("prometheus_listen_address_bad_or_taken_fails_in_one_line") {
        return;
    }
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let line = one_line_error(&["serve", "--listen", &addr]);
    assert!(line.starts_with(&format!("tracer: cannot listen on {addr} for the metrics: ")), "{line}");
    let out = temp_dir("prometheus-listen").join("r.json");
    let line = one_line_error(&["record", "--out", out.to_str().unwrap(), "--listen", &addr]);
    assert!(line.contains("cannot listen on") && !out.exists(), "{line}");
    let line = one_line_error(&["spans", "-p", "1", "--listen", "localhost:9464"]);
    assert!(line.contains("give IP:PORT"), "{line}");
    let _ = std::fs::remove_dir_all(out.parent().unwrap());
}

/// The sum of a family's samples for the series whose labels contain `has`.
fn sample_sum(exposition: &str, metric: &str, has: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) && l.contains(has))
        .map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).unwrap_or_else(|| panic!("a sample: {l}")))
        .sum()
}

/// `tracer spans --listen`: the endpoint counts the spans the command
/// printed, and keeps the target's run-queue histogram, which holds every
/// wait of the spans (the waits are streamed to the tracer only for it).
#[test]
fn spans_listen_counts_the_printed_spans_and_their_run_queue_waits() {
    if !bpf_available("spans_listen_counts_the_printed_spans_and_their_run_queue_waits") {
        return;
    }
    let server = Server::start(Some(1));
    let (busy, _) = busy_neighbours(1);
    let port = free_port();
    let mut exposition = String::new();
    let (spans, _) = spans_around(&server, &["--listen", &format!("127.0.0.1:{port}")], || {
        for _ in 0..5 {
            server.get("/cpu?ms=20");
        }
        // Past the endpoint's refresh of once a second.
        sleep(Duration::from_millis(1_500));
        exposition = scrape(port);
    });
    drop(busy);
    let cpu = named(&spans, "GET /cpu");
    assert_eq!(cpu.len(), 5, "{spans:?}");
    let counted = sample_sum(&exposition, "tracer_span_duration_seconds_count", r#"name="GET /cpu""#);
    assert_eq!(counted, 5.0, "{exposition}");
    let pid = format!(r#"pid="{}""#, server.pid());
    let spans_waited = cpu.iter().map(|s| s.runq_wait_ns).sum::<u64>() as f64 / 1e9;
    let waited = sample_sum(&exposition, "tracer_runq_latency_seconds_sum", &pid);
    eprintln!("run-queue wait: spans {spans_waited:.4} s, the process's histogram {waited:.4} s");
    assert!(spans_waited > 0.0, "spans behind busy neighbours waited: {cpu:?}");
    assert!(waited >= 0.95 * spans_waited, "histogram {waited} s < the spans' {spans_waited} s: {exposition}");
    assert!(sample_sum(&exposition, "tracer_runq_latency_seconds_count", &pid) >= 5.0, "{exposition}");
}
