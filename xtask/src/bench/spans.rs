//! Request spans: what a marker costs the application, and what tracing
//! its spans costs the test server at saturation and at 20,000 requests/s
//! offered (issue 14's targets), with each way the markers reach the
//! tracer, without the syscall probes, and with empty programs in their
//! place (the floor of any syscall tracing).
use std::{path::Path, process::Command};

use anyhow::{Result, bail};

use super::{
    Background, BenchArgs, Config, Starter, alternate, load_ns_per_op, offered_rate, tracer_floor, with_server,
    wrk_requests_per_second,
};
use crate::{setup, util};

/// `tracer spans -p PID` writing its lines to a file, for the benchmarks.
pub(super) fn tracer_spans<'a>(tracer: &'a Path, out: &'a Path) -> Starter<'a> {
    tracer_spans_with(tracer, out, &[])
}

/// The same with more options (`--marker-uprobes`).
pub(super) fn tracer_spans_with<'a>(tracer: &'a Path, out: &'a Path, options: &'a [&'a str]) -> Starter<'a> {
    Box::new(move |pid| {
        let mut cmd = Command::new(tracer);
        cmd.args(["spans", "-p", &pid.to_string()]).args(options).arg("--json").arg(out);
        Background::start(cmd, "Tracing")
    })
}

/// Marker cost per span (a begin/end pair), and the test server's
/// throughput under wrk, each untraced and traced.
pub(super) fn span_overhead(built: &setup::Built, args: &BenchArgs) -> Result<()> {
    let lines = std::env::temp_dir().join("tracer-bench-spans.jsonl");
    let configs = [
        Config { name: "markers, untraced", start: None },
        Config {
            name: "markers, tracer spans --marker-uprobes attached",
            start: Some(tracer_spans_with(&built.tracer, &lines, &["--marker-uprobes"])),
        },
        Config { name: "markers, tracer spans attached (ring)", start: Some(tracer_spans(&built.tracer, &lines)) },
    ];
    // 30,000 pairs: their 60,000 records fit in the marker ring (65,536),
    // so a traced pair is timed writing both records, never dropping them
    // as a full ring does.
    alternate(&configs, args.rounds, "ns/span", |config| load_ns_per_op(built, "spans", 30_000, config))?;

    if util::which("wrk").is_none() {
        bail!("the span benchmark drives the test server with wrk: `apt-get install wrk`");
    }
    let server_bin = built.load_helper.with_file_name("tracer-test-server");
    let configs = [
        Config { name: "test server, untraced", start: None },
        // What any program on every syscall costs, before doing any work:
        // the part of the syscall probes' cost that no tracer can avoid.
        Config { name: "test server, empty syscall programs (floor)", start: Some(tracer_floor(&built.tracer)) },
        Config {
            name: "test server, tracer spans --marker-uprobes",
            start: Some(tracer_spans_with(&built.tracer, &lines, &["--marker-uprobes"])),
        },
        Config { name: "test server, tracer spans (ring)", start: Some(tracer_spans(&built.tracer, &lines)) },
        // What the syscall probes cost every process on the host.
        Config {
            name: "test server, tracer spans --no-syscalls",
            start: Some(tracer_spans_with(&built.tracer, &lines, &["--no-syscalls"])),
        },
    ];
    // Maximum throughput (wrk, as fast as it goes), then the achieved rate
    // when 20,000 requests/s are offered (the target's operating point).
    let max = alternate(&configs, args.rounds, "req/s (wrk, max)", |config| {
        with_server(&server_bin, config, |port| wrk_requests_per_second(port, "/plain"))
    });
    let offered = alternate(&configs, args.rounds, "req/s (20k offered)", |config| {
        with_server(&server_bin, config, |port| offered_rate(&built.load_helper, port, "/plain"))
    });
    let result = max.and(offered);
    let _ = std::fs::remove_file(&lines);
    result
}
