//! What starting and stopping `tracer record` costs the host: time, the
//! kernel's per-CPU memory, and kernel-worker runs.
use std::{process::Command, time::Duration};

use anyhow::{Context, Result};

use super::{Background, BenchArgs, median};
use crate::setup;

/// The `Percpu:` line of /proc/meminfo: the kernel's per-CPU allocations.
fn percpu_kib() -> Result<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo")?;
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("Percpu:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no Percpu line in /proc/meminfo")
}

/// Runs of all kernel workers so far (schedstat's third field).
fn kernel_worker_runs() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.starts_with("kworker/")))
        .filter_map(|pid| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?;
            text.split_whitespace().nth(2)?.parse::<u64>().ok()
        })
        .sum()
}

pub(super) fn startup(built: &setup::Built, args: &BenchArgs) -> Result<()> {
    let report = std::env::temp_dir().join("tracer-bench-startup.json");
    let configs: [(&str, &[&str]); 2] = [("tracer record", &[]), ("tracer record --syscalls", &["--syscalls"])];
    // Per configuration: start-up ms, per-CPU KiB added, kernel-worker runs.
    let mut samples = vec![[Vec::new(), Vec::new(), Vec::new()]; configs.len()];
    for round in 0..args.rounds {
        for k in 0..configs.len() {
            let i = (round + k) % configs.len();
            std::thread::sleep(Duration::from_secs(1));
            let (runs_before, percpu_before) = (kernel_worker_runs(), percpu_kib()?);
            let mut cmd = Command::new(&built.tracer);
            cmd.args(["record", "--out"]).arg(&report).args(configs[i].1);
            let started = std::time::Instant::now();
            let tracer = Background::start(cmd, "Recording")?;
            let startup_ms = started.elapsed().as_secs_f64() * 1e3;
            let percpu_added = percpu_kib()?.saturating_sub(percpu_before) as f64;
            std::thread::sleep(Duration::from_secs(1));
            tracer.stop()?;
            // Freeing maps and programs is deferred to kernel workers.
            std::thread::sleep(Duration::from_millis(500));
            let runs = kernel_worker_runs().saturating_sub(runs_before) as f64;
            for (series, value) in samples[i].iter_mut().zip([startup_ms, percpu_added, runs]) {
                series.push(value);
            }
        }
        eprintln!("    round {}/{}", round + 1, args.rounds);
    }
    let _ = std::fs::remove_file(&report);
    println!("\n| configuration | start-up ms | per-CPU KiB held | kernel-worker runs around a 1 s recording |");
    println!("|---|---|---|---|");
    for ((name, _), series) in configs.iter().zip(samples.iter_mut()) {
        let [startup_ms, percpu, runs] = series;
        println!("| {name} | {:.0} | {:.0} | {:.0} |", median(startup_ms), median(percpu), median(runs));
    }
    Ok(())
}
