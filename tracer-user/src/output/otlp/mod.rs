//! Spans as OpenTelemetry traces: the body of an OTLP/HTTP protobuf export
//! (`POST /v1/traces`), built with the OpenTelemetry project's own
//! generated messages, and the collector's answer. Every attribute is
//! listed in docs/otlp.md.
use opentelemetry_proto::tonic::{
    collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
    common::v1::{AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value::Value},
    resource::v1::Resource,
    trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span::SpanKind, status::StatusCode},
};
use std::collections::{BTreeMap, HashMap};

use prost::Message;

use crate::model::{
    recent::Recent,
    spans::{SpanKind as RecordKind, SpanRecord},
};

/// The `Content-Type` of the bodies [`Encoder::encode`] makes.
pub const CONTENT_TYPE: &str = "application/x-protobuf";

/// What every exported span shares (the OTLP resource).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    /// `service.name`.
    pub service_name: String,
    /// `host.name`.
    pub host_name: String,
    /// `process.executable.name`.
    pub executable_name: String,
}

/// Where the spans come from, which decides their ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Traced live (`tracer spans`): markers keep their span id, HTTP spans
    /// take trace id and parent from the request's `traceparent`.
    Traced,
    /// Joined after the fact (`tracer spans join`): the input span is the
    /// application's own, already exported by it; the kernel's breakdown
    /// becomes its child (same trace id, parent the input's span id, a
    /// fresh span id), so the two never collide.
    Joined,
}

/// Random trace and span ids (splitmix64 from a seed the caller draws from
/// the system): unique, never all zero, which is all W3C asks of them.
#[derive(Debug, Clone)]
pub struct Ids {
    state: u64,
}

impl Ids {
    pub fn new(seed: u64) -> Ids {
        Ids { state: seed }
    }

    fn next(&mut self) -> u64 {
        loop {
            self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            if z != 0 {
                return z;
            }
        }
    }

    pub fn trace_id(&mut self) -> Vec<u8> {
        let mut id = self.next().to_be_bytes().to_vec();
        id.extend_from_slice(&self.next().to_be_bytes());
        id
    }

    pub fn span_id(&mut self) -> Vec<u8> {
        self.next().to_be_bytes().to_vec()
    }
}

/// Turns span records into export requests.
pub struct Encoder {
    /// The resource of spans of processes without one of their own.
    resource: Resource,
    /// The resource of each process's spans, when they differ.
    by_pid: HashMap<u32, Resource>,
    origin: Origin,
    ids: Ids,
    /// Trace ids given to outgoing calls ahead of the span they were made
    /// for (which ends, and arrives, after them), by (process, its span
    /// id): that span takes the same.
    trace_of_parent: Recent<(u32, u64), Vec<u8>>,
}

/// Parents whose calls' trace ids are kept at most (the oldest go first:
/// a parent that never arrives).
const MAX_PARENT_TRACES: usize = 4096;

fn resource_of(info: &ResourceInfo) -> Resource {
    Resource {
        attributes: vec![
            string("service.name", &info.service_name),
            string("host.name", &info.host_name),
            string("process.executable.name", &info.executable_name),
        ],
        ..Default::default()
    }
}

impl Encoder {
    pub fn new(info: &ResourceInfo, origin: Origin, ids: Ids) -> Encoder {
        Encoder { resource: resource_of(info), by_pid: HashMap::new(), origin, ids, trace_of_parent: Recent::new(MAX_PARENT_TRACES) }
    }

    /// Spans of process `pid` get this resource from now on.
    pub fn set_resource(&mut self, pid: u32, info: &ResourceInfo) {
        self.by_pid.insert(pid, resource_of(info));
    }

    pub fn has_resource(&self, pid: u32) -> bool {
        self.by_pid.contains_key(&pid)
    }

    /// One `ExportTraceServiceRequest` holding `spans`, as protobuf bytes.
    pub fn encode(&mut self, spans: &[SpanRecord]) -> Vec<u8> {
        self.request(spans).encode_to_vec()
    }

    pub fn request(&mut self, spans: &[SpanRecord]) -> ExportTraceServiceRequest {
        let scope = InstrumentationScope {
            name: "tracer".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        };
        // One ResourceSpans per process with a resource of its own (in
        // PID order), one for all the others.
        let mut groups: BTreeMap<Option<u32>, Vec<Span>> = BTreeMap::new();
        for record in spans {
            let key = self.by_pid.contains_key(&record.pid).then_some(record.pid);
            let span = self.span(record);
            groups.entry(key).or_default().push(span);
        }
        let resource_spans = groups
            .into_iter()
            .map(|(pid, spans)| ResourceSpans {
                resource: Some(pid.and_then(|pid| self.by_pid.get(&pid)).unwrap_or(&self.resource).clone()),
                scope_spans: vec![ScopeSpans { scope: Some(scope.clone()), spans, ..Default::default() }],
                ..Default::default()
            })
            .collect();
        ExportTraceServiceRequest { resource_spans }
    }

    /// The trace of a span made in span `caller` of `pid` (an outgoing call
    /// made while serving it, or the span a call started in another traced
    /// process): the caller's when another of its children has set it, else
    /// `known` (a `traceparent`'s, or one a child of this span set), else one
    /// drawn now; kept for the caller, which arrives after it.
    fn trace_for_call(&mut self, pid: u32, caller: u64, known: Option<Vec<u8>>) -> Vec<u8> {
        if let Some(trace) = self.trace_of_parent.get(&(pid, caller)) {
            return trace.clone();
        }
        let trace = known.unwrap_or_else(|| self.ids.trace_id());
        self.trace_of_parent.insert((pid, caller), trace.clone());
        trace
    }

    /// One span: its ids (see [`Origin`]), times, kind and attributes.
    pub fn span(&mut self, record: &SpanRecord) -> Span {
        let input_trace = record.trace_id.as_deref().and_then(|id| hex_id::<16>(id));
        let (trace_id, span_id, parent_span_id) = match self.origin {
            Origin::Traced => {
                let parent = record.http.as_ref().and_then(|h| h.parent_span_id.as_deref()).and_then(hex_id::<8>);
                let mut parent = input_trace.as_ref().and(parent);
                let span_id =
                    if record.span_id == 0 { self.ids.span_id() } else { record.span_id.to_be_bytes().to_vec() };
                let given = self.trace_of_parent.remove(&(record.pid, record.span_id));
                let trace_id = match record.parent_span_id {
                    Some(caller) => {
                        parent = Some(caller.to_be_bytes().to_vec());
                        self.trace_for_call(record.parent_pid.unwrap_or(record.pid), caller, input_trace.or(given))
                    }
                    None => input_trace.or(given).unwrap_or_else(|| self.ids.trace_id()),
                };
                (trace_id, span_id, parent.unwrap_or_default())
            }
            Origin::Joined => {
                let parent = input_trace.as_ref().map(|_| record.span_id.to_be_bytes().to_vec());
                (input_trace.unwrap_or_else(|| self.ids.trace_id()), self.ids.span_id(), parent.unwrap_or_default())
            }
        };
        let server_error = record.http.as_ref().and_then(|h| h.http_status).is_some_and(|s| s >= 500);
        Span {
            trace_id,
            span_id,
            parent_span_id,
            name: record.name.clone(),
            kind: match record.kind {
                RecordKind::Internal => SpanKind::Internal,
                RecordKind::Server => SpanKind::Server,
                RecordKind::Client => SpanKind::Client,
            } as i32,
            start_time_unix_nano: record.start_unix_ns,
            end_time_unix_nano: record.start_unix_ns.saturating_add(record.wall_ns),
            attributes: attributes(record),
            status: server_error.then(|| Status { code: StatusCode::Error as i32, ..Default::default() }),
            ..Default::default()
        }
    }
}

/// The span's attributes: OpenTelemetry semantic-convention names where
/// one exists, `tracer.` otherwise.
pub fn attributes(r: &SpanRecord) -> Vec<KeyValue> {
    let mut out = vec![
        int("process.pid", r.pid.into()),
        int("thread.id", r.tid.into()),
        int("tracer.wall_ns", r.wall_ns),
        int("tracer.on_cpu_ns", r.on_cpu_ns),
        int("tracer.runq_wait_ns", r.runq_wait_ns),
        int("tracer.throttled_ns", r.throttled_ns),
        int("tracer.stolen_ns", r.stolen_ns),
        int("tracer.iowait_ns", r.iowait_ns),
        int("tracer.uninterruptible_ns", r.uninterruptible_ns),
        int("tracer.sleep_ns", r.sleep_ns),
        int("tracer.downstream_ns", r.downstream_ns),
        int("tracer.between_threads_ns", r.between_threads_ns),
        int("tracer.unaccounted_ns", r.unaccounted_ns),
        int("tracer.syscall_ns", r.syscall_ns),
        int("tracer.migrations", r.migrations),
        int("tracer.voluntary_switches", r.voluntary_switches),
        int("tracer.involuntary_switches", r.involuntary_switches),
        string("tracer.verdict", r.verdict.name()),
    ];
    if let Some(limit) = &r.throttle {
        out.push(string("tracer.throttle.cgroup", &limit.cgroup));
        out.push(string("tracer.throttle.cpu_max", &limit.cpu_max));
    }
    if r.moved_between_threads {
        out.push(KeyValue { key: "tracer.moved_between_threads".into(), value: Some(bool_value(true)), ..Default::default() });
        out.push(int("tracer.tid_end", r.tid_end.into()));
    }
    if let Some(why) = &r.no_breakdown {
        out.push(string("tracer.no_breakdown", why));
    }
    if !r.blame.is_empty() {
        out.push(array("tracer.blame.pids", r.blame.iter().map(|h| int_value(h.pid.into()))));
        out.push(array("tracer.blame.comms", r.blame.iter().map(|h| string_value(&h.comm))));
        out.push(array("tracer.blame.ns", r.blame.iter().map(|h| int_value(h.ns))));
        out.push(array("tracer.blame.cgroups", r.blame.iter().map(|h| string_value(h.cgroup.as_deref().unwrap_or("")))));
    }
    if !r.downstream.is_empty() {
        out.push(array("tracer.downstream.peers", r.downstream.iter().map(|w| string_value(&w.peer))));
        out.push(array("tracer.downstream.counts", r.downstream.iter().map(|w| int_value(w.count.into()))));
        out.push(array("tracer.downstream.ns", r.downstream.iter().map(|w| int_value(w.ns))));
    }
    if !r.top_syscalls.is_empty() {
        out.push(array("tracer.top_syscalls.names", r.top_syscalls.iter().map(|s| string_value(&s.name))));
        out.push(array("tracer.top_syscalls.counts", r.top_syscalls.iter().map(|s| int_value(s.count.into()))));
        out.push(array("tracer.top_syscalls.ns", r.top_syscalls.iter().map(|s| int_value(s.ns))));
    }
    if let Some(http) = &r.http {
        out.push(string("http.request.method", &http.http_method));
        out.push(string("url.path", &http.http_path));
        if let Some(status) = http.http_status {
            out.push(int("http.response.status_code", status.into()));
        }
        if let Some(id) = &http.request_id {
            out.push(string("tracer.request_id", id));
        }
        if let Some(peer) = http.peer.as_deref().and_then(|p| p.parse::<std::net::SocketAddr>().ok()) {
            out.push(string("server.address", &peer.ip().to_string()));
            out.push(int("server.port", peer.port().into()));
        }
    }
    out
}

/// What the collector's answer to an export says was refused: spans and
/// its message (OTLP partial success). An empty or unreadable answer
/// refused nothing.
pub fn rejected(body: &[u8]) -> Option<(u64, String)> {
    let partial = ExportTraceServiceResponse::decode(body).ok()?.partial_success?;
    (partial.rejected_spans > 0).then(|| (partial.rejected_spans as u64, partial.error_message))
}

/// `N` bytes from `2 N` hex digits, unless all zero (an invalid id).
fn hex_id<const N: usize>(text: &str) -> Option<Vec<u8>> {
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..N).map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()).collect();
    bytes.filter(|b| b.iter().any(|&x| x != 0))
}

fn int_value(v: u64) -> AnyValue {
    AnyValue { value: Some(Value::IntValue(v.min(i64::MAX as u64) as i64)) }
}

fn string_value(v: &str) -> AnyValue {
    AnyValue { value: Some(Value::StringValue(v.to_owned())) }
}

fn bool_value(v: bool) -> AnyValue {
    AnyValue { value: Some(Value::BoolValue(v)) }
}

fn int(key: &str, v: u64) -> KeyValue {
    KeyValue { key: key.into(), value: Some(int_value(v)), ..Default::default() }
}

fn string(key: &str, v: &str) -> KeyValue {
    KeyValue { key: key.into(), value: Some(string_value(v)), ..Default::default() }
}

fn array(key: &str, values: impl Iterator<Item = AnyValue>) -> KeyValue {
    let values = values.collect();
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(Value::ArrayValue(ArrayValue { values })) }), ..Default::default() }
}

#[cfg(test)]
mod tests;
