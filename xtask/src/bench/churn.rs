//! Thread churn over a long run: `tracer record`, system-wide and on the
//! churning process, while it starts and ends threads at a steady rate; the
//! RSS and CPU share of each tracer sampled every 10 s.
use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use super::{Background, BenchArgs, cpu_seconds, memory::rss_kib};
use crate::setup;

const SAMPLE_EVERY: Duration = Duration::from_secs(10);

pub(super) fn churn(built: &setup::Built, args: &BenchArgs) -> Result<()> {
    let mut churner = Command::new(&built.load_helper)
        .args(["churn", &args.churn_rate.to_string(), &args.churn_seconds.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting tracer-load churn")?;
    let mut churner_out = BufReader::new(churner.stdout.take().expect("piped"));
    let mut line = String::new();
    churner_out.read_line(&mut line)?;
    let dir = std::env::temp_dir();
    let (system_report, pid_report) = (dir.join("tracer-bench-churn-system.json"), dir.join("tracer-bench-churn-pid.json"));
    let mut system = Command::new(&built.tracer);
    system.args(["record", "--out"]).arg(&system_report);
    let system = Background::start(system, "Recording")?;
    let mut targeted = Command::new(&built.tracer);
    targeted.args(["record", "--pid", &churner.id().to_string(), "--out"]).arg(&pid_report);
    let targeted = Background::start(targeted, "Recording")?;
    let tracers = [&system, &targeted];

    churner.stdin.as_mut().expect("piped").write_all(b"go\n")?;
    println!("\n| seconds | system-wide RSS MiB | system-wide CPU % | --pid RSS MiB | --pid CPU % |");
    println!("|---|---|---|---|---|");
    let started = Instant::now();
    let mut last_cpu = tracers.map(|t| cpu_seconds(t.pid()).unwrap_or(0.0));
    let mut last_at = Instant::now();
    while started.elapsed() < Duration::from_secs(args.churn_seconds) {
        std::thread::sleep(SAMPLE_EVERY);
        let elapsed = last_at.elapsed().as_secs_f64();
        last_at = Instant::now();
        let mut row = format!("| {:.0} |", started.elapsed().as_secs_f64());
        for (tracer, last) in tracers.iter().zip(last_cpu.iter_mut()) {
            let cpu = cpu_seconds(tracer.pid())?;
            let rss = rss_kib(tracer.pid(), "VmRSS:")? as f64 / 1024.0;
            row += &format!(" {rss:.1} | {:.1} |", (cpu - *last) / elapsed * 100.0);
            *last = cpu;
        }
        println!("{row}");
    }
    line.clear();
    churner_out.read_line(&mut line)?;
    let threads = line.split_whitespace().last().unwrap_or("?").to_owned();
    system.stop()?;
    targeted.stop()?;
    drop(churner.stdin.take());
    churner.wait()?;
    let size = |path: &std::path::Path| std::fs::metadata(path).map_or(0, |m| m.len()) as f64 / 1024.0;
    println!(
        "\n{threads} threads started; reports: system-wide {:.0} KiB, --pid {:.0} KiB",
        size(&system_report),
        size(&pid_report)
    );
    let _ = std::fs::remove_file(&system_report);
    let _ = std::fs::remove_file(&pid_report);
    Ok(())
}
