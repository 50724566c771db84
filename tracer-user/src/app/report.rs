//! The report of a session: built from its aggregation and the probes'
//! counters, written (periodically while recording, and elsewhere when its
//! destination refuses it at the end), and its losses told.
use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use super::session::{FinalLosses, Session};
use crate::{
    model::{aggregate::Aggregator, cpus, losses::Losses},
    output::{
        cpus_json::CpuJson,
        holders_text,
        report::{self, Filters, ProcessJson, Report, ReportMeta, Traced},
    },
    sys::{clock, disks::Disks},
};

/// The report of everything aggregated so far (call `sync` first), with
/// the loss counters read once by the caller.
pub fn build_report(session: &Session, filters: Filters, lost: &Losses) -> Report {
    let by_thread = session.probes.syscalls_by_thread;
    let disks = Disks::read();
    let cpus = match (&session.cpus_at_start, session.cpu_reading()) {
        (Some(start), Some(now)) => cpus::windows(start, &now).iter().map(CpuJson::new).collect(),
        _ => Vec::new(),
    };
    let mut report = Report::build(
        ReportMeta {
            start_unix_ns: session.start_unix_ns,
            end_unix_ns: session.end_unix_ns(),
            checkpoint: false,
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
                .then(|| (session.span_anomalies(), lost.spans)),
        },
        &session.agg,
        |dev| disks.name(dev),
    );
    report.cpus = cpus;
    report
}

/// Processes a recording without `--pid` sums up at its end: the ones
/// that waited longest for a CPU.
const SUMMARIZED_PROCESSES: usize = 3;

/// One plain sentence per target process (each `--pid`; without, the
/// processes that waited longest): how long it waited for a CPU and behind
/// whom.
pub fn holder_summaries(report: &Report, agg: &Aggregator) -> Vec<String> {
    let mut chosen: Vec<&ProcessJson> = if report.meta.filters.pids.is_empty() {
        let mut waiting: Vec<&ProcessJson> =
            report.processes.iter().filter(|p| p.pid != 0 && p.totals.runq_wait_ns > 0).collect();
        waiting.sort_by_key(|p| std::cmp::Reverse(p.totals.runq_wait_ns));
        waiting
    } else {
        report.processes.iter().filter(|p| report.meta.filters.pids.contains(&p.pid)).collect()
    };
    chosen.truncate(SUMMARIZED_PROCESSES.max(report.meta.filters.pids.len()));
    let held = agg.holders.by_waiter(agg.holders.sums());
    chosen
        .into_iter()
        .map(|p| {
            let t = &p.totals;
            let time = t.on_cpu_ns + t.runq_wait_ns + t.off_cpu.uninterruptible_ns + t.off_cpu.sleep_ns + t.unaccounted_ns;
            let name = format!("{} (pid {})", p.comm, p.pid);
            let waited = holders_text::Waited { ns: t.runq_wait_ns, stolen_ns: t.stolen_ns };
            holders_text::summary(&name, waited, time, held.get(&p.pid).map_or(&[], Vec::as_slice))
        })
        .collect()
}

/// A report its destination refused at the end of a recording; `cause`
/// names the destination.
#[derive(Debug, thiserror::Error)]
pub enum NotWritten {
    #[error("the report could not be written: {cause}; it was saved to {saved} instead")]
    SavedElsewhere { cause: String, saved: String },
    #[error("the report could not be written: {cause}; nor to {}: it is lost", tried.join(", nor to "))]
    Lost { cause: String, tried: Vec<String> },
}

/// Where a report goes when its destination refuses it: `$TMPDIR` (or
/// /tmp), else the current directory, named after this process and the
/// time so that nothing is overwritten.
fn fallback_paths() -> Vec<PathBuf> {
    let name = format!("tracer-report-{}-{}.json", std::process::id(), clock::unix_ns() / 1_000_000_000);
    let mut dirs = vec![std::env::temp_dir()];
    dirs.extend(std::env::current_dir().ok().filter(|dir| *dir != dirs[0]));
    dirs.into_iter().map(|dir| dir.join(&name)).collect()
}

/// Writes the final report to `out` (atomically), and when that fails (a
/// full disk, a directory removed meanwhile) to a fallback file, so that a
/// recording is not lost at its last step; the error then says where it is.
pub fn write_final_report(out: &Path, report: &Report) -> Result<(), NotWritten> {
    let Err(err) = report::write_report(out, report) else { return Ok(()) };
    let cause = err.to_string();
    let mut tried = Vec::new();
    for path in fallback_paths() {
        match report::write_report(&path, report) {
            Ok(()) => return Err(NotWritten::SavedElsewhere { cause, saved: path.display().to_string() }),
            Err(err) => tried.push(err.to_string()),
        }
    }
    Err(NotWritten::Lost { cause, tried })
}

/// `record --checkpoint`: the report so far, written over the last one at
/// the report's own path every so often, so that a kill or a crash loses
/// at most one interval. A failure is said once and the recording goes on.
pub struct Checkpoints {
    out: PathBuf,
    filters: Filters,
    every: Duration,
    last: Instant,
    failing: bool,
}

impl Checkpoints {
    /// Checkpoints of the report at `out` every `every`; none for standard
    /// output, a device or a FIFO (each would get every checkpoint).
    pub fn new(out: &Path, filters: Filters, every: Duration) -> Option<Checkpoints> {
        let replaceable = !crate::output::atomic::is_stdout(out)
            && std::fs::metadata(out).map_or(true, |meta| meta.is_file());
        (replaceable && !every.is_zero()).then(|| Checkpoints {
            out: out.to_path_buf(),
            filters,
            every,
            last: Instant::now(),
            failing: false,
        })
    }

    /// Writes a checkpoint if one is due (call after `Session::sync`).
    pub fn tick(&mut self, session: &Session) {
        if self.last.elapsed() < self.every {
            return;
        }
        self.last = Instant::now();
        // The losses so far: the final report has those read once at the end.
        let mut report = build_report(session, self.filters.clone(), &session.probes.losses());
        report.meta.checkpoint = true;
        match report::write_report(&self.out, &report) {
            Ok(()) if self.failing => {
                self.failing = false;
                say!("tracer: checkpoints of the report are written to {} again", self.out.display());
            }
            Ok(()) => {}
            Err(err) if !self.failing => {
                self.failing = true;
                say!("tracer: warning: no checkpoint of the report: {err}; the recording goes on");
            }
            Err(_) => {}
        }
    }
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
    if lost.wait_holders > 0 {
        say!(
            "tracer: warning: {} CPU holders of run-queue waits were not summed (table full); cpu_holders is incomplete",
            lost.wait_holders
        );
    }
    if lost.marker_records > 0 {
        say!(
            "tracer: warning: {} span marker records were lost (the marker ring of the traced process was full); \
             their spans are missing or counted as not paired up",
            lost.marker_records
        );
    }
    if lost.marker_spans_unjoined > 0 {
        say!(
            "tracer: warning: {} marker spans were not reported: no scheduler event of their thread was recorded \
             to break them down with",
            lost.marker_spans_unjoined
        );
    }
    if lost.children_untracked > 0 {
        say!("tracer: warning: {} child processes could not be followed (table full)", lost.children_untracked);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        aggregate::{Aggregator, HistogramScope},
        losses::Losses,
        names::Offline,
    };

    fn report() -> Report {
        let agg = Aggregator::new(HistogramScope::default(), 0, Box::new(Offline));
        let meta = ReportMeta {
            start_unix_ns: 1,
            end_unix_ns: 2,
            checkpoint: false,
            probe_mode: "tp_btf".into(),
            filters: Filters { pids: vec![], tid: None, cgroup: None, children: false },
            traced: Traced { syscalls: false, block_io: false },
            lost: Losses::default(),
            syscalls_by_thread: false,
            span_anomalies: None,
        };
        Report::build(meta, &agg, |_| String::new())
    }

    #[test]
    fn a_refused_report_is_saved_elsewhere_and_says_where() {
        let gone = std::env::temp_dir().join(format!("tracer-removed-{}/r.json", std::process::id()));
        let err = write_final_report(&gone, &report()).unwrap_err();
        let NotWritten::SavedElsewhere { saved, .. } = &err else { panic!("{err}") };
        let text = err.to_string();
        assert!(text.contains(&gone.display().to_string()) && text.ends_with(&format!("saved to {saved} instead")), "{text}");
        assert!(Path::new(saved).starts_with(std::env::temp_dir()), "{saved}");
        let read: Report = serde_json::from_slice(&std::fs::read(saved).unwrap()).expect("a report");
        assert_eq!(read.meta.end_unix_ns, 2);
        std::fs::remove_file(saved).unwrap();
    }

    #[test]
    fn checkpoints_only_replace_files() {
        let every = Duration::from_secs(1);
        let filters = report().meta.filters;
        assert!(Checkpoints::new(Path::new("-"), filters.clone(), every).is_none());
        assert!(Checkpoints::new(Path::new("/dev/null"), filters.clone(), every).is_none());
        assert!(Checkpoints::new(Path::new("new.json"), filters.clone(), Duration::ZERO).is_none(), "--checkpoint 0");
        assert!(Checkpoints::new(Path::new("new.json"), filters, every).is_some());
    }
}
