//! Outgoing calls inside a request's span: the time the request's thread
//! waited on each peer, kept from the call's span (which ends, and arrives,
//! first) until the request's own span arrives and shows it as its
//! `downstream_ns` part.
use super::{
    recent::Recent,
    spans::{DownstreamWait, SpanKind, SpanRecord},
};

/// The peer of calls whose connection was opened before tracing began.
const UNKNOWN_PEER: &str = "(unknown)";
/// Parents waited for at most; the oldest are forgotten beyond (a parent
/// that never arrives: its request was never answered, or its record lost).
const MAX_WAITING_PARENTS: usize = 4096;

/// Waits of outgoing calls by (process, parent span id).
pub struct Downstream {
    by_parent: Recent<(u32, u64), Vec<DownstreamWait>>,
}

impl Default for Downstream {
    fn default() -> Self {
        Downstream { by_parent: Recent::new(MAX_WAITING_PARENTS) }
    }
}

impl Downstream {
    /// Keeps what an outgoing call waited for its parent, or gives the
    /// parent its children's waits: moved from its sleep to
    /// `downstream_ns`, so the parts still sum to wall.
    pub fn on_span(&mut self, record: &mut SpanRecord) {
        if record.kind == SpanKind::Client {
            if let Some(parent) = record.parent_span_id {
                self.hold(record.pid, parent, record);
            }
            return;
        }
        let Some(waits) = self.by_parent.remove(&(record.pid, record.span_id)) else { return };
        let mut left = record.sleep_ns;
        for mut wait in waits {
            wait.ns = wait.ns.min(left);
            left -= wait.ns;
            record.downstream_ns += wait.ns;
            record.downstream.push(wait);
        }
        record.sleep_ns = left;
        record.downstream.sort_by_key(|w| std::cmp::Reverse(w.ns));
    }

    fn hold(&mut self, pid: u32, parent: u64, child: &SpanRecord) {
        let peer = child.http.as_ref().and_then(|h| h.peer.clone()).unwrap_or_else(|| UNKNOWN_PEER.to_owned());
        let waits = self.by_parent.entry((pid, parent));
        match waits.iter_mut().find(|w| w.peer == peer) {
            Some(wait) => {
                wait.count += 1;
                wait.ns += child.sleep_ns;
            }
            None => waits.push(DownstreamWait { peer, count: 1, ns: child.sleep_ns }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        http::HttpFields,
        spans::{Verdict, test_span},
    };

    const MS: u64 = 1_000_000;

    fn call(parent: u64, peer: Option<&str>, sleep_ms: u64) -> SpanRecord {
        let mut span = test_span(sleep_ms, 0, 0, Verdict::Blocked);
        span.kind = SpanKind::Client;
        span.parent_span_id = Some(parent);
        span.http = Some(HttpFields { peer: peer.map(str::to_owned), ..HttpFields::default() });
        span
    }

    #[test]
    fn calls_wait_is_moved_from_the_parents_sleep_to_downstream() {
        let mut downstream = Downstream::default();
        let mut parent = test_span(100, 10, 5, Verdict::Blocked);
        parent.kind = SpanKind::Server;
        for child in [call(parent.span_id, Some("127.0.0.1:8001"), 30), call(parent.span_id, Some("127.0.0.1:8001"), 20)] {
            downstream.on_span(&mut child.clone());
        }
        downstream.on_span(&mut call(parent.span_id, None, 10));
        downstream.on_span(&mut parent);
        assert_eq!(parent.downstream_ns, 60 * MS);
        assert_eq!(parent.sleep_ns, 25 * MS);
        assert_eq!(
            parent.downstream,
            vec![
                DownstreamWait { peer: "127.0.0.1:8001".into(), count: 2, ns: 50 * MS },
                DownstreamWait { peer: UNKNOWN_PEER.into(), count: 1, ns: 10 * MS },
            ]
        );
        assert!(downstream.by_parent.is_empty());
    }

    #[test]
    fn downstream_never_exceeds_the_parents_sleep() {
        let mut downstream = Downstream::default();
        let mut parent = test_span(40, 30, 0, Verdict::OnCpu);
        downstream.on_span(&mut call(parent.span_id, Some("10.0.0.1:80"), 25));
        downstream.on_span(&mut parent);
        assert_eq!((parent.downstream_ns, parent.sleep_ns), (10 * MS, 0));
    }

    #[test]
    fn parents_that_never_arrive_are_forgotten() {
        let mut downstream = Downstream::default();
        for parent in 0..(MAX_WAITING_PARENTS as u64 + 10) {
            downstream.on_span(&mut call(parent, None, 1));
        }
        assert_eq!(downstream.by_parent.len(), MAX_WAITING_PARENTS);
        assert!(!downstream.by_parent.contains_key(&(100, 0)), "the oldest went first");
    }
}
