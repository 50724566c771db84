//! Synthetic recordings for the tests of the timeline and of what reads it.
use super::*;

pub const MS: u64 = 1_000_000;
/// Monotonic time of the synthetic recordings' start (0 means "unknown"
/// to the accounting, so it is not used).
pub const T0: u64 = 1_000_000 * MS;
pub const TID: u32 = 101;
pub const PID: u32 = 100;
/// The wall-clock time of T0 in the synthetic recordings' clock pair.
pub const UNIX0: u64 = 1_700_000_000_000 * MS;

pub fn transition(ms: f64, state: u32, totals: ThreadTotals) -> TimelineEvent {
    TimelineEvent { totals, ..point(TIMELINE_TRANSITION, ms, state, 0) }
}

pub fn point(kind: u32, end_ms: f64, id: u32, ns: u64) -> TimelineEvent {
    TimelineEvent {
        kind,
        tid: TID,
        tgid: PID,
        cpu: 1,
        ts_ns: T0 + (end_ms * MS as f64) as u64,
        value: id,
        ns,
        ..TimelineEvent::default()
    }
}

/// Thread 101 of process 100, in ms from T0: on a CPU 0-2, preempted
/// 2-5 (process 900 held the CPU 2.4 ms of it, 901 0.6 ms), on a CPU
/// 5-6 (after migrating), asleep 6-10, runnable 10-11 (the CPU was
/// idle: wake-up latency), on a CPU from 11. Syscalls: read 0.5 ms
/// ending at 1, write 0.3 ms ending at 5.5, read 0.2 ms ending at 5.8.
pub fn history() -> Vec<TimelineEvent> {
    let preempted = ThreadTotals { on_cpu_ns: 2 * MS, involuntary_switches: 1, ..Default::default() };
    let running = ThreadTotals {
        runq_wait_ns: 3 * MS,
        runq_waits: 1,
        preempted_ns: 3 * MS,
        migrations: 1,
        ..preempted
    };
    let asleep = ThreadTotals {
        on_cpu_ns: 3 * MS,
        voluntary_switches: 1,
        syscall_ns: MS,
        syscalls: 3,
        ..running
    };
    let woken = ThreadTotals { sleep_ns: 4 * MS, ..asleep };
    let again = ThreadTotals { runq_wait_ns: 4 * MS, runq_waits: 2, ..woken };
    vec![
        transition(0.0, TIMELINE_ON_CPU, ThreadTotals::default()),
        point(TIMELINE_SYSCALL, 1.0, 0, MS / 2),
        transition(2.0, OFF_CPU_PREEMPTED, preempted),
        transition(5.0, TIMELINE_ON_CPU, running),
        point(TIMELINE_HOLDER, 5.0, 900, 2_400_000),
        point(TIMELINE_HOLDER, 5.0, 901, 600_000),
        point(TIMELINE_SYSCALL, 5.5, 1, 300_000),
        point(TIMELINE_SYSCALL, 5.8, 0, 200_000),
        transition(6.0, OFF_CPU_SLEEP, asleep),
        transition(10.0, TIMELINE_RUNNABLE, woken),
        transition(11.0, TIMELINE_ON_CPU, again),
        point(TIMELINE_HOLDER, 11.0, 0, MS),
    ]
}

pub fn header() -> TimelineHeader {
    TimelineHeader {
        format_version: 0,
        pids: vec![PID],
        probe_mode: "tp_btf".into(),
        clock_pairs: vec![ClockPair { monotonic_ns: T0, unix_ns: UNIX0 }],
        first_monotonic_ns: T0,
        last_monotonic_ns: T0 + 12 * MS,
        events_lost: 0,
        truncated: None,
    }
}

pub fn names() -> BTreeMap<u32, ProcessName> {
    BTreeMap::from([
        (PID, ProcessName { comm: "server".into(), cgroup: Some("/app.slice".into()) }),
        (900, ProcessName { comm: "batch".into(), cgroup: Some("/batch.slice".into()) }),
        (901, ProcessName { comm: "cron".into(), cgroup: None }),
    ])
}

pub fn thread_names() -> BTreeMap<u32, String> {
    BTreeMap::from([(TID, "server-worker".into())])
}

/// The synthetic history, added out of order (as per-CPU buffers
/// deliver it).
pub fn synthetic() -> Timeline {
    from_events(&history().into_iter().rev().collect::<Vec<_>>())
}

pub fn from_events(events: &[TimelineEvent]) -> Timeline {
    let mut timeline = Timeline::new(header(), names());
    for event in events {
        timeline.push(event).unwrap();
    }
    timeline.finish()
}
