//! The scheduler events of a Perfetto trace, per CPU, rebuilt from a
//! timeline: what the kernel's own `sched_switch`, `sched_waking` and
//! `sched_blocked_reason` ftrace events would have said about the traced
//! threads, so that Perfetto builds its thread-state and CPU tracks itself.
//!
//! A traced thread runs on a CPU from its state change "on a CPU" to its
//! next state change, whose state is the one it left in. The CPU holders
//! recorded when a wait ended fill the CPU before that: the timeline records
//! them per run slice, most recent first, back to back up to the switch-in,
//! and names their process, not their thread, so a holder is shown as its
//! process's main thread (TID = PID). Holders of a traced process are left
//! out: that process's own threads' events say which thread ran. Where
//! nothing is known the CPU is shown idle (the swapper, PID 0).
use std::collections::{BTreeMap, BTreeSet};

use tracer_common::{
    OFF_CPU_IOWAIT, OFF_CPU_PREEMPTED, OFF_CPU_SLEEP, OFF_CPU_UNINTERRUPTIBLE, TIMELINE_ON_CPU, TIMELINE_RUNNABLE,
};

use crate::model::timeline::{self, HeldSlice, ThreadHistory, Timeline, Transition, Unreported};

/// `prev_state` of `sched_switch`, in the layout Perfetto's trace processor
/// assumes when a trace names no kernel version (Linux 4.4's), which is why
/// tracer's traces carry none: its states are tracer's, not a kernel's raw
/// bits, and this layout says them without depending on a version.
pub const PREV_STATE_RUNNABLE: i64 = 0;
pub const PREV_STATE_SLEEPING: i64 = 0x1;
pub const PREV_STATE_UNINTERRUPTIBLE: i64 = 0x2;
/// Runnable after an involuntary switch: "R+", Runnable (Preempted).
pub const PREV_STATE_PREEMPTED: i64 = 0x800;

/// One scheduler event on one CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchedEvent {
    /// `prev` left the CPU in `prev_state`, `next` got it (0: idle).
    Switch { ts_ns: u64, prev: u32, prev_state: i64, next: u32 },
    /// `tid` was woken, to run on `target_cpu`.
    Waking { ts_ns: u64, tid: u32, target_cpu: u32 },
    /// `tid` just blocked waiting for I/O (its switch's `D` is I/O wait).
    IoWait { ts_ns: u64, tid: u32 },
}

impl SchedEvent {
    pub fn ts_ns(&self) -> u64 {
        match self {
            SchedEvent::Switch { ts_ns, .. } | SchedEvent::Waking { ts_ns, .. } | SchedEvent::IoWait { ts_ns, .. } => {
                *ts_ns
            }
        }
    }
}

/// A thread holding a CPU from `start` to `end`.
#[derive(Debug, Clone, Copy)]
struct Occupant {
    tid: u32,
    start: u64,
    end: u64,
    /// For a traced thread that left the CPU within the recording: the
    /// timeline state it left in. `None` for a holder, or a thread still
    /// running when the recording ended.
    left_in: Option<u32>,
    traced: bool,
}

impl Occupant {
    fn prev_state(&self) -> i64 {
        match self.left_in {
            Some(OFF_CPU_PREEMPTED) => PREV_STATE_PREEMPTED,
            Some(OFF_CPU_SLEEP) => PREV_STATE_SLEEPING,
            Some(OFF_CPU_UNINTERRUPTIBLE | OFF_CPU_IOWAIT) => PREV_STATE_UNINTERRUPTIBLE,
            // A holder: tracer saw only that it gave the CPU up.
            _ => PREV_STATE_RUNNABLE,
        }
    }
}

/// The scheduler events of every CPU, each CPU's in time order, and the
/// threads that appear in them as holders (TID = PID).
pub struct CpuEvents {
    pub by_cpu: BTreeMap<u32, Vec<SchedEvent>>,
    pub holders: BTreeSet<u32>,
    /// Who ran on each CPU, as its switches show it: in time order, without
    /// overlaps.
    pub runs: BTreeMap<u32, Vec<Run>>,
}

/// Thread `tid` on a CPU over `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub tid: u32,
    pub start: u64,
    pub end: u64,
}

pub fn cpu_events(timeline: &Timeline) -> CpuEvents {
    let traced_processes: BTreeSet<u32> = timeline.threads().map(|(_, t)| t.tgid).filter(|&p| p != 0).collect();
    let mut occupants: BTreeMap<u32, Vec<Occupant>> = BTreeMap::new();
    let mut by_cpu: BTreeMap<u32, Vec<SchedEvent>> = BTreeMap::new();
    let mut holders = BTreeSet::new();
    for (tid, thread) in timeline.threads() {
        let starts = settled_starts(&thread.transitions);
        for (i, t) in thread.transitions.iter().enumerate() {
            let next = thread.transitions.get(i + 1);
            let ran_until =
                |n: &Transition| n.ts_ns.min(t.ts_ns + n.totals.on_cpu_ns.saturating_sub(t.totals.on_cpu_ns));
            match (t.state, next) {
                // Back on a CPU without a reported switch-out: it ran for
                // what its totals say, then waited (or is not known).
                (TIMELINE_ON_CPU, Some(n)) if n.state == TIMELINE_ON_CPU => {
                    occupants.entry(t.cpu).or_default().push(Occupant {
                        tid,
                        start: t.ts_ns,
                        end: ran_until(n),
                        left_in: Some(OFF_CPU_PREEMPTED),
                        traced: true,
                    })
                }
                (TIMELINE_ON_CPU, _) => occupants.entry(t.cpu).or_default().push(Occupant {
                    tid,
                    start: starts[i],
                    end: next.map_or(timeline.header.last_monotonic_ns.max(t.ts_ns), |n| n.ts_ns),
                    left_in: next.map(|n| n.state),
                    traced: true,
                }),
                // Left a CPU without a reported switch-in (the kernel does
                // not report every switch): its totals say how long it ran,
                // which ended at that switch-out.
                // Before that run it waited for the CPU as long as its
                // totals say (split from the kernel's counters).
                (_, Some(n)) if is_switch_out(n.state) => {
                    let Unreported { ran, waited } = t.unreported_before(n);
                    if ran > 0 {
                        occupants.entry(n.cpu).or_default().push(Occupant {
                            tid,
                            start: n.ts_ns - ran,
                            end: n.ts_ns,
                            left_in: Some(n.state),
                            traced: true,
                        });
                    }
                    if waited > 0 {
                        let ts_ns = n.ts_ns - ran - waited;
                        by_cpu.entry(n.cpu).or_default().push(SchedEvent::Waking { ts_ns, tid, target_cpu: n.cpu });
                    }
                }
                // Back on a CPU after a wakeup it did not report: the
                // kernel's counters say how long it waited for the CPU.
                (_, Some(n)) if n.state == TIMELINE_ON_CPU => {
                    let Unreported { ran, waited } = t.unreported_before(n);
                    if waited > 0 {
                        let ts_ns = n.ts_ns - ran - waited;
                        by_cpu.entry(n.cpu).or_default().push(SchedEvent::Waking { ts_ns, tid, target_cpu: n.cpu });
                    }
                }
                _ => {}
            }
            match t.state {
                TIMELINE_ON_CPU => {}
                TIMELINE_RUNNABLE => {
                    let run = next.filter(|n| n.state == TIMELINE_ON_CPU);
                    let target_cpu = run.map_or(t.cpu, |n| n.cpu);
                    // Woken no later than the run it led to began.
                    let ts_ns = if run.is_some() { t.ts_ns.min(starts[i + 1]) } else { t.ts_ns };
                    by_cpu.entry(t.cpu).or_default().push(SchedEvent::Waking { ts_ns, tid, target_cpu });
                }
                // The recording began while it ran: it left at its first
                // state change, from when on its states are known.
                state if i == 0 && is_switch_out(state) => occupants.entry(t.cpu).or_default().push(Occupant {
                    tid,
                    start: t.ts_ns,
                    end: t.ts_ns,
                    left_in: Some(t.state),
                    traced: true,
                }),
                _ => {}
            }
        }
        for h in held_slices(thread).filter(|h| !traced_processes.contains(&h.pid)) {
            holders.insert(h.pid);
            occupants.entry(h.cpu).or_default().push(Occupant {
                tid: h.pid,
                start: h.start,
                end: h.end,
                left_in: None,
                traced: false,
            });
        }
    }
    let mut runs = BTreeMap::new();
    for (cpu, on_cpu) in occupants {
        let on_cpu = placed(on_cpu);
        runs.insert(cpu, on_cpu.iter().map(|o| Run { tid: o.tid, start: o.start, end: o.end }).collect());
        by_cpu.entry(cpu).or_default().extend(switches(on_cpu));
    }
    for events in by_cpu.values_mut() {
        events.sort_by_key(SchedEvent::ts_ns);
    }
    CpuEvents { by_cpu, holders, runs }
}

/// When each transition is drawn: its own time, except for a run whose
/// totals hold more on-CPU time than its tracepoints span. The kernel's
/// clock charged it from before the switch-in tracepoint (a wake-up onto an
/// idle CPU is charged from the enqueue), and the kernel programs moved the
/// extra out of the wait before the run, then out of the blocked time
/// before that (`clock::settle_run`). Such a run starts that much earlier,
/// back to just after the thread's previous switch-out at most, so that
/// the trace says what the report says.
fn settled_starts(transitions: &[Transition]) -> Vec<u64> {
    let mut starts: Vec<u64> = transitions.iter().map(|t| t.ts_ns).collect();
    let mut last_switch_out = None;
    for (i, t) in transitions.iter().enumerate() {
        if t.state == TIMELINE_ON_CPU
            && let (Some(n), Some(floor)) = (transitions.get(i + 1), last_switch_out)
            && is_switch_out(n.state)
        {
            let ran = n.totals.on_cpu_ns.saturating_sub(t.totals.on_cpu_ns);
            let spanned = n.ts_ns.saturating_sub(t.ts_ns);
            if ran > spanned {
                // 1 ns after the switch-out, not at it: a switch from the
                // thread to itself says nothing.
                starts[i] = t.ts_ns.saturating_sub(ran - spanned).max(floor + 1);
            }
        }
        if is_switch_out(t.state) {
            last_switch_out = Some(t.ts_ns);
        }
    }
    starts
}

/// The run slices of the holders of `thread`'s waits, idle CPUs and empty
/// slices left out.
pub fn held_slices(thread: &ThreadHistory) -> impl Iterator<Item = HeldSlice> + '_ {
    timeline::held_slices(&thread.holders).filter(|h| h.pid != 0 && h.start < h.end)
}

/// One CPU's occupants without overlaps: a traced thread's own switches
/// win over a holder record of the same time (several waiters report the
/// same run slices, and the clocks of different CPUs differ a little).
fn placed(mut occupants: Vec<Occupant>) -> Vec<Occupant> {
    occupants.sort_by_key(|o| (o.start, !o.traced));
    let mut placed: Vec<Occupant> = Vec::with_capacity(occupants.len());
    for mut o in occupants {
        if let Some(last) = placed.last_mut()
            && o.start < last.end
        {
            if o.traced {
                last.end = o.start;
                if last.end <= last.start && !last.traced {
                    placed.pop();
                }
            } else {
                o.start = last.end;
                if o.start >= o.end {
                    continue;
                }
            }
        }
        placed.push(o);
    }
    placed
}

/// The switches that put each (placed) occupant on the CPU and take it off.
fn switches(placed: Vec<Occupant>) -> Vec<SchedEvent> {
    let mut events = Vec::new();
    let mut running: Option<Occupant> = None;
    for o in placed {
        if let Some(r) = running.take_if(|r| r.end < o.start) {
            events.push(SchedEvent::Switch { ts_ns: r.end, prev: r.tid, prev_state: r.prev_state(), next: 0 });
            push_io_wait(&mut events, &r);
        }
        let (prev, prev_state) = running.map_or((0, PREV_STATE_RUNNABLE), |r| (r.tid, r.prev_state()));
        events.push(SchedEvent::Switch { ts_ns: o.start, prev, prev_state, next: o.tid });
        if let Some(r) = running {
            push_io_wait(&mut events, &r);
        }
        running = Some(o);
    }
    if let Some(r) = running.filter(|r| r.left_in.is_some() || !r.traced) {
        events.push(SchedEvent::Switch { ts_ns: r.end, prev: r.tid, prev_state: r.prev_state(), next: 0 });
        push_io_wait(&mut events, &r);
    }
    events
}

/// A state a thread enters when it leaves a CPU.
fn is_switch_out(state: u32) -> bool {
    matches!(state, OFF_CPU_PREEMPTED | OFF_CPU_SLEEP | OFF_CPU_UNINTERRUPTIBLE | OFF_CPU_IOWAIT)
}

fn push_io_wait(events: &mut Vec<SchedEvent>, left: &Occupant) {
    if left.left_in == Some(OFF_CPU_IOWAIT) {
        events.push(SchedEvent::IoWait { ts_ns: left.end, tid: left.tid });
    }
}
