//! The live view: `tracer` with no command. A top-like process table of
//! run-queue, off-CPU, syscall and I/O latency, and a detail view per
//! process. Terminal handling (`terminal`), state and keys (`app`), the
//! data shown (`model`) and drawing (`render`) are separate.
mod app;
mod model;
mod render;
mod terminal;

use std::{
    io::IsTerminal,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use ratatui::crossterm::event::{Event as Input, EventStream, KeyEventKind};

use crate::{
    app::{
        Session,
        flight::{self, FlightOptions, FlightRecorder},
        events::{DRAIN_EVERY, Event, EventLoop},
        report::build_report,
    },
    cli::{KernelArgs, TargetArgs, TuiArgs, millis_to_ns},
    commands::resolve_targets,
    model::{aggregate::HistogramScope, cpus, intervals::Intervals},
    output::{
        atomic,
        report::{self, Filters},
    },
    sys::clock,
};
use app::{App, Effect, GoodputRow, View};

/// The live view's flight recorder has `tracer spans`' default budget, its
/// kernel ring included.
const LIVE_FLIGHT_MAX_BYTES: u64 = flight::DEFAULT_MAX_MIB << 20;

/// Seconds of goodput per span name in the spans view (with `--slo`).
const GOODPUT_SECONDS: usize = 5;
/// The live view's flight recorder, for the spans' gantt charts and `d`:
/// the last 10 s of the target's timeline (the slowest spans shown are
/// among the last few hundred) within the recorder's default memory; it
/// never dumps by itself.
fn live_flight_recorder(pid: u32) -> Result<FlightRecorder> {
    let options = FlightOptions {
        dir: PathBuf::from("."),
        slow_ns: u64::MAX,
        keep: Duration::from_secs(10),
        max_bytes: LIVE_FLIGHT_MAX_BYTES,
        after: Duration::from_secs(1),
        max_dumps_per_min: flight::DEFAULT_MAX_DUMPS_PER_MIN,
    };
    FlightRecorder::start(options, vec![pid])
}

fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

pub async fn run(kernel: &KernelArgs, args: &TuiArgs) -> Result<()> {
    if !std::io::stdout().is_terminal() {
        bail!("the live view needs a terminal; use `tracer runqlat 1` or `tracer record --out FILE` instead");
    }
    let target = TargetArgs { pids: args.pid.into_iter().collect(), ..TargetArgs::default() };
    let mut targets = resolve_targets(kernel, &target)?;
    targets.options.syscalls = targets.syscall_options(args.syscalls, false, Vec::new());
    targets.options.block_io = true;
    targets.options.cpu_queues = true;
    // A process's detail names who held the CPU while it waited.
    targets.options.holders = true;
    // With -p, request spans come along when the process has markers, and
    // the process's state changes, from which a span's timeline is cut.
    targets.options.spans = args.pid.map(|pid| crate::bpf::SpanRequest { pids: vec![pid], required: false, http: false, ring: false, later_markers: false });
    targets.options.timeline = args.pid.is_some();
    targets.options.timeline_ring_bytes = flight::kernel_ring_bytes(LIVE_FLIGHT_MAX_BYTES);
    let mut session = Session::start(&targets, HistogramScope { per_process: true, per_thread: false })?;
    session.agg.keep_span_records = true;
    let slo_ns = args.slo.map(millis_to_ns);
    session.agg.set_slo(slo_ns);

    let view = args.pid.map_or(View::Processes, View::Detail);
    let interval = Duration::from_secs_f64(args.interval);
    let mut app = App::new(view, interval, !no_color());
    app.spans_traced = session.probes.attached.spans;
    if let Some(pid) = args.pid {
        app.flight = Some(live_flight_recorder(pid)?);
        app.monotonic_to_unix_ns = clock::monotonic_to_unix_offset_ns();
    }
    app.slo_ns = slo_ns;
    // Signals are caught before the terminal is made raw, so none of them
    // can leave it raw.
    let events = EventLoop::new()?.drain_every(DRAIN_EVERY).intervals(app.interval, None);
    let mut guard = terminal::TerminalGuard::enter().context("setting up the terminal")?;
    let mut events = events.input(Box::pin(EventStream::new()));
    let mut intervals = Intervals::default();
    let mut last_tick = Instant::now();
    let mut cpus_last = session.cpu_reading();

    // Drawn after input and new data only, not on every drain.
    let mut dirty = true;
    loop {
        if dirty {
            guard.terminal.draw(|frame| render::draw(frame, &app))?;
            dirty = false;
        }
        match events.next().await {
            Event::Input(Input::Key(key)) if key.kind == KeyEventKind::Press => {
                dirty = true;
                let Some(action) = app.action_for(key) else { continue };
                match app.handle_action(action) {
                    Effect::Quit => break,
                    Effect::WriteReport => {
                        app.status = Some(match write_report(&mut session, &intervals, &targets.filters) {
                            Ok(path) => format!("report written to {}", path.display()),
                            Err(err) => format!("could not write the report: {err:#}"),
                        });
                    }
                    Effect::IntervalChanged => events.set_interval(app.interval),
                    Effect::None => {}
                }
                if let Some(view) = &mut app.gantt {
                    for id in view.unnamed() {
                        view.names.insert(id, session.agg.comm_of(id));
                    }
                }
            }
            Event::Input(Input::Resize(_, _)) => dirty = true,
            Event::Input(_) | Event::Refresh => {}
            Event::Drain => {
                drain_states(&mut session, &mut app);
                session.drain();
            }
            Event::Interval => {
                drain_states(&mut session, &mut app);
                session.sync();
                let view = intervals.next(&mut session.agg);
                let elapsed = last_tick.elapsed();
                last_tick = Instant::now();
                let model = model::build(
                    &view,
                    &session.agg,
                    elapsed,
                    session.probes.attached.syscalls,
                    app.detail_pid(),
                    session.probes.losses().runq_events,
                );
                app.update(model);
                if let (Some(last), Some(now)) = (&cpus_last, session.cpu_reading()) {
                    if !app.paused {
                        app.cpus = cpus::windows(last, &now);
                    }
                    cpus_last = Some(now);
                }
                app.forget_unshown(&mut session.agg);
                let spans = session.agg.take_spans();
                if let Some(flight) = &mut app.flight {
                    spans.iter().for_each(|span| flight.on_span(span));
                    flight.tick(&session.probes);
                    if let Some(last) = flight.take_messages().pop() {
                        app.status = Some(last.trim_start_matches("tracer: ").to_owned());
                    }
                }
                app.add_spans(spans);
                if let Some(goodput) = session.agg.goodput.as_ref().filter(|_| !app.paused) {
                    app.goodput = goodput
                        .recent(GOODPUT_SECONDS)
                        .into_iter()
                        .map(|(name, second)| GoodputRow { name, at: clock::local_hms(second.unix_s), tally: second.tally })
                        .collect();
                }
                dirty = true;
            }
            // A signal, or the terminal is gone.
            Event::Stop(_) => break,
        }
    }
    drop(guard);
    // Dumps asked for with `d` whose window had not ended are written
    // with what was recorded.
    if let Some(flight) = &mut app.flight {
        flight.finish(&session.probes);
        flight.take_messages().iter().for_each(|line| say!("{line}"));
    }
    Ok(())
}

/// Moves the streamed timeline into the flight recorder the spans view
/// cuts charts and dumps from (none is streamed without -p).
fn drain_states(session: &mut Session, app: &mut App) {
    if let Some(flight) = &mut app.flight {
        session.probes.drain_timeline(|event| flight.on_event(event));
    }
}

/// `w`: the whole run so far, as `tracer record` would write it, to
/// `tracer-report-<unix time>.json` in the current directory.
fn write_report(session: &mut Session, intervals: &Intervals, filters: &Filters) -> Result<PathBuf> {
    let path = PathBuf::from(format!("tracer-report-{}.json", clock::unix_ns() / 1_000_000_000));
    atomic::check_output_path(&path)?;
    session.sync();
    let mut whole_run = intervals.whole_run.clone();
    whole_run.merge(&session.agg.runq);
    let current = std::mem::replace(&mut session.agg.runq, whole_run);
    let built = build_report(session, filters.clone(), &session.probes.losses());
    session.agg.runq = current;
    report::write_report(&path, &built)?;
    Ok(std::fs::canonicalize(&path).unwrap_or(path))
}
