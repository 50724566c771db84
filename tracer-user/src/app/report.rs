//! The report of a session: built from its aggregation and the probes'
//! counters, written, and its losses told.
use std::path::Path;

use anyhow::{Context, Result};

use super::session::{FinalLosses, Session};
use crate::{
    model::losses::Losses,
    output::report::{self, Filters, Report, ReportMeta, Traced},
    sys::{clock, disks::Disks},
};

/// Builds the report of a finished session ([`Session::finish`]) and
/// writes it.
pub fn finish_report(session: &Session, filters: Filters, out: &Path, lost: &FinalLosses) -> Result<Report> {
    let report = build_report(session, filters, lost);
    report::write_report(out, &report)
        .with_context(|| format!("writing the report to {}", out.display()))?;
    Ok(report)
}

/// The report of everything aggregated so far (call `sync` first), with
/// the loss counters read once by the caller.
pub fn build_report(session: &Session, filters: Filters, lost: &Losses) -> Report {
    let by_thread = session.probes.syscalls_by_thread;
    let disks = Disks::read();
    Report::build(
        ReportMeta {
            start_unix_ns: session.start_unix_ns,
            end_unix_ns: clock::unix_ns(),
            probe_mode: session.probes.mode.name().into(),
            filters,
            traced: Traced {
                syscalls: session.probes.attached.syscalls,
                block_io: session.probes.attached.block_io,
            },
            lost: *lost,
            syscalls_by_thread: by_thread,
            span_anomalies: session
                .probes
                .attached
                .spans
                .then(|| (session.probes.span_anomalies(), lost.spans)),
        },
        &session.agg,
        |dev| disks.name(dev),
    )
}

/// Says on stderr what the kernel side could not deliver, from the same
/// counts as the report.
pub fn warn_losses(lost: &FinalLosses) {
    if lost.runq_events > 0 {
        say!("tracer: warning: {} run-queue events were lost (ring buffer full)", lost.runq_events);
    }
    if lost.threads_untracked > 0 {
        say!(
            "tracer: warning: {} threads were not tracked (table full; raise --max-threads)",
            lost.threads_untracked
        );
    }
    if lost.accounting_gaps > 0 {
        say!(
            "tracer: note: the kernel did not report {} scheduler switches of traced threads; their time was \
             split with the kernel's own per-task counters (BTF probes), or counted as unaccounted",
            lost.accounting_gaps
        );
    }
    if lost.stats_samples > 0 || lost.block_requests > 0 {
        say!(
            "tracer: warning: {} syscall/block samples and {} block requests were dropped (tables full)",
            lost.stats_samples, lost.block_requests
        );
    }
    if lost.children_left_out > 0 {
        say!(
            "tracer: note: the targets started {} child processes that were not traced; add --children to follow them",
            lost.children_left_out
        );
    }
    if lost.children_untracked > 0 {
        say!("tracer: warning: {} child processes could not be followed (table full)", lost.children_untracked);
    }
}

