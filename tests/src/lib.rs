//! Helpers for the integration tests: run the real `tracer` binary and the
//! `tracer-load` workloads, read the kernel's own accounting, read reports
//! and span lines into the library's own types.
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;
pub use cpu_quota::QuotaCgroup;
pub use go::GoServer;
pub use nginx::Nginx;
pub use python::{perfetto_decode, reference_python, slice_of};
pub use usage::{peak_rss_kib, process_cpu_ns, rss_kib};
pub use tracer_user::{
    model::spans::{SpanKind, SpanRecord, Verdict},
    output::{
        hist_json::HistJson,
        report::{ProcessJson, Report, ThreadJson},
    },
};

mod cpu_quota;
mod go;
mod nginx;
mod python;
mod usage;

/// Whether BPF tests can run here. Without root they are skipped, unless
/// TRACER_REQUIRE_BPF=1 (set by `cargo xtask test` and CI), which makes a
/// missing privilege a failure instead of a silent pass.
pub fn bpf_available(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("TRACER_REQUIRE_BPF").as_deref() == Ok("1") {
        panic!("{test} needs root to load eBPF programs (TRACER_REQUIRE_BPF=1 forbids skipping)");
    }
    eprintln!("SKIPPED {test}: needs root (run `cargo xtask test`)");
    false
}

fn workspace_binary(env: &str, name: &str) -> PathBuf {
    std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release").join(name)
    })
}

pub fn tracer_bin() -> PathBuf {
    workspace_binary("TRACER_BIN", "tracer")
}

pub fn load_bin() -> PathBuf {
    workspace_binary("TRACER_LOAD_BIN", "tracer-load")
}

pub fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tracer-it-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a temp dir");
    dir
}

pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill on a pid we started.
    unsafe { libc::kill(pid as i32, sig) };
}

/// A running `tracer` whose probes are attached.
pub struct Tracer {
    child: Child,
    /// Read as it comes: a pipe left unread would fill and stall tracer's
    /// writes, and with them its draining of the kernel's rings.
    stdout: Option<std::thread::JoinHandle<String>>,
    stderr: mpsc::Receiver<String>,
    pub stderr_seen: Vec<String>,
}

impl Tracer {
    /// Starts `tracer ARGS` and waits until it says it is recording.
    pub fn start(args: &[&str]) -> Tracer {
        let mut child = Command::new(tracer_bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", tracer_bin().display()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut out = child.stdout.take().expect("piped");
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            out.read_to_string(&mut text).expect("reading tracer stdout");
            text
        });
        let mut tracer = Tracer { child, stdout: Some(stdout), stderr: rx, stderr_seen: Vec::new() };
        loop {
            match tracer.stderr.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    let ready = line.starts_with("Recording") || line.starts_with("Tracing");
                    tracer.stderr_seen.push(line);
                    if ready {
                        return tracer;
                    }
                }
                Err(_) => {
                    let _ = tracer.child.kill();
                    panic!("tracer {args:?} did not start recording: {:?}", tracer.stderr_seen);
                }
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (up to 20 s) for a line on stderr that `found` accepts;
    /// returns it. The lines seen are kept for `wait`.
    pub fn wait_for_stderr(&mut self, what: &str, found: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = self.stderr.recv_timeout(left) else { break };
            self.stderr_seen.push(line.clone());
            if found(&line) {
                return line;
            }
        }
        panic!("tracer did not say {what}: {:?}", self.stderr_seen);
    }

    /// Sends `sig` and waits for exit; returns status, stdout, all stderr.
    pub fn stop_with(self, sig: i32) -> (ExitStatus, String, Vec<String>) {
        signal(self.child.id(), sig);
        self.wait()
    }

    /// Stops with `sig` (None: waits for it to end by itself), requires a
    /// clean exit, and returns the report it wrote to `out`.
    pub fn report(self, sig: Option<i32>, out: &std::path::Path) -> Report {
        let (status, _, stderr) = match sig {
            Some(sig) => self.stop_with(sig),
            None => self.wait(),
        };
        assert!(status.success(), "tracer failed: {stderr:?}");
        read_report(out)
    }

    /// Stops with `sig`, requires a clean exit, returns stdout.
    pub fn output(self, sig: Option<i32>) -> String {
        let (status, stdout, stderr) = match sig {
            Some(sig) => self.stop_with(sig),
            None => self.wait(),
        };
        assert!(status.success(), "tracer failed: {stderr:?}");
        stdout
    }

    pub fn wait(mut self) -> (ExitStatus, String, Vec<String>) {
        let status = self.child.wait().expect("waiting for tracer");
        let stdout = self.stdout.take().map(|reader| reader.join().expect("stdout reader")).unwrap_or_default();
        // To the end of the pipe: lines tracer wrote just before exiting
        // may not have reached the channel yet (try_iter missed them).
        self.stderr_seen.extend(self.stderr.iter());
        (status, stdout, std::mem::take(&mut self.stderr_seen))
    }
}

/// A tracer a failed test left running is stopped, not left tracing.
impl Drop for Tracer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A running `tracer-load` workload; killed when dropped.
pub struct Load {
    pub child: Child,
    pub tids: Vec<u32>,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Load {
    pub fn start(args: &[&str]) -> Load {
        let mut child = Command::new(load_bin())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", load_bin().display()));
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("reading the ready line");
        let tids = line
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("unexpected output from tracer-load: {line:?}"))
            .split_whitespace()
            .map(|t| t.parse().expect("tid"))
            .collect();
        Load { child, tids, stdout }
    }

    /// For the on-cue workloads: start the work, wait until it is done, and
    /// return what it printed after `done`.
    pub fn run_work(&mut self) -> String {
        self.cue();
        self.wait_done()
    }

    /// For the on-cue workloads: start the work, without waiting for it.
    pub fn cue(&mut self) {
        let stdin = self.child.stdin.as_mut().expect("piped stdin");
        stdin.write_all(b"go\n").expect("cueing the workload");
        stdin.flush().expect("cueing the workload");
    }

    /// Waits until cued work is done; returns what it printed after `done`.
    pub fn wait_done(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("reading the done line");
        line.strip_prefix("done ")
            .unwrap_or_else(|| panic!("unexpected output from tracer-load: {line:?}"))
            .trim()
            .to_owned()
    }

    /// Lets an on-cue workload exit, and reaps it.
    pub fn finish(mut self) {
        drop(self.child.stdin.take());
        let status = self.child.wait().expect("reaping the workload");
        assert!(status.success(), "workload failed: {status}");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(&self) {
        signal(self.pid(), libc::SIGSTOP);
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kernel's own per-thread accounting (CONFIG_SCHED_INFO).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedstat {
    pub on_cpu_ns: u64,
    pub run_delay_ns: u64,
    pub timeslices: u64,
}

pub fn schedstat(path: &str) -> Schedstat {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let f: Vec<u64> = text.split_whitespace().map(|v| v.parse().expect("number")).collect();
    Schedstat { on_cpu_ns: f[0], run_delay_ns: f[1], timeslices: f[2] }
}

pub fn thread_schedstat(pid: u32, tid: u32) -> Schedstat {
    schedstat(&format!("/proc/{pid}/task/{tid}/schedstat"))
}

/// The time the hypervisor has taken from `cpu` since boot (`steal` in
/// /proc/stat), in ns: counted in clock ticks, so up to a tick short.
pub fn cpu_steal_ns(cpu: u32) -> u64 {
    const STEAL_FIELD: usize = 8;
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let label = format!("cpu{cpu}");
    let line = stat.lines().find(|l| l.split_whitespace().next() == Some(label.as_str())).expect("the CPU's line");
    let ticks: u64 = line.split_whitespace().nth(STEAL_FIELD).and_then(|v| v.parse().ok()).expect("steal ticks");
    ticks * clock_tick_ns()
}

/// One clock tick of /proc/stat, in ns.
pub fn clock_tick_ns() -> u64 {
    // SAFETY: sysconf has no preconditions.
    1_000_000_000 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64
}

pub fn read_report(path: &std::path::Path) -> Report {
    serde_json::from_str(&read_report_text(path))
        .unwrap_or_else(|e| panic!("report {} is not a tracer report: {e}", path.display()))
}

/// The report as untyped JSON, for checks of the format itself (which the
/// typed `Report` would hide: a renamed field reads back just the same).
pub fn read_report_json(path: &std::path::Path) -> Value {
    serde_json::from_str(&read_report_text(path)).expect("report is JSON")
}

fn read_report_text(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("report {} missing: {e}", path.display()))
}

pub fn process(report: &Report, pid: u32) -> &ProcessJson {
    report
        .processes
        .iter()
        .find(|p| p.pid == pid)
        .unwrap_or_else(|| panic!("pid {pid} missing from the report"))
}

pub fn thread(process: &ProcessJson, tid: u32) -> &ThreadJson {
    process
        .threads
        .iter()
        .find(|t| t.tid == tid)
        .unwrap_or_else(|| panic!("tid {tid} missing from process {}", process.pid))
}

pub fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("expected an unsigned integer, got {v}"))
}

/// Asserts |actual - expected| <= max(rel * expected, abs_ns).
pub fn assert_close(what: &str, actual: u64, expected: u64, rel: f64, abs_ns: u64) {
    let diff = actual.abs_diff(expected);
    let allowed = ((expected as f64 * rel) as u64).max(abs_ns);
    eprintln!(
        "{what}: tracer {actual}, kernel {expected}, diff {:.3}%",
        diff as f64 * 100.0 / expected.max(1) as f64
    );
    assert!(
        diff <= allowed,
        "{what}: tracer {actual} vs kernel {expected} (diff {diff} > allowed {allowed})"
    );
}

/// Like `assert_close`, for a thread's time in one state when the tracer
/// also reported `unaccounted` ns (switch-ins its probes did not see): the
/// kernel's value must then lie between the tracer's and the tracer's plus
/// the unaccounted time, each within `rel`.
pub fn assert_close_given_unaccounted(what: &str, actual: u64, unaccounted: u64, expected: u64, rel: f64, abs_ns: u64) {
    if unaccounted == 0 {
        return assert_close(what, actual, expected, rel, abs_ns);
    }
    let low = (actual as f64 * (1.0 - rel)) as u64;
    let high = ((actual + unaccounted) as f64 * (1.0 + rel)) as u64 + abs_ns;
    eprintln!("{what}: tracer {actual} (+{unaccounted} unaccounted), kernel {expected}");
    assert!(
        (low..=high).contains(&expected),
        "{what}: kernel {expected} outside tracer {actual} .. {actual} + {unaccounted} unaccounted"
    );
}

/// A cgroup v2 directory created for a test, removed when dropped.
pub struct TestCgroup {
    pub path: PathBuf,
}

impl TestCgroup {
    pub fn create(name: &str) -> TestCgroup {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let mount = mountinfo
            .lines()
            .find_map(|l| {
                let (left, right) = l.split_once(" - ")?;
                (right.split(' ').next()? == "cgroup2").then(|| left.split(' ').nth(4))?
            })
            .expect("a cgroup v2 hierarchy is mounted");
        let path = PathBuf::from(mount).join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir(&path);
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TestCgroup { path }
    }

    pub fn add(&self, pid: u32) {
        std::fs::write(self.path.join("cgroup.procs"), pid.to_string())
            .unwrap_or_else(|e| panic!("moving {pid} into {}: {e}", self.path.display()));
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // Processes must leave before the directory can go.
        if let Ok(procs) = std::fs::read_to_string(self.path.join("cgroup.procs")) {
            for pid in procs.split_whitespace() {
                if let Some(parent) = self.path.parent() {
                    let _ = std::fs::write(parent.join("cgroup.procs"), pid);
                }
            }
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// The test HTTP server (`tracer-test-server`); killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    pub fn start(cpu: Option<u32>) -> Server {
        Server::start_with(cpu, &[])
    }

    /// Started with extra arguments (`--no-markers`, `--span-log FILE`).
    pub fn start_with(cpu: Option<u32>, args: &[&str]) -> Server {
        let bin = load_bin().with_file_name("tracer-test-server");
        let mut cmd = Command::new(&bin);
        if let Some(cpu) = cpu {
            cmd.args(["--cpu", &cpu.to_string()]);
        }
        cmd.args(args);
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().strip_prefix("ready ").expect("ready line").parse().unwrap();
        Server { child, port }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// GET `path`; returns the client-measured latency.
    pub fn get(&self, path: &str) -> Duration {
        self.get_with_headers(path).0
    }

    /// GET `path`; returns the client-measured latency and the response.
    pub fn get_with_headers(&self, path: &str) -> (Duration, String) {
        let started = Instant::now();
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        (started.elapsed(), response)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `tracer spans -p <server> ARGS` around `work`; returns the span lines.
pub fn spans_around(server: &Server, args: &[&str], work: impl FnOnce()) -> (Vec<SpanRecord>, Vec<String>) {
    let pid = server.pid().to_string();
    let mut all = vec!["spans", "-p", &pid];
    all.extend_from_slice(args);
    let tracer = Tracer::start(&all);
    work();
    std::thread::sleep(Duration::from_millis(300));
    let (status, stdout, stderr) = tracer.stop_with(libc::SIGINT);
    assert!(status.success(), "{stderr:?}");
    (span_lines(&stdout), stderr)
}

/// The span lines `tracer spans` (or `tracer spans join`) printed.
pub fn span_lines(text: &str) -> Vec<SpanRecord> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a span line ({e}): {l}")))
        .collect()
}

pub fn parts(span: &SpanRecord) -> u64 {
    [
        span.on_cpu_ns,
        span.runq_wait_ns,
        span.iowait_ns,
        span.uninterruptible_ns,
        span.sleep_ns,
        span.downstream_ns,
        span.between_threads_ns,
    ]
    .iter()
    .sum()
}

/// The six parts sum to the wall time within 1%, also for spans during
/// which the kernel did not report one of the thread's switches (filled
/// from its own counters, so `unaccounted_ns` stays under 1%).
pub fn assert_parts_sum_to_wall(span: &SpanRecord) {
    let wall = span.wall_ns;
    let sum = parts(span);
    assert!(sum.abs_diff(wall) as f64 <= 0.01 * wall as f64, "parts {sum} vs wall {wall}: {span:?}");
}

pub fn named<'a>(spans: &'a [SpanRecord], name: &str) -> Vec<&'a SpanRecord> {
    spans.iter().filter(|s| s.name == name).collect()
}


pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Three busy processes pinned to `cpu` (killed when dropped), and their PIDs.
pub fn busy_neighbours(cpu: u32) -> (Vec<Load>, Vec<u32>) {
    let busy: Vec<Load> = (0..3).map(|_| Load::start(&["spin", "1", &cpu.to_string()])).collect();
    let pids = busy.iter().map(Load::pid).collect();
    (busy, pids)
}

/// Nanoseconds of a span's blame charged to `pids`.
pub fn blamed_on(span: &SpanRecord, pids: &[u32]) -> u64 {
    span.blame.iter().filter(|h| pids.contains(&h.pid)).map(|h| h.ns).sum()
}

/// A span slowed by busy neighbours: `cpu-contention`, at least half of it
/// waiting for a CPU, and at least 80% of that wait blamed on them.
pub fn assert_contended(span: &SpanRecord, busy_pids: &[u32]) {
    assert_parts_sum_to_wall(span);
    assert_eq!(span.verdict, Verdict::CpuContention, "{span:?}");
    let (wall, runq) = (span.wall_ns, span.runq_wait_ns);
    assert!(runq * 2 >= wall, "runq {runq} of {wall} ns");
    // The blame is the wait others held the CPU: without what the
    // hypervisor took while the span's thread held it.
    let held = runq - span.stolen_ns;
    let blamed = blamed_on(span, busy_pids);
    assert!(blamed * 10 >= held * 8, "busy processes held {blamed} of {held} ns: {span:?}");
}

/// Runs `tracer ARGS`, which must fail with exactly one line on stderr;
/// returns that line.
pub fn one_line_error(args: &[&str]) -> String {
    let out = Command::new(tracer_bin()).args(args).output().expect("tracer");
    assert!(!out.status.success(), "expected failure: {args:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}
