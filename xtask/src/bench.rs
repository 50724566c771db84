//! Benchmarks (never timed tests): tracer's cost per context switch against
//! no tracing and libbpf-tools runqlat, and its memory with many threads.
use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct BenchArgs {
    /// Alternating rounds per configuration.
    #[arg(long, default_value_t = 7)]
    pub rounds: usize,
}

pub fn run(_args: &BenchArgs) -> Result<()> {
    anyhow::bail!("not written yet")
}
