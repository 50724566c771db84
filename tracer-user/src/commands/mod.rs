//! The commands. Each resolves its targets (failing with one line before
//! anything is loaded), starts a session, and prints or writes what it saw.
mod biolat;
mod join;
mod offcpu;
mod record;
mod runqlat;
mod runqlen;
mod serve;
mod spans;
mod syscalls;
mod timeline;

use std::{
    io::Write,
    net::SocketAddr,
    time::{Duration, Instant},
};

use anyhow::Result;
pub use biolat::biolat;
pub use join::join;
pub use offcpu::offcpu;
pub use record::record;
pub use runqlat::runqlat;
pub use runqlen::runqlen;
pub use serve::serve;
pub use spans::spans;
pub use syscalls::syscalls;
pub use timeline::export;

use crate::{
    app::{
        Event, EventLoop, Plan, Session, Stop, Targets,
        metrics::MetricsEndpoint,
        report::{build_report, warn_losses, write_final_report},
    },
    cli::{IntervalArgs, KernelArgs, SeriesArgs, TargetArgs},
    model::intervals::{IntervalView, Intervals},
    output::{report::Filters, text::Unit},
    sys::clock,
};

/// `tracer record` removes spans open longer than this, counting them as
/// never ended (`tracer spans` has `--expire-after`).
pub(crate) const SPAN_EXPIRY: Duration = Duration::from_secs(60);

/// The targets of a command line, checked (one line on failure) before
/// anything is loaded.
pub(crate) fn resolve_targets(kernel: &KernelArgs, target: &TargetArgs) -> Result<Targets> {
    Ok(Targets::resolve(
        kernel.probes,
        kernel.max_threads,
        &target.pids,
        target.tid,
        target.cgroup.as_deref(),
        target.children,
    )?)
}

/// The Prometheus endpoint of `--listen` (and `tracer serve`), listening
/// before anything is loaded: a bad or taken address costs nothing.
pub(crate) fn listen(addr: SocketAddr, series: &SeriesArgs) -> Result<MetricsEndpoint> {
    Ok(MetricsEndpoint::listen(addr, series.by, series.max_series as usize)?)
}

/// Removes spans open longer than [`SPAN_EXPIRY`], counting them as never
/// ended, and the HTTP heads of requests that old; looks every 10 s.
pub(crate) fn expire_stale_spans(session: &mut Session, last: &mut Instant) {
    if session.probes.attached.spans && last.elapsed() >= Duration::from_secs(10) {
        *last = Instant::now();
        let cutoff = clock::monotonic_ns().saturating_sub(SPAN_EXPIRY.as_nanos() as u64);
        session.probes.expire_spans(cutoff);
        // HTTP span ids begin with their start time.
        session.agg.http.forget_older_than(tracer_common::http_span_id_lower_bound(cutoff));
    }
}

/// Writes a block of text to stdout at once (intervals stay contiguous
/// when piped).
fn emit(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
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
    let plan = announce_intervals(what, output.interval, output.count);
    session.agg.limit_exited_threads(output.exited.max_exited_threads as usize);
    let mut intervals = Intervals::default();
    let timestamp = output.timestamp;
    let mut print = |session: &mut Session, intervals: &mut Intervals| {
        let view = intervals.next(&mut session.agg);
        let mut text = String::new();
        if timestamp {
            text.push_str(&clock::wall_clock_hms());
            text.push('\n');
        }
        text.push_str(&render(session, &view));
        text.push('\n');
        emit(&text);
    };
    let stop = session.run(plan, |s| print(s, &mut intervals)).await?;
    let lost = session.finish();
    if output.interval.is_none() || stop == Stop::Signal {
        print(&mut session, &mut intervals);
    }
    let mut written = Ok(());
    if let Some(json) = &output.json {
        session.agg.runq = std::mem::take(&mut intervals.whole_run);
        let report = build_report(&session, filters, &lost);
        // Saved elsewhere when refused, and the run fails saying where.
        written = write_final_report(json, &report);
        if written.is_ok() {
            say!("Report written to {}", json.display());
        }
    }
    warn_losses(&lost);
    Ok(written?)
}

/// Says what is traced and how often it is printed; the plan for that.
fn announce_intervals(what: &str, interval: Option<u64>, count: Option<u64>) -> Plan {
    match interval {
        Some(secs) => say!("Tracing {what}... Hit Ctrl-C to end. Printing every {secs} s."),
        None => say!("Tracing {what}... Hit Ctrl-C to end."),
    }
    Plan { interval: interval.map(Duration::from_secs), intervals: count, ..Plan::default() }
}

/// `tracer floor`: the benchmark's reference for the cost of merely having
/// programs on the syscall tracepoints.
pub async fn floor() -> Result<()> {
    let _attached = crate::bpf::load_empty_syscall_programs()?;
    let mut events = EventLoop::new()?;
    say!("Tracing syscalls with empty programs (benchmark floor)... Ctrl-C to end.");
    while !matches!(events.next().await, Event::Stop(_)) {}
    Ok(())
}

fn unit(output: &IntervalArgs) -> Unit {
    if output.millis { Unit::Millis } else { Unit::Micros }
}
