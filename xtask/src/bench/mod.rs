//! Benchmarks (never timed tests), each comparing configurations side by
//! side in one run, alternating, and reporting medians:
//!
//! * overhead: `taskset -c 1 perf bench sched pipe` (two tasks ping-ponging
//!   on one CPU, two context switches and two wakeups per op) with no
//!   tracer, `tracer record`, `tracer runqlat` and libbpf-tools `runqlat`;
//! * syscalls: one million getppid calls untraced, with empty programs on the
//!   syscall tracepoints (the floor), with `tracer record` filtering on
//!   another process (what every other process pays), filtering on the
//!   caller itself, and with libbpf-tools `syscount -L` on the caller;
//! * http: nginx (one worker) under wrk and at 20,000 requests/s offered,
//!   untraced, with empty programs on the syscall tracepoints (the floor),
//!   with `tracer record` on its worker, and with `tracer spans --http` on
//!   its worker;
//! * spans: a marker's cost per span, untraced and traced (uprobes, the
//!   marker ring); the test server's throughput at saturation and at 20,000
//!   requests/s offered, untraced, with empty programs on the syscall
//!   tracepoints (the floor), and with `tracer spans` (uprobes, the ring,
//!   the ring without the syscall probes);
//! * live view: CPU used by `tracer` (the TUI, in tmux, refreshing every
//!   second) and by `tracer record`, with 1,000 processes alive;
//! * memory: peak RSS of `tracer record` while 10,000 threads are tracked;
//! * start-up: how long `tracer record` takes to start, the kernel's per-CPU
//!   memory it holds while recording, and the kernel-worker runs its start
//!   and stop cause (what a user comparing /proc schedstat sees);
//! * churn: RSS and CPU of `tracer record` (system-wide and `--pid`) while
//!   a process starts and ends 10,000 threads a second for 10 minutes;
//! * otlp: tracer's CPU at 20,000 spans/s with and without `--otlp`.
//! * flight: the test server's throughput at 20,000 requests/s offered with
//!   the flight recorder always on, tracer's RSS, and the time from a slow
//!   span's end to its dump file.
//! * proxy: nginx as a reverse proxy in front of the test server at 20,000
//!   requests/s offered, untraced and with `tracer spans --http` on both.
//! * metrics: `/metrics` scrape time and size of `tracer serve` with 1,000
//!   processes alive.
//! * h2: nginx speaking HTTP/2 in cleartext under h2load at saturation,
//!   untraced and with `tracer spans --http` on its worker.
//! * exchanges: ns per HTTP exchange of one thread serving loopback
//!   requests, untraced and with `tracer spans --http` in both probe modes.
use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::{setup, util};

mod churn;
mod exchanges;
mod flight;
mod h2;
mod memory;
mod otlp;
mod proxy;
mod span_cpu;
mod spans;
mod metrics;
mod startup;
mod syscalls;
mod tui;

#[derive(Args)]
pub struct BenchArgs {
    /// Alternating rounds per configuration.
    #[arg(long, default_value_t = 7)]
    pub rounds: usize,
    /// Ping-pong loops per `perf bench sched pipe` run.
    #[arg(long, default_value_t = 200_000)]
    pub loops: u64,
    /// Threads alive during the memory benchmark.
    #[arg(long, default_value_t = 10_000)]
    pub threads: u32,
    /// getppid calls per run of the syscall benchmark.
    #[arg(long, default_value_t = 1_000_000)]
    pub syscalls: u64,
    /// Processes alive during the live-view benchmark.
    #[arg(long, default_value_t = 1_000)]
    pub processes: u32,
    /// Seconds each live-view measurement lasts.
    #[arg(long, default_value_t = 20)]
    pub tui_seconds: u64,
    /// Threads started and ended per second in the churn benchmark.
    #[arg(long, default_value_t = 10_000)]
    pub churn_rate: u32,
    /// How long the churn benchmark churns, in seconds.
    #[arg(long, default_value_t = 600)]
    pub churn_seconds: u64,
    /// Run only these benchmarks (repeatable; default: all).
    #[arg(long, value_enum)]
    pub only: Vec<Bench>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Bench {
    Overhead,
    Syscalls,
    Spans,
    Http,
    Tui,
    Memory,
    Startup,
    Churn,
    Otlp,
    Metrics,
    Flight,
    SpanCpu,
    Proxy,
    H2,
    Exchanges,
}

/// A tracer running in the background for the length of one measurement.
struct Background {
    child: Child,
    /// The line that said it was ready.
    ready_line: String,
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port in a test server's `ready <port>` line.
fn server_port(server: &Background) -> Result<u16> {
    server.ready_line.trim().strip_prefix("ready ").and_then(|p| p.parse().ok()).context("test server port")
}

impl Background {
    /// Starts `cmd` and waits for a stderr/stdout line starting with `ready`.
    fn start(mut cmd: Command, ready: &'static str) -> Result<Background> {
        let shown = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {shown}"))?;
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("piped")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("piped")),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.trim_start().starts_with(ready) => return Ok(Background { child, ready_line: line }),
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    bail!("{shown} did not print {ready:?} within 30 s");
                }
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGINT, as a user's Ctrl-C, then wait.
    fn stop(mut self) -> Result<()> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait()?;
        self.ready_line.clear();
        if !status.success() {
            bail!("tracer under benchmark exited with {status}");
        }
        Ok(())
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

fn ensure_packages() -> Result<()> {
    util::ensure_packages(
        &[
            ("perf", "linux-perf"),
            ("runqlat", "libbpf-tools"),
            ("wrk", "wrk"),
            ("nginx", "nginx"),
            ("h2load", "nghttp2-client"),
        ],
        "the benchmarks",
    )
}

/// One `perf bench sched pipe` run pinned to CPU 1: microseconds per op.
fn pipe_usecs_per_op(loops: u64) -> Result<f64> {
    let out = Command::new("taskset")
        .args(["-c", "1", "perf", "bench", "sched", "pipe", "-l", &loops.to_string()])
        .output()
        .context("running perf bench sched pipe")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_suffix("usecs/op").and_then(|v| v.trim().parse().ok()))
        .with_context(|| format!("no usecs/op in perf output: {text}"))
}

/// One configuration: how to start its tracer (given the workload's PID,
/// for those that filter on it), or none.
type Starter<'a> = Box<dyn Fn(u32) -> Result<Background> + 'a>;

struct Config<'a> {
    name: &'static str,
    start: Option<Starter<'a>>,
}

/// Runs `measure` for every configuration, `rounds` times, rotating the
/// order each round so none always runs first; prints a table of medians.
fn alternate(configs: &[Config], rounds: usize, unit: &str, mut measure: impl FnMut(&Config) -> Result<f64>) -> Result<()> {
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    for round in 0..rounds {
        for k in 0..configs.len() {
            let i = (round + k) % configs.len();
            samples[i].push(measure(&configs[i])?);
        }
        eprintln!(
            "    round {}/{rounds}: {}",
            round + 1,
            configs
                .iter()
                .zip(&samples)
                .map(|(c, s)| format!("{} {:.3}", c.name, s.last().unwrap_or(&0.0)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let baseline = median(&mut samples[0].clone());
    println!("\n| configuration | median {unit} | added {unit} | min..max |");
    println!("|---|---|---|---|");
    for (config, values) in configs.iter().zip(samples.iter_mut()) {
        let m = median(values);
        println!(
            "| {} | {m:.3} | {:+.3} | {:.3}..{:.3} |",
            config.name,
            m - baseline,
            values.first().unwrap_or(&0.0),
            values.last().unwrap_or(&0.0)
        );
    }
    Ok(())
}

fn tracer_record<'a>(tracer: &'a Path, report: &'a Path, filter_pid: Option<u32>) -> Starter<'a> {
    Box::new(move |pid| {
        let mut cmd = Command::new(tracer);
        cmd.args(["record", "--out"]).arg(report);
        if let Some(other) = filter_pid {
            cmd.args(["--pid", &other.to_string()]);
        } else if pid != 0 {
            cmd.args(["--pid", &pid.to_string()]);
        }
        Background::start(cmd, "Recording")
    })
}

/// `tracer floor`: empty programs on the syscall tracepoints.
fn tracer_floor(tracer: &Path) -> Starter<'_> {
    Box::new(move |_| {
        let mut cmd = Command::new(tracer);
        cmd.arg("floor");
        Background::start(cmd, "Tracing")
    })
}

/// A libbpf-tools tool, line-buffered: they block-buffer stdout into a
/// pipe, so their "Tracing..." line (printed once attached) would not come.
fn libbpf_tool(name: &str, args: Vec<String>, ready: &'static str) -> Starter<'static> {
    let tool = util::which(name).unwrap_or_else(|| Path::new("/usr/sbin").join(name));
    Box::new(move |pid| {
        let mut cmd = Command::new("stdbuf");
        cmd.arg("-oL").arg(&tool);
        for arg in &args {
            cmd.arg(arg.replace("{pid}", &pid.to_string()));
        }
        Background::start(cmd, ready)
    })
}

fn overhead(built: &setup::Built, args: &BenchArgs) -> Result<()> {
    let report = std::env::temp_dir().join("tracer-bench-report.json");
    let configs = [
        Config { name: "no tracer", start: None },
        Config { name: "tracer record", start: Some(tracer_record(&built.tracer, &report, None)) },
        // No CPU holders: no wakeup program on Linux 6.18 on.
        Config { name: "tracer runqlat", start: Some(Box::new(|_| {
            let mut cmd = Command::new(&built.tracer);
            cmd.arg("runqlat");
            Background::start(cmd, "Tracing")
        })) },
        Config {
            name: "libbpf-tools runqlat",
            start: Some(libbpf_tool("runqlat", Vec::new(), "Tracing")),
        },
    ];
    alternate(&configs, args.rounds, "us/op", |config| {
        let background = config.start.as_ref().map(|start| start(0)).transpose()?;
        let usecs = pipe_usecs_per_op(args.loops)?;
        if let Some(bg) = background {
            bg.stop()?;
        }
        Ok(usecs)
    })
}

/// One run of `tracer-load KIND N` (an on-cue workload printing the ns its
/// N operations took) under `config`: ns per operation.
fn load_ns_per_op(built: &setup::Built, kind: &str, calls: u64, config: &Config) -> Result<f64> {
    use std::io::Write;
    let mut load = Command::new(&built.load_helper)
        .args([kind, &calls.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting tracer-load")?;
    let mut stdout = BufReader::new(load.stdout.take().expect("piped"));
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    let background = config.start.as_ref().map(|start| start(load.id())).transpose()?;
    let stdin = load.stdin.as_mut().expect("piped");
    stdin.write_all(b"go\n")?;
    stdin.flush()?;
    line.clear();
    stdout.read_line(&mut line)?;
    let elapsed: f64 = line
        .trim()
        .strip_prefix("done ")
        .and_then(|ns| ns.parse().ok())
        .with_context(|| format!("unexpected tracer-load output {line:?}"))?;
    if let Some(bg) = background {
        bg.stop()?;
    }
    drop(load.stdin.take());
    load.wait()?;
    Ok(elapsed / calls as f64)
}

/// nginx's throughput untraced, with empty programs on the syscall
/// tracepoints (the floor every syscall probe pays), with `tracer record`
/// on its worker (the scheduler and syscall accounting spans build on),
/// and with `tracer spans --http` on its worker.
fn http_overhead(built: &setup::Built, args: &BenchArgs) -> Result<()> {
    let lines = std::env::temp_dir().join("tracer-bench-http.jsonl");
    let tracer = built.tracer.clone();
    let report = std::env::temp_dir().join("tracer-bench-http-record.json");
    let out = lines.clone();
    let configs = [
        Config { name: "nginx, untraced", start: None },
        Config { name: "nginx, empty syscall programs (floor)", start: Some(tracer_floor(&built.tracer)) },
        // The scheduler and syscall accounting --http builds on, without it.
        Config { name: "nginx, tracer record --pid <worker>", start: Some(tracer_record(&built.tracer, &report, None)) },
        Config {
            name: "nginx, tracer spans --http",
            start: Some(Box::new(move |worker| {
                let mut cmd = Command::new(&tracer);
                cmd.args(["spans", "--http", "-p", &worker.to_string(), "--json"]).arg(&out);
                Background::start(cmd, "Tracing")
            })),
        },
    ];
    let with_nginx = |config: &Config, measure: &dyn Fn(u16) -> Result<f64>| -> Result<f64> {
        let mut helper = Command::new(&built.load_helper);
        helper.arg("nginx");
        let nginx = Background::start(helper, "ready")?;
        let mut ready = nginx.ready_line.split_whitespace().skip(1);
        let (Some(port), Some(worker)) = (ready.next().and_then(|p| p.parse().ok()), ready.next().and_then(|w| w.parse().ok()))
        else {
            bail!("tracer-load nginx said {:?}", nginx.ready_line);
        };
        let tracer = config.start.as_ref().map(|start| start(worker)).transpose()?;
        let result = measure(port);
        if let Some(tracer) = tracer {
            tracer.stop()?;
        }
        nginx.stop()?;
        result
    };
    let max = alternate(&configs, args.rounds, "req/s (wrk, max)", |config| {
        with_nginx(config, &|port| wrk_requests_per_second(port, "/index.html"))
    });
    let offered = alternate(&configs, args.rounds, "req/s (20k offered)", |config| {
        with_nginx(config, &|port| offered_rate(&built.load_helper, port, "/index.html"))
    });
    let _ = std::fs::remove_file(&lines);
    let _ = std::fs::remove_file(&report);
    max.and(offered)
}

/// Requests/s of `wrk -t1 -c8 -d5s` on `path`.
fn wrk_requests_per_second(port: u16, path: &str) -> Result<f64> {
    let out = Command::new("wrk")
        .args(["-t", "1", "-c", "8", "-d", "5s", &format!("http://127.0.0.1:{port}{path}")])
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:").and_then(|v| v.trim().parse().ok()))
        .with_context(|| format!("no Requests/sec in wrk output: {text}"))
}

/// Seconds of each fixed-rate run.
const OFFERED_SECONDS: u64 = 5;

/// The rate achieved when 20,000 requests/s of `path` are offered for 5 s.
fn offered_rate(load_helper: &Path, port: u16, path: &str) -> Result<f64> {
    offered_rate_at(load_helper, port, path, 20_000)
}

/// The rate achieved when `rate` requests/s of `path` are offered for 5 s.
fn offered_rate_at(load_helper: &Path, port: u16, path: &str, rate: u32) -> Result<f64> {
    let out = Command::new(load_helper)
        .args(["http", &port.to_string(), &rate.to_string(), &OFFERED_SECONDS.to_string(), path])
        .output()
        .context("running the fixed-rate client")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().strip_prefix("rate ").and_then(|v| v.parse().ok()).with_context(|| format!("client said {text:?}"))
}

/// Starts the test server (and the configuration's tracer on it), runs
/// `measure` with its port, and stops both.
fn with_server(server_bin: &Path, config: &Config, measure: impl FnOnce(u16) -> Result<f64>) -> Result<f64> {
    let server = Background::start(Command::new(server_bin), "ready")?;
    let port = server_port(&server)?;
    let tracer = config.start.as_ref().map(|start| start(server.pid())).transpose()?;
    let result = measure(port);
    if let Some(tracer) = tracer {
        tracer.stop()?;
    }
    drop(server);
    result
}

/// CPU time (user + system) of a process so far, in seconds.
pub(super) fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are 14, 15.
    let after = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<u64> = after.split_whitespace().skip(11).take(2).map(|v| v.parse().unwrap_or(0)).collect();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(fields.iter().sum::<u64>() as f64 / ticks)
}

pub fn run(args: &BenchArgs) -> Result<()> {
    if !util::is_root() {
        bail!("benchmarks load eBPF programs: run `sudo -E cargo xtask bench` or as root");
    }
    let built = setup::build()?;
    let wanted = |bench: Bench| args.only.is_empty() || args.only.contains(&bench);
    util::step("benchmark prerequisites (linux-perf, libbpf-tools, wrk, nginx, nghttp2-client)", ensure_packages)?;
    if wanted(Bench::Overhead) {
        util::step(
            &format!(
                "overhead: taskset -c 1 perf bench sched pipe -l {} x {} alternating rounds",
                args.loops, args.rounds
            ),
            || overhead(&built, args),
        )?;
    }
    if wanted(Bench::Syscalls) {
        util::step(&format!("syscalls: {} getppid calls x {} alternating rounds", args.syscalls, args.rounds), || {
            syscalls::syscall_overhead(&built, args)
        })?;
    }
    if wanted(Bench::Spans) {
        util::step(&format!("spans: marker cost and test-server throughput x {} alternating rounds", args.rounds), || {
            spans::span_overhead(&built, args)
        })?;
    }
    if wanted(Bench::Http) {
        util::step(&format!("http: nginx throughput with and without --http x {} alternating rounds", args.rounds), || {
            http_overhead(&built, args)
        })?;
    }
    if wanted(Bench::Proxy) {
        let what = format!("proxy: nginx in front of the test server at 20,000 requests/s, --http on both x {} alternating rounds", args.rounds);
        util::step(&what, || proxy::proxy_cost(&built, args))?;
    }
    if wanted(Bench::H2) {
        let what = format!("h2: nginx HTTP/2 throughput under h2load with and without --http x {} alternating rounds", args.rounds);
        util::step(&what, || h2::h2_cost(&built, args))?;
    }
    if wanted(Bench::Exchanges) {
        let what = format!("exchanges: ns per HTTP exchange with and without --http x {} alternating rounds", args.rounds);
        util::step(&what, || exchanges::exchange_cost(&built, args))?;
    }
    if wanted(Bench::Tui) {
        util::step(
            &format!("live view: tracer's own CPU with {} processes alive, 3 alternating rounds", args.processes),
            || tui::tui_cost(&built, args),
        )?;
    }
    if wanted(Bench::Memory) {
        util::step(&format!("memory: tracer record with {} sleeping threads", args.threads), || {
            memory::memory(&built, args)
        })?;
    }
    if wanted(Bench::Startup) {
        util::step(&format!("start-up: time, per-CPU memory and kernel-worker runs x {} alternating rounds", args.rounds), || {
            startup::startup(&built, args)
        })?;
    }
    if wanted(Bench::Otlp) {
        util::step(&format!("otlp: tracer's CPU at 20,000 spans/s x {} alternating rounds", args.rounds), || {
            otlp::otlp_cost(&built, args)
        })?;
    }
    if wanted(Bench::Flight) {
        util::step(&format!("flight: the flight recorder at 20,000 requests/s offered x {} alternating rounds", args.rounds), || {
            flight::flight_cost(&built, args)
        })?;
    }
    if wanted(Bench::SpanCpu) {
        let what = format!("span-cpu: tracer's CPU at {} spans/s, markers and --http x {} alternating rounds", span_cpu::RATE, args.rounds);
        util::step(&what, || span_cpu::span_cpu(&built, args))?;
    }
    if wanted(Bench::Churn) {
        util::step(
            &format!("churn: {} threads/s for {} s under tracer record, sampled every 10 s", args.churn_rate, args.churn_seconds),
            || churn::churn(&built, args),
        )?;
    }
    if wanted(Bench::Metrics) {
        let what = format!("metrics: /metrics scrape time and size with {} processes alive", args.processes);
        util::step(&what, || metrics::metrics(&built, args))?;
    }
    Ok(())
}
