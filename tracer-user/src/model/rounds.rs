//! HTTP responses that go out in several rounds: a large body written as
//! the socket drains, a proxy passing its upstream's response on as it
//! arrives. The kernel sends an exchange's span when the thread that wrote
//! its response moves on, and each later round of the same response as a
//! round record that moves the span's end. A span whose response head says
//! more is to come (by `Content-Length`, chunked, or until close) is held
//! here until its last byte went, or its rounds stopped for a while, and
//! leaves with its end at the last byte and its breakdown over all rounds.
use foldhash::HashMap;

use tracer_common::{SPAN_HTTP_ROUND, SPAN_MOVED_THREAD, SpanEvent};

use super::http::{HttpFields, ResponseEnd};

/// How long a held span waits for another round of a response whose end
/// its head does not give in bytes (chunked, or until close), or one that
/// stopped short.
pub const QUIET_NS: u64 = 500_000_000;

/// A span and its HTTP fields.
pub type HttpSpan = (SpanEvent, HttpFields);

/// Spans held for the rest of their response.
#[derive(Default)]
pub struct Rounds {
    held: HashMap<(u32, u64), HttpSpan>,
    /// Rounds of spans no longer held (their response was complete, or
    /// quiet for [`QUIET_NS`]): not counted in them.
    pub late_rounds: u64,
}

/// Whether the response of `span` went whole.
fn complete(span: &HttpSpan) -> bool {
    match span.1.response_end {
        ResponseEnd::Unknown => true,
        ResponseEnd::Bytes(expected) => span.0.response_bytes >= expected,
        ResponseEnd::Quiet => false,
    }
}

impl Rounds {
    /// A span as first sent: back at once if its response is complete.
    pub fn first(&mut self, event: &SpanEvent, mut fields: HttpFields) -> Option<HttpSpan> {
        fields.response_bytes = Some(event.response_bytes);
        let span = (*event, fields);
        if complete(&span) {
            return Some(span);
        }
        self.held.insert((event.tgid, event.span_id), span);
        None
    }

    /// A later round: added to its held span, which is back if this was
    /// its last.
    pub fn round(&mut self, round: &SpanEvent) -> Option<HttpSpan> {
        let key = (round.tgid, round.span_id);
        let Some(span) = self.held.get_mut(&key) else {
            self.late_rounds += 1;
            return None;
        };
        let (event, fields) = span;
        event.end_ns = event.end_ns.max(round.end_ns);
        event.tid_end = round.tid_end;
        if round.flags & SPAN_MOVED_THREAD != 0 {
            // Marks the span as one whose round (not its start) moved.
            event.flags |= SPAN_MOVED_THREAD | SPAN_HTTP_ROUND;
        }
        event.delta.add(&round.delta);
        event.response_bytes = round.response_bytes;
        fields.response_bytes = Some(round.response_bytes);
        if complete(span) { self.held.remove(&key) } else { None }
    }

    /// Held spans whose last round ended before `quiet_since_ns`
    /// (CLOCK_MONOTONIC), in the order they ended: a proxy's call to its
    /// upstream before the span it was made in, which takes its wait.
    pub fn quiet(&mut self, quiet_since_ns: u64) -> Vec<HttpSpan> {
        self.take_where(|event| event.end_ns < quiet_since_ns)
    }

    /// The held outgoing calls made inside span `parent_span_id` of `tgid`,
    /// in the order they ended: they leave before their parent, which
    /// takes their wait (`model::downstream`), even if their responses
    /// might go on.
    pub fn take_children(&mut self, tgid: u32, parent_span_id: u64) -> Vec<HttpSpan> {
        self.take_where(|event| event.tgid == tgid && event.parent_span_id == parent_span_id)
    }

    /// Every held span, at the end of a recording.
    pub fn drain(&mut self) -> Vec<HttpSpan> {
        self.take_where(|_| true)
    }

    /// The held spans that `leaves`, in the order they ended.
    fn take_where(&mut self, leaves: impl Fn(&SpanEvent) -> bool) -> Vec<HttpSpan> {
        let keys: Vec<_> = self.held.iter().filter(|(_, (event, _))| leaves(event)).map(|(key, _)| *key).collect();
        let mut spans: Vec<HttpSpan> = keys.iter().filter_map(|key| self.held.remove(key)).collect();
        spans.sort_by_key(|(event, _)| event.end_ns);
        spans
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use tracer_common::{SPAN_HTTP, SPAN_HTTP_ROUND, ThreadTotals};

    use super::*;

    const MS: u64 = 1_000_000;

    fn first(end: ResponseEnd, bytes: u64, end_ns: u64, on_cpu_ns: u64) -> (SpanEvent, HttpFields) {
        let event = SpanEvent {
            span_id: 7,
            tgid: 1,
            tid_begin: 2,
            tid_end: 2,
            flags: SPAN_HTTP,
            start_ns: 0,
            end_ns,
            delta: ThreadTotals { on_cpu_ns, ..ThreadTotals::default() },
            response_bytes: bytes,
            ..SpanEvent::default()
        };
        (event, HttpFields { response_end: end, ..HttpFields::default() })
    }

    fn round(from_ns: u64, to_ns: u64, bytes: u64, tid: u32) -> SpanEvent {
        SpanEvent {
            span_id: 7,
            tgid: 1,
            tid_begin: 2,
            tid_end: tid,
            flags: SPAN_HTTP | SPAN_HTTP_ROUND | if tid == 2 { 0 } else { SPAN_MOVED_THREAD },
            start_ns: from_ns,
            end_ns: to_ns,
            delta: ThreadTotals { sleep_ns: to_ns - from_ns, ..ThreadTotals::default() },
            response_bytes: bytes,
            ..SpanEvent::default()
        }
    }

    #[test]
    fn a_response_of_known_length_ends_with_its_last_round() {
        let mut rounds = Rounds::default();
        let (event, fields) = first(ResponseEnd::Bytes(300), 100, 2 * MS, 2 * MS);
        assert!(rounds.first(&event, fields).is_none(), "held: 100 of 300 bytes");
        assert!(rounds.round(&round(2 * MS, 10 * MS, 200, 2)).is_none());
        let (done, fields) = rounds.round(&round(10 * MS, 15 * MS, 300, 2)).expect("the last byte went");
        assert_eq!((done.start_ns, done.end_ns, done.response_bytes), (0, 15 * MS, 300));
        // The parts still cover the wall time: 2 ms on a CPU, then asleep.
        assert_eq!((done.delta.on_cpu_ns, done.delta.sleep_ns), (2 * MS, 13 * MS));
        assert_eq!(fields.response_bytes, Some(300));
        assert!(rounds.is_empty());
        rounds.round(&round(15 * MS, 16 * MS, 301, 2));
        assert_eq!(rounds.late_rounds, 1);
    }

    #[test]
    fn complete_or_unknown_responses_are_not_held() {
        let mut rounds = Rounds::default();
        for (end, bytes) in [(ResponseEnd::Bytes(100), 100), (ResponseEnd::Unknown, 5)] {
            let (event, fields) = first(end, bytes, MS, MS);
            let (back, fields) = rounds.first(&event, fields).expect("not held");
            assert_eq!((back.end_ns, fields.response_bytes), (MS, Some(bytes)));
        }
        assert!(rounds.is_empty());
    }

    #[test]
    fn chunked_or_short_responses_leave_when_quiet_and_a_moved_round_marks_the_span() {
        let mut rounds = Rounds::default();
        let (event, fields) = first(ResponseEnd::Quiet, 100, MS, MS);
        assert!(rounds.first(&event, fields).is_none());
        assert!(rounds.round(&round(MS, 4 * MS, 200, 3)).is_none());
        assert!(rounds.quiet(4 * MS).is_empty(), "its last round ended at 4 ms");
        let quiet = rounds.quiet(4 * MS + 1);
        assert_eq!(quiet.len(), 1);
        let (span, _) = &quiet[0];
        assert_eq!((span.end_ns, span.tid_end), (4 * MS, 3));
        assert_ne!(span.flags & SPAN_MOVED_THREAD, 0, "a round on another thread: no breakdown");
        let (event, fields) = first(ResponseEnd::Bytes(500), 100, MS, MS);
        rounds.first(&event, fields);
        assert_eq!(rounds.drain().len(), 1, "at the end of a recording");
    }

    #[test]
    fn held_calls_leave_before_the_span_they_were_made_in() {
        let mut rounds = Rounds::default();
        let (mut call, fields) = first(ResponseEnd::Quiet, 100, MS, MS);
        call.parent_span_id = 3;
        assert!(rounds.first(&call, fields).is_none());
        assert!(rounds.take_children(1, 4).is_empty(), "another parent");
        assert!(rounds.take_children(2, 3).is_empty(), "another process");
        let children = rounds.take_children(1, 3);
        assert_eq!(children.iter().map(|(event, _)| event.span_id).collect::<Vec<_>>(), vec![7]);
        assert!(rounds.is_empty());
    }
}
