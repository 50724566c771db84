//! Requests across traced processes. A request one traced process sends
//! (an outgoing call, e.g. a proxy's upstream request) and the span it
//! starts in another (the application's) carry the same `X-Request-Id`:
//! the call becomes that span's parent, and the request the call was made
//! for learns what became of it downstream.
//!
//! Arrival order: the outgoing request's head is captured at its write, so
//! its request id is known before the span it starts ends; that span ends
//! before the call reads its response, and the call before the request it
//! was made for is answered.
use super::{
    recent::Recent,
    spans::{SpanKind, SpanRecord, Verdict},
};

/// Entries each table keeps at most; the oldest are forgotten first (a
/// call whose response never came, a span whose parent was not traced).
const MAX_KEPT: usize = 4096;

/// An outgoing call: its process and span id.
type Call = (u32, u64);

/// What a call's request became in the process it reached.
#[derive(Debug, Clone, Default)]
struct Outcome {
    name: String,
    pid: u32,
    verdict: Option<Verdict>,
    /// Who held the CPU longest while it waited for one.
    held_by: Option<(String, u32)>,
}

/// A call made inside a span: its id, peer and wait.
#[derive(Debug, Clone)]
struct CallMade {
    span_id: u64,
    peer: String,
    waited_ns: u64,
}

pub struct Flows {
    calls_by_request_id: Recent<String, Call>,
    outcome_of_call: Recent<Call, Outcome>,
    calls_of_parent: Recent<(u32, u64), Vec<CallMade>>,
}

impl Default for Flows {
    fn default() -> Self {
        Flows {
            calls_by_request_id: Recent::new(MAX_KEPT),
            outcome_of_call: Recent::new(MAX_KEPT),
            calls_of_parent: Recent::new(MAX_KEPT),
        }
    }
}

impl Flows {
    /// Process `pid` wrote a request carrying `request_id` in its outgoing
    /// call `span_id` (the call's span arrives later).
    pub fn on_outgoing_request(&mut self, request_id: String, pid: u32, span_id: u64) {
        self.calls_by_request_id.insert(request_id, (pid, span_id));
    }

    /// Before the span's downstream waits are known: a request another
    /// traced process sent gets that call as its parent; an outgoing call
    /// is kept for the span it was made in.
    pub fn link(&mut self, record: &mut SpanRecord) {
        match record.kind {
            SpanKind::Client => {
                let (Some(parent), Some(http)) = (record.parent_span_id, record.http.as_ref()) else { return };
                let peer = http.peer.clone().unwrap_or_else(|| "an unknown peer".to_owned());
                let call = CallMade { span_id: record.span_id, peer, waited_ns: record.sleep_ns };
                self.calls_of_parent.entry((record.pid, parent)).push(call);
            }
            SpanKind::Server => {
                let Some(request_id) = record.http.as_ref().and_then(|h| h.request_id.as_ref()) else { return };
                let Some(&(pid, call)) = self.calls_by_request_id.get(request_id) else { return };
                if pid == record.pid {
                    return;
                }
                self.calls_by_request_id.remove(request_id);
                record.parent_span_id = Some(call);
                record.parent_pid = Some(pid);
                let held_by = record.blame.iter().find(|h| h.pid != 0).map(|h| (h.comm.to_string(), h.pid));
                let outcome =
                    Outcome { name: record.name.clone(), pid: record.pid, verdict: Some(record.verdict), held_by };
                self.outcome_of_call.insert((pid, call), outcome);
            }
            SpanKind::Internal => {}
        }
    }

    /// After the span's downstream waits are known: when waiting on peers
    /// is its largest part, says where the longest call's time went.
    pub fn explain(&mut self, record: &mut SpanRecord) {
        if record.kind == SpanKind::Client {
            return;
        }
        let Some(calls) = self.calls_of_parent.remove(&(record.pid, record.span_id)) else { return };
        let outcomes: Vec<Option<Outcome>> =
            calls.iter().map(|call| self.outcome_of_call.remove(&(record.pid, call.span_id))).collect();
        let other_parts = [record.on_cpu_ns, record.runq_wait_ns, record.iowait_ns, record.uninterruptible_ns, record.sleep_ns];
        if record.downstream_ns == 0 || other_parts.iter().any(|&part| part > record.downstream_ns) {
            return;
        }
        let Some((call, outcome)) = calls.iter().zip(outcomes).max_by_key(|(call, _)| call.waited_ns) else { return };
        let waited = format!("waited {:.1} ms on {}", call.waited_ns as f64 / 1e6, call.peer);
        record.downstream_verdict = Some(match outcome {
            Some(outcome) => format!("{waited}, where {}", outcome.describe()),
            None => format!("{waited} (not traced)"),
        });
    }
}

impl Outcome {
    fn describe(&self) -> String {
        let verdict = self.verdict.map_or("unknown", Verdict::name);
        let behind = match (self.verdict, &self.held_by) {
            (Some(Verdict::CpuContention), Some((comm, pid))) => format!(" behind {comm} (pid {pid})"),
            _ => String::new(),
        };
        format!("`{}` (pid {}) was {verdict}{behind}", self.name, self.pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        downstream::Downstream,
        http::HttpFields,
        spans::{Holder, test_span},
    };

    const PROXY: u32 = 10;
    const APP: u32 = 20;

    fn http(request_id: Option<&str>, peer: Option<&str>) -> Option<HttpFields> {
        Some(HttpFields {
            request_id: request_id.map(str::to_owned),
            peer: peer.map(str::to_owned),
            ..HttpFields::default()
        })
    }

    /// The three spans of one proxied request, in the order they arrive:
    /// the application's, the proxy's call, the proxy's own.
    fn proxied(app_verdict: Verdict) -> (SpanRecord, SpanRecord, SpanRecord) {
        let mut app = test_span(30, 10, 20, app_verdict);
        (app.pid, app.span_id, app.kind, app.http) = (APP, 3, SpanKind::Server, http(Some("r-1"), None));
        app.blame = vec![Holder { pid: 77, comm: "load-gen".into(), cgroup: None, ns: 20_000_000 }];
        let mut call = test_span(31, 0, 0, Verdict::Blocked);
        (call.pid, call.span_id, call.kind) = (PROXY, 2, SpanKind::Client);
        (call.parent_span_id, call.http) = (Some(1), http(Some("r-1"), Some("127.0.0.1:8001")));
        let mut root = test_span(33, 1, 0, Verdict::Blocked);
        (root.pid, root.span_id, root.kind, root.http) = (PROXY, 1, SpanKind::Server, http(Some("r-1"), None));
        (app, call, root)
    }

    /// What the aggregator does with each span, in arrival order.
    fn arrive(flows: &mut Flows, downstream: &mut Downstream, spans: [&mut SpanRecord; 3]) {
        for span in spans {
            flows.link(span);
            downstream.on_span(span);
            flows.explain(span);
        }
    }

    #[test]
    fn a_proxied_request_is_its_calls_child_and_the_root_says_where_its_time_went() {
        let (mut flows, mut downstream) = (Flows::default(), Downstream::default());
        flows.on_outgoing_request("r-1".into(), PROXY, 2);
        let (mut app, mut call, mut root) = proxied(Verdict::CpuContention);
        arrive(&mut flows, &mut downstream, [&mut app, &mut call, &mut root]);
        assert_eq!((app.parent_span_id, app.parent_pid), (Some(2), Some(PROXY)));
        assert_eq!(root.downstream_ns, 31_000_000);
        assert_eq!(
            root.downstream_verdict.as_deref(),
            Some(
                "waited 31.0 ms on 127.0.0.1:8001, where `GET /cpu` (pid 20) was cpu-contention behind load-gen (pid 77)"
            )
        );
        assert_eq!(root.verdict, Verdict::Blocked, "the per-span verdict stays");
        assert!(flows.calls_of_parent.is_empty() && flows.outcome_of_call.is_empty());
    }

    #[test]
    fn a_request_from_an_untraced_caller_or_from_itself_gets_no_parent() {
        let (mut flows, mut downstream) = (Flows::default(), Downstream::default());
        let (mut app, mut call, mut root) = proxied(Verdict::OnCpu);
        arrive(&mut flows, &mut downstream, [&mut app, &mut call, &mut root]);
        assert_eq!(app.parent_span_id, None);
        assert_eq!(root.downstream_verdict.as_deref(), Some("waited 31.0 ms on 127.0.0.1:8001 (not traced)"));

        flows.on_outgoing_request("r-2".into(), APP, 9);
        let (mut app, ..) = proxied(Verdict::OnCpu);
        app.http = http(Some("r-2"), None);
        flows.link(&mut app);
        assert_eq!(app.parent_span_id, None, "a process calling itself is not a flow between processes");
    }

    #[test]
    fn the_root_says_nothing_when_waiting_downstream_is_not_its_largest_part() {
        let (mut flows, mut downstream) = (Flows::default(), Downstream::default());
        flows.on_outgoing_request("r-1".into(), PROXY, 2);
        let (mut app, mut call, mut root) = proxied(Verdict::OnCpu);
        root.wall_ns = 100_000_000;
        root.on_cpu_ns = 69_000_000;
        arrive(&mut flows, &mut downstream, [&mut app, &mut call, &mut root]);
        assert_eq!(app.parent_span_id, Some(2));
        assert_eq!(root.downstream_verdict, None);
    }

    #[test]
    fn tables_forget_their_oldest_entries() {
        let mut flows = Flows::default();
        for call in 0..(MAX_KEPT as u64 + 5) {
            flows.on_outgoing_request(format!("r-{call}"), PROXY, call);
        }
        assert_eq!(flows.calls_by_request_id.len(), MAX_KEPT);
        assert!(!flows.calls_by_request_id.contains_key(&"r-0".to_owned()));
        assert!(flows.calls_by_request_id.contains_key(&format!("r-{}", MAX_KEPT + 4)));
    }
}
