//! `tracer spans`: one JSON line per finished request span of a process
//! instrumented with the span markers.
use std::{
    fs::File,
    io::{BufWriter, Write},
    time::Duration,
};

use anyhow::{Context, Result, bail};

use super::{listen, resolve_targets};
use crate::app::report::warn_losses;
use crate::{
    app::{
        Plan, Session, Stop,
        flight::{self, FlightOptions, FlightRecorder},
        markers::MarkerReader,
        otlp::{self, Exporter},
    },
    bpf::{SpanRequest, SyscallOptions},
    cli::{KernelArgs, SpansArgs, TargetArgs},
    model::aggregate::HistogramScope,
    output::{atomic, goodput_text, otlp::Origin, spans_json::write_line},
    sys::{cgroup, clock},
};

/// How often a traced cgroup is looked at for processes with a marker ring
/// that joined it.
const MARKER_RESCAN_EVERY: Duration = Duration::from_secs(1);

/// The run-queue ring of `tracer spans` (the default is for whole machines).
const SPANS_RUNQ_RING_BYTES: u32 = 1 << 20;
/// The span lines' write buffer: a drain's lines in a few writes.
const SPAN_LINES_BUFFER_BYTES: usize = 1 << 20;

pub async fn spans(kernel: &KernelArgs, args: &SpansArgs) -> Result<()> {
    if let Some(json) = &args.json {
        atomic::check_output_path(json)?;
    }
    if let Some(dir) = &args.flight.flight_recorder {
        flight::check_dir(dir)?;
    }
    let mut endpoint = args.metrics.listen.map(|addr| listen(addr, &args.metrics.series)).transpose()?;
    let target = TargetArgs { pids: args.pids.clone(), cgroup: args.cgroup.clone(), ..TargetArgs::default() };
    let mut targets = resolve_targets(kernel, &target)?;
    // With --cgroup, the markers of the processes in it now (read from
    // their rings, those that join it later are looked for every second).
    let marked = match &targets.filters.cgroup {
        Some(cgroup) if args.pids.is_empty() => cgroup::processes(std::path::Path::new(cgroup)),
        _ => args.pids.clone(),
    };
    let what = describe(&args.pids, targets.filters.cgroup.as_deref());
    if marked.is_empty() && !args.http {
        bail!("{what} has no processes: start the service first, or add --http to find the requests of those started later");
    }
    // Span lines carry each span's top syscalls, not per-syscall histograms.
    // HTTP detection alone needs only the socket I/O syscalls; the flight
    // recorder's timeline and --all-syscalls want them all; --no-syscalls none.
    let http_only = args.http && !args.all_syscalls && args.flight.flight_recorder.is_none();
    targets.options.syscalls = targets
        .syscall_options(false, false, Vec::new())
        .filter(|_| !args.no_syscalls)
        .map(|options| SyscallOptions { histograms: false, http_only, ..options });
    targets.options.block_io = true;
    let later_markers = targets.filters.cgroup.is_some();
    targets.options.spans = Some(SpanRequest {
        pids: marked.clone(),
        required: true,
        http: args.http,
        ring: args.marker_ring_wanted(),
        later_markers,
    });
    // The flight recorder keeps the target's timeline as it streams, from a
    // kernel ring its --max-mib pays for.
    targets.options.timeline = args.flight.flight_recorder.is_some();
    targets.options.timeline_ring_bytes = flight::kernel_ring_bytes(args.flight.max_mib << 20);
    // The run-queue waits feed --listen's histograms only; without it each
    // traced wait costs a ring record nobody reads. Only the targets' waits
    // are streamed, not a whole machine's: 1 MiB holds 21,000 of them,
    // 210,000 a second between two drains, without costing the process
    // 8 MiB of RSS.
    targets.options.runq_waits = args.metrics.listen.is_some();
    targets.options.runq_ring_bytes = SPANS_RUNQ_RING_BYTES;
    // Started before the probes, so that a span of the first tick is sent.
    let mut exporter = match &args.otlp.otlp {
        Some(endpoint) => {
            let resources = otlp::Resources::PerProcess { pids: marked.clone(), service_name: args.otlp.service_name.clone() };
            Some(Exporter::start(endpoint.clone(), resources, Origin::Traced).context("starting the OTLP exporter")?)
        }
        None => None,
    };
    let mut session = Session::start(&targets, HistogramScope { per_process: true, per_thread: false })?;
    session.agg.keep_span_records = true;
    session.agg.contention_threshold = args.contention_threshold;
    session.agg.http.keep_query = args.http_query;
    session.agg.h2.keep_query = args.http_query;
    session.agg.set_slo(args.metrics.series.slo_ns());
    let slow_ns = args.slow.map(|ms| (ms * 1e6) as u64);
    if let (Some(dir), Some(slow_ns)) = (&args.flight.flight_recorder, slow_ns) {
        let options = FlightOptions {
            dir: dir.clone(),
            slow_ns,
            keep: args.flight.keep,
            max_bytes: args.flight.max_mib << 20,
            after: args.flight.after,
            max_dumps_per_min: args.flight.max_dumps_per_min,
        };
        session.flight = Some(FlightRecorder::start(options, marked.clone())?);
    }
    if let Some(endpoint) = &mut endpoint {
        endpoint.serve(&mut session);
        say!("Metrics at {}", endpoint.url());
    }

    // Lines are streamed into the file as spans end (a device or FIFO
    // included), not written atomically at the end; buffered, and flushed
    // after each drain (5 times a second), also on standard output, which
    // would otherwise write each line on its own. A drain at 30,000 spans/s
    // is about 4.5 MB of lines: written in 8 KiB pieces (the default), the
    // writes cost the tracer more CPU than making the lines.
    let mut out: Box<dyn Write> = match args.json.as_deref().filter(|path| !atomic::is_stdout(path)) {
        Some(path) => Box::new(BufWriter::with_capacity(
            SPAN_LINES_BUFFER_BYTES,
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(BufWriter::with_capacity(SPAN_LINES_BUFFER_BYTES, std::io::stdout().lock())),
    };
    for pid in &session.probes.without_markers {
        say!("tracer: note: process {pid} has no span markers; only --http finds its requests");
    }
    say!("Tracing spans of {what}... Hit Ctrl-C to end.");
    let plan = Plan {
        interval: Some(Duration::from_millis(200)),
        intervals: None,
        duration: args.duration,
        drain_only: true,
        until_exit_of: if args.keep_waiting { Vec::new() } else { args.pids.clone() },
    };
    let mut last_expiry = std::time::Instant::now();
    let mut last_rescan = std::time::Instant::now();
    let watched_cgroup = targets.filters.cgroup.clone().filter(|_| args.pids.is_empty() && args.marker_ring_wanted());
    let mut last_publish = std::time::Instant::now();
    let mut written = 0u64;
    let mut failure = None;
    let mut flush = |session: &mut Session, out: &mut dyn Write| {
        for span in session.agg.drain_finished_spans() {
            if let Some(flight) = &mut session.flight {
                flight.on_span(&span);
            }
            if slow_ns.is_some_and(|slow| span.wall_ns < slow) {
                continue;
            }
            if let Err(err) = write_line(out, &span) {
                failure.get_or_insert(err);
            }
            written += 1;
            if let Some(exporter) = exporter.as_mut() {
                exporter.send(span);
            }
        }
        if let Err(err) = out.flush() {
            failure.get_or_insert(err);
        }
        let Session { flight, probes, .. } = session;
        if let Some(flight) = flight {
            flight.tick(probes);
            flight.take_messages().iter().for_each(|line| say!("{line}"));
        }
    };
    let stop = session
        .run(plan, |session| {
            flush(session, &mut out);
            // Only the span events are drained at each interval; the
            // metrics want every thread's totals too, once a second.
            if let Some(endpoint) = &mut endpoint
                && (endpoint.wanted() || last_publish.elapsed() >= Duration::from_secs(1))
            {
                last_publish = std::time::Instant::now();
                session.sync();
                endpoint.publish(session);
            }
            // Processes that joined the cgroup since: their marker rings.
            if let Some(cgroup) = &watched_cgroup
                && last_rescan.elapsed() >= MARKER_RESCAN_EVERY
            {
                last_rescan = std::time::Instant::now();
                let markers = session.markers.get_or_insert_with(MarkerReader::new);
                cgroup::processes(std::path::Path::new(cgroup)).into_iter().for_each(|pid| markers.watch(pid));
            }
            // Look for stale spans a few times per expiry period.
            if last_expiry.elapsed() >= (args.expire_after / 4).min(Duration::from_secs(10)) {
                last_expiry = std::time::Instant::now();
                let cutoff = clock::monotonic_ns().saturating_sub(args.expire_after.as_nanos() as u64);
                session.expire_spans(cutoff);
                // HTTP span ids begin with their start time.
                session.agg.http.forget_older_than(tracer_common::http_span_id_lower_bound(cutoff));
            }
        })
        .await?;
    if stop == Stop::TargetExited {
        say!("tracer: {what} exited; stopping (--keep-waiting keeps tracing what it leaves behind)");
    }
    let lost = session.finish();
    flush(&mut session, &mut out);
    let flight_summary = session.flight.as_mut().map(|flight| {
        let counts = flight.finish(&session.probes);
        flight.take_messages().iter().for_each(|line| say!("{line}"));
        flight.summary(&counts, lost.timeline_events)
    });
    let exported = exporter.map(|exporter| {
        let endpoint = exporter.endpoint().clone();
        (endpoint, exporter.finish())
    });
    if let Some(err) = failure {
        return Err(err).context("writing span records");
    }
    summary(&session, written);
    if let Some(line) = flight_summary {
        say!("{line}");
    }
    if lost.spans > 0 {
        say!("tracer: warning: {} spans were lost (open-span table or span ring buffer full)", lost.spans);
    }
    if let Some((endpoint, totals)) = exported {
        say!("{}", otlp::summary_line(&endpoint, &totals));
    }

    warn_losses(&lost);
    Ok(())
}

/// "process 12", "processes 12, 34", "cgroup /sys/fs/cgroup/app".
fn describe(pids: &[u32], cgroup: Option<&str>) -> String {
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    match (pids.len(), cgroup) {
        (0, Some(cgroup)) => format!("cgroup {cgroup}"),
        (1, _) => format!("process {}", pids[0]),
        _ => format!("processes {}", pids.join(", ")),
    }
}

fn summary(session: &Session, written: u64) {
    let spans = &session.agg.spans;
    let verdicts: Vec<String> = spans.by_verdict().iter().map(|(v, b)| format!("{} {v}", b.count())).collect();
    say!("{} spans ({} written): {}", spans.count, written, verdicts.join(", "));
    if let Some(goodput) = &session.agg.goodput {
        for line in goodput_text::summary_lines(goodput) {
            say!("{line}");
        }
    }
    let anomalies = session.span_anomalies();
    if anomalies.end_without_begin + anomalies.begun_twice + anomalies.never_ended > 0 {
        say!(
            "tracer: span markers that did not pair up: {} ended without a begin, {} begun twice, {} never ended",
            anomalies.end_without_begin, anomalies.begun_twice, anomalies.never_ended
        );
    }
    let http = &session.agg.http;
    let pipelined = anomalies.http_pipelined + http.pipelined;
    if pipelined + anomalies.http_unanswered + http.not_http + http.heads_lost > 0 {
        say!(
            "tracer: HTTP requests not made spans: {pipelined} pipelined behind another, {} unanswered \
             (connection closed first), {} not HTTP after all, {} whose head was lost (buffer full)",
            anomalies.http_unanswered, http.not_http, http.heads_lost
        );
    }
    let h2 = session.agg.h2.counts;
    if h2.connections > 0 {
        say!(
            "tracer: HTTP/2: {} connections, {} streams ({} reset); {} streams unanswered when their connection \
             closed or the recording ended; {} connections no longer followed (bytes not copied outside a DATA \
             frame, or headers that did not decode)",
            h2.connections, h2.streams, h2.reset, h2.unfinished, h2.lost
        );
    }
    let late = session.agg.rounds.late_rounds;
    if late > 0 {
        say!(
            "tracer: {late} rounds of HTTP responses came after their span was complete (its response's \
             length reached, or no round for 0.5 s): not in their spans"
        );
    }
}
