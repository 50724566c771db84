//! The commands. Each resolves its targets (failing with one line before
//! anything is loaded), starts a session, and prints or writes what it saw.
mod biolat;
mod join;
mod offcpu;
mod record;
mod runqlat;
mod spans;
mod syscalls;

use std::{io::Write, path::Path};

use anyhow::{Context, Result};
pub use biolat::biolat;
pub use join::join;
pub use offcpu::offcpu;
pub use record::record;
pub use runqlat::runqlat;
pub use spans::spans;
pub use syscalls::syscalls;

use std::{collections::HashMap, time::Duration};

use tracer_common::ThreadTotals;

use crate::{
    aggregate::{Aggregator, HistogramScope, RunqHistograms},
    cli::{IntervalArgs, KernelArgs, TargetArgs},
    kstats::KernelStats,
    loader::{LoadOptions, Probes, SyscallOptions},
    procfs,
    report::{self, Filters, Report, ReportMeta, Traced},
    session::{Plan, Session, Stop},
    targets,
    text::Unit,
};

/// `tracer record` removes spans open longer than this, counting them as
/// never ended (`tracer spans` has `--expire-after`).
pub(crate) const SPAN_EXPIRY: Duration = Duration::from_secs(60);

/// What to trace, checked before anything is loaded.
pub(crate) struct Targets {
    pub options: LoadOptions,
    pub filters: Filters,
}

impl Targets {
    /// Whether a PID, TID or cgroup narrows tracing (syscall probes are
    /// only attached system-wide when asked for explicitly).
    fn narrowed(&self) -> bool {
        self.options.filter.flags != 0
    }
}

pub(crate) fn resolve_targets(kernel: &KernelArgs, target: &TargetArgs) -> Result<Targets> {
    let cgroup = target.cgroup.as_deref().map(targets::resolve_cgroup).transpose()?;
    let filter = targets::build_filter(&target.pids, target.tid, cgroup.as_ref())?;
    Ok(Targets {
        options: LoadOptions {
            filter,
            probes: kernel.probes,
            max_threads: kernel.max_threads,
            syscalls: None,
            block_io: false,
            spans: None,
            timeline: false,
        },
        filters: Filters {
            pids: target.pids.clone(),
            tid: target.tid,
            cgroup: cgroup.map(|c| c.path.display().to_string()),
        },
    })
}

pub(crate) fn start(targets: &Targets, scope: HistogramScope) -> Result<Session> {
    let probes = Probes::load(&targets.options)?;
    Ok(Session::new(probes, Aggregator::new(scope)))
}

fn finish_report(session: &mut Session, filters: Filters, out: &Path) -> Result<Report> {
    session.sync();
    let report = build_report(session, filters);
    report::write_report(out, &report)
        .with_context(|| format!("writing the report to {}", out.display()))?;
    Ok(report)
}

/// The report of everything aggregated so far (call `sync` first).
pub(crate) fn build_report(session: &Session, filters: Filters) -> Report {
    let by_thread = session.probes.syscalls_by_thread;
    Report::build(
        ReportMeta {
            start_unix_ns: session.start_unix_ns,
            end_unix_ns: procfs::unix_ns(),
            probe_mode: session.probes.mode.name(),
            filters,
            traced: Traced {
                syscalls: session.probes.attached.syscalls,
                block_io: session.probes.attached.block_io,
            },
            lost: session.probes.losses(),
            syscalls_by_thread: by_thread,
            span_anomalies: session
                .probes
                .attached
                .spans
                .then(|| (session.probes.span_anomalies(), session.probes.losses().spans)),
        },
        &session.agg,
    )
}

fn warn_losses(session: &Session) {
    let lost = session.probes.losses();
    if lost.runq_events > 0 {
        eprintln!("tracer: warning: {} run-queue events were lost (ring buffer full)", lost.runq_events);
    }
    if lost.threads_untracked > 0 {
        eprintln!(
            "tracer: warning: {} threads were not tracked (table full; raise --max-threads)",
            lost.threads_untracked
        );
    }
    if lost.accounting_gaps > 0 {
        eprintln!(
            "tracer: note: the kernel did not report {} scheduler switches of traced threads; their time was \
             split with the kernel's own per-task counters (BTF probes), or counted as unaccounted",
            lost.accounting_gaps
        );
    }
    if lost.stats_samples > 0 || lost.block_requests > 0 {
        eprintln!(
            "tracer: warning: {} syscall/block samples and {} block requests were dropped (tables full)",
            lost.stats_samples, lost.block_requests
        );
    }
}

/// Writes a block of text to stdout at once (intervals stay contiguous
/// when piped).
fn emit(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

fn wall_clock_hms() -> String {
    let secs = (procfs::unix_ns() / 1_000_000_000) as libc::time_t;
    // SAFETY: localtime_r fills the zeroed tm from a valid time_t.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    unsafe { libc::localtime_r(&secs, &mut tm) };
    format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
}

/// Syscall probes for `targets`: attached when a filter narrows them or
/// `system_wide` says so explicitly.
pub(crate) fn syscall_options(targets: &Targets, system_wide: bool, by_thread: bool, only: Vec<u32>) -> Option<SyscallOptions> {
    (targets.narrowed() || system_wide).then_some(SyscallOptions { by_thread, only, histograms: true })
}


/// What happened during one printed interval.
pub struct IntervalView {
    pub runq: RunqHistograms,
    pub kernel: KernelStats,
    /// Per thread: (TGID, totals accrued during the interval).
    pub totals: HashMap<u32, (u32, ThreadTotals)>,
}

/// Cuts the running aggregation into intervals, keeping the whole run for
/// the JSON report.
#[derive(Default)]
pub(crate) struct Intervals {
    pub whole_run: RunqHistograms,
    kernel_before: KernelStats,
    totals_before: HashMap<u32, ThreadTotals>,
}

impl Intervals {
    pub fn next(&mut self, agg: &mut Aggregator) -> IntervalView {
        let runq = agg.take_runq();
        self.whole_run.merge(&runq);
        let kernel = agg.kernel.since(&self.kernel_before);
        self.kernel_before = agg.kernel.clone();
        let mut totals = HashMap::new();
        let mut totals_now = HashMap::new();
        for thread in agg.processes().values().flatten() {
            let before = self.totals_before.get(&thread.tid).copied().unwrap_or_default();
            totals.insert(thread.tid, (thread.tgid, thread.totals.since(&before)));
            totals_now.insert(thread.tid, thread.totals);
        }
        self.totals_before = totals_now;
        IntervalView { runq, kernel, totals }
    }
}

/// Runs a live command: after each interval (or once, at Ctrl-C, without
/// one) prints `render`'s text; at the end writes `--json` if asked.
async fn run_live(
    mut session: Session,
    filters: Filters,
    output: &IntervalArgs,
    what: &str,
    mut render: impl FnMut(&Session, &IntervalView) -> String,
) -> Result<()> {
    match output.interval {
        Some(secs) => eprintln!("Tracing {what}... Hit Ctrl-C to end. Printing every {secs} s."),
        None => eprintln!("Tracing {what}... Hit Ctrl-C to end."),
    }
    let plan = Plan {
        interval: output.interval.map(Duration::from_secs),
        intervals: output.count,
        duration: None,
        drain_only: false,
    };
    let mut intervals = Intervals::default();
    let timestamp = output.timestamp;
    let mut print = |session: &mut Session, intervals: &mut Intervals| {
        let view = intervals.next(&mut session.agg);
        let mut text = String::new();
        if timestamp {
            text.push_str(&wall_clock_hms());
            text.push('\n');
        }
        text.push_str(&render(session, &view));
        text.push('\n');
        emit(&text);
    };
    let stop = session.run(plan, |s| print(s, &mut intervals)).await?;
    if output.interval.is_none() || stop == Stop::Signal {
        session.sync();
        print(&mut session, &mut intervals);
    }
    if let Some(json) = &output.json {
        session.agg.runq = std::mem::take(&mut intervals.whole_run);
        finish_report(&mut session, filters, json)?;
        eprintln!("Report written to {}", json.display());
    }
    warn_losses(&session);
    Ok(())
}

/// `tracer floor`: the benchmark's reference for the cost of merely having
/// programs on the syscall tracepoints.
pub async fn floor() -> Result<()> {
    let _attached = crate::loader::load_empty_syscall_programs()?;
    eprintln!("Tracing syscalls with empty programs (benchmark floor)... Ctrl-C to end.");
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = sigint.recv() => {}
        _ = sigterm.recv() => {}
    }
    Ok(())
}

fn unit(output: &IntervalArgs) -> Unit {
    if output.millis { Unit::Millis } else { Unit::Micros }
}
