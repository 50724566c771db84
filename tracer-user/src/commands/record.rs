//! `tracer record`: everything measured, to a JSON report.
use std::time::Duration;

use anyhow::Result;

use super::{finish_report, resolve_targets, start, syscall_options, warn_losses};
use crate::{
    aggregate::HistogramScope,
    cli::{KernelArgs, RecordArgs},
    loader::SpanRequest,
    report,
    session::Plan,
};

pub async fn record(kernel: &KernelArgs, args: &RecordArgs) -> Result<()> {
    report::check_output_path(&args.out)?;
    let mut targets = resolve_targets(kernel, &args.target)?;
    targets.options.syscalls = syscall_options(&targets, args.syscalls, false, Vec::new());
    targets.options.block_io = true;
    // Spans come along when the (first) target has span markers.
    targets.options.spans = args.target.pids.first().map(|&pid| SpanRequest { pid, required: false, http: false });
    let scope = HistogramScope {
        per_process: true,
        per_thread: false,
    };
    let mut session = start(&targets, scope)?;
    match args.duration {
        Some(d) => eprintln!("Recording for {:.1} s ({} probes)... Ctrl-C ends early and still writes the report.", d.as_secs_f64(), session.probes.mode.name()),
        None => eprintln!("Recording ({} probes)... Ctrl-C or SIGTERM ends it and writes the report.", session.probes.mode.name()),
    }
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let plan = Plan {
        interval: Some(Duration::from_secs(1)),
        intervals: None,
        duration: args.duration,
        drain_only: false,
    };
    let started = std::time::Instant::now();
    let mut last_expiry = std::time::Instant::now();
    session
        .run(plan, |session| {
            if session.probes.attached.spans && last_expiry.elapsed() >= Duration::from_secs(10) {
                last_expiry = std::time::Instant::now();
                session.probes.expire_spans(
                    crate::procfs::monotonic_ns().saturating_sub(crate::commands::SPAN_EXPIRY.as_nanos() as u64),
                );
            }
            if progress {
                eprint!(
                    "\r  {:>5.0} s  {} threads live, {} run-queue waits   ",
                    started.elapsed().as_secs_f64(),
                    session.agg.live_threads(),
                    session.agg.events
                );
            }
        })
        .await?;
    if progress {
        eprintln!();
    }
    let report = finish_report(&mut session, targets.filters, &args.out)?;
    eprintln!(
        "Report written to {} ({} processes, {} run-queue waits)",
        args.out.display(),
        report.processes.len(),
        report.histograms.runq_latency.count
    );
    warn_losses(&session);
    Ok(())
}
