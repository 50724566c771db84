//! Options that bound what a recording keeps, shared by `record` and the
//! live commands' `--json`.
use clap::Args;

use crate::model::exited::DEFAULT_MAX_EXITED_THREADS;

/// How much of exited threads a recording keeps by name.
#[derive(Debug, Args, Clone, Copy)]
pub struct ExitedArgs {
    /// Exited threads kept by name per process (the busiest); the others
    /// are summed into one "other exited threads" row, so thread churn
    /// cannot grow the recording without bound.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_EXITED_THREADS as u32,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_exited_threads: u32,
}

impl Default for ExitedArgs {
    fn default() -> Self {
        ExitedArgs { max_exited_threads: DEFAULT_MAX_EXITED_THREADS as u32 }
    }
}
