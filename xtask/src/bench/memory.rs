//! Peak RSS of `tracer record` while many threads are tracked.
use std::{process::Command, time::Duration};

use anyhow::{Context, Result};

use super::{Background, BenchArgs};
use crate::setup;

pub(super) fn rss_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{field} missing for pid {pid}"))
}

pub(super) fn memory(built: &setup::Built, args: &BenchArgs) -> Result<()> {
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
    // Untyped on purpose, unlike the tests: xtask installs bpf-linker, so it
    // cannot depend on tracer-user, whose build script needs bpf-linker for
    // the eBPF object; a crate of report types alone is not worth one count.
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
