//! `tracer spans --http` on a server nobody here wrote: nginx (the Debian
//! package) with one worker, serving a static file under wrk.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use tracer_tests::*;

/// nginx with one worker on 127.0.0.1, pinned to `cpu`; stopped on drop.
struct Nginx {
    master: Child,
    worker: u32,
    port: u16,
}

impl Nginx {
    fn start(dir: &Path, cpu: u32) -> Nginx {
        let port = free_port();
        let www = dir.join("www");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), "x".repeat(2048)).unwrap();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "daemon off;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n  access_log off;\n  sendfile on;\n  client_body_temp_path {dir}/body;\n\
                 proxy_temp_path {dir}/proxy;\n  fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n\
                 scgi_temp_path {dir}/scgi;\n\
                 server {{\n    listen 127.0.0.1:{port};\n    root {www};\n\
                 location / {{ add_header X-Request-Id $request_id always; }}\n  }}\n}}\n",
                dir = dir.display(),
                www = www.display(),
            ),
        )
        .unwrap();
        let nginx = which_nginx();
        let master = Command::new("taskset")
            .args(["-c", &cpu.to_string()])
            .arg(&nginx)
            .args(["-p", &dir.display().to_string(), "-e", &dir.join("error.log").display().to_string(), "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", nginx.display()));
        let master_pid = master.id();
        let mut nginx = Nginx { master, worker: 0, port };
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(50));
            // taskset execs nginx, so the master is our child's pid.
            let children = std::fs::read_to_string(format!("/proc/{master_pid}/task/{master_pid}/children")).unwrap_or_default();
            if let Some(worker) = children.split_whitespace().next().and_then(|w| w.parse().ok())
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                nginx.worker = worker;
                return nginx;
            }
        }
        panic!("nginx did not start: {}", std::fs::read_to_string(dir.join("error.log")).unwrap_or_default());
    }

    /// Runs wrk (`connections` at once) against the static file for `secs`
    /// seconds, pinned to `cpu`.
    fn load(&self, secs: u32, cpu: u32, connections: u32) {
        let status = Command::new("taskset")
            .args(["-c", &cpu.to_string(), "wrk", "-t1", &format!("-c{connections}"), &format!("-d{secs}s")])
            .arg(format!("http://127.0.0.1:{}/index.html", self.port))
            .stdout(Stdio::null())
            .status()
            .expect("wrk (installed by `cargo xtask test`)");
        assert!(status.success());
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        signal(self.master.id(), libc::SIGQUIT);
        let _ = self.master.wait();
    }
}

fn which_nginx() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("nginx (the Debian package; `cargo xtask test` installs it)")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

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
    let nginx = Nginx::start(&dir, 1);

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
    let busy: Vec<Load> = (0..3).map(|_| Load::start(&["spin", "1", "1"])).collect();
    let busy_pids: Vec<u64> = busy.iter().map(|l| u64::from(l.pid())).collect();
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
        blamed_on_busy += span["blame"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| busy_pids.contains(&u(&h["pid"])))
            .map(|h| u(&h["ns"]))
            .sum::<u64>();
    }
    assert!(blamed_on_busy * 10 >= waited * 8, "busy processes held {blamed_on_busy} of {waited} ns");
}
