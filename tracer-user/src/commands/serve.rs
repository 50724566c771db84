//! `tracer serve`: trace, and serve what is measured as Prometheus metrics.
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{expire_stale_spans, listen, resolve_targets};
use crate::{
    app::{Plan, Session, report::warn_losses},
    bpf::SpanRequest,
    cli::{KernelArgs, ServeArgs},
    model::aggregate::HistogramScope,
};

pub async fn serve(kernel: &KernelArgs, args: &ServeArgs) -> Result<()> {
    // A bad or taken address fails here, before anything is loaded.
    let mut endpoint = listen(args.listen, &args.series)?;
    let mut targets = resolve_targets(kernel, &args.target)?;
    targets.options.syscalls = targets.syscall_options(args.syscalls, false, Vec::new());
    targets.options.block_io = true;
    // Spans come along when the (first) target has span markers.
    targets.options.spans = args.target.pids.first().map(|&pid| SpanRequest { pids: vec![pid], required: false, http: false, ring: false, later_markers: false });
    let mut session = Session::start(&targets, HistogramScope { per_process: true, per_thread: false })?;
    session.agg.set_slo(args.series.slo_ns());
    endpoint.serve(&mut session);
    say!(
        "Tracing ({} probes); metrics at {}. Ctrl-C, SIGTERM or SIGHUP ends it.",
        session.probes.mode.name(),
        endpoint.url()
    );
    let plan = Plan { interval: Some(Duration::from_secs(1)), duration: args.duration, ..Plan::default() };
    let mut last_expiry = Instant::now();
    session
        .run(plan, |session| {
            expire_stale_spans(session, &mut last_expiry);
            endpoint.publish(session);
        })
        .await?;
    let lost = session.finish();
    warn_losses(&lost);
    Ok(())
}
