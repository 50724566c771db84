//! `tracer timeline export`: a recorded timeline, and spans joined with
//! it, as a Perfetto trace. Needs neither root nor BPF. `tracer record
//! --perfetto` ends the same way, with the timeline it just recorded.
use std::{ops::ControlFlow, path::Path};

use anyhow::{Context, Result};

use crate::{
    cli::ExportArgs,
    model::{
        join::{Joiner, input},
        spans::SpanRecord,
        timeline::Timeline,
    },
    output::{atomic, perfetto, timeline_file},
};

pub fn export(args: &ExportArgs) -> Result<()> {
    atomic::check_output_path(&args.perfetto)?;
    let timeline = timeline_file::read(&args.timeline).context("loading the timeline")?;
    let spans = match &args.spans {
        Some(path) => joined(&timeline, path, args.contention_threshold)?,
        None => Vec::new(),
    };
    write_trace(&args.perfetto, &timeline, &spans)
}

/// The spans of `path` that the timeline covers, broken down; the others
/// are counted on standard error, by line, as `tracer spans join` does.
fn joined(timeline: &Timeline, path: &Path, contention_threshold: f64) -> Result<Vec<SpanRecord>> {
    let reading = || format!("reading spans from {}", path.display());
    let mut joiner = Joiner::new(timeline, contention_threshold);
    let mut records = Vec::new();
    input::read(super::join::open(path).with_context(reading)?, &mut |at, span| {
        records.extend(joiner.add(at, span));
        ControlFlow::Continue(())
    })
    .with_context(reading)?;
    for line in joiner.skipped.lines() {
        say!("tracer: {line}");
    }
    Ok(records)
}

/// Writes the trace and says what is in it.
pub(crate) fn write_trace(path: &Path, timeline: &Timeline, spans: &[SpanRecord]) -> Result<()> {
    let spans: Vec<&SpanRecord> = spans.iter().collect();
    let summary = perfetto::write(path, timeline, &spans).context("writing the Perfetto trace")?;
    let shown = if atomic::is_stdout(path) { "standard output".into() } else { path.display().to_string() };
    say!(
        "Perfetto trace written to {shown} ({} threads, {} CPUs, {} scheduler events, {} spans); open it in \
         https://ui.perfetto.dev",
        summary.threads,
        summary.cpus,
        summary.sched_events,
        summary.spans
    );
    if summary.spans_unplaced > 0 {
        say!("tracer: warning: {} spans began before the clock's zero and were left out", summary.spans_unplaced);
    }
    if let Some(reason) = &timeline.header.truncated {
        say!("tracer: note: the timeline stopped before its recording ended ({reason}); so does the trace");
    }
    if timeline.header.events_lost > 0 {
        say!(
            "tracer: warning: the timeline lost {} events (ring buffer full); the states of the threads concerned \
             may be wrong around them",
            timeline.header.events_lost
        );
    }
    Ok(())
}
