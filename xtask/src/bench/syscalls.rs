//! The syscall benchmark: getppid calls untraced, with empty programs,
//! and with tracer filtering on another process or on the caller.
use std::process::Command;

use anyhow::{Context, Result};

use super::{BenchArgs, Config, alternate, libbpf_tool, load_ns_per_op, tracer_floor, tracer_record};
use crate::setup;

pub(super) fn syscall_overhead(built: &setup::Built, args: &BenchArgs) -> Result<()> {
    let report = std::env::temp_dir().join("tracer-bench-syscalls.json");
    // A process that makes no syscalls, for the "filter on another pid" case.
    let mut bystander = Command::new("sleep").arg("86400").spawn().context("starting sleep")?;
    let configs = [
        Config { name: "untraced", start: None },
        Config { name: "empty tp_btf programs (floor)", start: Some(tracer_floor(&built.tracer)) },
        Config {
            name: "tracer record --pid <other>",
            start: Some(tracer_record(&built.tracer, &report, Some(bystander.id()))),
        },
        Config { name: "tracer record --pid <self>", start: Some(tracer_record(&built.tracer, &report, None)) },
        Config {
            name: "libbpf-tools syscount -L -p <self>",
            start: Some(libbpf_tool("syscount", vec!["-L".into(), "-p".into(), "{pid}".into()], "Tracing")),
        },
    ];
    let result = alternate(&configs, args.rounds, "ns/call", |config| {
        load_ns_per_op(built, "getppid", args.syscalls, config)
    });
    let _ = bystander.kill();
    let _ = bystander.wait();
    result
}
