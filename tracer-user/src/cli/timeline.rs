//! `tracer timeline export`: a recorded timeline as a Perfetto trace.
use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct TimelineArgs {
    #[command(subcommand)]
    pub command: TimelineCommand,
}

#[derive(Debug, Subcommand)]
pub enum TimelineCommand {
    /// Convert a timeline to a Perfetto trace (ui.perfetto.dev opens it).
    #[command(long_about = "Convert a timeline that `tracer record --timeline` wrote to a Perfetto trace, \
the protobuf format that ui.perfetto.dev and Perfetto's trace processor open: each traced thread's \
states (Running, Runnable, Runnable (Preempted), Sleeping, Uninterruptible with I/O wait marked), \
what ran on each CPU while they waited for it, and, with --spans, spans recorded elsewhere as \
slices on their threads with their breakdown. Needs neither root nor BPF. See \
docs/report-format.md, \"Perfetto trace\".")]
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Timeline written by `tracer record --timeline`.
    #[arg(value_name = "TIMELINE")]
    pub timeline: PathBuf,

    /// The Perfetto trace to write (atomically; `-` is standard output).
    #[arg(long, value_name = "FILE", required = true)]
    pub perfetto: PathBuf,

    /// Spans to show as slices, joined with the timeline as `tracer spans
    /// join` does: JSON lines (`span_id`, `name`, `tid`, `start_unix_ns`,
    /// `end_unix_ns`) or OTLP/JSON; `-` reads them from standard input.
    #[arg(long, value_name = "FILE")]
    pub spans: Option<PathBuf>,

    /// With --spans: share of a span's wall time waiting for a CPU from
    /// which its verdict is cpu-contention.
    #[arg(long, value_name = "FRACTION", default_value_t = crate::model::aggregate::DEFAULT_CONTENTION_THRESHOLD,
          value_parser = super::parse_fraction)]
    pub contention_threshold: f64,
}
