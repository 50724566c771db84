use tracer_common::{OFF_CPU_SLEEP, TIMELINE_ON_CPU, TIMELINE_SYSCALL, ThreadTotals};

use super::*;
use crate::model::{
    spans::{SpanKind, Verdict},
    timeline::fixtures::*,
};

const S: u64 = 1_000 * MS;
const POINT_BYTES: u64 = size_of::<Point>() as u64;

fn syscall_at(ts_ns: u64, tid: u32) -> TimelineEvent {
    TimelineEvent { kind: TIMELINE_SYSCALL, tid, tgid: PID, ts_ns, value: 0, ns: 1_000, ..TimelineEvent::default() }
}

fn state_at(ts_ns: u64, tid: u32, state: u32) -> TimelineEvent {
    TimelineEvent { kind: TIMELINE_TRANSITION, tid, tgid: PID, ts_ns, value: state, ..TimelineEvent::default() }
}

fn span(span_id: u64, start_unix_ns: u64, wall_ns: u64) -> SpanRecord {
    SpanRecord {
        trace_id: None,
        span_id,
        parent_span_id: None,
        parent_pid: None,
        kind: SpanKind::Internal,
        name: "GET /cpu".into(),
        pid: PID,
        tid: TID,
        start_unix_ns,
        wall_ns,
        on_cpu_ns: wall_ns,
        wakeup_idle_ns: 0,
        runq_wait_ns: 0,
        throttled_ns: 0,
        stolen_ns: 0,
        iowait_ns: 0,
        uninterruptible_ns: 0,
        sleep_ns: 0,
        downstream_ns: 0,
        downstream: vec![],
        downstream_verdict: None,
        between_threads_ns: 0,
        unaccounted_ns: 0,
        syscall_ns: 0,
        top_syscalls: Vec::new(),
        migrations: 0,
        voluntary_switches: 0,
        involuntary_switches: 0,
        verdict: Verdict::OnCpu,
        throttle: None,
        blame: Vec::new(),
        moved_between_threads: false,
        tid_end: TID,
        no_breakdown: None,
        http: None,
    }
}

fn ring(keep_ns: u64, max_bytes: u64) -> FlightRing {
    let mut ring = FlightRing::new(RingLimits { keep_ns, max_bytes });
    ring.push_clock_pair(ClockPair { monotonic_ns: T0, unix_ns: UNIX0 });
    ring
}

#[test]
fn old_events_age_out_after_keep() {
    // 30 s of one event a millisecond, keeping 10 s, with room for all.
    let mut ring = ring(10 * S, 1 << 30);
    for i in 0..30_000 {
        ring.push_event(&syscall_at(T0 + i * MS, TID));
    }
    let newest = T0 + 29_999 * MS;
    let oldest = ring.oldest_ns().expect("events kept");
    // Whole chunks go: the oldest kept is within one chunk of the limit.
    let chunk_ns = ring.points.per_chunk as u64 * MS;
    assert!(oldest <= newest - 10 * S, "keeps at least 10 s: oldest {} ms back", (newest - oldest) / MS);
    assert!(oldest + chunk_ns >= newest - 10 * S, "and not more than a chunk beyond: {} ms", (newest - oldest) / MS);
    assert_eq!(ring.dropped_early, 0, "nothing dropped for room");
    // Bytes follow the events kept, not the 30 s pushed.
    assert!(ring.points.bytes < (10 * 1_000 + 2 * ring.points.per_chunk as u64) * POINT_BYTES, "{}", ring.points.bytes);
}

#[test]
fn the_byte_limit_comes_first_at_a_high_rate() {
    // A million events a second into 256 KiB: about 6,000 events fit.
    let max_bytes = 256 << 10;
    let mut ring = ring(10 * S, max_bytes);
    for i in 0..100_000 {
        ring.push_event(&syscall_at(T0 + i * 1_000, TID));
        assert!(ring.bytes() <= max_bytes, "over the limit after {i} events: {}", ring.bytes());
    }
    assert!(ring.dropped_early > 0);
    let newest = T0 + 99_999 * 1_000;
    let kept = newest - ring.oldest_ns().unwrap();
    assert!(kept < 7 * MS, "only the newest events stay: {kept} ns back");
    assert!(ring.bytes() * 2 > max_bytes, "and the limit is used: {}", ring.bytes());
}

#[test]
fn spans_count_against_the_same_limits() {
    let max_bytes = 256 << 10;
    let mut ring = ring(10 * S, max_bytes);
    for i in 0..20_000 {
        ring.push_span(span(i, UNIX0 + i * MS, MS), T0 + i * MS);
        assert!(ring.bytes() <= max_bytes, "over the limit after {i} spans: {}", ring.bytes());
    }
    // Then 20 s later, everything from before has aged out.
    ring.push_span(span(99_999, UNIX0 + 40 * S, MS), T0 + 40 * S);
    assert!(ring.spans.full.is_empty(), "only the filling chunk is left");
}

#[test]
fn a_window_holds_its_chunks_within_the_byte_limit() {
    let max_bytes = 256 << 10;
    let mut ring = ring(10 * S, max_bytes);
    for i in 0..5_000 {
        ring.push_event(&syscall_at(T0 + i * 1_000, TID));
    }
    let window = ring.window(T0, T0 + S, WindowHeader::default());
    let held_before = window.timeline().event_count;
    for i in 5_000..50_000 {
        ring.push_event(&syscall_at(T0 + i * 1_000, TID));
        assert!(ring.bytes() <= max_bytes, "the held chunks count: {}", ring.bytes());
    }
    assert!(!ring.points.held.is_empty(), "dropped chunks the window holds");
    assert_eq!(window.timeline().event_count, held_before, "the window still sees what it took");
    drop(window);
    ring.push_event(&syscall_at(T0 + 50_000 * 1_000, TID));
    assert!(ring.points.held.is_empty(), "let go once the dump is done");
}

#[test]
fn a_windows_timeline_knows_each_threads_state_from_its_start() {
    let mut ring = ring(10 * S, 1 << 30);
    let totals = ThreadTotals::default();
    let other = TID + 1;
    // Thread TID runs from 0 ms, sleeps from 10 ms to 500 ms; the other
    // thread sleeps from 5 ms on. The window is 100..200 ms.
    for event in [
        state_at(T0, TID, TIMELINE_ON_CPU),
        state_at(T0 + 5 * MS, other, OFF_CPU_SLEEP),
        state_at(T0 + 10 * MS, TID, OFF_CPU_SLEEP),
        syscall_at(T0 + 150 * MS, TID),
        state_at(T0 + 500 * MS, TID, TIMELINE_ON_CPU),
    ] {
        ring.push_event(&TimelineEvent { totals, ..event });
    }
    ring.name_thread(TID, "worker".into());
    ring.name_thread(999, "gone".into());
    ring.push_span(span(1, UNIX0 + 120 * MS, 50 * MS), T0 + 170 * MS);
    ring.push_span(span(2, UNIX0 + 300 * MS, 10 * MS), T0 + 310 * MS);
    ring.push_span(span(3, UNIX0 + 90 * MS, 20 * MS), T0 + 110 * MS);
    let header = WindowHeader { pids: vec![PID], probe_mode: "tp_btf".into(), events_lost: 0 };
    let window = ring.window(T0 + 100 * MS, T0 + 200 * MS, header);
    let timeline = window.timeline();
    let states = |tid| timeline.thread(tid).unwrap().transitions.iter().map(|t| (t.ts_ns, t.state)).collect::<Vec<_>>();
    assert_eq!(states(TID), [(T0 + 10 * MS, OFF_CPU_SLEEP)], "its last state before, nothing after");
    assert_eq!(states(other), [(T0 + 5 * MS, OFF_CPU_SLEEP)]);
    assert_eq!(timeline.thread(TID).unwrap().syscalls.len(), 1);
    assert_eq!((timeline.header.first_monotonic_ns, timeline.header.last_monotonic_ns), (T0 + 100 * MS, T0 + 200 * MS));
    assert_eq!(timeline.header.truncated, None, "the ring reaches back to the start");
    assert_eq!(timeline.thread_names.keys().copied().collect::<Vec<_>>(), [TID], "names of its threads only");
    let ids: Vec<u64> = window.spans().iter().map(|s| s.span_id).collect();
    assert_eq!(ids, [1, 3], "the spans overlapping the window");

    // Before anything was dropped, an idle stretch is no truncation.
    let early = ring.window(T0 - S, T0 + 200 * MS, WindowHeader::default()).timeline();
    assert_eq!((early.header.truncated, early.header.first_monotonic_ns), (None, T0 - S));
}

#[test]
fn a_window_the_ring_no_longer_reaches_back_to_says_so() {
    // 10 s of events, keeping 1 s, in chunks of about 1.6 s.
    let mut ring = ring(S, 1 << 20);
    for i in 0..10_000 {
        ring.push_event(&syscall_at(T0 + i * MS, TID));
    }
    let dropped = ring.dropped_until_ns.expect("chunks over 1 s old dropped");
    let timeline = ring.window(T0 + 5 * S, T0 + 9_900 * MS, WindowHeader::default()).timeline();
    let reason = timeline.header.truncated.clone().expect("truncated");
    assert!(reason.contains("--keep, --max-mib"), "{reason}");
    assert_eq!(timeline.header.first_monotonic_ns, dropped, "the trace starts where the ring does");
    assert!(timeline.thread(TID).unwrap().syscalls.iter().all(|p| p.ts_ns > dropped));
}

#[test]
fn names_of_threads_gone_from_the_ring_are_forgotten() {
    let mut ring = ring(S, 1 << 30);
    ring.push_event(&syscall_at(T0, 7));
    ring.name_thread(7, "old".into());
    ring.name_process(PID, ProcessName { comm: "server".into(), cgroup: None });
    for i in 0..10_000 {
        ring.push_event(&syscall_at(T0 + S + i * MS, 8));
    }
    ring.forget_unseen_names();
    assert!(!ring.knows_thread(7), "thread 7 left the ring");
    assert!(ring.knows_process(PID), "its process is still in it");
}
