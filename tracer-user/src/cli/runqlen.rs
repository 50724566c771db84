//! `tracer runqlen`: runqlen's options.
use clap::Args;

use super::MAX_SECONDS;

#[derive(Debug, Args, Default)]
pub struct RunqlenArgs {
    /// One histogram per CPU.
    #[arg(short = 'C', long = "cpus")]
    pub per_cpu: bool,

    /// Also print run-queue occupancy: the share of time with a task waiting.
    #[arg(short = 'O', long = "runqocc")]
    pub occupancy: bool,

    /// Print a timestamp before each interval.
    #[arg(short = 'T', long = "timestamp")]
    pub timestamp: bool,

    /// Print every INTERVAL seconds (default: once, at Ctrl-C).
    #[arg(value_name = "INTERVAL", value_parser = clap::value_parser!(u64).range(1..=MAX_SECONDS))]
    pub interval: Option<u64>,

    /// Stop after COUNT intervals.
    #[arg(value_name = "COUNT", requires = "interval", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}
