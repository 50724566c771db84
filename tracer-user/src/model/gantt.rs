//! A span's story as a gantt chart: what state each thread it touched was
//! in, when, and who held the CPU while it waited. The chart is cut from a
//! timeline of the span's window (the live view takes it from its flight
//! recorder's ring, which holds each thread's last state change before the
//! window too).
use std::collections::BTreeMap;

use tracer_common::{
    OFF_CPU_IOWAIT, OFF_CPU_PREEMPTED, OFF_CPU_SLEEP, OFF_CPU_UNINTERRUPTIBLE, TIMELINE_ON_CPU,
    TIMELINE_RUNNABLE,
};

use super::timeline::{ThreadHistory, Timeline, held_slices};

/// What a thread was doing, as the chart draws it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GanttState {
    Running,
    /// Waiting for a CPU that others held.
    Runnable,
    /// Waiting for a CPU while its cgroup's CPU quota was used up.
    Throttled,
    /// Waiting for an idle CPU to wake up, or the wake-up itself, which
    /// the kernel charges to the thread's CPU time.
    IdleWakeup,
    Sleeping,
    IoWait,
    /// Uninterruptible, not I/O (locks, page faults).
    Uninterruptible,
    /// Not known: before the first state change kept.
    Unknown,
}

impl GanttState {
    pub const ALL: [GanttState; 8] = [
        GanttState::Running,
        GanttState::Runnable,
        GanttState::Throttled,
        GanttState::IdleWakeup,
        GanttState::Sleeping,
        GanttState::IoWait,
        GanttState::Uninterruptible,
        GanttState::Unknown,
    ];

    pub fn label(self) -> &'static str {
        match self {
            GanttState::Running => "running",
            GanttState::Runnable => "runnable",
            GanttState::Throttled => "throttled",
            GanttState::IdleWakeup => "idle wake-up",
            GanttState::Sleeping => "sleeping",
            GanttState::IoWait => "I/O",
            GanttState::Uninterruptible => "uninterruptible",
            GanttState::Unknown => "unknown",
        }
    }

    fn of(state: u32) -> GanttState {
        match state {
            TIMELINE_ON_CPU => GanttState::Running,
            TIMELINE_RUNNABLE | OFF_CPU_PREEMPTED => GanttState::Runnable,
            OFF_CPU_SLEEP => GanttState::Sleeping,
            OFF_CPU_IOWAIT => GanttState::IoWait,
            OFF_CPU_UNINTERRUPTIBLE => GanttState::Uninterruptible,
            _ => GanttState::Unknown,
        }
    }
}

/// `[start, end)` in one state (CLOCK_MONOTONIC ns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stretch {
    pub start: u64,
    pub end: u64,
    pub state: GanttState,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GanttRow {
    pub tid: u32,
    /// In time order, back to back over the span's window.
    pub stretches: Vec<Stretch>,
}

/// A span's chart: its window, a row per thread, and the processes that
/// held the CPU while its threads waited (TGID, ns), most first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gantt {
    pub start_ns: u64,
    pub end_ns: u64,
    pub rows: Vec<GanttRow>,
    pub holders: Vec<(u32, u64)>,
}

/// The chart of `[start_ns, end_ns)` for `tids` (those with a known state
/// in it), from `timeline`; `None` when none has.
pub fn chart(timeline: &Timeline, tids: &[u32], start_ns: u64, end_ns: u64) -> Option<Gantt> {
    let end_ns = end_ns.max(start_ns + 1);
    let mut rows = Vec::new();
    let mut holders: BTreeMap<u32, u64> = BTreeMap::new();
    for &tid in tids {
        let Some(thread) = timeline.thread(tid) else { continue };
        let stretches = clip(stretches(thread), start_ns, end_ns);
        if stretches.iter().all(|s| s.state == GanttState::Unknown) {
            continue;
        }
        for h in held_slices(&thread.holders) {
            let overlap = h.end.min(end_ns).saturating_sub(h.start.max(start_ns));
            if h.pid != 0 && overlap > 0 {
                *holders.entry(h.pid).or_default() += overlap;
            }
        }
        rows.push(GanttRow { tid, stretches });
    }
    if rows.is_empty() {
        return None;
    }
    let mut holders: Vec<(u32, u64)> = holders.into_iter().collect();
    holders.sort_by_key(|&(pid, ns)| (std::cmp::Reverse(ns), pid));
    Some(Gantt { start_ns, end_ns, rows, holders })
}
/// The thread's states from its first kept state change on. A wait for a
/// CPU is split by what its records say: first the time its cgroup was
/// throttled (its totals' difference; the quota runs out first, then the
/// CPU is contended), then runnable, where the CPU was idle an idle
/// wake-up; a run begins with the CPU's wake-up its totals charge to it.
fn stretches(thread: &ThreadHistory) -> Vec<Stretch> {
    let idle: Vec<(u64, u64)> = held_slices(&thread.holders).filter(|h| h.pid == 0).map(|h| (h.start, h.end)).collect();
    let mut out = Vec::new();
    let transitions = &thread.transitions;
    for (i, t) in transitions.iter().enumerate() {
        let next = transitions.get(i + 1);
        let end = next.map_or(u64::MAX, |n| n.ts_ns);
        let mut push = |start: u64, end: u64, state| {
            if start < end {
                out.push(Stretch { start, end, state });
            }
        };
        match (GanttState::of(t.state), next) {
            (GanttState::Runnable, Some(n)) => {
                // Off the CPU again with no switch-in reported: its run
                // ends the stretch (`unreported_before`).
                let wait_end = end - t.unreported_before(n).ran;
                let throttled = n.totals.throttled_ns.saturating_sub(t.totals.throttled_ns);
                let throttled_end = t.ts_ns + throttled.min(wait_end - t.ts_ns);
                push(t.ts_ns, throttled_end, GanttState::Throttled);
                let mut at = throttled_end;
                for &(idle_start, idle_end) in idle.iter().filter(|(s, e)| *e > throttled_end && *s < wait_end) {
                    push(at, idle_start.max(at), GanttState::Runnable);
                    push(idle_start.max(at), idle_end.min(wait_end), GanttState::IdleWakeup);
                    at = idle_end.min(wait_end);
                }
                push(at, wait_end, GanttState::Runnable);
                push(wait_end, end, GanttState::Running);
            }
            (GanttState::Running, Some(n)) => {
                let wakeup = n.totals.wakeup_idle_ns.saturating_sub(t.totals.wakeup_idle_ns).min(end - t.ts_ns);
                push(t.ts_ns, t.ts_ns + wakeup, GanttState::IdleWakeup);
                push(t.ts_ns + wakeup, end, GanttState::Running);
            }
            // Back on a CPU, or off it again, with no tracepoint for part
            // of it: what the kernel's counters placed goes at the end.
            (state @ (GanttState::Sleeping | GanttState::IoWait | GanttState::Uninterruptible), Some(n)) => {
                let unreported = t.unreported_before(n);
                let run_start = end - unreported.ran;
                let wait_start = run_start - unreported.waited;
                push(t.ts_ns, wait_start, state);
                push(wait_start, run_start, GanttState::Runnable);
                push(run_start, end, GanttState::Running);
            }
            (state, _) => push(t.ts_ns, end, state),
        }
    }
    out
}

/// The stretches inside `[start, end)`, cut at its edges; where nothing is
/// known, `Unknown`.
fn clip(stretches: Vec<Stretch>, start: u64, end: u64) -> Vec<Stretch> {
    let mut out = Vec::new();
    let mut at = start;
    for s in stretches.into_iter().filter(|s| s.end > start && s.start < end) {
        let (from, to) = (s.start.max(start), s.end.min(end));
        if from > at {
            out.push(Stretch { start: at, end: from, state: GanttState::Unknown });
        }
        out.push(Stretch { start: from.max(at), end: to, state: s.state });
        at = to;
    }
    if at < end {
        out.push(Stretch { start: at, end, state: GanttState::Unknown });
    }
    out.retain(|s| s.start < s.end);
    out
}

#[cfg(test)]
mod tests {
    use tracer_common::{TIMELINE_HOLDER, TIMELINE_TRANSITION, ThreadTotals, TimelineEvent};

    use super::*;
    use crate::model::timeline::fixtures;

    const MS: u64 = 1_000_000;

    fn transition(tid: u32, ms: u64, state: u32, totals: ThreadTotals) -> TimelineEvent {
        TimelineEvent { kind: TIMELINE_TRANSITION, tid, tgid: 100, ts_ns: ms * MS, value: state, totals, ..Default::default() }
    }

    fn holder(tid: u32, end_ms: u64, pid: u32, ns: u64) -> TimelineEvent {
        TimelineEvent { kind: TIMELINE_HOLDER, tid, tgid: 100, ts_ns: end_ms * MS, value: pid, ns, ..Default::default() }
    }

    /// Thread 101: running 0-10 (its first ms the CPU waking up), runnable
    /// 10-40 (throttled 10-15, batch 15-35, the CPU idle 35-40), running
    /// 40-50, asleep 50-70, in I/O 70-90, running from 90. Thread 102:
    /// running 0-60, preempted 60-80 while cron ran, running from 80.
    fn timeline_of(events: &[TimelineEvent]) -> Timeline {
        let mut timeline = Timeline::new(fixtures::header(), BTreeMap::new());
        for e in events {
            timeline.push(e).unwrap();
        }
        timeline.finish()
    }

    fn recent() -> Timeline {
        let woke = ThreadTotals { wakeup_idle_ns: MS, ..ThreadTotals::default() };
        let throttled = ThreadTotals { throttled_ns: 5 * MS, ..woke };
        timeline_of(&[
            transition(101, 0, TIMELINE_ON_CPU, ThreadTotals::default()),
            transition(101, 10, OFF_CPU_PREEMPTED, woke),
            transition(101, 40, TIMELINE_ON_CPU, throttled),
            holder(101, 40, 0, 5 * MS),
            holder(101, 40, 900, 20 * MS),
            transition(101, 50, OFF_CPU_SLEEP, throttled),
            transition(101, 90, TIMELINE_ON_CPU, throttled),
            // I/O comes out of order, as per-CPU buffers deliver it.
            transition(101, 70, OFF_CPU_IOWAIT, throttled),
            transition(102, 0, TIMELINE_ON_CPU, ThreadTotals::default()),
            transition(102, 60, OFF_CPU_PREEMPTED, ThreadTotals::default()),
            transition(102, 80, TIMELINE_ON_CPU, ThreadTotals::default()),
            holder(102, 80, 901, 20 * MS),
        ])
    }

    fn ms(row: &GanttRow) -> Vec<(u64, u64, GanttState)> {
        row.stretches.iter().map(|s| (s.start / MS, s.end / MS, s.state)).collect()
    }

    #[test]
    fn a_spans_window_shows_each_threads_states_and_the_holders() {
        use GanttState::*;
        let gantt = chart(&recent(), &[101, 102], 0, 100 * MS).unwrap();
        assert_eq!(
            ms(&gantt.rows[0]),
            [
                (0, 1, IdleWakeup),
                (1, 10, Running),
                (10, 15, Throttled),
                (15, 35, Runnable),
                (35, 40, IdleWakeup),
                (40, 50, Running),
                (50, 70, Sleeping),
                (70, 90, IoWait),
                (90, 100, Running)
            ]
        );
        assert_eq!(ms(&gantt.rows[1]), [(0, 60, Running), (60, 80, Runnable), (80, 100, Running)]);
        assert_eq!(gantt.holders, [(900, 20 * MS), (901, 20 * MS)], "the idle CPU is nobody");
    }

    #[test]
    fn the_window_is_cut_at_its_edges_and_unknown_before_the_first_state() {
        use GanttState::*;
        let gantt = chart(&recent(), &[101], 20 * MS, 45 * MS).unwrap();
        assert_eq!(ms(&gantt.rows[0]), [(20, 35, Runnable), (35, 40, IdleWakeup), (40, 45, Running)]);
        assert_eq!(gantt.holders, [(900, 15 * MS)], "only the part inside");
        let late = timeline_of(&[
            transition(7, 30, TIMELINE_ON_CPU, ThreadTotals::default()),
            transition(7, 35, OFF_CPU_SLEEP, ThreadTotals::default()),
        ]);
        assert_eq!(ms(&chart(&late, &[7], 20 * MS, 40 * MS).unwrap().rows[0]), [(20, 30, Unknown), (30, 35, Running), (35, 40, Sleeping)]);
        assert_eq!(chart(&late, &[8], 0, MS), None, "a thread never seen");
    }

    /// The kernel's counters placed a wait (and a run) no tracepoint
    /// reported: the chart draws them where the breakdown counts them.
    #[test]
    fn a_wait_or_run_filled_from_the_kernels_counters_ends_the_blocked_stretch() {
        use GanttState::*;
        let waited = ThreadTotals { runq_wait_ns: 4 * MS, ..ThreadTotals::default() };
        let ran = ThreadTotals { on_cpu_ns: 3 * MS, ..waited };
        let timeline = timeline_of(&[
            transition(9, 0, OFF_CPU_SLEEP, ThreadTotals::default()),
            // Its wakeup was not reported: 4 ms of the 30 were a wait.
            transition(9, 30, TIMELINE_ON_CPU, waited),
            transition(9, 32, OFF_CPU_IOWAIT, ThreadTotals { on_cpu_ns: 2 * MS, ..waited }),
            // Its switch-in was not reported: it ran 1 ms before leaving.
            transition(9, 50, OFF_CPU_SLEEP, ThreadTotals { on_cpu_ns: 3 * MS, ..waited }),
            transition(9, 60, TIMELINE_ON_CPU, ran),
            transition(9, 70, OFF_CPU_PREEMPTED, ThreadTotals { on_cpu_ns: 13 * MS, ..ran }),
            // Its switch-in was not reported: it waited 6 ms, then ran 2.
            transition(9, 78, OFF_CPU_SLEEP, ThreadTotals { on_cpu_ns: 15 * MS, ..ran }),
        ]);
        assert_eq!(
            ms(&chart(&timeline, &[9], 0, 80 * MS).unwrap().rows[0]),
            [(0, 26, Sleeping), (26, 30, Runnable), (30, 32, Running), (32, 49, IoWait), (49, 50, Running),
                (50, 60, Sleeping), (60, 70, Running), (70, 76, Runnable), (76, 78, Running), (78, 80, Sleeping)]
        );
    }
}
