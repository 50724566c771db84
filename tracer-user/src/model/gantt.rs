//! A span's story as a gantt chart: what state each thread it touched was
//! in, when, and who held the CPU while it waited. The live view keeps the
//! recent state changes of the traced threads (`RecentTimeline`, bounded
//! in time and in events per thread) and cuts a span's window out of them.
use std::collections::{BTreeMap, HashMap, VecDeque};

use tracer_common::{
    OFF_CPU_IOWAIT, OFF_CPU_PREEMPTED, OFF_CPU_SLEEP, OFF_CPU_UNINTERRUPTIBLE, TIMELINE_HOLDER, TIMELINE_ON_CPU,
    TIMELINE_RUNNABLE, TIMELINE_TRANSITION, TimelineEvent,
};

use super::timeline::{Point, Transition, held_slices};

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

/// One thread's recent state changes and the holders of its waits.
#[derive(Debug, Default)]
struct Recent {
    transitions: VecDeque<Transition>,
    holders: VecDeque<Point>,
}

/// The traced threads' state changes of the last `keep_ns`, at most
/// `max_per_thread` of each kind per thread and `max_total` of all: a span
/// that ended longer ago, or a thread that changed state faster, has only
/// the recent part.
#[derive(Debug)]
pub struct RecentTimeline {
    keep_ns: u64,
    max_per_thread: usize,
    max_total: usize,
    /// State changes and holders kept, of all threads.
    total: usize,
    threads: HashMap<u32, Recent>,
}

/// Inserts keeping time order: events come from per-CPU buffers, nearly in
/// order, so the place is found from the back.
fn insert_by_time<T>(items: &mut VecDeque<T>, item: T, ts: impl Fn(&T) -> u64) {
    let at = items.iter().rposition(|i| ts(i) <= ts(&item)).map_or(0, |i| i + 1);
    items.insert(at, item);
}

impl RecentTimeline {
    pub fn new(keep_ns: u64, max_per_thread: usize, max_total: usize) -> RecentTimeline {
        let max_per_thread = max_per_thread.max(2);
        RecentTimeline { keep_ns, max_per_thread, max_total: max_total.max(max_per_thread), total: 0, threads: HashMap::new() }
    }

    /// Keeps a state change or a wait's holder; syscalls are not drawn.
    /// Over a limit, the thread's own oldest goes: the busiest threads
    /// keep the shortest past.
    pub fn push(&mut self, event: &TimelineEvent) {
        let thread = self.threads.entry(event.tid).or_default();
        let full = |len: usize, total: usize| len > self.max_per_thread || total > self.max_total;
        match event.kind {
            TIMELINE_TRANSITION => {
                let t = Transition { ts_ns: event.ts_ns, state: event.value, cpu: event.cpu, totals: event.totals };
                insert_by_time(&mut thread.transitions, t, |t| t.ts_ns);
                self.total += 1;
                if full(thread.transitions.len(), self.total) {
                    thread.transitions.pop_front();
                    self.total -= 1;
                }
            }
            TIMELINE_HOLDER => {
                let p = Point { ts_ns: event.ts_ns, id: event.value, ns: event.ns, cpu: event.cpu };
                insert_by_time(&mut thread.holders, p, |p| p.ts_ns);
                self.total += 1;
                if full(thread.holders.len(), self.total) {
                    thread.holders.pop_front();
                    self.total -= 1;
                }
            }
            _ => {}
        }
    }

    /// Drops what is older than `keep_ns` before `now_ns`, keeping each
    /// thread's last state change before that (its state since), and the
    /// threads with nothing left.
    pub fn forget_before(&mut self, now_ns: u64) {
        let cut = now_ns.saturating_sub(self.keep_ns);
        self.threads.retain(|_, thread| {
            while thread.transitions.get(1).is_some_and(|t| t.ts_ns < cut) {
                thread.transitions.pop_front();
            }
            while thread.holders.front().is_some_and(|h| h.ts_ns < cut) {
                thread.holders.pop_front();
            }
            thread.transitions.back().is_some_and(|t| t.ts_ns >= cut) || !thread.holders.is_empty()
        });
        self.total = self.threads.values().map(|t| t.transitions.len() + t.holders.len()).sum();
    }

    /// The chart of `[start_ns, end_ns)` for `tids` (those with a known
    /// state in it); `None` when none has.
    pub fn gantt(&self, tids: &[u32], start_ns: u64, end_ns: u64) -> Option<Gantt> {
        let end_ns = end_ns.max(start_ns + 1);
        let mut rows = Vec::new();
        let mut holders: BTreeMap<u32, u64> = BTreeMap::new();
        for &tid in tids {
            let Some(thread) = self.threads.get(&tid) else { continue };
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
}

/// The thread's states from its first kept state change on. A wait for a
/// CPU is split by what its records say: first the time its cgroup was
/// throttled (its totals' difference; the quota runs out first, then the
/// CPU is contended), then runnable, where the CPU was idle an idle
/// wake-up; a run begins with the CPU's wake-up its totals charge to it.
fn stretches(thread: &Recent) -> Vec<Stretch> {
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
                let throttled = n.totals.throttled_ns.saturating_sub(t.totals.throttled_ns);
                let throttled_end = t.ts_ns + throttled.min(end - t.ts_ns);
                push(t.ts_ns, throttled_end, GanttState::Throttled);
                let mut at = throttled_end;
                for &(idle_start, idle_end) in idle.iter().filter(|(s, e)| *e > throttled_end && *s < end) {
                    push(at, idle_start.max(at), GanttState::Runnable);
                    push(idle_start.max(at), idle_end.min(end), GanttState::IdleWakeup);
                    at = idle_end.min(end);
                }
                push(at, end, GanttState::Runnable);
            }
            (GanttState::Running, Some(n)) => {
                let wakeup = n.totals.wakeup_idle_ns.saturating_sub(t.totals.wakeup_idle_ns).min(end - t.ts_ns);
                push(t.ts_ns, t.ts_ns + wakeup, GanttState::IdleWakeup);
                push(t.ts_ns + wakeup, end, GanttState::Running);
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
    use tracer_common::ThreadTotals;

    use super::*;

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
    fn recent() -> RecentTimeline {
        let woke = ThreadTotals { wakeup_idle_ns: MS, ..ThreadTotals::default() };
        let throttled = ThreadTotals { throttled_ns: 5 * MS, ..woke };
        let mut recent = RecentTimeline::new(1_000 * MS, 1_000, 10_000);
        let events = [
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
        ];
        for e in &events {
            recent.push(e);
        }
        recent
    }

    fn ms(row: &GanttRow) -> Vec<(u64, u64, GanttState)> {
        row.stretches.iter().map(|s| (s.start / MS, s.end / MS, s.state)).collect()
    }

    #[test]
    fn a_spans_window_shows_each_threads_states_and_the_holders() {
        use GanttState::*;
        let gantt = recent().gantt(&[101, 102], 0, 100 * MS).unwrap();
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
        let gantt = recent().gantt(&[101], 20 * MS, 45 * MS).unwrap();
        assert_eq!(ms(&gantt.rows[0]), [(20, 35, Runnable), (35, 40, IdleWakeup), (40, 45, Running)]);
        assert_eq!(gantt.holders, [(900, 15 * MS)], "only the part inside");
        let mut late = RecentTimeline::new(1_000 * MS, 1_000, 10_000);
        late.push(&transition(7, 30, TIMELINE_ON_CPU, ThreadTotals::default()));
        late.push(&transition(7, 35, OFF_CPU_SLEEP, ThreadTotals::default()));
        assert_eq!(ms(&late.gantt(&[7], 20 * MS, 40 * MS).unwrap().rows[0]), [(20, 30, Unknown), (30, 35, Running), (35, 40, Sleeping)]);
        assert_eq!(late.gantt(&[8], 0, MS), None, "a thread never seen");
    }

    #[test]
    fn memory_is_bounded_by_time_and_events_per_thread() {
        let mut recent = RecentTimeline::new(10 * MS, 4, 100);
        for i in 0..10 {
            let state = if i % 2 == 0 { TIMELINE_ON_CPU } else { OFF_CPU_SLEEP };
            recent.push(&transition(101, i, state, ThreadTotals::default()));
        }
        assert_eq!(recent.threads[&101].transitions.len(), 4);
        recent.push(&transition(102, 1, OFF_CPU_SLEEP, ThreadTotals::default()));
        recent.forget_before(15 * MS);
        // 101's states since 5 ms are kept, from its last change before
        // that; 102 changed nothing for longer than the window: gone.
        assert_eq!(recent.threads[&101].transitions.front().unwrap().ts_ns, 6 * MS);
        assert!(!recent.threads.contains_key(&102));
        assert_eq!(recent.total, 4);
        // All threads together: the one that pushes loses its oldest.
        let mut recent = RecentTimeline::new(10 * MS, 4, 6);
        for i in 0..4 {
            recent.push(&transition(101, i, TIMELINE_ON_CPU, ThreadTotals::default()));
            recent.push(&transition(102, i, TIMELINE_ON_CPU, ThreadTotals::default()));
        }
        let kept = |tid| recent.threads[&tid].transitions.len();
        assert_eq!((kept(101), kept(102), recent.total), (3, 3, 6));
    }
}
