//! `tracer offcpu`: where the time that is not on a CPU goes, per process
//! or thread: run-queue wait (preempted), I/O wait, other uninterruptible
//! waits, and sleep, with episode-length percentiles per cause.
use std::{collections::BTreeMap, fmt::Write};

use anyhow::Result;

use super::{resolve_targets, run_live};
use crate::{
    app::Session,
    cli::{KernelArgs, OffcpuArgs},
    model::{
        intervals::IntervalView,
        aggregate::{Aggregator, HistogramScope, OffCpuHistograms},
        hist::Buckets,
    },
    output::{atomic, report::Totals, text::duration},
};

pub async fn offcpu(kernel: &KernelArgs, args: &OffcpuArgs) -> Result<()> {
    if let Some(json) = &args.output.json {
        atomic::check_output_path(json)?;
    }
    let mut targets = resolve_targets(kernel, &args.target)?;
    // With a target, its syscalls too (the "in syscalls" line), as `record`.
    targets.options.syscalls = targets.syscall_options(false, false, Vec::new());
    let scope = HistogramScope { per_process: true, per_thread: args.per_thread };
    let session = Session::start(&targets, scope)?;
    run_live(session, targets.filters, &args.output, "off-CPU time", |session, view| {
        render(view, args, &session.agg)
    })
    .await
}

fn render(view: &IntervalView, args: &OffcpuArgs, agg: &Aggregator) -> String {
    let mut groups: BTreeMap<u32, Totals> = BTreeMap::new();
    for ((tgid, tid), totals) in &view.totals {
        let key = if args.per_thread { *tid } else { *tgid };
        groups.entry(key).or_default().add(totals);
    }
    let empty = OffCpuHistograms::default();
    let mut out = String::new();
    let mut shown = 0;
    for (id, totals) in &groups {
        let busy = totals.on_cpu_ns + totals.runq_wait_ns + totals.off_cpu.uninterruptible_ns + totals.off_cpu.sleep_ns;
        if busy == 0 {
            continue;
        }
        shown += 1;
        let label = if args.per_thread { "tid" } else { "pid" };
        let _ = writeln!(out, "\n{label} = {id} {}", agg.comm_of(*id));
        let episodes = if args.per_thread {
            view.runq.off_cpu_by_thread.get(id)
        } else {
            view.runq.off_cpu_by_process.get(id)
        }
        .unwrap_or(&empty);
        table(&mut out, totals, episodes);
    }
    if shown == 0 {
        out.push_str("(no traced threads in this interval)\n");
    }
    out
}

fn table(out: &mut String, totals: &Totals, episodes: &OffCpuHistograms) {
    let _ = writeln!(
        out,
        "  {:<22} {:>11} {:>9} {:>11} {:>11} {:>11}",
        "STATE", "TOTAL", "EPISODES", "p50", "p99", "MAX"
    );
    let row = |out: &mut String, name: &str, total: u64, hist: Option<&Buckets>| {
        let _ = write!(out, "  {name:<22} {:>11}", duration(total));
        if let Some(h) = hist.filter(|h| h.count() > 0) {
            let q = |q: f64| h.percentile(q);
            let _ = write!(
                out,
                " {:>9} {:>11} {:>11} {:>11}",
                h.count(),
                duration(q(0.5)),
                duration(q(0.99)),
                duration(h.max())
            );
        }
        out.push('\n');
    };
    let other_d = totals.off_cpu.uninterruptible_ns.saturating_sub(totals.off_cpu.iowait_ns);
    let runq = totals.runq_causes();
    row(out, "on-cpu", totals.on_cpu_ns, None);
    if runq.throttled_ns > 0 {
        row(out, "runq: cpu quota throttled", runq.throttled_ns, None);
    }
    if runq.stolen_ns > 0 {
        row(out, "runq: stolen by hypervisor", runq.stolen_ns, None);
    }
    row(out, "runq: preempted", runq.preempted_ns, Some(&episodes.preempted));
    row(out, "runq: after wakeup", runq.woken_ns, None);
    row(out, "iowait", totals.off_cpu.iowait_ns, Some(&episodes.iowait));
    row(out, "other uninterruptible", other_d, Some(&episodes.other_uninterruptible));
    row(out, "sleep", totals.off_cpu.sleep_ns, Some(&episodes.sleep));
    if totals.unaccounted_ns > 0 {
        // Switch-ins the kernel's tracepoints did not report (docs/spans.md).
        row(out, "unaccounted", totals.unaccounted_ns, None);
    }
    if totals.syscalls > 0 {
        let _ = writeln!(out, "  (in syscalls: {} over {} calls)", duration(totals.syscall_ns), totals.syscalls);
    }
}

