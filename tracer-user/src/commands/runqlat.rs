//! `tracer runqlat`: run-queue latency histograms in runqlat's layout.
use anyhow::Result;

use super::{resolve_targets, run_live, unit};
use crate::{
    app::Session,
    cli::{KernelArgs, RunqlatArgs},
    model::{
        aggregate::{Aggregator, HistogramScope, RunqHistograms},
        hist::Buckets,
    },
    output::{
        atomic, holders_text,
        text::{self, Unit},
    },
};

pub async fn runqlat(kernel: &KernelArgs, args: &RunqlatArgs) -> Result<()> {
    if let Some(json) = &args.output.json {
        atomic::check_output_path(json)?;
    }
    let mut targets = resolve_targets(kernel, &args.target)?;
    targets.options.holders = args.holders;
    let scope = HistogramScope {
        per_process: args.per_process || args.output.json.is_some(),
        per_thread: args.per_thread,
    };
    let session = Session::start(&targets, scope)?;
    let unit = unit(&args.output);
    run_live(session, targets.filters, &args.output, "run queue latency", |session, view| {
        let mut text = render(&view.runq, args, unit, &session.agg);
        if args.holders {
            text.push('\n');
            text.push_str(&holders_text::holders_table(&session.agg.holders, &view.holders, |pid| session.agg.comm_of(pid)));
        }
        text
    })
    .await
}

fn render(hists: &RunqHistograms, args: &RunqlatArgs, unit: Unit, agg: &Aggregator) -> String {
    let mut out = String::new();
    let section = |out: &mut String, header: Option<String>, buckets: &Buckets| {
        text::histogram_section(out, header.as_deref(), buckets, unit);
    };
    let name_of = |tid: u32| agg.comm_of(tid);
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
    out
}

