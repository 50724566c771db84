//! Span markers read from a process's marker ring (`sys::markers`): begin
//! and end records paired into spans, and each span broken down by a live
//! timeline of its thread's kernel events, as `tracer join` does for spans
//! recorded elsewhere. A span is joined once the timeline has been drained
//! past its end; each thread's history is kept back to its oldest open
//! span only.
use std::collections::{BTreeMap, VecDeque};

use foldhash::{HashMap, HashMapExt};

use tracer_common::{
    MARKER_BEGIN, MARKER_END, MarkerRecord, OFF_CPU_PREEMPTED, SPAN_MOVED_THREAD, SPAN_NAME_LEN, SpanEvent,
    TIMELINE_ON_CPU, TIMELINE_RUNNABLE, ThreadTotals, TimelineEvent,
};

use super::timeline::{Timeline, TimelineHeader, Transition};

/// A thread with no state change for this long is forgotten: it changes
/// state (wakes up) before it can begin a span again.
const FORGET_IDLE_THREAD_NS: u64 = 60_000_000_000;

/// Marker records that did not make a span, by reason.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MarkerCounts {
    pub end_without_begin: u64,
    pub begun_twice: u64,
    pub never_ended: u64,
    /// Spans on a thread the timeline had no state of when they began
    /// (it had not switched since the tracer started).
    pub no_thread_state: u64,
}

#[derive(Debug, Clone, Copy)]
struct Begin {
    tid: u32,
    ts_ns: u64,
    name: [u8; SPAN_NAME_LEN],
}

/// A begin and its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkedSpan {
    pub tgid: u32,
    pub span_id: u64,
    pub tid_begin: u32,
    pub tid_end: u32,
    pub start_ns: u64,
    pub end_ns: u64,
    pub name: [u8; SPAN_NAME_LEN],
}

/// Pairs the records of the traced processes and joins the spans with
/// their threads' timeline.
pub struct MarkerJoin {
    open: HashMap<(u32, u64), Begin>,
    /// Ended, waiting for the timeline to cover their end.
    ended: VecDeque<MarkedSpan>,
    timeline: Timeline,
    pub counts: MarkerCounts,
}

impl Default for MarkerJoin {
    fn default() -> Self {
        Self::new()
    }
}

impl MarkerJoin {
    pub fn new() -> MarkerJoin {
        let header = TimelineHeader {
            format_version: 0,
            pids: Vec::new(),
            probe_mode: String::new(),
            clock_pairs: Vec::new(),
            first_monotonic_ns: 0,
            last_monotonic_ns: 0,
            events_lost: 0,
            truncated: None,
        };
        MarkerJoin {
            open: HashMap::new(),
            ended: VecDeque::new(),
            timeline: Timeline::new(header, BTreeMap::new()),
            counts: MarkerCounts::default(),
        }
    }

    /// A record of process `tgid`'s ring.
    pub fn on_record(&mut self, tgid: u32, record: &MarkerRecord) {
        let key = (tgid, record.span_id);
        match record.kind {
            MARKER_BEGIN => {
                let begin = Begin { tid: record.tid, ts_ns: record.ts_ns, name: record.name };
                if self.open.insert(key, begin).is_some() {
                    self.counts.begun_twice += 1;
                }
            }
            MARKER_END => match self.open.remove(&key) {
                Some(begin) => self.ended.push_back(MarkedSpan {
                    tgid,
                    span_id: record.span_id,
                    tid_begin: begin.tid,
                    tid_end: record.tid,
                    start_ns: begin.ts_ns,
                    end_ns: record.ts_ns.max(begin.ts_ns),
                    name: begin.name,
                }),
                None => self.counts.end_without_begin += 1,
            },
            _ => {}
        }
    }

    /// A kernel timeline event of the traced threads.
    pub fn on_event(&mut self, event: &TimelineEvent) {
        // Kinds this tracer does not know are not produced by its own kernel programs.
        let _ = self.timeline.push(event);
    }

    /// Breaks down every span that ended before `covered_ns` (the timeline
    /// holds every event before it), then forgets what no open span needs.
    pub fn join(&mut self, covered_ns: u64, mut each: impl FnMut(&SpanEvent)) {
        self.timeline.sort();
        let mut waiting = VecDeque::new();
        while let Some(span) = self.ended.pop_front() {
            if span.end_ns >= covered_ns {
                waiting.push_back(span);
                continue;
            }
            match self.breakdown(&span) {
                Some(event) => each(&event),
                None => self.counts.no_thread_state += 1,
            }
        }
        self.ended = waiting;
        let mut needed: HashMap<u32, u64> = HashMap::new();
        let starts = self.open.values().map(|b| (b.tid, b.ts_ns));
        for (tid, start) in starts.chain(self.ended.iter().map(|s| (s.tid_begin, s.start_ns))) {
            let oldest = needed.entry(tid).or_insert(start);
            *oldest = (*oldest).min(start);
        }
        let cut = |tid| needed.get(&tid).map_or(covered_ns, |&start| start.min(covered_ns));
        self.timeline.forget_before(cut, covered_ns.saturating_sub(FORGET_IDLE_THREAD_NS));
    }

    fn breakdown(&mut self, span: &MarkedSpan) -> Option<SpanEvent> {
        let mut event = if span.tid_begin == span.tid_end {
            self.running_at(span.tid_begin, span.start_ns, span.end_ns)?;
            self.timeline.attribute(span.tid_begin, span.start_ns, span.end_ns)?
        } else {
            // The breakdown follows one thread; a moved span has none.
            SpanEvent {
                tid_begin: span.tid_begin,
                tid_end: span.tid_end,
                flags: SPAN_MOVED_THREAD,
                ..SpanEvent::default()
            }
        };
        event.tgid = span.tgid;
        event.span_id = span.span_id;
        event.start_ns = span.start_ns;
        event.end_ns = span.end_ns;
        event.name = span.name;
        Some(event)
    }

    /// Makes sure the timeline knows thread `tid`'s state at `start`, when
    /// it called the begin marker and so was on a CPU. The kernel now and
    /// then does not report a switch-in (docs/spans.md); a thread whose
    /// first recorded change after `start` takes it off a CPU was on one
    /// since `start`. `None` when its state cannot be told (no event of it
    /// recorded, or its first one puts it on a CPU).
    fn running_at(&mut self, tid: u32, start: u64, end: u64) -> Option<()> {
        let thread = self.timeline.thread_mut(tid)?;
        let first = *thread.transitions.first()?;
        if first.ts_ns <= start {
            return Some(());
        }
        if first.ts_ns <= end && matches!(first.state, TIMELINE_ON_CPU | TIMELINE_RUNNABLE) {
            return None;
        }
        // Its totals before that switch-out: less the run since `start` and the switch.
        let ran = first.ts_ns - start;
        let mut totals = ThreadTotals { on_cpu_ns: first.totals.on_cpu_ns.saturating_sub(ran), ..first.totals };
        let switches = match first.state {
            OFF_CPU_PREEMPTED => &mut totals.involuntary_switches,
            _ => &mut totals.voluntary_switches,
        };
        *switches = switches.saturating_sub(1);
        thread.transitions.insert(0, Transition { ts_ns: start, state: TIMELINE_ON_CPU, cpu: first.cpu, totals });
        Some(())
    }

    /// Forgets the spans begun before `cutoff` and never ended.
    pub fn expire(&mut self, cutoff: u64) {
        let before = self.open.len();
        self.open.retain(|_, begin| begin.ts_ns >= cutoff);
        self.counts.never_ended += (before - self.open.len()) as u64;
    }
}

#[cfg(test)]
mod tests {
    use tracer_common::ThreadTotals;

    use super::*;
    use crate::model::timeline::fixtures::{MS, PID, T0, TID, history};

    fn record(kind: u32, tid: u32, ms: f64, span_id: u64) -> MarkerRecord {
        let mut name = [0; SPAN_NAME_LEN];
        name[..3].copy_from_slice(b"GET");
        MarkerRecord { seq: 0, ts_ns: T0 + (ms * MS as f64) as u64, span_id, tid, kind, name }
    }

    #[test]
    fn records_pair_into_spans_broken_down_by_the_timeline_once_it_covers_them() {
        let mut join = MarkerJoin::new();
        history().iter().for_each(|e| join.on_event(e));
        join.on_record(PID, &record(MARKER_BEGIN, TID, 1.0, 7));
        join.on_record(PID, &record(MARKER_END, TID, 6.5, 7));
        join.on_record(PID, &record(MARKER_END, TID, 6.6, 8));
        join.on_record(PID, &record(MARKER_BEGIN, TID, 9.0, 9));
        join.on_record(PID, &record(MARKER_BEGIN, TID, 9.5, 9));
        join.on_record(PID, &record(MARKER_BEGIN, TID + 1, 9.6, 10));
        join.on_record(PID, &record(MARKER_END, TID + 2, 9.7, 10));
        let mut spans = Vec::new();
        join.join(T0 + 6 * MS, |s| spans.push(*s));
        assert!(spans.is_empty(), "the timeline is not drained past their end yet");
        join.join(T0 + 12 * MS, |s| spans.push(*s));
        assert_eq!(spans.len(), 2);
        let expected = join_fixture_attribute(1.0, 6.5);
        assert_eq!(spans[0].delta, expected.delta, "as the timeline's own attribution");
        assert_eq!(spans[0].syscalls, expected.syscalls);
        assert_eq!(spans[0].holders, expected.holders);
        assert_eq!((spans[0].span_id, spans[0].tgid, &spans[0].name[..4]), (7, PID, &b"GET\0"[..]));
        assert_eq!((spans[1].flags, spans[1].tid_begin, spans[1].tid_end), (SPAN_MOVED_THREAD, TID + 1, TID + 2));
        assert_eq!(spans[1].delta, ThreadTotals::default());
        assert_eq!((join.counts.end_without_begin, join.counts.begun_twice), (1, 1));

        // The open span's start is still covered after the join forgot the rest.
        join.on_record(PID, &record(MARKER_END, TID, 12.0, 9));
        join.join(T0 + 14 * MS, |s| spans.push(*s));
        assert_eq!(spans.len(), 3);
        assert_eq!(spans[2].start_ns, T0 + 9_500_000);
        let d = spans[2].delta;
        assert_eq!(d.sleep_ns + d.runq_wait_ns + d.on_cpu_ns, spans[2].end_ns - spans[2].start_ns);

        join.on_record(PID, &record(MARKER_BEGIN, TID, 13.5, 11));
        join.expire(T0 + 14 * MS);
        assert_eq!(join.counts.never_ended, 1);
    }

    #[test]
    fn a_thread_first_seen_leaving_a_cpu_ran_since_the_begin_and_one_never_seen_is_counted() {
        use crate::model::timeline::fixtures::transition;

        let mut join = MarkerJoin::new();
        // Its switch-in was not reported: first seen preempted at 2 ms.
        let preempted = ThreadTotals { on_cpu_ns: 2 * MS, involuntary_switches: 1, ..Default::default() };
        let back = ThreadTotals { runq_wait_ns: MS, runq_waits: 1, preempted_ns: MS, ..preempted };
        join.on_event(&transition(2.0, OFF_CPU_PREEMPTED, preempted));
        join.on_event(&transition(3.0, TIMELINE_ON_CPU, back));
        join.on_record(PID, &record(MARKER_BEGIN, TID, 1.0, 1));
        join.on_record(PID, &record(MARKER_END, TID, 4.0, 1));
        join.on_record(PID, &record(MARKER_BEGIN, TID + 5, 1.0, 2));
        join.on_record(PID, &record(MARKER_END, TID + 5, 4.0, 2));
        let mut spans = Vec::new();
        join.join(T0 + 5 * MS, |s| spans.push(*s));
        assert_eq!(spans.len(), 1);
        let d = spans[0].delta;
        assert_eq!((d.on_cpu_ns, d.runq_wait_ns, d.involuntary_switches), (2 * MS, MS, 1));
        assert_eq!(join.counts.no_thread_state, 1, "a thread of which nothing was recorded");
    }

    fn join_fixture_attribute(from_ms: f64, to_ms: f64) -> SpanEvent {
        let timeline = crate::model::timeline::fixtures::synthetic();
        let at = |ms: f64| T0 + (ms * MS as f64) as u64;
        timeline.attribute(TID, at(from_ms), at(to_ms)).unwrap()
    }
}
