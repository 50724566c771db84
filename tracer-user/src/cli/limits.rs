//! Options that bound what a recording keeps, shared by `record` and the
//! live commands' `--json`.
use clap::Args;

use crate::{app::recorder::DEFAULT_TIMELINE_MAX_MIB, model::exited::DEFAULT_MAX_EXITED_THREADS};

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

/// How `record` keeps a long recording safe from a kill, a full disk, a
/// directory removed meanwhile.
#[derive(Debug, Args, Clone, Copy)]
pub struct SafetyArgs {
    /// Write the report so far every SECS seconds, replacing the last one,
    /// so that a kill loses at most that much (0: only at the end). Not
    /// for `--out -`, a device or a FIFO.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub checkpoint: u64,

    /// With --timeline: stop it at this size (it is finished as it is,
    /// marked truncated, and the recording goes on). It also stops when its
    /// disk's free space drops under 5% (at least 1 MiB, at most 64 MiB).
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_TIMELINE_MAX_MIB,
          value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    pub timeline_max_mib: u64,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{Cli, Command};

    fn record(args: &[&str]) -> Result<super::super::RecordArgs, clap::Error> {
        let cli = Cli::try_parse_from(["tracer", "record", "--out", "r.json"].iter().chain(args))?;
        let Some(Command::Record(args)) = cli.command else { panic!("record expected") };
        Ok(args)
    }

    #[test]
    fn record_bounds_what_it_keeps_and_checkpoints() {
        let defaults = record(&[]).unwrap();
        assert_eq!((defaults.exited.max_exited_threads, defaults.safety.checkpoint), (64, 60));
        assert_eq!(defaults.safety.timeline_max_mib, 1_024);
        let set = record(&["--max-exited-threads", "8", "--checkpoint", "0", "--timeline-max-mib", "2"]).unwrap();
        assert_eq!((set.exited.max_exited_threads, set.safety.checkpoint, set.safety.timeline_max_mib), (8, 0, 2));
        assert!(record(&["--max-exited-threads", "0"]).is_err());
        assert!(record(&["--timeline-max-mib", "0"]).is_err());

        let cli = Cli::try_parse_from(["tracer", "offcpu", "--json", "o.json", "--max-exited-threads", "3"]).unwrap();
        let Some(Command::Offcpu(offcpu)) = cli.command else { panic!("offcpu expected") };
        assert_eq!(offcpu.output.exited.max_exited_threads, 3);
    }
}
