//! Benchmarks (never timed tests), each comparing configurations side by
//! side in one run, alternating, and reporting medians:
//!
//! * overhead: `taskset -c 1 perf bench sched pipe` (two tasks ping-ponging
//!   on one CPU, two context switches and two wakeups per op) with no
//!   tracer, with `tracer record`, and with libbpf-tools `runqlat`;
//! * memory: peak RSS of `tracer record` while 10,000 threads are tracked.
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
}

/// A tracer running in the background for the length of one measurement.
struct Background {
    child: Child,
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
                Ok(line) if line.trim_start().starts_with(ready) => break,
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    bail!("{shown} did not print {ready:?} within 30 s");
                }
            }
        }
        Ok(Background { child })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGINT, as a user's Ctrl-C, then wait.
    fn stop(mut self) -> Result<()> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait()?;
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
    let missing: Vec<&str> = [("perf", "linux-perf"), ("runqlat", "libbpf-tools")]
        .into_iter()
        .filter(|(bin, _)| util::which(bin).is_none() && !Path::new("/usr/sbin").join(bin).exists())
        .map(|(_, pkg)| pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !util::is_root() {
        bail!("the benchmark needs {}: install with `sudo apt-get install {}`", missing.join(", "), missing.join(" "));
    }
    eprintln!("    installing {}", missing.join(", "));
    util::run_checked(Command::new("apt-get").args(["update", "-q"]).stdout(Stdio::null()))?;
    util::run_checked(
        Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(&missing)
            .stdout(Stdio::null()),
    )
    .with_context(|| format!("installing {}", missing.join(" ")))
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

struct Config {
    name: &'static str,
    start: Option<Box<dyn Fn() -> Result<Background>>>,
}

fn overhead(built: &setup::Built, args: &BenchArgs) -> Result<()> {
    let tracer = built.tracer.clone();
    let report = std::env::temp_dir().join("tracer-bench-report.json");
    let runqlat = util::which("runqlat").unwrap_or_else(|| "/usr/sbin/runqlat".into());
    let configs = [
        Config { name: "no tracer", start: None },
        Config {
            name: "tracer record",
            start: Some(Box::new(move || {
                let mut cmd = Command::new(&tracer);
                cmd.args(["record", "--out"]).arg(&report);
                Background::start(cmd, "Recording")
            })),
        },
        Config {
            name: "libbpf-tools runqlat",
            start: Some(Box::new(move || {
                // runqlat block-buffers stdout into a pipe; line-buffer it so
                // its "Tracing" line (printed once attached) arrives.
                let mut cmd = Command::new("stdbuf");
                cmd.arg("-oL").arg(&runqlat);
                Background::start(cmd, "Tracing")
            })),
        },
    ];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    for round in 0..args.rounds {
        // Rotate the order each round so no configuration always runs first.
        for k in 0..configs.len() {
            let i = (round + k) % configs.len();
            let background = configs[i].start.as_ref().map(|start| start()).transpose()?;
            let usecs = pipe_usecs_per_op(args.loops)?;
            if let Some(bg) = background {
                bg.stop()?;
            }
            samples[i].push(usecs);
        }
        eprintln!(
            "    round {}/{}: {}",
            round + 1,
            args.rounds,
            configs
                .iter()
                .zip(&samples)
                .map(|(c, s)| format!("{} {:.3}", c.name, s.last().unwrap_or(&0.0)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let baseline = median(&mut samples[0].clone());
    println!("\n| configuration | median us/op | added us/op | min..max |");
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

fn rss_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{field} missing for pid {pid}"))
}

fn memory(built: &setup::Built, args: &BenchArgs) -> Result<()> {
    let mut load = Command::new(&built.load_helper);
    load.args(["sleepers", &args.threads.to_string(), "1000"]);
    let load = Background::start(load, "ready")?;
    let report = std::env::temp_dir().join("tracer-bench-memory.json");
    let mut cmd = Command::new(&built.tracer);
    cmd.args(["record", "--out"]).arg(&report);
    let tracer = Background::start(cmd, "Recording")?;
    std::thread::sleep(Duration::from_secs(5));
    let peak = rss_kib(tracer.pid(), "VmHWM:")?;
    tracer.stop()?;
    let text = std::fs::read_to_string(&report)?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    let threads: usize = json["processes"]
        .as_array()
        .map(|ps| ps.iter().map(|p| p["threads"].as_array().map_or(0, Vec::len)).sum())
        .unwrap_or(0);
    let _ = std::fs::remove_file(&report);
    // SAFETY: signalling our own child.
    unsafe { libc::kill(load.pid() as i32, libc::SIGKILL) };
    println!("\n| threads tracked | tracer peak RSS (VmHWM) |");
    println!("|---|---|");
    println!("| {threads} | {:.1} MiB |", peak as f64 / 1024.0);
    Ok(())
}

pub fn run(args: &BenchArgs) -> Result<()> {
    if !util::is_root() {
        bail!("benchmarks load eBPF programs: run `sudo -E cargo xtask bench` or as root");
    }
    let built = setup::build()?;
    util::step("benchmark prerequisites (linux-perf, libbpf-tools)", ensure_packages)?;
    util::step(
        &format!(
            "overhead: taskset -c 1 perf bench sched pipe -l {} x {} alternating rounds",
            args.loops, args.rounds
        ),
        || overhead(&built, args),
    )?;
    util::step(&format!("memory: tracer record with {} sleeping threads", args.threads), || {
        memory(&built, args)
    })
}
