//! The exchanges benchmark: the cost of `--http` per HTTP exchange, without
//! a load generator or a scheduler in the way. One thread of `tracer-load
//! exchanges` serves requests over loopback TCP with the syscalls of an
//! event-loop server (epoll_wait, read, writev); its client side uses
//! syscalls HTTP tracing does not follow. Untraced, with `tracer spans
//! --http` (the lean path: programs on the HTTP syscalls' own events), and
//! with `--all-syscalls` (programs on every syscall).
use anyhow::Result;

use super::{BenchArgs, Config, alternate, load_ns_per_op, spans::tracer_spans_with};
use crate::setup;

/// Exchanges per round: about 3 s untraced.
const EXCHANGES: u64 = 300_000;

pub(super) fn exchange_cost(built: &setup::Built, args: &BenchArgs) -> Result<()> {
    let out = std::env::temp_dir().join("tracer-bench-exchanges.json");
    let configs = [
        Config { name: "untraced", start: None },
        Config { name: "tracer spans --http", start: Some(tracer_spans_with(&built.tracer, &out, &["--http"])) },
        Config {
            name: "tracer spans --http --all-syscalls",
            start: Some(tracer_spans_with(&built.tracer, &out, &["--http", "--all-syscalls"])),
        },
    ];
    let result = alternate(&configs, args.rounds, "ns/exchange", |config| {
        load_ns_per_op(built, "exchanges", EXCHANGES, config)
    });
    let _ = std::fs::remove_file(&out);
    result
}
