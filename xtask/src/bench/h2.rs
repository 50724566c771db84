//! HTTP/2 in cleartext: nginx (`http2` on a plaintext port, one worker)
//! under h2load at saturation (8 connections of 8 concurrent streams),
//! untraced and with `tracer spans --http` on its worker, which copies
//! each read and write of its HTTP/2 connections to the loader.
use std::process::Command;

use anyhow::{Context, Result};

use super::{Background, BenchArgs, Config, alternate};
use crate::setup;

const TRACED: &str = "nginx HTTP/2, tracer spans --http";
/// Seconds of each h2load run.
const SECONDS: u32 = 5;

pub fn h2_cost(built: &setup::Built, args: &BenchArgs) -> Result<()> {
    let lines = std::env::temp_dir().join("tracer-bench-h2.jsonl");
    let configs = [Config { name: "nginx HTTP/2, untraced", start: None }, Config { name: TRACED, start: None }];
    let result = alternate(&configs, args.rounds, "req/s (h2load, max)", |config| {
        let mut helper = Command::new(&built.load_helper);
        helper.arg("nginx-h2c");
        let nginx = Background::start(helper, "ready")?;
        let mut ready = nginx.ready_line.split_whitespace().skip(1);
        let (port, worker) = (ready.next(), ready.next());
        let port: u16 = port.and_then(|p| p.parse().ok()).with_context(|| format!("tracer-load said {:?}", nginx.ready_line))?;
        let worker = worker.context("nginx's worker pid")?;
        let tracer = if config.name == TRACED {
            let mut cmd = Command::new(&built.tracer);
            cmd.args(["spans", "--http", "-p", worker, "--json"]).arg(&lines);
            Some(Background::start(cmd, "Tracing")?)
        } else {
            None
        };
        let rate = h2load_requests_per_second(port);
        if let Some(tracer) = tracer {
            tracer.stop()?;
        }
        nginx.stop()?;
        rate
    });
    let _ = std::fs::remove_file(&lines);
    result
}

/// Requests/s of `h2load -c 8 -m 8` on nginx's static file for `SECONDS`.
fn h2load_requests_per_second(port: u16) -> Result<f64> {
    let out = Command::new("h2load")
        .args(["-t", "1", "-c", "8", "-m", "8", "-D", &SECONDS.to_string()])
        .arg(format!("http://127.0.0.1:{port}/index.html"))
        .output()
        .context("running h2load (Debian nghttp2-client)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "finished in 5.00s, 41234.40 req/s, 88.01MB/s"
    text.lines()
        .find_map(|l| l.strip_prefix("finished in ")?.split(", ").nth(1)?.strip_suffix(" req/s")?.parse().ok())
        .with_context(|| format!("no req/s in h2load's output: {text}"))
}
