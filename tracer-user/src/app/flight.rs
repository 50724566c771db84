//! The flight recorder of `tracer spans --flight-recorder DIR --slow MS`:
//! the target's timeline and spans flow through a bounded ring
//! (`model::flight`); a span slower than MS is written out, `--after`
//! seconds after it ended, as a Perfetto trace of the window around it
//! (`output::flight`). Dumps are written on a thread of their own, so the
//! drain loop never waits for a disk; at most `--max-dumps-per-min` a
//! minute, the triggers beyond that are counted; a failed dump is one line,
//! and recording goes on. The live view keeps one too, for its gantt charts
//! and for dumping the span selected (`d`): it never triggers by itself.
use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::mpsc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use tracer_common::{TIMELINE_RING_BYTES, TimelineEvent};

use super::{events::DRAIN_EVERY, recorder::size};
use crate::{
    bpf::Probes,
    model::{
        flight::{FlightRing, RingLimits, Window, WindowHeader},
        names::ProcessName,
        spans::SpanRecord,
    },
    output::{atomic, flight},
    sys::{clock, procfs},
};

/// Defaults of the command-line options.
pub const DEFAULT_MAX_MIB: u64 = 64;
pub const DEFAULT_MAX_DUMPS_PER_MIN: u32 = 6;

/// How often names of threads gone from the ring are forgotten.
const NAME_SWEEP_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct FlightOptions {
    pub dir: PathBuf,
    /// A span at least this long triggers a dump.
    pub slow_ns: u64,
    pub keep: Duration,
    pub max_bytes: u64,
    /// How long after the span ended the dump waits, and covers; the
    /// window begins as long before the span began.
    pub after: Duration,
    pub max_dumps_per_min: u32,
}

/// The kernel's timeline ring buffer that feeds a flight recorder of
/// `max_bytes`: an eighth of it, a power of two from 2 to 8 MiB (the size
/// `record --timeline` uses). 2 MiB holds what the test server's threads
/// produce in 100 ms (one drain) at 10,000 requests/s about twice over.
pub fn kernel_ring_bytes(max_bytes: u64) -> u32 {
    const MIN: u64 = 2 << 20;
    let eighth = (max_bytes / 8).clamp(MIN, u64::from(TIMELINE_RING_BYTES));
    // The largest power of two not above it (the kernel's rule for rings).
    (1u64 << eighth.ilog2()) as u32
}

/// The ring's share of `max_bytes`: what is left after the kernel's
/// timeline ring, which the kernel maps twice into the tracer (so it costs
/// twice its size in RSS), halved, because a dump builds its trace from the
/// part of the ring it covers in about as much memory again.
pub fn ring_bytes(max_bytes: u64) -> u64 {
    let kernel = 2 * u64::from(kernel_ring_bytes(max_bytes));
    // A --max-mib smaller than the kernel ring still keeps one chunk.
    (max_bytes.saturating_sub(kernel) / 2).max(1 << 20)
}

/// Checks, before anything is recorded, that dumps can be written in `dir`.
pub fn check_dir(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        bail!("--flight-recorder {}: no such directory", dir.display());
    }
    atomic::check_output_path(&dir.join("slow-check.pftrace"))
        .with_context(|| format!("--flight-recorder {}", dir.display()))?;
    Ok(())
}

/// A slow span waiting for the end of its window.
struct Pending {
    span: SpanRecord,
    start_ns: u64,
    /// When the span ended, and when its window does (CLOCK_MONOTONIC).
    span_end_ns: u64,
    end_ns: u64,
}

struct Job {
    window: Window,
    span: SpanRecord,
    /// When the span ended (CLOCK_MONOTONIC), to say how long the dump took.
    ended_ns: u64,
}

enum Outcome {
    Written { dump: flight::Dump, span: SpanRecord, after_end: Duration },
    Failed { error: String, span: SpanRecord },
}

/// What happened to the slow spans of a run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlightCounts {
    pub triggers: u64,
    pub written: u64,
    pub failed: u64,
    /// Slow spans beyond `--max-dumps-per-min`, not written.
    pub rate_limited: u64,
}

pub struct FlightRecorder {
    options: FlightOptions,
    ring: FlightRing,
    header: WindowHeader,
    pending: VecDeque<Pending>,
    /// When the dumps of the last minute were triggered (CLOCK_MONOTONIC).
    recent: VecDeque<u64>,
    jobs: Option<mpsc::Sender<Job>>,
    outcomes: mpsc::Receiver<Outcome>,
    writer: Option<JoinHandle<()>>,
    in_flight: usize,
    last_sweep: Instant,
    /// What happened since the caller last looked (`take_messages`): the
    /// spans command prints them, the live view shows them.
    messages: Vec<String>,
    pub counts: FlightCounts,
}

impl FlightRecorder {
    pub fn start(options: FlightOptions, pids: Vec<u32>) -> Result<FlightRecorder> {
        let (jobs, receive_jobs) = mpsc::channel::<Job>();
        let (send_outcomes, outcomes) = mpsc::channel();
        let dir = options.dir.clone();
        let writer = std::thread::Builder::new()
            .name("flight-dumps".into())
            .spawn(move || {
                for job in receive_jobs {
                    let outcome = match flight::write_dump(&dir, &job.window, &job.span) {
                        Ok(dump) => {
                            let after_end = Duration::from_nanos(clock::monotonic_ns().saturating_sub(job.ended_ns));
                            Outcome::Written { dump, span: job.span, after_end }
                        }
                        Err(err) => Outcome::Failed { error: format!("{:#}", anyhow::Error::new(err)), span: job.span },
                    };
                    // The window's chunks go back to the ring's budget now.
                    drop(job.window);
                    if send_outcomes.send(outcome).is_err() {
                        return;
                    }
                }
            })
            .context("starting the flight recorder's dump thread")?;
        let limits = RingLimits { keep_ns: options.keep.as_nanos() as u64, max_bytes: ring_bytes(options.max_bytes) };
        let mut ring = FlightRing::new(limits);
        ring.push_clock_pair(clock::clock_pair());
        Ok(FlightRecorder {
            options,
            ring,
            header: WindowHeader { pids, ..WindowHeader::default() },
            pending: VecDeque::new(),
            recent: VecDeque::new(),
            jobs: Some(jobs),
            outcomes,
            writer: Some(writer),
            in_flight: 0,
            last_sweep: Instant::now(),
            messages: Vec::new(),
            counts: FlightCounts::default(),
        })
    }

    /// A timeline event from the kernel; threads and processes are named
    /// when first seen (they may be gone by the time of a dump).
    pub fn on_event(&mut self, event: &TimelineEvent) {
        if event.kind != tracer_common::TIMELINE_HOLDER && !self.ring.knows_thread(event.tid) {
            self.ring.name_thread(event.tid, procfs::comm_of(event.tid).unwrap_or_default());
        }
        for tgid in FlightRing::processes_of(event) {
            if tgid != 0 && !self.ring.knows_process(tgid) {
                let comm = procfs::comm_of(tgid).unwrap_or_default();
                let cgroup = procfs::cgroup_of(tgid).map(Into::into);
                self.ring.name_process(tgid, ProcessName { comm: comm.into(), cgroup });
            }
        }
        self.ring.push_event(event);
    }

    /// A finished span: kept for the dumps, and a dump planned if it is slow.
    pub fn on_span(&mut self, span: &SpanRecord) {
        let now = clock::monotonic_ns();
        if span.wall_ns >= self.options.slow_ns {
            self.trigger(span, now);
        }
        self.ring.push_span(span.clone(), now);
    }

    fn trigger(&mut self, span: &SpanRecord, now: u64) {
        self.counts.triggers += 1;
        let minute = Duration::from_secs(60).as_nanos() as u64;
        while self.recent.front().is_some_and(|&t| t + minute <= now) {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.options.max_dumps_per_min as usize {
            if self.counts.rate_limited == 0 {
                self.messages.push(format!(
                    "tracer: flight recorder: slow span {} not written: {} dumps in the last minute \
                     (--max-dumps-per-min); further ones are counted in the summary",
                    span.span_id,
                    self.recent.len()
                ));
            }
            self.counts.rate_limited += 1;
            return;
        }
        self.recent.push_back(now);
        self.plan(span);
    }

    /// A dump of `span` asked for by hand (the live view's `d`): no
    /// threshold, no rate limit; written once its window has been drained.
    pub fn dump(&mut self, span: &SpanRecord) {
        self.plan(span);
    }

    /// The ring, for cutting a span's timeline out of it.
    pub fn ring(&self) -> &FlightRing {
        &self.ring
    }

    /// What happened since the last call, one line each.
    pub fn take_messages(&mut self) -> Vec<String> {
        std::mem::take(&mut self.messages)
    }

    fn plan(&mut self, span: &SpanRecord) {
        let offset = clock::monotonic_to_unix_offset_ns();
        let start = (i128::from(span.start_unix_ns) - offset).max(0) as u64;
        let after = self.options.after.as_nanos() as u64;
        let span_end_ns = start + span.wall_ns;
        self.pending.push_back(Pending {
            span: span.clone(),
            start_ns: start.saturating_sub(after),
            span_end_ns,
            end_ns: span_end_ns + after,
        });
    }

    /// At each tick: hands the dumps whose window has ended (and been
    /// drained) to the dump thread, and says how the earlier ones went. A
    /// dump whose window's beginning the ring is already dropping (at a
    /// rate that fills --max-mib in less than the window) goes now, with
    /// less after the span, rather than lose the span itself.
    pub fn tick(&mut self, probes: &Probes) {
        self.ring.push_clock_pair(clock::clock_pair());
        let drained_until = clock::monotonic_ns().saturating_sub(2 * DRAIN_EVERY.as_nanos() as u64);
        while let Some(pending) = self.pending.pop_front() {
            let losing = self.ring.dropped_until_ns.is_some_and(|dropped| dropped > pending.start_ns);
            if pending.end_ns <= drained_until || losing {
                let end_ns = pending.end_ns.min(drained_until.max(pending.span_end_ns));
                self.send(Pending { end_ns, ..pending }, probes);
            } else {
                self.pending.push_front(pending);
                break;
            }
        }
        self.collect(false);
        if self.last_sweep.elapsed() >= NAME_SWEEP_EVERY {
            self.last_sweep = Instant::now();
            self.ring.forget_unseen_names();
        }
    }

    fn send(&mut self, pending: Pending, probes: &Probes) {
        self.header.probe_mode = probes.mode.name().to_owned();
        self.header.events_lost = probes.losses().timeline_events;
        let window = self.ring.window(pending.start_ns, pending.end_ns, self.header.clone());
        let job = Job { window, span: pending.span, ended_ns: pending.span_end_ns };
        if let Some(jobs) = &self.jobs
            && jobs.send(job).is_ok()
        {
            self.in_flight += 1;
        }
    }

    /// Says how the dumps written since the last look went (waiting for
    /// all of them when `wait`).
    fn collect(&mut self, wait: bool) {
        while self.in_flight > 0 {
            let outcome = if wait { self.outcomes.recv().ok() } else { self.outcomes.try_recv().ok() };
            let Some(outcome) = outcome else { return };
            self.in_flight -= 1;
            match outcome {
                Outcome::Written { dump, span, after_end } => {
                    self.counts.written += 1;
                    self.messages.push(format!(
                        "tracer: flight recorder: span {} ({} {:.1} ms) written to {} ({} threads, {} spans; \
                         {:.2} s after it ended){}",
                        span.span_id,
                        span.name,
                        span.wall_ns as f64 / 1e6,
                        dump.trace.display(),
                        dump.summary.threads,
                        dump.summary.spans,
                        after_end.as_secs_f64(),
                        dump.truncated.map_or(String::new(), |reason| format!("; {reason}"))
                    ));
                }
                Outcome::Failed { error, span } => {
                    self.counts.failed += 1;
                    self.messages.push(format!(
                        "tracer: warning: flight recorder: span {} not written: {error}; recording goes on",
                        span.span_id
                    ));
                }
            }
        }
    }

    /// At the end of the run: the dumps still waiting for their window are
    /// written with what was recorded, and all are waited for.
    pub fn finish(&mut self, probes: &Probes) -> FlightCounts {
        while let Some(pending) = self.pending.pop_front() {
            self.send(pending, probes);
        }
        self.collect(true);
        self.jobs = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        self.counts
    }

    /// The end-of-run line; `events_lost`: timeline events the kernel could
    /// not stream (its ring buffer full), missing from the dumps.
    pub fn summary(&self, counts: &FlightCounts, events_lost: u64) -> String {
        let mut line = format!(
            "Flight recorder: {} slow spans, {} dumps written to {}",
            counts.triggers,
            counts.written,
            self.options.dir.display()
        );
        if counts.rate_limited > 0 {
            line.push_str(&format!(
                ", {} not written (over --max-dumps-per-min {})",
                counts.rate_limited, self.options.max_dumps_per_min
            ));
        }
        if counts.failed > 0 {
            line.push_str(&format!(", {} failed", counts.failed));
        }
        let kept = self.ring.oldest_ns().map_or(0, |oldest| clock::monotonic_ns().saturating_sub(oldest));
        line.push_str(&format!(
            "; the ring held the last {:.1} s ({} of its {})",
            Duration::from_nanos(kept).min(self.options.keep).as_secs_f64(),
            size(self.ring.bytes()),
            size(self.ring.limits().max_bytes)
        ));
        if events_lost > 0 {
            line.push_str(&format!("; {events_lost} timeline events were lost (ring buffer full)"));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn max_mib_covers_the_kernel_ring_mapped_twice_the_ring_and_a_dump() {
        // The default: an 8 MiB kernel ring (16 MiB of RSS), 24 MiB ring.
        assert_eq!(u64::from(kernel_ring_bytes(64 * MIB)), 8 * MIB);
        assert_eq!(ring_bytes(64 * MIB), 24 * MIB);
        // Larger budgets grow the ring, not the kernel's buffer.
        assert_eq!(u64::from(kernel_ring_bytes(1024 * MIB)), 8 * MIB);
        assert_eq!(ring_bytes(1024 * MIB), 504 * MIB);
        // Small ones: the smallest kernel ring, a power of two.
        assert_eq!(u64::from(kernel_ring_bytes(8 * MIB)), 2 * MIB);
        assert_eq!(ring_bytes(8 * MIB), 2 * MIB);
        assert_eq!(u64::from(kernel_ring_bytes(40 * MIB)), 4 * MIB);
        assert_eq!(ring_bytes(MIB), MIB);
        for mib in [1, 8, 24, 40, 64, 100, 1024] {
            let (kernel, ring) = (u64::from(kernel_ring_bytes(mib * MIB)), ring_bytes(mib * MIB));
            assert!(kernel.is_power_of_two(), "{mib}");
            if mib >= 8 {
                assert!(2 * kernel + 2 * ring <= mib * MIB, "{mib} MiB: kernel {kernel}, ring {ring}");
            }
        }
    }
}
