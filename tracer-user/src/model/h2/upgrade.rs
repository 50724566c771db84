//! `Upgrade: h2c`: a request asks, on HTTP/1.1, to switch its connection to
//! HTTP/2, and the server's `101` does. The request goes on as the
//! connection's stream 1, answered in HTTP/2 frames. Two halves make its
//! span, and they come on two rings in either order:
//! - the head: the kernel's HTTP/1.x span of the request, from its start to
//!   the `101` (flag [`SPAN_H2C_UPGRADE`]), with its method, target and ids;
//! - the tail: stream 1 of the connection (which has the request's span id
//!   as its own id), from the `101` to the end of its response.
//!
//! The two are joined into one span with the parts of both; a half whose
//! other half does not come (the connection closed or was lost first) goes
//! alone.
use tracer_common::{SPAN_H2C_UPGRADE, SPAN_HANDED_OFF};

use super::H2Span;
use crate::model::recent::Recent;

/// Halves kept waiting for their other half at most (the oldest go alone).
const WAITING: usize = 4096;

#[derive(Default)]
enum Half {
    #[default]
    None,
    Head(H2Span),
    Tail(H2Span),
}

/// Halves of upgraded requests, by (process, connection id).
pub struct Upgrades {
    waiting: Recent<(u32, u64), Half>,
}

impl Default for Upgrades {
    fn default() -> Self {
        Upgrades { waiting: Recent::new(WAITING) }
    }
}

impl Upgrades {
    /// The HTTP/1.x span of a request whose `101` switched its connection:
    /// the whole span if its tail is here.
    pub fn head(&mut self, head: H2Span) -> Option<H2Span> {
        let key = (head.0.tgid, head.0.span_id);
        match self.waiting.remove(&key) {
            Some(Half::Tail(tail)) => Some(joined(head, tail)),
            _ => {
                self.waiting.insert(key, Half::Head(head));
                None
            }
        }
    }

    /// Stream 1 of upgraded connection `id` of `tgid`, answered: the whole
    /// span if its head is here.
    pub fn tail(&mut self, tgid: u32, id: u64, tail: H2Span) -> Option<H2Span> {
        match self.waiting.remove(&(tgid, id)) {
            Some(Half::Head(head)) => Some(joined(head, tail)),
            _ => {
                self.waiting.insert((tgid, id), Half::Tail(tail));
                None
            }
        }
    }

    /// The head of connection `id` of `tgid`, alone: its stream 1 will not
    /// be answered (the connection closed, or could not be followed).
    pub fn give_up(&mut self, tgid: u32, id: u64) -> Option<H2Span> {
        // Looked at before it is taken: a tail stays where it is (taken and
        // put back, it would be counted twice in the order of insertions).
        if !matches!(self.waiting.get(&(tgid, id)), Some(Half::Head(_))) {
            return None;
        }
        match self.waiting.remove(&(tgid, id))? {
            Half::Head(head) => Some(alone(head)),
            _ => None,
        }
    }

    /// Every half still waiting, alone: heads as the HTTP/1.x spans they
    /// are (to the `101`), tails as spans from the `101` on.
    pub fn drain(&mut self) -> Vec<H2Span> {
        let keys: Vec<(u32, u64)> = self.waiting.keys().cloned().collect();
        keys.into_iter()
            .filter_map(|key| match self.waiting.remove(&key)? {
                Half::Head(head) => Some(alone(head)),
                Half::Tail(tail) => Some(tail),
                Half::None => None,
            })
            .collect()
    }
}

/// A head whose stream 1 was not answered: the span of the request to its
/// `101`, as the kernel sent it.
fn alone((mut event, fields): H2Span) -> H2Span {
    event.flags &= !SPAN_H2C_UPGRADE;
    (event, fields)
}

/// The request from its start (the head's) to the end of stream 1's
/// response (the tail's), with the parts of both halves: the tail's thread
/// totals, or, when another thread ended the stream than wrote (or read)
/// the `101`, its time as between the threads.
fn joined(head: H2Span, (tail, tail_fields): H2Span) -> H2Span {
    let (mut event, mut fields) = alone(head);
    event.end_ns = tail.end_ns.max(event.end_ns);
    event.tid_end = tail.tid_end;
    if tail.flags & SPAN_HANDED_OFF != 0 {
        event.flags |= SPAN_HANDED_OFF;
        event.between_threads_ns += tail.between_threads_ns;
    } else {
        event.delta.add(&tail.delta);
    }
    event.response_bytes = tail.response_bytes;
    fields.http_status = tail_fields.http_status;
    fields.request_id = fields.request_id.or(tail_fields.request_id);
    fields.response_bytes = tail_fields.response_bytes;
    fields.peer = fields.peer.or(tail_fields.peer);
    (event, fields)
}

#[cfg(test)]
mod tests {
    use tracer_common::{SPAN_HTTP, SpanEvent, ThreadTotals};

    use super::*;
    use crate::model::http::HttpFields;

    const PID: u32 = 7;
    const ID: u64 = 99;

    fn head() -> H2Span {
        let event = SpanEvent {
            span_id: ID,
            tgid: PID,
            tid_begin: 1,
            tid_end: 1,
            flags: SPAN_HTTP | SPAN_H2C_UPGRADE,
            start_ns: 1_000,
            end_ns: 3_000,
            delta: ThreadTotals { on_cpu_ns: 2_000, ..ThreadTotals::default() },
            response_bytes: 71,
            ..SpanEvent::default()
        };
        let fields = HttpFields {
            http_method: "GET".into(),
            http_path: "/sleep".into(),
            http_status: Some(101),
            request_id: Some("abc".into()),
            ..HttpFields::default()
        };
        (event, fields)
    }

    fn tail(tid_end: u32) -> H2Span {
        let mut event = SpanEvent {
            span_id: 5,
            tgid: PID,
            tid_begin: 1,
            tid_end,
            flags: SPAN_HTTP,
            start_ns: 3_000,
            end_ns: 23_000,
            response_bytes: 60,
            ..SpanEvent::default()
        };
        if tid_end == 1 {
            event.delta = ThreadTotals { on_cpu_ns: 1_000, sleep_ns: 19_000, ..ThreadTotals::default() };
        } else {
            event.flags |= SPAN_HANDED_OFF;
            event.between_threads_ns = 20_000;
        }
        let fields = HttpFields { http_status: Some(200), response_bytes: Some(60), ..HttpFields::default() };
        (event, fields)
    }

    #[test]
    fn halves_join_in_either_order_into_the_whole_request() {
        for head_first in [true, false] {
            let mut upgrades = Upgrades::default();
            let whole = if head_first {
                assert!(upgrades.head(head()).is_none());
                upgrades.tail(PID, ID, tail(1))
            } else {
                assert!(upgrades.tail(PID, ID, tail(1)).is_none());
                upgrades.head(head())
            };
            let (event, fields) = whole.expect("joined");
            assert_eq!((event.span_id, event.start_ns, event.end_ns), (ID, 1_000, 23_000));
            assert_eq!(event.flags & SPAN_H2C_UPGRADE, 0);
            // The parts of both halves: 2 µs + 1 µs on a CPU, 19 µs asleep.
            assert_eq!((event.delta.on_cpu_ns, event.delta.sleep_ns), (3_000, 19_000));
            assert_eq!((fields.http_method.as_str(), fields.http_path.as_str()), ("GET", "/sleep"));
            assert_eq!(fields.http_status, Some(200), "the answer, not the 101");
            assert_eq!(fields.request_id.as_deref(), Some("abc"));
            assert!(upgrades.drain().is_empty());
        }
    }

    #[test]
    fn a_stream_ended_on_another_thread_is_time_between_threads() {
        let mut upgrades = Upgrades::default();
        upgrades.head(head());
        let (event, _) = upgrades.tail(PID, ID, tail(2)).unwrap();
        assert_ne!(event.flags & SPAN_HANDED_OFF, 0);
        assert_eq!((event.delta.on_cpu_ns, event.between_threads_ns, event.tid_end), (2_000, 20_000, 2));
    }

    #[test]
    fn a_head_whose_stream_is_never_answered_goes_alone() {
        let mut upgrades = Upgrades::default();
        upgrades.head(head());
        assert!(upgrades.give_up(PID, ID + 1).is_none());
        let (event, fields) = upgrades.give_up(PID, ID).expect("the head");
        assert_eq!((event.end_ns, fields.http_status), (3_000, Some(101)));
        assert_eq!(event.flags & SPAN_H2C_UPGRADE, 0);
        upgrades.tail(PID, ID, tail(1));
        assert!(upgrades.give_up(PID, ID).is_none(), "only a head is given up");
        assert_eq!(upgrades.drain().len(), 1, "a tail without its head goes alone at the end");
    }
}
