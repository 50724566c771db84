//! The always-on flight recorder: the marker test server's throughput at
//! 20,000 requests/s offered, untraced, with `tracer spans --slow 100`, and
//! with `--flight-recorder` (defaults: --keep 10, --max-mib 64, --after 1);
//! tracer's peak RSS, and how long after a slow span (one /sleep?ms=150 in
//! each run) ended its dump file was in place.
use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, UNIX_EPOCH},
};

use anyhow::{Context, Result};

use super::{Background, BenchArgs, Config, alternate, median, memory::rss_kib, offered_rate, server_port};
use crate::setup;

const FLIGHT: &str = "tracer spans --slow 100 --flight-recorder";

fn get(port: u16, path: &str) -> Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
    stream.read_to_end(&mut Vec::new())?;
    Ok(())
}

/// KiB of the kernel's BPF maps (ring buffers) mapped into `pid`.
fn bpf_map_kib(pid: u32) -> Result<u64> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps"))?;
    let (mut kib, mut in_map) = (0, false);
    for line in smaps.lines() {
        if line.split_whitespace().next().is_some_and(|f| f.contains('-') && !f.ends_with(':')) {
            in_map = line.ends_with("anon_inode:bpf-map");
        } else if in_map && let Some(rss) = line.strip_prefix("Rss:") {
            kib += rss.trim().trim_end_matches("kB").trim().parse::<u64>()?;
        }
    }
    Ok(kib)
}

/// Seconds from the end of the dumped span (its line's start and wall
/// time) to its trace's modification time; the dump's files are removed.
fn dump_delay(dir: &Path) -> Result<f64> {
    let mut delay = None;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let line: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
            let ended_ns = line["start_unix_ns"].as_u64().unwrap_or(0) + line["wall_ns"].as_u64().unwrap_or(0);
            let trace = PathBuf::from(path.to_string_lossy().replace(".json", ".pftrace"));
            let written = std::fs::metadata(&trace)?.modified()?.duration_since(UNIX_EPOCH)?;
            delay = Some(written.as_secs_f64() - ended_ns as f64 / 1e9);
        }
    }
    for entry in std::fs::read_dir(dir)? {
        std::fs::remove_file(entry?.path())?;
    }
    delay.context("no dump was written")
}

pub(super) fn flight_cost(built: &setup::Built, args: &BenchArgs) -> Result<()> {
    let dir = std::env::temp_dir().join("tracer-bench-flight");
    std::fs::create_dir_all(&dir)?;
    let lines = std::env::temp_dir().join("tracer-bench-flight.jsonl");
    let starter = |flight: bool| -> super::Starter<'_> {
        let (tracer, lines, dir) = (&built.tracer, &lines, &dir);
        Box::new(move |pid| {
            let mut cmd = Command::new(tracer);
            cmd.args(["spans", "-p", &pid.to_string(), "--slow", "100", "--json"]).arg(lines);
            if flight {
                cmd.arg("--flight-recorder").arg(dir);
            }
            Background::start(cmd, "Tracing")
        })
    };
    let configs = [
        Config { name: "test server, untraced", start: None },
        Config { name: "tracer spans --slow 100", start: Some(starter(false)) },
        Config { name: FLIGHT, start: Some(starter(true)) },
    ];
    let server_bin = built.load_helper.with_file_name("tracer-test-server");
    let (mut peak_mib, mut own_mib, mut delays) = (Vec::new(), Vec::new(), Vec::new());
    let result = alternate(&configs, args.rounds, "req/s (20k offered)", |config| {
        let server = Background::start(Command::new(&server_bin), "ready")?;
        let port = server_port(&server)?;
        let tracer = config.start.as_ref().map(|start| start(server.pid())).transpose()?;
        let slow = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(2));
            get(port, "/sleep?ms=150")
        });
        let rate = offered_rate(&built.load_helper, port, "/plain")?;
        slow.join().expect("the slow request's thread")?;
        if let Some(tracer) = tracer {
            if config.name == FLIGHT {
                // The dump comes --after (1 s) after the span ended.
                std::thread::sleep(Duration::from_millis(1_500));
                let peak = rss_kib(tracer.pid(), "VmHWM:")?;
                peak_mib.push(peak as f64 / 1024.0);
                own_mib.push(peak.saturating_sub(bpf_map_kib(tracer.pid())?) as f64 / 1024.0);
                delays.push(dump_delay(&dir)?);
            }
            tracer.stop()?;
        }
        drop(server);
        Ok(rate)
    });
    if !delays.is_empty() {
        let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        println!("\n| {FLIGHT} | median | max |");
        println!("|---|---|---|");
        println!("| tracer peak RSS (VmHWM) | {:.1} MiB | {:.1} MiB |", median(&mut peak_mib.clone()), max(&peak_mib));
        println!(
            "| of which not the kernel's BPF rings | {:.1} MiB | {:.1} MiB |",
            median(&mut own_mib.clone()),
            max(&own_mib)
        );
        println!(
            "| slow span's end to its dump file in place (--after 1) | {:.2} s | {:.2} s |",
            median(&mut delays.clone()),
            max(&delays)
        );
    }
    let _ = std::fs::remove_file(&lines);
    let _ = std::fs::remove_dir_all(&dir);
    result
}
