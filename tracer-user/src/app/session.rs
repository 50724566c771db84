//! A recording session shared by every command: drain the kernel's ring
//! buffers at each tick of the event loop, refresh thread totals, call
//! back at each interval, and stop cleanly on Ctrl-C, SIGTERM, SIGHUP, a
//! deadline or a count.
use std::{sync::Arc, time::Duration};

use anyhow::{Context, Result};
use tokio::sync::Notify;
use tracer_common::{SpanEvent, THREAD_DEAD};

use super::{
    events::{DRAIN_EVERY, Event, EventLoop, StopReason},
    flight::FlightRecorder,
    markers::MarkerReader,
    recorder::Recorder,
    targets::Targets,
};
use crate::{
    bpf::Probes,
    model::{
        aggregate::{self, Aggregator, HistogramScope},
        cpus::CpuReading,
        losses::{Losses, SpanAnomalies},
    },
    sys::{clock, procfs},
};

/// Room for span events kept between drains (`Session::span_events`): a
/// list grown anew for each drain's thousands of spans cost more than what
/// it held.
const KEPT_SPAN_EVENTS: usize = 4096;

/// Finished spans, with the HTTP heads they need. The spans are taken
/// first (into `finished`): every head of a span was sent before the span
/// itself, so the heads drained next include all of theirs (draining heads
/// first would miss those of exchanges that completed in between). Then
/// the marker spans the timeline drained so far covers.
fn drain_spans(
    probes: &mut Probes,
    agg: &mut Aggregator,
    markers: &mut Option<MarkerReader>,
    finished: &mut Vec<SpanEvent>,
) {
    finished.clear();
    finished.shrink_to(KEPT_SPAN_EVENTS);
    probes.drain_span_events(|span| finished.push(*span));
    probes.drain_http_captures(|record| agg.on_http_record(record));
    finished.iter().for_each(|span| agg.on_span(span));
    agg.release_quiet_spans(clock::monotonic_ns());
    if let Some(markers) = markers {
        markers.join(|span| agg.on_span(span));
        markers.messages.drain(..).for_each(|line| say!("{line}"));
    }
}

/// Reads the marker rings, and what the kernel copied out of those whose
/// process exited, before the timeline is drained (see `MarkerReader::join`).
fn read_markers(probes: &mut Probes, markers: &mut Option<MarkerReader>) {
    if let Some(markers) = markers {
        markers.take_started().into_iter().for_each(|(pid, at)| probes.copy_marker_ring_at_exit(pid, at));
        markers.read();
        probes.drain_marker_exits(|exit| markers.on_exit_record(exit));
        markers.gone().for_each(|pid| probes.forget_marker_ring(pid));
    }
}

/// The timeline events, to the timeline file, the flight recorder and the
/// span markers' join (whichever are on). Drained even with none of them
/// yet (a cgroup's marker rings not found so far): a full ring would ask
/// for early drains on every event.
fn drain_timeline(
    probes: &mut Probes,
    timeline: &mut Option<Recorder>,
    flight: &mut Option<FlightRecorder>,
    markers: &mut Option<MarkerReader>,
) {
    probes.drain_timeline(|event| {
        if let Some(markers) = markers.as_mut() {
            markers.on_event(event);
        }
        if let Some(timeline) = timeline.as_mut() {
            timeline.on_event(event);
        }
        if let Some(flight) = flight.as_mut() {
            flight.on_event(event);
        }
    });
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Ctrl-C, SIGTERM or SIGHUP.
    Signal,
    /// `--duration` elapsed or the interval count was reached.
    Done,
    /// The process the plan watches (`Plan::until_exit_of`) exited.
    TargetExited,
}

impl From<StopReason> for Stop {
    fn from(reason: StopReason) -> Stop {
        match reason {
            // A session reads no terminal; an ended input is an outside stop too.
            StopReason::Signal | StopReason::InputEnded => Stop::Signal,
            StopReason::Deadline | StopReason::Count => Stop::Done,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub interval: Option<Duration>,
    pub intervals: Option<u64>,
    pub duration: Option<Duration>,
    /// At each interval only drain the streamed events, without re-reading
    /// the thread table and kernel statistics (for commands that only
    /// stream, so the tracer takes as little CPU as possible from the
    /// traced process).
    pub drain_only: bool,
    /// Stop at the first interval after all these processes have exited
    /// (their last events drained first); empty: never.
    pub until_exit_of: Vec<u32>,
}

/// The loss counters of a finished session, read once after its programs
/// were detached. Only [`Session::finish`] makes one, so the report and
/// the warnings, which both take it, cannot disagree.
#[derive(Clone, Copy, Debug)]
pub struct FinalLosses(Losses);

impl std::ops::Deref for FinalLosses {
    type Target = Losses;

    fn deref(&self) -> &Losses {
        &self.0
    }
}

pub struct Session {
    pub probes: Probes,
    pub agg: Aggregator,
    pub start_unix_ns: u64,
    /// Where the timeline goes (`tracer record --timeline`).
    pub timeline: Option<Recorder>,
    /// Where the flight recorder keeps the timeline (`tracer spans
    /// --flight-recorder`).
    pub flight: Option<FlightRecorder>,
    /// The span markers read from the targets' rings, when any has one.
    pub markers: Option<MarkerReader>,
    /// The CPUs when the recording started (the per-CPU view, if on).
    pub cpus_at_start: Option<CpuReading>,
    /// Asked for fresh numbers between intervals (a metrics scrape): `run`
    /// then refreshes as at an interval and calls back.
    pub refresh: Option<Arc<Notify>>,
    /// When the recording ended (`finish`), CLOCK_MONOTONIC and
    /// CLOCK_REALTIME: the periods in progress then are counted up to here,
    /// not to the end of the detach (hundreds of milliseconds), which no
    /// probe saw.
    ended_at_ns: Option<u64>,
    ended_unix_ns: Option<u64>,
    /// The last drain's span events (`drain_spans`), kept for the next.
    span_events: Vec<SpanEvent>,
}

impl Session {
    pub fn new(mut probes: Probes, agg: Aggregator) -> Self {
        let rings = std::mem::take(&mut probes.marker_rings);
        let markers = (!rings.is_empty()).then(|| {
            let mut markers = MarkerReader::new();
            rings.into_iter().for_each(|ring| markers.add(ring));
            markers.take_started().into_iter().for_each(|(pid, at)| probes.copy_marker_ring_at_exit(pid, at));
            markers
        });
        let mut session = Self {
            probes,
            agg,
            start_unix_ns: clock::unix_ns(),
            timeline: None,
            flight: None,
            markers,
            cpus_at_start: None,
            refresh: None,
            ended_at_ns: None,
            ended_unix_ns: None,
            span_events: Vec::new(),
        };
        session.cpus_at_start = session.cpu_reading();
        session
    }

    /// Loads the probes for `targets` and starts aggregating, with names
    /// from /proc.
    pub fn start(targets: &Targets, scope: HistogramScope) -> Result<Session> {
        let probes = Probes::load(&targets.options)?;
        let agg = Aggregator::new(scope, clock::monotonic_to_unix_offset_ns(), Box::new(procfs::ProcFs));
        Ok(Session::new(probes, agg))
    }

    /// The CPUs now (the per-CPU view), when its probe is attached.
    pub fn cpu_reading(&self) -> Option<CpuReading> {
        Some(CpuReading {
            queues: self.probes.cpu_queues()?,
            ticks: procfs::cpu_ticks(),
            at_ns: clock::monotonic_ns(),
        })
    }

    /// Moves everything the kernel has produced into the aggregator: exit
    /// records first, so a thread's final totals win over its last snapshot.
    pub fn sync(&mut self) {
        let Session { probes, agg, timeline, flight, markers, ended_at_ns, span_events, .. } = self;
        read_markers(probes, markers);
        drain_timeline(probes, timeline, flight, markers);
        if let Some(timeline) = timeline {
            timeline.tick(probes);
        }
        probes.drain_exits(|exit| agg.on_thread_exit(exit));
        probes.drain_runq_events(|event| agg.on_runq_event(event));
        drain_spans(probes, agg, markers, span_events);
        let now = ended_at_ns.unwrap_or_else(clock::monotonic_ns);
        let mut dead = Vec::new();
        for (tid, stats) in probes.threads() {
            if stats.flags & THREAD_DEAD != 0 {
                agg.on_dead_entry(tid, &stats);
                dead.push(tid);
            } else {
                let mut stats = stats;
                if stats.on_cpu_since_ns != 0
                    && stats.tgid != 0
                    && let Some((state, exec_ns)) = procfs::sched_state(stats.tgid, tid)
                {
                    aggregate::settle_unreported_switch_out(&mut stats, now, state, exec_ns);
                }
                agg.on_thread_snapshot(tid, &stats, now);
            }
        }
        dead.into_iter().for_each(|tid| probes.forget_thread(tid));
        probes.drain_exits(|exit| agg.on_thread_exit(exit));
        if probes.attached.syscalls {
            agg.kernel.syscall_latency = probes.syscall_latency().into_iter().collect();
            agg.kernel.syscall_errors = probes.syscall_errors().into_iter().collect();
        }
        if probes.attached.block_io {
            agg.kernel.block = probes.block_stats().into_iter().collect();
        }
        if probes.holders {
            agg.on_wait_holders(probes.wait_holders().into_iter().map(|(key, ns)| ((key.waiter, key.holder), ns)));
        }
        agg.settle();
    }

    /// Ends the recording: detaches the programs (nothing more is counted;
    /// the end is taken once the context-switch program is gone, see
    /// `Probes::detach_switch`), moves everything they produced into the
    /// aggregator, and reads the loss counters, once.
    pub fn finish(&mut self) -> FinalLosses {
        if let Some(markers) = &mut self.markers {
            markers.stop();
        }
        self.probes.detach_switch();
        self.ended_at_ns = Some(clock::monotonic_ns());
        self.ended_unix_ns = Some(clock::unix_ns());
        self.probes.detach();
        self.sync();
        self.agg.release_held_spans();
        FinalLosses(self.losses())
    }

    /// The end of the recorded window: when `finish` ended it, or now.
    pub fn end_unix_ns(&self) -> u64 {
        self.ended_unix_ns.unwrap_or_else(clock::unix_ns)
    }

    /// The probes' loss counters, with the marker rings' (records the
    /// library could not write, spans on threads with no state to join).
    pub fn losses(&self) -> Losses {
        let mut losses = self.probes.losses();
        if let Some(markers) = &self.markers {
            losses.marker_records += markers.overflow();
            losses.marker_spans_unjoined = markers.counts().no_thread_state;
        }
        losses
    }

    /// Marker calls that did not pair up, in the kernel (uprobes) and in
    /// the rings.
    pub fn span_anomalies(&self) -> SpanAnomalies {
        let mut anomalies = self.probes.span_anomalies();
        if let Some(markers) = &self.markers {
            let counts = markers.counts();
            anomalies.end_without_begin += counts.end_without_begin;
            anomalies.begun_twice += counts.begun_twice;
            anomalies.never_ended += counts.never_ended;
        }
        anomalies
    }

    /// Forgets spans open since before `cutoff` (CLOCK_MONOTONIC), counted as never ended.
    pub fn expire_spans(&mut self, cutoff: u64) {
        self.probes.expire_spans(cutoff);
        if let Some(markers) = &mut self.markers {
            markers.expire(cutoff);
        }
    }

    /// Moves the streamed events (exits, run-queue waits, spans) into the
    /// aggregator; cheap, called every `DRAIN_EVERY`.
    pub fn drain(&mut self) {
        let Session { probes, agg, timeline, flight, markers, span_events, .. } = self;
        read_markers(probes, markers);
        drain_timeline(probes, timeline, flight, markers);
        probes.drain_exits(|exit| agg.on_thread_exit(exit));
        probes.drain_runq_events(|event| agg.on_runq_event(event));
        drain_spans(probes, agg, markers, span_events);
    }

    /// What each interval refreshes: the streamed events, or everything.
    fn refresh_for(&mut self, plan: &Plan) {
        if plan.drain_only {
            self.drain();
        } else {
            self.sync();
        }
    }

    /// Runs until the plan ends or a signal arrives; `on_interval` is called
    /// after each interval with fresh data, and after each refresh asked
    /// for through `refresh`.
    pub async fn run(&mut self, plan: Plan, mut on_interval: impl FnMut(&mut Session)) -> Result<Stop> {
        let mut events = EventLoop::new()?
            .drain_every(DRAIN_EVERY)
            .drain_early_on(self.probes.early_drain_fds().context("duplicating the ring buffers' descriptors")?)?;
        if let Some(every) = plan.interval {
            events = events.intervals(every, plan.intervals);
        }
        if let Some(duration) = plan.duration {
            events = events.deadline(duration);
        }
        if let Some(requests) = &self.refresh {
            events = events.refresh_on(requests.clone());
        }
        loop {
            match events.next().await {
                Event::Drain => self.drain(),
                Event::Refresh => {
                    self.refresh_for(&plan);
                    on_interval(self);
                }
                Event::Interval => {
                    self.refresh_for(&plan);
                    on_interval(self);
                    if !plan.until_exit_of.is_empty()
                        && plan.until_exit_of.iter().all(|&pid| !procfs::process_exists(pid))
                    {
                        self.drain();
                        on_interval(self);
                        return Ok(Stop::TargetExited);
                    }
                }
                Event::Input(_) => {}
                Event::Stop(reason) => return Ok(Stop::from(reason)),
            }
        }
    }
}
