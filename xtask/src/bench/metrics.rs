//! What a `/metrics` scrape of `tracer serve` costs with many processes
//! alive: its time and size, with the default `--max-series` and with one
//! series per process.
use std::{
    io::{Read, Write},
    net::TcpStream,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use super::{Background, BenchArgs, median};
use crate::setup;

/// GET /metrics on loopback: the body and how long it took.
fn scrape(port: u16) -> Result<(String, f64)> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).context("connecting to tracer serve")?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let Some(("HTTP/1.0 200 OK" | "HTTP/1.1 200 OK", _)) = response.split_once("\r\n") else {
        bail!("scrape failed: {}", response.lines().next().unwrap_or_default());
    };
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    Ok((body, ms))
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub(super) fn metrics(built: &setup::Built, args: &BenchArgs) -> Result<()> {
    let mut crowd = Vec::new();
    for _ in 0..args.processes {
        let child = Command::new(&built.load_helper).args(["sleepers", "1", "1000"]).stdout(Stdio::null()).spawn();
        crowd.push(child.context("starting the idle processes")?);
    }
    println!("\n| --max-series | label sets | size | scrape, fresh snapshot | scrape, refreshed for it |");
    println!("|---|---|---|---|---|");
    let result = (|| {
        for max_series in [100, args.processes + 100] {
            let port = free_port()?;
            let mut cmd = Command::new(&built.tracer);
            cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--max-series", &max_series.to_string()]);
            let tracer = Background::start(cmd, "Tracing")?;
            // Every process woken at least twice, and seen by a refresh.
            std::thread::sleep(Duration::from_secs(3));
            let (mut fresh, mut refreshed, mut size, mut sets) = (Vec::new(), Vec::new(), 0, 0);
            for _ in 0..args.rounds.max(5) {
                // Older than the 200 ms a snapshot is served as is: this
                // scrape waits for the event loop to take a new one.
                std::thread::sleep(Duration::from_millis(300));
                let (body, ms) = scrape(port)?;
                refreshed.push(ms);
                // Right after: the snapshot is fresh, only encoded.
                fresh.push(scrape(port)?.1);
                size = body.len();
                sets = body.lines().filter(|l| l.starts_with("tracer_on_cpu_seconds_total{")).count();
            }
            tracer.stop()?;
            println!(
                "| {max_series} | {sets} | {:.0} KiB | {:.1} ms | {:.1} ms |",
                size as f64 / 1024.0,
                median(&mut fresh),
                median(&mut refreshed)
            );
        }
        Ok(())
    })();
    for mut child in crowd {
        let _ = child.kill();
        let _ = child.wait();
    }
    result
}
