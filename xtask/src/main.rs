//! Project tasks: `cargo xtask build | run | test | bench`.
mod bench;
mod setup;
#[cfg(test)]
mod structure;
mod util;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "Build, run, test and benchmark tracer")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what is missing (rust-src, bpf-linker) and build target/release/tracer.
    Build,
    /// Build if needed and run tracer as root (via sudo when not root).
    Run {
        /// Arguments for tracer (default: none, the live system-wide view).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run every test: unit tests, then the BPF integration tests as root.
    Test {
        /// Only run tests whose name contains this.
        filter: Option<String>,
    },
    /// Benchmark tracer's overhead and memory against libbpf-tools.
    Bench(bench::BenchArgs),
}

fn main() {
    let cli = Cli::parse();
    let result: Result<()> = match cli.command {
        Task::Build => setup::build().map(|_| ()),
        Task::Run { args } => run(&args),
        Task::Test { filter } => test(filter.as_deref()),
        Task::Bench(args) => bench::run(&args),
    };
    if let Err(err) = result {
        let causes: Vec<String> = err.chain().map(ToString::to_string).collect();
        eprintln!("xtask: error: {}", causes.join(": "));
        std::process::exit(1);
    }
}

fn run(args: &[String]) -> Result<()> {
    let built = setup::build()?;
    let status = util::as_root(&built.tracer, args, &[])?.status()?;
    std::process::exit(status.code().unwrap_or(1));
}

fn test(filter: Option<&str>) -> Result<()> {
    let built = setup::build()?;
    let filter_args: Vec<&str> = filter.into_iter().collect();

    util::step("unit tests (every crate but the root-only integration tests)", || {
        let mut cargo = built.cargo();
        cargo.args(["test", "--release", "--workspace", "--exclude", "tracer-tests", "--"]);
        cargo.args(&filter_args);
        util::run_checked(&mut cargo)
    })?;

    let python = util::step("reference decoder for the report's histograms", setup::python_hdr_decoder)?;
    let python_otlp = util::step("reference OTLP decoder for the span export", setup::python_otlp_decoder)?;
    let python_perfetto = util::step("Perfetto's schema for the trace output", setup::python_perfetto_decoder)?;
    util::step("tmux, nginx, wrk, go (with x/net), h2load and prometheus for the terminal, HTTP and metrics tests", || {
        util::ensure_packages(
            &[
                ("tmux", "tmux"),
                ("nginx", "nginx"),
                ("wrk", "wrk"),
                ("go", "golang-go"),
                // The Go test server's h2c (HTTP/2 in cleartext, Upgrade: h2c).
                ("/usr/share/gocode/src/golang.org/x/net/http2/h2c/h2c.go", "golang-golang-x-net-dev"),
                ("h2load", "nghttp2-client"),
                ("prometheus", "prometheus"),
                ("promtool", "prometheus"),
            ],
            "the tests",
        )
    })?;
    // The build leaves dirty pages behind; their writeback would be noise in
    // the block I/O and scheduling tests.
    util::step("flushing dirty pages before the timing-sensitive tests", || {
        util::run_checked(&mut std::process::Command::new("sync"))
    })?;
    util::step("BPF integration tests (as root, one at a time)", || {
        let binaries = built.integration_test_binaries()?;
        let env = [
            ("TRACER_PYTHON_HDR", python.display().to_string()),
            ("TRACER_PYTHON_OTLP", python_otlp.display().to_string()),
            ("TRACER_PYTHON_PERFETTO", python_perfetto.display().to_string()),
            ("TRACER_BIN", built.tracer.display().to_string()),
            ("TRACER_LOAD_BIN", built.load_helper.display().to_string()),
            (
                "TRACER_REQUIRE_BPF",
                std::env::var("TRACER_REQUIRE_BPF").unwrap_or_else(|_| "1".into()),
            ),
        ];
        for binary in binaries {
            // A hung test must fail the run, not stall it: each binary gets
            // at most 15 minutes (they take seconds).
            let mut args = vec!["-k".to_owned(), "10".to_owned(), "900".to_owned(), binary.display().to_string()];
            args.push("--test-threads=1".to_owned());
            args.extend(filter_args.iter().map(|s| s.to_string()));
            util::run_checked(&mut util::as_root(std::path::Path::new("timeout"), &args, &env)?)?;
        }
        Ok(())
    })
}

