//! `tracer syscalls`: per syscall count, errors, total time and latency
//! percentiles, like syscount -L.
use std::{collections::BTreeMap, fmt::Write};

use anyhow::Result;

use super::{resolve_targets, run_live};
use crate::{
    app::Session,
    cli::{KernelArgs, SyscallsArgs},
    model::{
        intervals::IntervalView,
        aggregate::{Aggregator, HistogramScope},
        kstats::SyscallStats,
        names::{errno_name, syscall_name, syscall_number},
    },
    output::{atomic, text::duration},
};

pub async fn syscalls(kernel: &KernelArgs, args: &SyscallsArgs) -> Result<()> {
    if let Some(json) = &args.output.json {
        atomic::check_output_path(json)?;
    }
    let only = args
        .syscall
        .iter()
        .map(|name| syscall_number(name))
        .collect::<Result<Vec<u32>, _>>()?;
    let mut targets = resolve_targets(kernel, &args.target)?;
    // Asking for this command is the explicit request for syscall probes.
    targets.options.syscalls = targets.syscall_options(true, args.per_thread, only);
    let session = Session::start(&targets, HistogramScope { per_process: true, per_thread: false })?;
    run_live(session, targets.filters, &args.output, "syscalls", |session, view| {
        render(view, args, &session.agg)
    })
    .await
}

fn render(view: &IntervalView, args: &SyscallsArgs, agg: &Aggregator) -> String {
    let mut out = String::new();
    let by_thread = args.per_thread;
    let grouped = args.per_process || by_thread;
    let stats = view.kernel.syscalls(|id| if grouped { id } else { 0 });
    let mut groups: BTreeMap<u32, Vec<(u16, &SyscallStats)>> = BTreeMap::new();
    for ((group, nr), s) in &stats {
        groups.entry(*group).or_default().push((*nr, s));
    }
    if groups.is_empty() {
        out.push_str("(no syscalls in this interval)\n");
    }
    for (group, mut rows) in groups {
        if grouped {
            let label = if by_thread { "tid" } else { "pid" };
            let _ = writeln!(out, "\n{label} = {group} {}", agg.comm_of(group));
        }
        rows.sort_by_key(|(_, s)| std::cmp::Reverse(s.latency.sum()));
        table(&mut out, &rows[..rows.len().min(args.top)]);
    }
    out
}

fn table(out: &mut String, rows: &[(u16, &SyscallStats)]) {
    let _ = writeln!(
        out,
        "{:<22} {:>10} {:>8} {:>11} {:>11} {:>11} {:>11}",
        "SYSCALL", "COUNT", "ERRORS", "TOTAL", "p50", "p99", "MAX"
    );
    let mut failures = Vec::new();
    for (nr, s) in rows {
        let q = |q: f64| s.latency.percentile(q);
        let _ = writeln!(
            out,
            "{:<22} {:>10} {:>8} {:>11} {:>11} {:>11} {:>11}",
            syscall_name(u32::from(*nr)),
            s.latency.count(),
            s.error_count(),
            duration(s.latency.sum() as u64),
            duration(q(0.5)),
            duration(q(0.99)),
            duration(s.latency.max()),
        );
        if !s.errors.is_empty() {
            let errnos: Vec<String> =
                s.errors.iter().map(|(e, n)| format!("{} x{n}", errno_name(*e))).collect();
            failures.push(format!("  {}: {}", syscall_name(u32::from(*nr)), errnos.join(", ")));
        }
    }
    if !failures.is_empty() {
        out.push_str("errors:\n");
        for line in failures {
            out.push_str(&line);
            out.push('\n');
        }
    }
}
