//! The trace of the synthetic timeline, decoded with the same generated
//! schema: names, each CPU's switches, wake-ups, I/O waits and span slices.
use perfetto_protos::{debug_annotation::debug_annotation, trace::Trace, track_event::track_event::Type};
use protobuf::Message;
use tracer_common::{
    OFF_CPU_IOWAIT, OFF_CPU_PREEMPTED, OFF_CPU_SLEEP, TIMELINE_ON_CPU, TIMELINE_RUNNABLE, ThreadTotals, TimelineEvent,
};

use super::*;
use crate::model::{
    spans::{Verdict, test_span},
    timeline::fixtures::{MS, PID, T0, TID, UNIX0, from_events, history, thread_names, transition},
};

/// The synthetic history in the order the kernel emits it (a wait's
/// holders most recent first), with its threads' names.
fn recorded() -> Timeline {
    let mut timeline = from_events(&history());
    timeline.thread_names = thread_names();
    timeline
}

fn decode(timeline: &Timeline, spans: &[SpanRecord]) -> (Trace, PerfettoSummary) {
    let mut bytes = Vec::new();
    let spans: Vec<&SpanRecord> = spans.iter().collect();
    let summary = encode(&mut bytes, timeline, &spans).unwrap();
    (Trace::parse_from_bytes(&bytes).expect("a Trace message"), summary)
}

/// (ms from T0, prev, prev_state, next) of every switch on `cpu`.
fn switches(trace: &Trace, cpu: u32) -> Vec<(f64, i32, i64, i32)> {
    let mut all = Vec::new();
    for p in &trace.packet {
        if p.has_ftrace_events() && p.ftrace_events().cpu() == cpu {
            for e in &p.ftrace_events().event {
                if e.has_sched_switch() {
                    let s = e.sched_switch();
                    let ms = (e.timestamp() - T0) as f64 / MS as f64;
                    all.push((ms, s.prev_pid(), s.prev_state(), s.next_pid()));
                }
            }
        }
    }
    all
}

/// (timestamp, tid, target CPU) of every wake-up, on any CPU.
fn wakings(trace: &Trace) -> Vec<(u64, i32, i32)> {
    trace
        .packet
        .iter()
        .filter(|p| p.has_ftrace_events())
        .flat_map(|p| p.ftrace_events().event.iter())
        .filter(|e| e.has_sched_waking())
        .map(|e| (e.timestamp(), e.sched_waking().pid(), e.sched_waking().target_cpu()))
        .collect()
}

#[test]
fn threads_switch_in_and_out_with_their_states_and_holders_fill_the_waits() {
    let (trace, summary) = decode(&recorded(), &[]);
    let tid = TID as i32;
    // Preempted at 2 ms; while it waited, cron held the CPU 0.6 ms, then
    // batch 2.4 ms (the most recent slice comes first in the timeline);
    // asleep at 6; woken at 10 onto an idle CPU, running at 11.
    assert_eq!(
        switches(&trace, 1),
        [
            (0.0, 0, PREV_STATE_RUNNABLE, tid),
            (2.0, tid, PREV_STATE_PREEMPTED, 901),
            (2.6, 901, PREV_STATE_RUNNABLE, 900),
            (5.0, 900, PREV_STATE_RUNNABLE, tid),
            (6.0, tid, PREV_STATE_SLEEPING, 0),
            (11.0, 0, PREV_STATE_RUNNABLE, tid),
        ]
    );
    assert_eq!(wakings(&trace), [(T0 + 10 * MS, tid, 1)]);
    assert_eq!((summary.threads, summary.cpus, summary.sched_events), (1, 1, 7));

    let tree = trace.packet.iter().find(|p| p.has_process_tree()).expect("a process tree").process_tree();
    let processes: Vec<(i32, &str)> = tree.processes.iter().map(|p| (p.pid(), p.cmdline[0].as_str())).collect();
    assert_eq!(processes, [(PID as i32, "server"), (900, "batch"), (901, "cron")]);
    let threads: Vec<(i32, i32, &str)> = tree.threads.iter().map(|t| (t.tid(), t.tgid(), t.name())).collect();
    assert_eq!(threads, [(tid, PID as i32, "server-worker"), (900, 900, "batch"), (901, 901, "cron")]);
}

#[test]
fn io_waits_are_marked_and_holders_of_traced_processes_are_their_own_threads() {
    let io = ThreadTotals { on_cpu_ns: MS, ..ThreadTotals::default() };
    let sibling = |e: TimelineEvent| TimelineEvent { tid: TID + 1, ..e };
    let mut events = vec![
        transition(0.0, TIMELINE_ON_CPU, ThreadTotals::default()),
        transition(1.0, OFF_CPU_IOWAIT, io),
        sibling(transition(1.0, TIMELINE_ON_CPU, ThreadTotals::default())),
        sibling(transition(3.0, OFF_CPU_IOWAIT, io)),
    ];
    // The sibling held the CPU: as a holder it names its process, which is
    // traced, so its own switches say it and no "main thread" is made up.
    events.push(TimelineEvent { kind: tracer_common::TIMELINE_HOLDER, value: PID, ns: MS, ..history()[4] });
    let (trace, _) = decode(&from_events(&events), &[]);
    let (tid, sib) = (TID as i32, TID as i32 + 1);
    assert_eq!(
        switches(&trace, 1),
        [
            (0.0, 0, PREV_STATE_RUNNABLE, tid),
            (1.0, tid, PREV_STATE_UNINTERRUPTIBLE, sib),
            (3.0, sib, PREV_STATE_UNINTERRUPTIBLE, 0),
        ]
    );
    let io_waits: Vec<i32> = trace
        .packet
        .iter()
        .filter(|p| p.has_ftrace_events())
        .flat_map(|p| p.ftrace_events().event.iter())
        .filter(|e| e.has_sched_blocked_reason() && e.sched_blocked_reason().io_wait() == 1)
        .map(|e| e.sched_blocked_reason().pid())
        .collect();
    assert_eq!(io_waits, [tid, sib]);
}

#[test]
fn a_run_the_kernel_did_not_report_is_placed_from_the_totals() {
    let preempted = ThreadTotals { on_cpu_ns: 2 * MS, ..ThreadTotals::default() };
    // Preempted again at 10 ms with 3 ms more on a CPU: its switch-in was
    // not reported, and the run ended at that switch-out.
    let again = ThreadTotals { on_cpu_ns: 5 * MS, ..preempted };
    let events = [
        transition(0.0, TIMELINE_ON_CPU, ThreadTotals::default()),
        transition(2.0, OFF_CPU_PREEMPTED, preempted),
        transition(10.0, OFF_CPU_PREEMPTED, again),
    ];
    let (trace, _) = decode(&from_events(&events), &[]);
    let tid = TID as i32;
    assert_eq!(
        switches(&trace, 1),
        [
            (0.0, 0, PREV_STATE_RUNNABLE, tid),
            (2.0, tid, PREV_STATE_PREEMPTED, 0),
            (7.0, 0, PREV_STATE_RUNNABLE, tid),
            (10.0, tid, PREV_STATE_PREEMPTED, 0),
        ]
    );
}

#[test]
fn a_run_the_kernels_clock_charged_from_before_its_switch_in_starts_earlier() {
    let asleep = ThreadTotals { on_cpu_ns: 2 * MS, ..ThreadTotals::default() };
    // Asleep at 2 ms, woken at 10 onto an idle CPU, on it at 10.2, asleep
    // again at 11: the kernel's clock charged 1.5 ms for that run, from the
    // enqueue, before the wake-up tracepoint. The report counts 1.5 ms on
    // a CPU; so does the trace: the run starts at 9.5, and so does the
    // wake-up. (A run of 10 ms stops at the thread's switch-out at 2.)
    let woken = ThreadTotals { sleep_ns: 8 * MS, ..asleep };
    let ran = ThreadTotals { on_cpu_ns: 3_500_000, sleep_ns: 7_500_000, ..asleep };
    let events = [
        transition(0.0, TIMELINE_ON_CPU, ThreadTotals::default()),
        transition(2.0, OFF_CPU_SLEEP, asleep),
        transition(10.0, TIMELINE_RUNNABLE, woken),
        transition(10.2, TIMELINE_ON_CPU, woken),
        transition(11.0, OFF_CPU_SLEEP, ran),
    ];
    let (trace, _) = decode(&from_events(&events), &[]);
    let tid = TID as i32;
    assert_eq!(wakings(&trace), [(T0 + 9_500_000, tid, 1)]);
    assert_eq!(
        switches(&trace, 1),
        [
            (0.0, 0, PREV_STATE_RUNNABLE, tid),
            (2.0, tid, PREV_STATE_SLEEPING, 0),
            (9.5, 0, PREV_STATE_RUNNABLE, tid),
            (11.0, tid, PREV_STATE_SLEEPING, 0),
        ]
    );
    let greedy = ThreadTotals { on_cpu_ns: 12 * MS, ..ran };
    let events = [&events[..4], &[transition(11.0, OFF_CPU_SLEEP, greedy)]].concat();
    let (trace, _) = decode(&from_events(&events), &[]);
    assert_eq!(
        switches(&trace, 1)[1..3],
        [(2.0, tid, PREV_STATE_SLEEPING, 0), (2.000001, 0, PREV_STATE_RUNNABLE, tid)],
        "no earlier than its switch-out"
    );
}

#[test]
fn the_wait_before_a_run_the_kernel_did_not_report_is_placed_from_the_totals() {
    let asleep = ThreadTotals { on_cpu_ns: 2 * MS, ..ThreadTotals::default() };
    // Asleep at 2 ms; asleep again at 10 ms with 1 ms more on a CPU and
    // 3 ms more waiting for one: its wake-up and switch-in were not
    // reported, and it was woken at 6 ms, ran from 9 to 10.
    let again = ThreadTotals { on_cpu_ns: 3 * MS, runq_wait_ns: 3 * MS, ..asleep };
    let events = [
        transition(0.0, TIMELINE_ON_CPU, ThreadTotals::default()),
        transition(2.0, OFF_CPU_SLEEP, asleep),
        transition(10.0, OFF_CPU_SLEEP, again),
    ];
    let (trace, _) = decode(&from_events(&events), &[]);
    assert_eq!(wakings(&trace), [(T0 + 6 * MS, TID as i32, 1)]);
    let tid = TID as i32;
    assert_eq!(
        switches(&trace, 1),
        [
            (0.0, 0, PREV_STATE_RUNNABLE, tid),
            (2.0, tid, PREV_STATE_SLEEPING, 0),
            (9.0, 0, PREV_STATE_RUNNABLE, tid),
            (10.0, tid, PREV_STATE_SLEEPING, 0),
        ]
    );
}

#[test]
fn the_wait_before_a_reported_switch_in_is_placed_from_the_totals() {
    // Asleep at 2 ms, back on a CPU at 10 ms with 3 ms more waiting for
    // one: its wake-up was not reported, and came at 7 ms.
    let asleep = ThreadTotals { on_cpu_ns: 2 * MS, ..ThreadTotals::default() };
    let events = [
        transition(0.0, TIMELINE_ON_CPU, ThreadTotals::default()),
        transition(2.0, OFF_CPU_SLEEP, asleep),
        transition(10.0, TIMELINE_ON_CPU, ThreadTotals { runq_wait_ns: 3 * MS, ..asleep }),
    ];
    let (trace, _) = decode(&from_events(&events), &[]);
    assert_eq!(wakings(&trace), [(T0 + 7 * MS, TID as i32, 1)]);
}

#[test]
fn spans_are_slices_on_their_threads_with_their_line_as_arguments() {
    let timeline = recorded();
    let mut outer = test_span(5, 2, 3, Verdict::CpuContention);
    outer.start_unix_ns = UNIX0 + MS;
    let mut inner = test_span(1, 1, 0, Verdict::OnCpu);
    inner.start_unix_ns = UNIX0 + 2 * MS;
    inner.name = "SELECT".into();
    // Overlaps the outer one without nesting: on a lane of its own.
    let mut crossing = test_span(4, 1, 0, Verdict::OnCpu);
    crossing.start_unix_ns = UNIX0 + 4 * MS;
    let (trace, summary) = decode(&timeline, &[outer, inner, crossing]);
    assert_eq!((summary.spans, summary.spans_unplaced), (3, 0));

    // The thread's own tracks (the holders' come with the flows).
    let own = spans::thread_track_uuid(TID);
    let tracks: Vec<_> = trace
        .packet
        .iter()
        .filter(|p| p.has_track_descriptor())
        .map(|p| p.track_descriptor())
        .filter(|t| t.uuid() == own || t.parent_uuid() == own)
        .collect();
    assert_eq!(tracks.len(), 2);
    assert_eq!(
        (tracks[0].thread.tid(), tracks[0].thread.pid(), tracks[0].thread.thread_name()),
        (TID as i32, PID as i32, "server-worker")
    );
    assert_eq!(tracks[1].parent_uuid(), tracks[0].uuid());

    let events: Vec<(f64, Type, u64, &str)> = trace
        .packet
        .iter()
        .filter(|p| p.has_track_event() && [tracks[0].uuid(), tracks[1].uuid()].contains(&p.track_event().track_uuid()))
        .map(|p| {
            let e = p.track_event();
            let ms = (p.timestamp() - T0) as f64 / MS as f64;
            (ms, e.type_(), e.track_uuid(), if e.has_name() { e.name() } else { "" })
        })
        .collect();
    let (own, lane) = (tracks[0].uuid(), tracks[1].uuid());
    assert_eq!(
        events,
        [
            (1.0, Type::TYPE_SLICE_BEGIN, own, "GET /cpu"),
            (6.0, Type::TYPE_SLICE_END, own, ""),
            (2.0, Type::TYPE_SLICE_BEGIN, own, "SELECT"),
            (3.0, Type::TYPE_SLICE_END, own, ""),
            (4.0, Type::TYPE_SLICE_BEGIN, lane, "GET /cpu"),
            (8.0, Type::TYPE_SLICE_END, lane, ""),
        ]
    );
    let begin = trace.packet.iter().find(|p| p.has_track_event()).unwrap().track_event();
    let arg =
        |name: &str| begin.debug_annotations.iter().find(|a| a.name() == name).unwrap_or_else(|| panic!("{name}"));
    assert_eq!(arg("verdict").string_value(), "cpu-contention");
    assert_eq!(arg("runq_wait_ns").int_value(), 3 * MS as i64);
    let blame = &arg("blame").array_values[0];
    let comm = blame.dict_entries.iter().find(|a| a.name() == "comm").unwrap();
    assert!(matches!(comm.value, Some(debug_annotation::Value::StringValue(ref s)) if s == "load-gen"));
    assert!(!begin.debug_annotations.iter().any(|a| a.name() == "trace_id"), "nulls are left out");
}

#[test]
fn spans_flow_to_the_runs_of_the_holders_that_kept_them_waiting() {
    // The thread waited 2-5 ms on CPU 1 while cron (2-2.6) and batch
    // (2.6-5) ran, and 10-11 for an idle CPU (no holder).
    let mut outer = test_span(5, 2, 3, Verdict::CpuContention);
    outer.start_unix_ns = UNIX0 + MS;
    let mut early = test_span(1, 1, 0, Verdict::OnCpu);
    early.start_unix_ns = UNIX0 + 2 * MS;
    early.name = "SELECT".into();
    let mut late = test_span(4, 1, 0, Verdict::OnCpu);
    late.start_unix_ns = UNIX0 + 4 * MS;
    late.name = "late".into();
    let mut woken = test_span(3, 1, 0, Verdict::OnCpu);
    woken.start_unix_ns = UNIX0 + 9 * MS;
    woken.name = "woken".into();
    let (trace, summary) = decode(&recorded(), &[outer, early, late, woken]);

    // Holder tracks: a child per CPU of the holder's thread track.
    let mut thread_of_track = std::collections::BTreeMap::new();
    let mut parents = std::collections::BTreeMap::new();
    for t in trace.packet.iter().filter(|p| p.has_track_descriptor()).map(|p| p.track_descriptor()) {
        if t.thread.is_some() {
            thread_of_track.insert(t.uuid(), t.thread.tid());
        }
        if t.has_parent_uuid() {
            parents.insert(t.uuid(), t.parent_uuid());
        }
    }
    let tid_of = |uuid: u64| thread_of_track.get(&uuid).or_else(|| thread_of_track.get(&parents[&uuid])).copied();
    // Flow id -> (holder thread, its slice in ms from T0).
    let mut ends = std::collections::BTreeMap::new();
    let mut open = std::collections::BTreeMap::new();
    let ms = |ts: u64| (ts - T0) as f64 / MS as f64;
    for p in trace.packet.iter().filter(|p| p.has_track_event()) {
        let e = p.track_event();
        if e.categories == [flows::HOLDER_CATEGORY] {
            assert_eq!(e.name(), "held CPU 1");
            open.insert(e.track_uuid(), p.timestamp());
        } else if !e.terminating_flow_ids.is_empty() {
            let start = open.remove(&e.track_uuid()).expect("a holder slice ends after it begins");
            for &id in &e.terminating_flow_ids {
                ends.insert(id, (tid_of(e.track_uuid()).unwrap(), ms(start), ms(p.timestamp())));
            }
        }
    }
    let flows_of = |name: &str| -> Vec<(i32, f64, f64)> {
        let begin = trace
            .packet
            .iter()
            .map(|p| p.track_event())
            .find(|e| e.type_() == Type::TYPE_SLICE_BEGIN && e.name() == name)
            .unwrap();
        begin.flow_ids.iter().map(|id| ends[id]).collect()
    };
    let (cron, batch) = ((901, 2.0, 2.6), (900, 2.6, 5.0));
    assert_eq!(flows_of("GET /cpu"), [cron, batch]);
    assert_eq!(flows_of("SELECT"), [cron, batch]);
    assert_eq!(flows_of("late"), [batch], "only what ran after it began");
    assert_eq!(flows_of("woken"), [], "an idle CPU holds nobody");
    assert_eq!(summary.flows, 5);
    assert_eq!(ends.len(), 5, "every flow ends on a holder slice");
    let holder_slices =
        trace.packet.iter().filter(|p| p.track_event().categories == [flows::HOLDER_CATEGORY]).count();
    assert_eq!(holder_slices, 2, "one slice per run, where every span's flow to it ends");
}
