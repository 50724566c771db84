//! `tracer record`: everything measured, to a JSON report (and a timeline
//! and a Perfetto trace, when asked).
use std::{
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use tempfile::TempPath;

use super::{expire_stale_spans, listen, resolve_targets, timeline::write_trace};
use crate::app::report::{Checkpoints, build_report, holder_summaries, warn_losses, write_final_report};
use crate::{
    app::{
        Plan, Session,
        recorder::{Recorder, size},
    },
    bpf::SpanRequest,
    cli::{KernelArgs, RecordArgs},
    model::{aggregate::HistogramScope, spans::SpanRecord},
    output::{atomic, goodput_text, timeline_file},
};

/// Spans `record --perfetto` keeps for its trace, a few hundred bytes
/// each: a long recording of a busy server keeps the first ones only.
const MAX_TRACE_SPANS: usize = 1 << 20;

#[derive(Default)]
struct TraceSpans {
    kept: Vec<SpanRecord>,
    dropped: u64,
}

impl TraceSpans {
    fn keep(&mut self, spans: Vec<SpanRecord>) {
        let room = MAX_TRACE_SPANS.saturating_sub(self.kept.len());
        self.dropped += spans.len().saturating_sub(room) as u64;
        self.kept.extend(spans.into_iter().take(room));
    }
}

/// An empty file beside `trace` (or in the temporary directory, when the
/// trace goes to standard output, a device or a FIFO) for the timeline it
/// is converted from; removed when dropped.
fn scratch_beside(trace: &Path) -> std::io::Result<TempPath> {
    let regular = !atomic::is_stdout(trace) && std::fs::metadata(trace).map_or(true, |meta| meta.is_file());
    let dir = match trace.parent() {
        Some(dir) if regular && !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ if regular => PathBuf::from("."),
        _ => std::env::temp_dir(),
    };
    Ok(tempfile::Builder::new().prefix(".tracer-").suffix(".timeline").tempfile_in(dir)?.into_temp_path())
}

pub async fn record(kernel: &KernelArgs, args: &RecordArgs) -> Result<()> {
    atomic::check_output_path(&args.out)?;
    if args.timeline && atomic::is_stdout(&args.out) {
        bail!("the timeline goes next to the report as REPORT.timeline: give --out a file name, not -");
    }
    let mut timeline_path = args.timeline.then(|| args.out.with_extension("timeline"));
    if timeline_path.as_ref() == Some(&args.out) {
        bail!("the timeline goes next to the report as REPORT.timeline: give the report another name than {}", args.out.display());
    }
    let no_target = args.target.pids.is_empty() && args.target.tid.is_none() && args.target.cgroup.is_none();
    if timeline_path.is_some() && no_target {
        bail!("--timeline records the threads of a target: add --pid, --tid or --cgroup");
    }
    // A Perfetto trace is converted from a timeline at the end: the one
    // asked for, or a scratch one beside the trace.
    let mut scratch_timeline = None;
    if let Some(perfetto) = &args.perfetto {
        if no_target {
            bail!("--perfetto records the threads of a target: add --pid, --tid or --cgroup");
        }
        atomic::check_output_path(perfetto)?;
        if [Some(&args.out), timeline_path.as_ref()].contains(&Some(perfetto)) {
            bail!("--perfetto needs a file of its own, not {}", perfetto.display());
        }
        if timeline_path.is_none() {
            let scratch = scratch_beside(perfetto).context("preparing the Perfetto trace's timeline")?;
            timeline_path = Some(scratch.to_path_buf());
            scratch_timeline = Some(scratch);
        }
    }
    let mut endpoint = args.metrics.listen.map(|addr| listen(addr, &args.metrics.series)).transpose()?;
    let mut targets = resolve_targets(kernel, &args.target)?;
    targets.options.timeline = timeline_path.is_some();
    // The report's per-CPU section (run-queue lengths, busy share).
    targets.options.cpu_queues = true;
    // Who held the CPU while each process waited: the report's
    // `cpu_holders` and the summary at the end.
    targets.options.holders = true;
    // Checked (and created empty) before recording, so a bad path costs nothing.
    let recorder = match &timeline_path {
        Some(path) => {
            let max_bytes = args.safety.timeline_max_mib << 20;
            Some(Recorder::create(path, args.target.pids.clone(), max_bytes).context("preparing the timeline file")?)
        }
        None => None,
    };
    targets.options.syscalls = targets.syscall_options(args.syscalls, false, Vec::new());
    targets.options.block_io = true;
    // Spans come along when the (first) target has span markers, or with --http.
    targets.options.spans =
        args.target.pids.first().map(|&pid| SpanRequest { pids: vec![pid], required: false, http: args.http, ring: false, later_markers: false });
    let scope = HistogramScope {
        per_process: true,
        per_thread: false,
    };
    let mut session = Session::start(&targets, scope)?;
    session.timeline = recorder;
    // The trace shows every span: they are kept as they end.
    session.agg.keep_span_records = args.perfetto.is_some();
    let mut spans = TraceSpans::default();
    session.agg.limit_exited_threads(args.exited.max_exited_threads as usize);
    session.agg.set_slo(args.metrics.series.slo_ns());
    if let Some(endpoint) = &mut endpoint {
        endpoint.serve(&mut session);
        say!("Metrics at {}", endpoint.url());
    }
    match args.duration {
        Some(d) => say!("Recording for {:.1} s ({} probes)... Ctrl-C ends early and still writes the report.", d.as_secs_f64(), session.probes.mode.name()),
        None => say!("Recording ({} probes)... Ctrl-C, SIGTERM or SIGHUP ends it and writes the report.", session.probes.mode.name()),
    }
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let plan = Plan {
        interval: Some(Duration::from_secs(1)),
        intervals: None,
        duration: args.duration,
        drain_only: false,
        until_exit_of: Vec::new(),
    };
    let started = std::time::Instant::now();
    let mut last_expiry = std::time::Instant::now();
    let every = Duration::from_secs(args.safety.checkpoint);
    let mut checkpoints = Checkpoints::new(&args.out, targets.filters.clone(), every);
    session
        .run(plan, |session| {
            if let Some(checkpoints) = &mut checkpoints {
                checkpoints.tick(session);
            }
            expire_stale_spans(session, &mut last_expiry);
            spans.keep(session.agg.take_spans());
            if let Some(endpoint) = &mut endpoint {
                endpoint.publish(session);
            }
            if progress {
                // Not eprint!: it panics once the terminal is gone (SIGHUP).
                let _ = write!(
                    std::io::stderr(),
                    "\r  {:>5.0} s  {} threads live, {} run-queue waits   ",
                    started.elapsed().as_secs_f64(),
                    session.agg.live_threads(),
                    session.agg.events
                );
            }
        })
        .await?;
    if progress {
        say!();
    }
    let lost = session.finish();
    spans.keep(session.agg.take_spans());
    let report = build_report(&session, targets.filters, &lost);
    // When the report cannot be written where asked, it is saved elsewhere
    // and the run still fails, saying where: after the timeline is done.
    let written = write_final_report(&args.out, &report);
    if written.is_ok() {
        let written_to = if atomic::is_stdout(&args.out) { "standard output".into() } else { args.out.display().to_string() };
        say!(
            "Report written to {written_to} ({} processes, {} run-queue waits)",
            report.processes.len(),
            report.histograms.runq_latency.count
        );
    }
    holder_summaries(&report, &session.agg).iter().for_each(|line| say!("{line}"));
    if let Some(goodput) = &session.agg.goodput {
        for line in goodput_text::summary_lines(goodput) {
            say!("Spans {line}");
        }
    }
    let folded = session.agg.exited_threads_folded();
    if folded > 0 {
        say!(
            "tracer: note: {folded} exited threads beyond the busiest {} of their process are summed into \"other \
             exited threads\" rows (--max-exited-threads)",
            args.exited.max_exited_threads
        );
    }
    let mut timeline_lost = None;
    if let (Some(recorder), Some(path)) = (session.timeline.take(), &timeline_path) {
        let lost = lost.timeline_events;
        match recorder.finish(session.probes.mode.name(), lost) {
            Ok(_) if scratch_timeline.is_some() => {}
            Ok(summary) => match summary.truncated {
                None => say!("Timeline written to {} ({} events)", path.display(), summary.events),
                Some(_) => say!(
                    "Timeline written to {} ({} events, {} in size; it stopped early, and {} events after that were not \
                     written)",
                    path.display(),
                    summary.events,
                    size(std::fs::metadata(path).map_or(0, |meta| meta.len())),
                    summary.dropped
                ),
            },
            Err(err) => timeline_lost = Some(anyhow::Error::new(err).context(format!("writing the timeline {}", path.display()))),
        }
        if lost > 0 {
            say!("tracer: warning: {lost} timeline events were lost (ring buffer full)");
        }
        if let Some(perfetto) = &args.perfetto
            && timeline_lost.is_none()
        {
            let converted = timeline_file::read(path)
                .context("reading back the timeline")
                .and_then(|timeline| write_trace(perfetto, &timeline, &spans.kept));
            if spans.dropped > 0 {
                say!(
                    "tracer: note: the trace shows the first {MAX_TRACE_SPANS} spans; {} later ones are only in the \
                     report's counts",
                    spans.dropped
                );
            }
            timeline_lost = converted.err();
        }
    }
    warn_losses(&lost);
    if let (Err(_), Some(err)) = (&written, &timeline_lost) {
        say!("tracer: {err:#}");
    }
    written?;
    timeline_lost.map_or(Ok(()), Err)
}
