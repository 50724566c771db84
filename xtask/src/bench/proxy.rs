//! A reverse proxy in front of an application (nginx `proxy_pass` to the
//! test server, the set-up of issue 13's flows), at 20,000 requests/s
//! offered: untraced, and with one `tracer spans --http` on both processes.
use std::process::Command;

use anyhow::{Context, Result};

use super::{Background, BenchArgs, Config, alternate, offered_rate, server_port};
use crate::setup;

const TRACED: &str = "proxy and application, tracer spans --http -p both";

pub fn proxy_cost(built: &setup::Built, args: &BenchArgs) -> Result<()> {
    let lines = std::env::temp_dir().join("tracer-bench-proxy.jsonl");
    let configs = [Config { name: "proxy and application, untraced", start: None }, Config { name: TRACED, start: None }];
    let result = alternate(&configs, args.rounds, "req/s (20k offered)", |config| {
        let mut app = Command::new(built.load_helper.with_file_name("tracer-test-server"));
        app.arg("--no-markers");
        let app = Background::start(app, "ready")?;
        let mut proxy = Command::new(&built.load_helper);
        proxy.args(["nginx-proxy", &server_port(&app)?.to_string()]);
        let proxy = Background::start(proxy, "ready")?;
        let mut ready = proxy.ready_line.split_whitespace().skip(1);
        let (port, worker) = (ready.next(), ready.next());
        let port: u16 = port.and_then(|p| p.parse().ok()).with_context(|| format!("tracer-load said {:?}", proxy.ready_line))?;
        let worker = worker.context("the proxy's worker pid")?;
        let tracer = if config.name == TRACED {
            let mut cmd = Command::new(&built.tracer);
            cmd.args(["spans", "--http", "-p", worker, "-p", &app.pid().to_string(), "--json"]).arg(&lines);
            Some(Background::start(cmd, "Tracing")?)
        } else {
            None
        };
        let rate = offered_rate(&built.load_helper, port, "/plain");
        if let Some(tracer) = tracer {
            tracer.stop()?;
        }
        proxy.stop()?;
        rate
    });
    let _ = std::fs::remove_file(&lines);
    result
}
