//! `tracer runqlen`: run-queue length per CPU in runqlen's layout, from
//! every change of each run queue rather than from samples.
use anyhow::{Result, bail};

use super::{announce_intervals, emit};
use crate::{
    app::{Plan, Session, Stop, Targets},
    cli::{KernelArgs, RunqlenArgs},
    model::{
        aggregate::HistogramScope,
        cpus::{self, CpuReading},
    },
    output::cpus_text::runqlen_section,
    sys::clock,
};

pub async fn runqlen(kernel: &KernelArgs, args: &RunqlenArgs) -> Result<()> {
    let mut targets = Targets::resolve(kernel.probes, kernel.max_threads, &[], None, None, false)?;
    targets.options.cpu_queues = true;
    let mut session = Session::start(&targets, HistogramScope::default())?;
    let Some(mut last) = session.cpu_reading() else {
        bail!("runqlen needs BTF tracepoints (/sys/kernel/btf/vmlinux and a kernel that describes struct rq)");
    };
    // Only the run queues are read; the thread table is not needed.
    let plan = Plan { drain_only: true, ..announce_intervals("run queue length", args.interval, args.count) };
    let print = |session: &Session, last: &mut CpuReading| {
        if let Some(now) = session.cpu_reading() {
            emit(&render(args, last, &now));
            *last = now;
        }
    };
    let stop = session.run(plan, |s| print(s, &mut last)).await?;
    if args.interval.is_none() || stop == Stop::Signal {
        print(&session, &mut last);
    }
    session.finish();
    Ok(())
}

fn render(args: &RunqlenArgs, earlier: &CpuReading, later: &CpuReading) -> String {
    let mut out = String::new();
    if args.timestamp {
        out.push_str(&clock::wall_clock_hms());
        out.push('\n');
    }
    let windows = cpus::windows(earlier, later);
    if args.per_cpu {
        for window in &windows {
            runqlen_section(&mut out, Some(&format!("cpu = {}", window.cpu)), window, args.occupancy);
        }
    } else {
        runqlen_section(&mut out, None, &cpus::all_cpus(&windows), args.occupancy);
    }
    out.push('\n');
    out
}
