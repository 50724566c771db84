//! Spans recorded by something else (an OpenTelemetry SDK, an
//! application's own log) broken down like marker spans, from a timeline
//! recorded at the same time: docs/spans.md, "Spans recorded elsewhere".
pub mod input;
#[cfg(test)]
mod proptests;

use input::{ExternalSpan, Input, Location, Unusable};

use super::{spans::SpanRecord, timeline::Timeline};

/// Spans that were not joined, by reason: how many, and where the first
/// ones were (an input of any size keeps a summary of bounded size).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Not valid JSON, or a required field missing or of the wrong type.
    pub malformed: Listed<(Location, String)>,
    pub no_thread_id: Listed<Location>,
    /// On a thread the timeline has no event of (another process, or a
    /// thread that never changed state while recorded).
    pub unknown_thread: Listed<Location>,
    /// Beginning before the recording (or before its thread's first
    /// recorded state) or ending after it.
    pub outside_window: Listed<Location>,
}

/// Locations listed per reason; the count says how many there were.
const LISTED: usize = 10;

/// A count, and the first [`LISTED`] items counted, in input order.
#[derive(Debug, PartialEq, Eq)]
pub struct Listed<T> {
    pub count: usize,
    pub first: Vec<T>,
}

impl<T> Default for Listed<T> {
    fn default() -> Self {
        Listed { count: 0, first: Vec::new() }
    }
}

impl<T> Listed<T> {
    fn push(&mut self, item: T) {
        self.count += 1;
        if self.first.len() < LISTED {
            self.first.push(item);
        }
    }

    fn places(&self, location: impl Fn(&T) -> Location) -> String {
        let mut text = self.first.iter().map(|item| location(item).to_string()).collect::<Vec<_>>().join(", ");
        if self.count > self.first.len() {
            text.push_str(", ...");
        }
        text
    }
}

impl Skipped {
    pub fn count(&self) -> usize {
        self.malformed.count + self.no_thread_id.count + self.unknown_thread.count + self.outside_window.count
    }

    /// One line per reason that occurred, for standard error.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some((first, why)) = self.malformed.first.first() {
            let places = self.malformed.places(|(at, _)| *at);
            let n = self.malformed.count;
            lines.push(format!("skipped {n} malformed {} ({places}); {first}: {why}", spans(n)));
        }
        for (locations, reason) in [
            (&self.no_thread_id, "without a thread id"),
            (&self.unknown_thread, "on threads the timeline does not have"),
            (&self.outside_window, "outside the recorded window"),
        ] {
            if locations.count > 0 {
                let places = locations.places(|at| *at);
                let n = locations.count;
                lines.push(format!("skipped {n} {} {reason} ({places})", spans(n)));
            }
        }
        lines
    }
}

fn spans(n: usize) -> &'static str {
    if n == 1 { "span" } else { "spans" }
}

#[derive(Debug)]
pub struct Joined {
    /// One per joined span, in input order.
    pub records: Vec<SpanRecord>,
    pub skipped: Skipped,
}

enum Miss {
    UnknownThread,
    OutsideWindow,
}

/// Joins spans one at a time, as they are read, counting those skipped.
pub struct Joiner<'a> {
    timeline: &'a Timeline,
    contention_threshold: f64,
    pub skipped: Skipped,
}

impl<'a> Joiner<'a> {
    pub fn new(timeline: &'a Timeline, contention_threshold: f64) -> Self {
        Joiner { timeline, contention_threshold, skipped: Skipped::default() }
    }

    /// The breakdown of one span of the input, or None when it is skipped.
    pub fn add(&mut self, at: Location, span: Result<ExternalSpan, Unusable>) -> Option<SpanRecord> {
        let missed = match span {
            Err(Unusable::Malformed(what)) => {
                self.skipped.malformed.push((at, what));
                return None;
            }
            Err(Unusable::NoThreadId) => &mut self.skipped.no_thread_id,
            Ok(span) => match join_one(self.timeline, span, self.contention_threshold) {
                Ok(record) => return Some(record),
                Err(Miss::UnknownThread) => &mut self.skipped.unknown_thread,
                Err(Miss::OutsideWindow) => &mut self.skipped.outside_window,
            },
        };
        missed.push(at);
        None
    }
}

/// Breaks every usable span of `input` down with `timeline`.
pub fn join(timeline: &Timeline, input: Input, contention_threshold: f64) -> Joined {
    let mut joiner = Joiner::new(timeline, contention_threshold);
    let unusable = input.unusable.into_iter().map(|(at, why)| (at, Err(why)));
    let usable = input.spans.into_iter().map(|(at, span)| (at, Ok(span)));
    let mut all: Vec<_> = unusable.chain(usable).collect();
    // In input order, as when streamed.
    all.sort_by_key(|(at, _)| match at {
        Location::Line(n) | Location::Span(n) => *n,
    });
    let records = all.into_iter().filter_map(|(at, span)| joiner.add(at, span)).collect();
    Joined { records, skipped: joiner.skipped }
}

fn join_one(timeline: &Timeline, span: ExternalSpan, contention_threshold: f64) -> Result<SpanRecord, Miss> {
    if timeline.thread(span.tid).is_none() {
        return Err(Miss::UnknownThread);
    }
    let start = timeline.unix_to_monotonic(span.start_unix_ns);
    let end = timeline.unix_to_monotonic(span.end_unix_ns).max(start);
    let header = &timeline.header;
    if start < i128::from(header.first_monotonic_ns) || end > i128::from(header.last_monotonic_ns) {
        return Err(Miss::OutsideWindow);
    }
    // Inside the window, so both fit in a u64.
    let (start, end) = (start as u64, end as u64);
    let mut event = timeline.attribute(span.tid, start, end).ok_or(Miss::OutsideWindow)?;
    event.span_id = span.span_id;
    // The record's start is the input's own, not a round trip through the clock pairs.
    let monotonic_to_unix_ns = i128::from(span.start_unix_ns) - i128::from(start);
    let mut record = SpanRecord::from_event(&event, monotonic_to_unix_ns, contention_threshold, |pid| {
        timeline.names.get(&pid).cloned().unwrap_or_default()
    });
    // What a marker span carries in the event (a 32-byte name, no trace),
    // the input has in full.
    record.trace_id = span.trace_id;
    record.name = span.name;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        names::syscall_name,
        spans::{Holder, SyscallTime, Verdict},
        timeline::fixtures::{MS, PID, T0, TID, synthetic},
    };

    /// The synthetic timeline's clock pair: T0 is this wall-clock time.
    const UNIX0: u64 = 1_700_000_000_000 * MS;

    fn line(tid: &str, start_ms: f64, end_ms: f64, name: &str) -> String {
        let at = |ms: f64| (UNIX0 as i64 + (ms * MS as f64) as i64).to_string();
        format!(
            r#"{{"trace_id": "t-{name}", "span_id": "00000000000000a1", "name": "{name}", {tid}"start_unix_ns": "{}", "end_unix_ns": {}}}"#,
            at(start_ms),
            at(end_ms)
        )
    }

    #[test]
    fn spans_are_broken_down_and_bad_ones_counted_where_they_were() {
        let timeline = synthetic();
        let tid = format!(r#""tid": {TID}, "#);
        let name = "GET /api/v2/users/{id}/preferences?expand=all";
        let text = [
            line(&tid, 1.0, 6.5, name),
            line(r#""tid": 555, "#, 1.0, 2.0, "other thread"),
            line(&tid, -1.0, 2.0, "before the recording"),
            line(&tid, 11.0, 13.0, "after the recording"),
            line("", 1.0, 2.0, "no thread"),
            "{oops".into(),
            line(&tid, 9.0, 11.5, "woken"),
        ]
        .join("\n");
        let joined = join(&timeline, input::parse(text.as_bytes()).unwrap(), 0.3);

        assert_eq!(joined.records.len(), 2);
        let r = &joined.records[0];
        assert_eq!((r.trace_id.as_deref(), r.span_id, r.name.as_str()), (Some(format!("t-{name}").as_str()), 0xa1, name));
        assert_eq!((r.pid, r.tid, r.tid_end, r.moved_between_threads), (PID, TID, TID, false));
        assert_eq!((r.start_unix_ns, r.wall_ns), (UNIX0 + MS, 5 * MS + MS / 2));
        assert_eq!((r.on_cpu_ns, r.runq_wait_ns, r.sleep_ns), (2 * MS, 3 * MS, MS / 2));
        assert_eq!((r.iowait_ns, r.uninterruptible_ns, r.unaccounted_ns), (0, 0, 0));
        assert_eq!((r.syscall_ns, r.migrations, r.voluntary_switches, r.involuntary_switches), (500_000, 1, 1, 1));
        assert_eq!(r.verdict, Verdict::CpuContention);
        assert_eq!(
            r.top_syscalls,
            [
                SyscallTime { name: syscall_name(1), count: 1, ns: 300_000 },
                SyscallTime { name: syscall_name(0), count: 1, ns: 200_000 },
            ]
        );
        assert_eq!(
            r.blame,
            [
                Holder { pid: 900, comm: "batch".into(), cgroup: Some("/batch.slice".into()), ns: 2_400_000 },
                Holder { pid: 901, comm: "cron".into(), cgroup: None, ns: 600_000 },
            ],
            "named from the timeline, not from /proc"
        );

        let woken = &joined.records[1];
        assert_eq!((woken.sleep_ns, woken.runq_wait_ns, woken.on_cpu_ns), (MS, MS, MS / 2));
        assert_eq!(woken.blame, [Holder { pid: 0, comm: "(idle)".into(), cgroup: None, ns: MS }]);

        let skipped = &joined.skipped;
        assert_eq!(skipped.unknown_thread.first, [Location::Line(2)]);
        assert_eq!(skipped.outside_window.first, [Location::Line(3), Location::Line(4)]);
        assert_eq!(skipped.no_thread_id.first, [Location::Line(5)]);
        assert_eq!(skipped.malformed.count, 1);
        assert_eq!(skipped.malformed.first[0].0, Location::Line(6));
        assert_eq!(skipped.count(), 5);
        let lines = skipped.lines();
        assert!(lines[0].starts_with("skipped 1 malformed span (line 6); line 6: not JSON"), "{}", lines[0]);
        assert_eq!(
            lines[1..],
            [
                "skipped 1 span without a thread id (line 5)",
                "skipped 1 span on threads the timeline does not have (line 2)",
                "skipped 2 spans outside the recorded window (line 3, line 4)",
            ]
        );
    }

    #[test]
    fn long_lists_of_skipped_spans_are_cut() {
        let timeline = synthetic();
        let text = vec![line("", 1.0, 2.0, "no thread"); 12].join("\n");
        let joined = join(&timeline, input::parse(text.as_bytes()).unwrap(), 0.3);
        assert_eq!((joined.skipped.no_thread_id.count, joined.skipped.no_thread_id.first.len()), (12, 10));
        let listed: Vec<String> = (1..=10).map(|n| format!("line {n}")).collect();
        assert_eq!(joined.skipped.lines(), [format!("skipped 12 spans without a thread id ({}, ...)", listed.join(", "))]);
    }

    #[test]
    fn a_span_before_its_threads_first_state_is_outside_the_window() {
        let mut timeline = synthetic();
        // The recording began 5 ms before the thread's first event.
        timeline.header.first_monotonic_ns = T0 - 5 * MS;
        let text = line(&format!(r#""tid": {TID}, "#), -2.0, 1.0, "early");
        let joined = join(&timeline, input::parse(text.as_bytes()).unwrap(), 0.3);
        assert_eq!((joined.records.len(), joined.skipped.outside_window.count), (0, 1));
    }
}
