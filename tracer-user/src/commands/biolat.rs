//! `tracer biolat`: block I/O latency histograms, like biolatency, and
//! also per process (the submitter, not the kworker that issued).
use std::collections::BTreeMap;

use anyhow::Result;

use super::{resolve_targets, run_live, unit};
use crate::{
    app::Session,
    cli::{BiolatArgs, KernelArgs},
    model::{
        intervals::IntervalView,
        aggregate::{Aggregator, HistogramScope},
        hist::Buckets,
        kstats::{BlockStats, block_op_name},
    },
    output::{
        atomic,
        text::{self, Unit},
    },
    sys::disks::Disks,
};

pub async fn biolat(kernel: &KernelArgs, args: &BiolatArgs) -> Result<()> {
    if let Some(json) = &args.output.json {
        atomic::check_output_path(json)?;
    }
    let disks = Disks::read();
    let only_dev = args.device.as_deref().map(|d| disks.resolve(d)).transpose()?;
    let mut targets = resolve_targets(kernel, &args.target)?;
    targets.options.block_io = true;
    let session = Session::start(&targets, HistogramScope { per_process: true, per_thread: false })?;
    let unit = unit(&args.output);
    run_live(session, targets.filters, &args.output, "block device I/O", |session, view| {
        render(view, args, only_dev, &disks, unit, &session.agg)
    })
    .await
}

fn render(
    view: &IntervalView,
    args: &BiolatArgs,
    only_dev: Option<u32>,
    disks: &Disks,
    unit: Unit,
    agg: &Aggregator,
) -> String {
    // Group by whichever of disk, operation and process was asked for.
    let mut groups: BTreeMap<(u32, u32, u8), BlockStats> = BTreeMap::new();
    for ((tgid, dev, op), io) in view.kernel.block_io(|tgid| tgid) {
        if only_dev.is_some_and(|d| d != dev) {
            continue;
        }
        let key = (
            if args.per_process { tgid } else { 0 },
            if args.per_disk { dev } else { 0 },
            if args.per_op { op } else { 0 },
        );
        groups.entry(key).or_default().merge(&io);
    }
    let mut out = String::new();
    if groups.is_empty() {
        out.push_str("(no block I/O in this interval)\n");
    }
    for ((tgid, dev, op), io) in &groups {
        let mut header = Vec::new();
        if args.per_process {
            header.push(format!("pid = {tgid} {}", agg.comm_of(*tgid)));
        }
        if args.per_disk {
            header.push(format!("disk = {}", disks.name(*dev)));
        }
        if args.per_op {
            header.push(format!("op = {}", block_op_name(*op)));
        }
        let header = (!header.is_empty()).then(|| header.join(", "));
        let latency: &Buckets = if args.queued { &io.total } else { &io.latency };
        text::histogram_section(&mut out, header.as_deref(), latency, unit);
        out.push_str(&format!(
            "requests = {}, bytes = {}, sync = {}\n",
            io.count(),
            io.bytes(),
            io.sync_count
        ));
    }
    out
}
