//! The `runqlat` and `record` commands.
use std::{io::Write, path::Path, time::Duration};

use anyhow::{Context, Result};

use crate::{
    aggregate::{Aggregator, HistogramScope, comm_string},
    cli::{KernelArgs, RecordArgs, RunqlatArgs},
    hist::Buckets,
    loader::{LoadOptions, Probes},
    procfs,
    report::{self, Filters, Report, ReportMeta},
    session::{Plan, Session, Stop},
    targets,
    text::{self, Unit},
};

/// What to trace, checked before anything is loaded.
struct Targets {
    options: LoadOptions,
    filters: Filters,
}

fn resolve_targets(kernel: &KernelArgs, pids: &[u32], tid: Option<u32>, cgroup: Option<&str>) -> Result<Targets> {
    let cgroup = cgroup.map(targets::resolve_cgroup).transpose()?;
    let filter = targets::build_filter(pids, tid, cgroup.as_ref())?;
    Ok(Targets {
        options: LoadOptions {
            filter,
            probes: kernel.probes,
            max_threads: kernel.max_threads,
        },
        filters: Filters {
            pids: pids.to_vec(),
            tid,
            cgroup: cgroup.map(|c| c.path.display().to_string()),
        },
    })
}

fn start(targets: &Targets, scope: HistogramScope) -> Result<Session> {
    let probes = Probes::load(&targets.options)?;
    Ok(Session::new(probes, Aggregator::new(scope)))
}

fn finish_report(session: &mut Session, filters: Filters, out: &Path) -> Result<Report> {
    session.sync();
    let report = Report::build(
        ReportMeta {
            start_unix_ns: session.start_unix_ns,
            end_unix_ns: procfs::unix_ns(),
            probe_mode: session.probes.mode.name(),
            filters,
            lost: session.probes.losses(),
        },
        &session.agg,
    );
    report::write_report(out, &report)
        .with_context(|| format!("writing the report to {}", out.display()))?;
    Ok(report)
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
}

pub async fn runqlat(kernel: &KernelArgs, args: &RunqlatArgs) -> Result<()> {
    if let Some(json) = &args.json {
        report::check_output_path(json)?;
    }
    let pids: Vec<u32> = args.pid.into_iter().collect();
    let targets = resolve_targets(kernel, &pids, args.tid, args.cgroup.as_deref())?;
    let scope = HistogramScope {
        per_process: args.per_process || args.json.is_some(),
        per_thread: args.per_thread,
    };
    let mut session = start(&targets, scope)?;
    let unit = if args.millis { Unit::Millis } else { Unit::Micros };
    let mut whole_run = Aggregator::new(scope);

    match args.interval {
        Some(secs) => eprintln!("Tracing run queue latency... Hit Ctrl-C to end. Printing every {secs} s."),
        None => eprintln!("Tracing run queue latency... Hit Ctrl-C to end."),
    }
    let plan = Plan {
        interval: args.interval.map(Duration::from_secs),
        intervals: args.count,
        duration: None,
    };
    let print = |session: &mut Session, whole_run: &mut Aggregator| {
        let interval = session.agg.take_runq();
        print_interval(&interval, args, unit, &session.agg);
        whole_run.runq.merge(&interval);
    };
    let stop = session
        .run(plan, |session| print(session, &mut whole_run))
        .await?;
    // Without an interval, or when interrupted mid-interval, print what is left.
    if args.interval.is_none() || stop == Stop::Signal {
        session.sync();
        print(&mut session, &mut whole_run);
    }
    if let Some(json) = &args.json {
        session.agg.runq = whole_run.runq;
        finish_report(&mut session, targets.filters, json)?;
        eprintln!("Report written to {}", json.display());
    }
    warn_losses(&session);
    Ok(())
}

fn print_interval(hists: &crate::aggregate::RunqHistograms, args: &RunqlatArgs, unit: Unit, agg: &Aggregator) {
    let mut out = String::new();
    if args.timestamp {
        out.push_str(&wall_clock_hms());
        out.push('\n');
    }
    let section = |out: &mut String, header: Option<String>, buckets: &Buckets| {
        if buckets.count() == 0 {
            return;
        }
        if let Some(header) = header {
            out.push('\n');
            out.push_str(&header);
            out.push('\n');
        }
        out.push_str(&text::log2_table(buckets, unit));
        out.push_str(&text::percentile_line(buckets, unit));
        out.push('\n');
    };
    let name_of = |tid: u32| {
        procfs::comm_of(tid).unwrap_or_else(|| {
            agg.processes()
                .values()
                .flatten()
                .find(|t| t.tid == tid)
                .map(|t| t.comm.clone())
                .unwrap_or_else(|| comm_string(&[]))
        })
    };
    if args.per_thread {
        let mut tids: Vec<_> = hists.by_thread.keys().copied().collect();
        tids.sort_unstable();
        for tid in tids {
            section(&mut out, Some(format!("tid = {tid} {}", name_of(tid))), &hists.by_thread[&tid]);
        }
    } else if args.per_process {
        let mut pids: Vec<_> = hists.by_process.keys().copied().collect();
        pids.sort_unstable();
        for pid in pids {
            section(&mut out, Some(format!("pid = {pid} {}", name_of(pid))), &hists.by_process[&pid]);
        }
    } else {
        section(&mut out, None, &hists.system);
    }
    if hists.system.count() == 0 {
        out.push_str("(no run-queue waits in this interval)\n");
    }
    out.push('\n');
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
}

fn wall_clock_hms() -> String {
    let secs = (procfs::unix_ns() / 1_000_000_000) as libc::time_t;
    // SAFETY: localtime_r fills the zeroed tm from a valid time_t.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    unsafe { libc::localtime_r(&secs, &mut tm) };
    format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
}

pub async fn record(kernel: &KernelArgs, args: &RecordArgs) -> Result<()> {
    report::check_output_path(&args.out)?;
    let targets = resolve_targets(kernel, &args.pids, args.tid, args.cgroup.as_deref())?;
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
    };
    let started = std::time::Instant::now();
    session
        .run(plan, |session| {
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
