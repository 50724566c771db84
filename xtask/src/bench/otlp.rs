//! What `--otlp` costs tracer: its CPU while the marker test server is
//! offered 20,000 requests/s (so 20,000 spans/s), without export, exporting
//! to a collector stand-in on loopback, and with the collector down.
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    path::Path,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use anyhow::{Context, Result};

use super::{Background, BenchArgs, Config, OFFERED_SECONDS, alternate, span_cpu::tracer_cpu_at};
use crate::setup;

/// A stand-in collector: reads each POST and answers 200 with an empty
/// body (full success), counting requests and bytes. Not a decoder: the
/// integration test checks the content; this only has to be cheap.
struct Sink {
    port: u16,
    requests: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl Sink {
    fn start() -> Result<Sink> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let (requests, bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (r, b) = (requests.clone(), bytes.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (r, b) = (r.clone(), b.clone());
                std::thread::spawn(move || -> std::io::Result<()> {
                    let mut writer = stream.try_clone()?;
                    let mut reader = BufReader::new(stream);
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line)? == 0 {
                            return Ok(());
                        }
                        let mut length = 0usize;
                        loop {
                            line.clear();
                            reader.read_line(&mut line)?;
                            if line.trim().is_empty() {
                                break;
                            }
                            if let Some((name, value)) = line.split_once(':')
                                && name.eq_ignore_ascii_case("content-length")
                            {
                                length = value.trim().parse().unwrap_or(0);
                            }
                        }
                        std::io::copy(&mut (&mut reader).take(length as u64), &mut std::io::sink())?;
                        r.fetch_add(1, Ordering::Relaxed);
                        b.fetch_add(length as u64, Ordering::Relaxed);
                        writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n")?;
                    }
                });
            }
        });
        Ok(Sink { port, requests, bytes })
    }
}

fn tracer_spans_to<'a>(tracer: &'a Path, lines: &'a Path, otlp: Option<String>) -> super::Starter<'a> {
    Box::new(move |pid| {
        let mut cmd = Command::new(tracer);
        cmd.args(["spans", "-p", &pid.to_string(), "--json"]).arg(lines);
        if let Some(url) = &otlp {
            cmd.args(["--otlp", url]);
        }
        Background::start(cmd, "Tracing")
    })
}

pub(super) fn otlp_cost(built: &setup::Built, args: &BenchArgs) -> Result<()> {
    let lines = std::env::temp_dir().join("tracer-bench-otlp.jsonl");
    let sink = Sink::start()?;
    let down = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let configs = [
        Config { name: "tracer spans", start: Some(tracer_spans_to(&built.tracer, &lines, None)) },
        Config {
            name: "tracer spans --otlp (collector up)",
            start: Some(tracer_spans_to(&built.tracer, &lines, Some(format!("http://127.0.0.1:{}", sink.port)))),
        },
        Config {
            name: "tracer spans --otlp (collector down)",
            start: Some(tracer_spans_to(&built.tracer, &lines, Some(format!("http://127.0.0.1:{down}")))),
        },
    ];
    let mut spans = 0.0;
    let result = alternate(&configs, args.rounds, "% of a CPU (tracer, 20k spans/s)", |config| {
        let start = config.start.as_ref().context("a tracer configuration")?;
        let measured = tracer_cpu_at(built, &[], start, 20_000)?;
        if config.name.contains("collector up") {
            spans += measured.achieved * OFFERED_SECONDS as f64;
        }
        Ok(measured.percent)
    });
    let posted = sink.bytes.load(Ordering::Relaxed);
    println!(
        "\ncollector up: {} export requests, {:.1} MB posted, about {:.0} bytes per span",
        sink.requests.load(Ordering::Relaxed),
        posted as f64 / 1e6,
        posted as f64 / spans.max(1.0)
    );
    let _ = std::fs::remove_file(&lines);
    result
}
