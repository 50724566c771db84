//! A recorded timeline and the questions asked of it: a thread's totals at
//! any moment, the syscalls and CPU holders in a window, a wall-clock time
//! on the kernel's clock. Built from events (as `output::timeline_file`
//! reads them, or in tests), never from a file here.
use std::{cell::Cell, collections::BTreeMap};

use foldhash::{HashMap, HashMapExt};

use serde::{Deserialize, Serialize};
use tracer_common::{
    OFF_CPU_IOWAIT, OFF_CPU_PREEMPTED, OFF_CPU_SLEEP, OFF_CPU_UNINTERRUPTIBLE, SPAN_TOP, SpanEvent, TIMELINE_HOLDER,
    TIMELINE_ON_CPU, TIMELINE_RUNNABLE, TIMELINE_SYSCALL, TIMELINE_TRANSITION, ThreadStats, ThreadTotals,
    TimelineEvent, TopEntry,
};

use super::{aggregate::totals_at, names::ProcessName};

mod search;

use search::{SearchHints, first_after};

/// Version of the file layout and of the event record; readers refuse
/// other versions rather than misread them.
pub const FORMAT_VERSION: u32 = 4;

/// CLOCK_MONOTONIC (the kernel's event clock) and CLOCK_REALTIME (what
/// other tracers stamp spans with) read at the same moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockPair {
    pub monotonic_ns: u64,
    pub unix_ns: u64,
}

/// How and when a timeline was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineHeader {
    /// [`FORMAT_VERSION`]; set by the writer, whatever the caller put here.
    pub format_version: u32,
    /// The traced processes.
    pub pids: Vec<u32>,
    /// `tp_btf` or `tracepoint`, as in the report.
    pub probe_mode: String,
    /// Clock readings during the recording, at least one: at its start and
    /// end, and more in between to confine the error of a step of the wall
    /// clock to the interval around it (docs/spans.md).
    pub clock_pairs: Vec<ClockPair>,
    /// The recorded window, CLOCK_MONOTONIC: from when the probes were
    /// attached to when they were detached.
    pub first_monotonic_ns: u64,
    pub last_monotonic_ns: u64,
    /// Events the kernel could not stream (ring buffer full).
    pub events_lost: u64,
    /// Why the timeline stopped before the recording ended (a size limit,
    /// a disk running out of space), at `last_monotonic_ns`; absent when it
    /// covers the whole recording.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<String>,
}

/// A thread entered `state` (`TIMELINE_ON_CPU`, `TIMELINE_RUNNABLE` or an
/// `OFF_CPU_*` state) at `ts_ns`, with these cumulative totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub ts_ns: u64,
    pub state: u32,
    /// The CPU it was switched in on, or left, or was woken from.
    pub cpu: u32,
    pub totals: ThreadTotals,
}

impl Transition {
    /// The thread's entry as the kernel's table holds it right after this
    /// transition, so that `totals_at` extends it to a later moment.
    fn as_stats(&self) -> ThreadStats {
        let mut stats = ThreadStats { totals: self.totals, ..ThreadStats::default() };
        match self.state {
            TIMELINE_ON_CPU => stats.on_cpu_since_ns = self.ts_ns,
            TIMELINE_RUNNABLE => stats.runnable_since_ns = self.ts_ns,
            OFF_CPU_PREEMPTED => {
                stats.runnable_since_ns = self.ts_ns;
                stats.off_cpu_state = OFF_CPU_PREEMPTED;
            }
            blocked => {
                stats.off_cpu_since_ns = self.ts_ns;
                stats.off_cpu_state = blocked;
            }
        }
        stats
    }

    fn is_wait_for_cpu(&self) -> bool {
        matches!(self.state, TIMELINE_RUNNABLE | OFF_CPU_PREEMPTED)
    }

    /// What the kernel placed from its counters between this state change
    /// and `next` because no tracepoint said when it happened (a wakeup,
    /// switch-in or switch-out it did not report: `fill_unreported` in the
    /// kernel programs). Its place is just before `next`: first the wait
    /// for a CPU, then the run. Nothing for a run, whose own time is its
    /// on-CPU total, nor for a wait that ended at a reported switch-in
    /// (its on-CPU growth is the idle wake-up, charged to the run); only
    /// the run for a wait that ended at a switch-out.
    pub fn unreported_before(&self, next: &Transition) -> Unreported {
        if self.state == TIMELINE_ON_CPU || (self.is_wait_for_cpu() && next.state == TIMELINE_ON_CPU) {
            return Unreported::default();
        }
        let period = next.ts_ns.saturating_sub(self.ts_ns);
        let ran = next.totals.on_cpu_ns.saturating_sub(self.totals.on_cpu_ns).min(period);
        let waited = if self.is_wait_for_cpu() {
            0
        } else {
            next.totals.runq_wait_ns.saturating_sub(self.totals.runq_wait_ns).min(period - ran)
        };
        Unreported { ran, waited }
    }
}

/// See [`Transition::unreported_before`] (ns).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unreported {
    pub waited: u64,
    pub ran: u64,
}

fn known_state(state: u32) -> bool {
    matches!(
        state,
        TIMELINE_ON_CPU | TIMELINE_RUNNABLE | OFF_CPU_PREEMPTED | OFF_CPU_SLEEP | OFF_CPU_UNINTERRUPTIBLE | OFF_CPU_IOWAIT
    )
}

/// A syscall (`id` = number) or a CPU holder (`id` = TGID) whose time `ns`
/// ended at `ts_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub ts_ns: u64,
    pub id: u32,
    pub ns: u64,
    /// The CPU: where the syscall ran, or the one a holder held.
    pub cpu: u32,
}

/// One thread's events, each list sorted by time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadHistory {
    /// Its process (0 when no event said).
    pub tgid: u32,
    pub transitions: Vec<Transition>,
    pub syscalls: Vec<Point>,
    pub holders: Vec<Point>,
    hints: SearchHints,
}

impl ThreadHistory {
    /// The first transition after `t` (the number at or before it).
    fn transitions_after(&self, t: u64) -> usize {
        first_after(&self.transitions, |tr| tr.ts_ns, t, &self.hints.transitions)
    }

    /// Totals at `t`: the last transition at or before `t`, extended to `t`.
    fn totals_at(&self, t: u64) -> Option<ThreadTotals> {
        let after = self.transitions_after(t);
        let last = self.transitions.get(after.checked_sub(1)?)?;
        Some(totals_at(&last.as_stats(), t))
    }

    /// Syscalls ending in `(start, end]`, each with its whole duration (as
    /// the kernel charges a marker span): total time, count, the largest.
    fn syscalls_in(&self, start: u64, end: u64) -> (u64, u64, [TopEntry; SPAN_TOP]) {
        let mut by_nr = Tally::default();
        let (mut ns, mut count) = (0, 0);
        for s in points_in(&self.syscalls, start, end, &self.hints.syscalls) {
            by_nr.add(s.id, s.ns);
            ns += s.ns;
            count += 1;
        }
        (ns, count, by_nr.top())
    }

    /// CPU holders of the waits that overlap `[start, end]`. A wait that
    /// straddles an end of the window is charged in proportion to its part
    /// inside it: which holder ran when within a wait is not recorded.
    fn holders_in(&self, start: u64, end: u64) -> [TopEntry; SPAN_TOP] {
        // The last wait overlapping the window ends at the first transition
        // after it.
        let after_end = self.transitions_after(end);
        let until = self.transitions.get(after_end).map_or(end, |t| t.ts_ns);
        let mut by_tgid = Tally::default();
        for h in points_in(&self.holders, start, until, &self.hints.holders) {
            let wait_start = self.wait_start(h.ts_ns).unwrap_or(h.ts_ns.saturating_sub(h.ns));
            let overlap = h.ts_ns.min(end).saturating_sub(wait_start.max(start));
            if overlap == 0 {
                continue;
            }
            let wait = h.ts_ns - wait_start;
            by_tgid.add(h.id, (u128::from(h.ns) * u128::from(overlap) / u128::from(wait)) as u64);
        }
        by_tgid.top()
    }

    /// When the wait for a CPU that ended at `end` began.
    fn wait_start(&self, end: u64) -> Option<u64> {
        let upto = self.transitions_after(end);
        self.transitions[..upto].iter().rev().find(|t| t.is_wait_for_cpu()).map(|t| t.ts_ns)
    }
}

/// A run slice of a CPU holder recorded by a waiting thread: process `pid`
/// (0: the CPU was idle) held `cpu` over `[start, end)` while the thread
/// waited for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldSlice {
    pub pid: u32,
    pub cpu: u32,
    pub start: u64,
    pub end: u64,
}

/// The run slices of a thread's holder records, in their order. The
/// records of one wait share its end and CPU and come most recent slice
/// first, back to back.
pub fn held_slices<'a>(holders: impl IntoIterator<Item = &'a Point>) -> impl Iterator<Item = HeldSlice> {
    let mut wait_end = None;
    let mut slice_end = 0;
    holders.into_iter().map(move |h| {
        if wait_end != Some((h.ts_ns, h.cpu)) {
            wait_end = Some((h.ts_ns, h.cpu));
            slice_end = h.ts_ns;
        }
        let held = HeldSlice { pid: h.id, cpu: h.cpu, start: slice_end.saturating_sub(h.ns), end: slice_end };
        slice_end = held.start;
        held
    })
}

fn points_in<'a>(points: &'a [Point], start: u64, end: u64, hint: &Cell<usize>) -> &'a [Point] {
    let from = first_after(points, |p| p.ts_ns, start, hint);
    let to = first_after(points, |p| p.ts_ns, end, hint).max(from);
    &points[from..to]
}

/// Count and time per id (syscall number, TGID) over one span's window.
/// A window holds a handful of ids, so a short list searched in order
/// costs less than a map built for every span (tens of thousands a second).
#[derive(Default)]
struct Tally(Vec<TopEntry>);

impl Tally {
    fn add(&mut self, id: u32, ns: u64) {
        match self.0.iter_mut().find(|e| e.id == id) {
            Some(entry) => {
                entry.count = entry.count.saturating_add(1);
                entry.ns += ns;
            }
            None => self.0.push(TopEntry { id, count: 1, ns }),
        }
    }

    /// The `SPAN_TOP` largest by time (ties: lower id first), as a span carries them.
    fn top(mut self) -> [TopEntry; SPAN_TOP] {
        self.0.sort_unstable_by_key(|e| (std::cmp::Reverse(e.ns), e.id));
        let mut top = [TopEntry::default(); SPAN_TOP];
        for (slot, entry) in top.iter_mut().zip(self.0) {
            *slot = entry;
        }
        top
    }
}

/// A timeline: the recorded events of each thread, with the recording's
/// header and the names of the processes in it.
#[derive(Debug)]
pub struct Timeline {
    pub header: TimelineHeader,
    pub names: BTreeMap<u32, ProcessName>,
    /// TID -> its own `comm`, for the threads recorded (empty in files
    /// written before it was kept).
    pub thread_names: BTreeMap<u32, String>,
    threads: HashMap<u32, ThreadHistory>,
    /// Events added so far.
    pub event_count: u64,
}

impl Timeline {
    /// An empty timeline; `push` adds events in any order, `finish` sorts them.
    pub fn new(mut header: TimelineHeader, names: BTreeMap<u32, ProcessName>) -> Timeline {
        header.clock_pairs.sort_by_key(|p| p.monotonic_ns);
        Timeline { header, names, thread_names: BTreeMap::new(), threads: HashMap::new(), event_count: 0 }
    }

    /// Adds one event; an event of an unknown kind or thread state is
    /// refused (a reader says where in its input).
    pub fn push(&mut self, event: &TimelineEvent) -> Result<(), String> {
        let thread = self.threads.entry(event.tid).or_default();
        if event.tgid != 0 {
            thread.tgid = event.tgid;
        }
        let point = Point { ts_ns: event.ts_ns, id: event.value, ns: event.ns, cpu: event.cpu };
        match event.kind {
            TIMELINE_TRANSITION if known_state(event.value) => {
                thread.transitions.push(Transition {
                    ts_ns: event.ts_ns,
                    state: event.value,
                    cpu: event.cpu,
                    totals: event.totals,
                })
            }
            TIMELINE_TRANSITION => return Err(format!("unknown thread state {}", event.value)),
            TIMELINE_SYSCALL => thread.syscalls.push(point),
            TIMELINE_HOLDER => thread.holders.push(point),
            kind => return Err(format!("unknown kind {kind}")),
        }
        self.event_count += 1;
        Ok(())
    }

    /// Puts each thread's events in time order. Ring buffers are per CPU,
    /// so events arrive only roughly in order; stable sorts keep the input
    /// order of events at the same moment.
    pub fn finish(mut self) -> Timeline {
        self.sort();
        self
    }

    /// `finish` in place, for a timeline that goes on growing (the span
    /// markers' live join): the sorts are linear on the sorted part.
    pub fn sort(&mut self) {
        for thread in self.threads.values_mut() {
            thread.transitions.sort_by_key(|t| t.ts_ns);
            thread.syscalls.sort_by_key(|p| p.ts_ns);
            thread.holders.sort_by_key(|p| p.ts_ns);
        }
    }

    /// Forgets each thread's events before `cut(tid)`, but for the last
    /// state it entered before then (its totals from then on stay exact),
    /// and the threads with no state change since `idle_before`.
    pub fn forget_before(&mut self, cut: impl Fn(u32) -> u64, idle_before: u64) {
        self.threads.retain(|&tid, thread| {
            let cut = cut(tid);
            let keep_from = thread.transitions.partition_point(|t| t.ts_ns < cut).saturating_sub(1);
            thread.transitions.drain(..keep_from);
            let points = |points: &mut Vec<Point>| drop(points.drain(..points.partition_point(|p| p.ts_ns < cut)));
            points(&mut thread.syscalls);
            points(&mut thread.holders);
            thread.transitions.last().is_some_and(|t| t.ts_ns >= idle_before)
        });
    }

    pub fn thread(&self, tid: u32) -> Option<&ThreadHistory> {
        self.threads.get(&tid)
    }

    pub fn thread_mut(&mut self, tid: u32) -> Option<&mut ThreadHistory> {
        self.threads.get_mut(&tid)
    }

    /// Every thread recorded, by TID.
    pub fn threads(&self) -> impl Iterator<Item = (u32, &ThreadHistory)> {
        self.threads.iter().map(|(&tid, history)| (tid, history))
    }

    /// The CLOCK_MONOTONIC time of a wall-clock time (may lie outside the
    /// recording, or be negative). NTP slews both clocks alike, so their
    /// offset changes only when the wall clock is stepped. Between two
    /// clock pairs it interpolates: exact when their offsets agree, and
    /// where a step moved the offset, continuous and increasing, so a span
    /// never maps to a negative length. Outside the pairs, and when a step
    /// back put their wall-clock times out of order, it uses the offset of
    /// the pair nearest in time.
    pub fn unix_to_monotonic(&self, unix_ns: u64) -> i128 {
        let pairs = &self.header.clock_pairs;
        let unix = i128::from(unix_ns);
        let offset_of = |p: &ClockPair| i128::from(p.monotonic_ns) - i128::from(p.unix_ns);
        let in_order = pairs.windows(2).all(|w| w[0].unix_ns < w[1].unix_ns);
        let after = pairs.partition_point(|p| i128::from(p.unix_ns) <= unix);
        if in_order && after > 0 && after < pairs.len() {
            let (a, b) = (&pairs[after - 1], &pairs[after]);
            let (a_unix, a_mono) = (i128::from(a.unix_ns), i128::from(a.monotonic_ns));
            let unix_span = i128::from(b.unix_ns) - a_unix;
            let mono_span = i128::from(b.monotonic_ns) - a_mono;
            return a_mono + (unix - a_unix) * mono_span / unix_span;
        }
        let nearest = pairs
            .iter()
            .min_by_key(|p| (i128::from(p.unix_ns) - unix).abs())
            .expect("a timeline has at least one clock pair");
        unix + offset_of(nearest)
    }

    /// The breakdown of thread `tid` over `[start_ns, end_ns]` (monotonic),
    /// as the kernel reports a marker span (`span_id` and `name` left
    /// empty): the difference of its totals, its syscalls ending inside,
    /// the holders of the CPU while it waited. `None` when the thread has
    /// no state recorded at `start_ns` (not recorded then).
    pub fn attribute(&self, tid: u32, start_ns: u64, end_ns: u64) -> Option<SpanEvent> {
        let thread = self.threads.get(&tid)?;
        let end_ns = end_ns.max(start_ns);
        let before = thread.totals_at(start_ns)?;
        let mut delta = thread.totals_at(end_ns)?.since(&before);
        // The totals' syscall time moves only at state changes; the syscall
        // events say exactly which syscalls ended inside the window.
        let (syscall_ns, syscalls, top_syscalls) = thread.syscalls_in(start_ns, end_ns);
        delta.syscall_ns = syscall_ns;
        delta.syscalls = syscalls;
        Some(SpanEvent {
            tgid: thread.tgid,
            tid_begin: tid,
            tid_end: tid,
            start_ns,
            end_ns,
            delta,
            syscalls: top_syscalls,
            holders: thread.holders_in(start_ns, end_ns),
            ..SpanEvent::default()
        })
    }
}

/// Synthetic recordings for the tests of the timeline and of what reads it.
#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests {
    use super::{fixtures::*, *};

    #[test]
    fn attribution_follows_the_thread_through_each_state() {
        let timeline = synthetic();
        let at = |ms: f64| T0 + (ms * MS as f64) as u64;

        // On a CPU, preempted, on a CPU, asleep: 1 to 6.5 ms.
        let span = timeline.attribute(TID, at(1.0), at(6.5)).unwrap();
        assert_eq!((span.tgid, span.tid_begin, span.tid_end, span.flags), (PID, TID, TID, 0));
        assert_eq!((span.start_ns, span.end_ns), (at(1.0), at(6.5)));
        let expected = ThreadTotals {
            on_cpu_ns: 2 * MS,
            runq_wait_ns: 3 * MS,
            runq_waits: 1,
            preempted_ns: 3 * MS,
            sleep_ns: MS / 2,
            voluntary_switches: 1,
            involuntary_switches: 1,
            migrations: 1,
            // The read ending at exactly 1 ms belongs to the time before.
            syscall_ns: 500_000,
            syscalls: 2,
            ..Default::default()
        };
        assert_eq!(span.delta, expected);
        assert_eq!(span.syscalls[0], TopEntry { id: 1, count: 1, ns: 300_000 });
        assert_eq!(span.syscalls[1], TopEntry { id: 0, count: 1, ns: 200_000 });
        assert_eq!(span.syscalls[2].count, 0);
        assert_eq!(span.holders[0], TopEntry { id: 900, count: 1, ns: 2_400_000 });
        assert_eq!(span.holders[1], TopEntry { id: 901, count: 1, ns: 600_000 });
        assert_eq!(span.holders[2].count, 0);

        // Starting inside the wait: 2 of its 3 ms, and that share of its holders.
        let span = timeline.attribute(TID, at(3.0), at(8.0)).unwrap();
        let d = span.delta;
        assert_eq!((d.on_cpu_ns, d.runq_wait_ns, d.preempted_ns, d.sleep_ns), (MS, 2 * MS, 2 * MS, 2 * MS));
        assert_eq!((d.runq_waits, d.involuntary_switches, d.voluntary_switches), (1, 0, 1));
        assert_eq!(span.holders[0], TopEntry { id: 900, count: 1, ns: 1_600_000 });
        assert_eq!(span.holders[1], TopEntry { id: 901, count: 1, ns: 400_000 });

        // Ending inside the wait: its holders are recorded when it ends, after the span.
        let span = timeline.attribute(TID, at(4.0), at(4.5)).unwrap();
        assert_eq!((span.delta.runq_wait_ns, span.delta.on_cpu_ns), (MS / 2, 0));
        assert_eq!(span.holders[0], TopEntry { id: 900, count: 1, ns: 400_000 });
        assert_eq!(span.holders[1], TopEntry { id: 901, count: 1, ns: 100_000 });

        // Woken, waiting on an idle CPU (not preempted), then running.
        let span = timeline.attribute(TID, at(9.0), at(11.5)).unwrap();
        let d = span.delta;
        assert_eq!((d.sleep_ns, d.runq_wait_ns, d.preempted_ns, d.on_cpu_ns), (MS, MS, 0, MS / 2));
        assert_eq!(span.holders[0], TopEntry { id: 0, count: 1, ns: MS });
        assert_eq!(d.syscalls, 0);

        assert!(timeline.attribute(TID, T0 - 1, at(1.0)).is_none(), "not recorded before its first state");
        assert!(timeline.attribute(999, at(1.0), at(2.0)).is_none(), "a thread the timeline does not have");
    }

    #[test]
    fn blocked_states_land_in_their_totals() {
        let io_start = ThreadTotals { on_cpu_ns: MS, voluntary_switches: 1, ..Default::default() };
        let io_done = ThreadTotals { uninterruptible_ns: 2 * MS, iowait_ns: 2 * MS, ..io_start };
        let lock_done = ThreadTotals { uninterruptible_ns: 3 * MS, ..io_done };
        let timeline = from_events(
            &[
                transition(0.0, TIMELINE_ON_CPU, ThreadTotals::default()),
                transition(1.0, OFF_CPU_IOWAIT, io_start),
                transition(3.0, OFF_CPU_UNINTERRUPTIBLE, io_done),
                transition(4.0, TIMELINE_ON_CPU, lock_done),
            ],
        );
        let d = timeline.attribute(TID, T0 + MS / 2, T0 + 4 * MS + MS / 2).unwrap().delta;
        assert_eq!((d.on_cpu_ns, d.uninterruptible_ns, d.iowait_ns), (MS, 3 * MS, 2 * MS));
        let d = timeline.attribute(TID, T0 + 2 * MS, T0 + 3 * MS + MS / 2).unwrap().delta;
        assert_eq!((d.uninterruptible_ns, d.iowait_ns), (MS + MS / 2, MS), "I/O wait extends to the moment asked");
    }

    #[test]
    fn wall_clock_times_map_to_the_monotonic_clock() {
        const S: u64 = 1_000 * MS;
        let unix0 = 1_700_000_000 * S;
        let mut timeline = synthetic();
        // The wall clock was stepped 2 ms forward between the two pairs.
        timeline.header.clock_pairs = vec![
            ClockPair { monotonic_ns: 1_000 * S, unix_ns: unix0 },
            ClockPair { monotonic_ns: 1_010 * S, unix_ns: unix0 + 10 * S + 2 * MS },
        ];
        let mono = |unix: u64| timeline.unix_to_monotonic(unix);
        assert_eq!(mono(unix0), i128::from(1_000 * S));
        assert_eq!(mono(unix0 + 5 * S + MS), i128::from(1_005 * S), "halfway, half the step");
        assert_eq!(mono(unix0 + 10 * S + 2 * MS), i128::from(1_010 * S));
        assert_eq!(mono(unix0 - S), i128::from(999 * S), "before: the first pair's offset");
        assert_eq!(mono(unix0 + 12 * S + 2 * MS), i128::from(1_012 * S), "after: the last pair's offset");

        // Stepped back 1 s during the recording: the nearest pair decides.
        timeline.header.clock_pairs[1].unix_ns = unix0 - S / 2;
        let mono = |unix: u64| timeline.unix_to_monotonic(unix);
        assert_eq!(mono(unix0 + S), i128::from(1_001 * S));
        assert_eq!(mono(unix0 - S), i128::from(1_009_500 * MS));

        let single = synthetic();
        assert_eq!(single.unix_to_monotonic(1_700_000_000_000 * MS + 7), i128::from(T0 + 7));
    }
}
