use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;

use super::*;
use crate::model::{
    http::HttpFields,
    spans::{SyscallTime, Verdict, test_span},
};

fn info() -> ResourceInfo {
    ResourceInfo { service_name: "shop".into(), host_name: "box".into(), executable_name: "shop-server".into() }
}

fn http_span(traceparent: Option<(&str, &str)>) -> SpanRecord {
    let mut span = test_span(20, 5, 10, Verdict::CpuContention);
    span.span_id = 0x0123_4567_89ab_cdef;
    span.kind = crate::model::spans::SpanKind::Server;
    span.trace_id = traceparent.map(|(trace, _)| trace.to_owned());
    span.http = Some(HttpFields {
        http_method: "GET".into(),
        http_path: "/cpu".into(),
        http_status: Some(503),
        request_id: Some("req-1".into()),
        trace_id: span.trace_id.clone(),
        parent_span_id: traceparent.map(|(_, parent)| parent.to_owned()),
        ..HttpFields::default()
    });
    span
}

/// Attributes by key, each value as text (arrays as `[a, b]`).
fn attrs(span: &Span) -> BTreeMap<String, String> {
    fn text(value: &AnyValue) -> String {
        match value.value.as_ref().unwrap() {
            Value::IntValue(v) => v.to_string(),
            Value::StringValue(v) => v.clone(),
            Value::BoolValue(v) => v.to_string(),
            Value::ArrayValue(a) => format!("[{}]", a.values.iter().map(text).collect::<Vec<_>>().join(", ")),
            other => panic!("unexpected {other:?}"),
        }
    }
    span.attributes.iter().map(|kv| (kv.key.clone(), text(kv.value.as_ref().unwrap()))).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_request_round_trips_with_its_resource_and_every_breakdown_attribute() {
    let mut span = test_span(30, 10, 15, Verdict::CpuContention);
    span.top_syscalls = vec![SyscallTime { name: "read".into(), count: 3, ns: 7_000 }];
    let mut encoder = Encoder::new(&info(), Origin::Traced, Ids::new(1));
    let body = encoder.encode(&[span.clone(), http_span(None)]);
    let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
    let [resource_spans] = request.resource_spans.as_slice() else { panic!("one resource") };
    let resource: BTreeMap<String, String> = resource_spans
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .map(|kv| (kv.key.clone(), format!("{:?}", kv.value.as_ref().unwrap().value.as_ref().unwrap())))
        .collect();
    assert_eq!(resource["service.name"], "StringValue(\"shop\")");
    assert_eq!(resource["host.name"], "StringValue(\"box\")");
    assert_eq!(resource["process.executable.name"], "StringValue(\"shop-server\")");
    let scope = &resource_spans.scope_spans[0];
    assert_eq!(scope.scope.as_ref().unwrap().name, "tracer");
    let [marker, http] = scope.spans.as_slice() else { panic!("two spans") };

    assert_eq!(marker.name, "GET /cpu");
    assert_eq!(marker.span_id, span.span_id.to_be_bytes(), "a marker span keeps its id");
    assert_eq!(marker.trace_id.len(), 16);
    assert!(marker.trace_id.iter().any(|&b| b != 0), "a fresh trace id");
    assert!(marker.parent_span_id.is_empty());
    assert_eq!(marker.kind, SpanKind::Internal as i32);
    assert_eq!(marker.end_time_unix_nano - marker.start_time_unix_nano, span.wall_ns);
    let a = attrs(marker);
    assert_eq!((a["process.pid"].as_str(), a["thread.id"].as_str()), ("100", "101"));
    let parts: u64 = ["on_cpu", "runq_wait", "iowait", "uninterruptible", "sleep", "downstream"]
        .iter()
        .map(|p| a[&format!("tracer.{p}_ns")].parse::<u64>().unwrap())
        .sum();
    assert_eq!(parts, span.wall_ns);
    assert_eq!(a["tracer.verdict"], "cpu-contention");
    assert_eq!(a["tracer.blame.comms"], "[load-gen]");
    assert_eq!(a["tracer.blame.pids"], "[812]");
    assert_eq!(a["tracer.blame.ns"], format!("[{}]", 15_000_000));
    assert_eq!(a["tracer.top_syscalls.names"], "[read]");
    assert_eq!(a["tracer.top_syscalls.counts"], "[3]");
    assert!(!a.contains_key("http.request.method"));

    assert_eq!(http.kind, SpanKind::Server as i32);
    assert_ne!(http.trace_id, marker.trace_id, "each span without a traceparent gets its own trace");
    let a = attrs(http);
    assert_eq!(a["http.request.method"], "GET");
    assert_eq!(a["url.path"], "/cpu");
    assert_eq!(a["http.response.status_code"], "503");
    assert_eq!(a["tracer.request_id"], "req-1");
    assert_eq!(http.status.as_ref().map(|s| s.code), Some(StatusCode::Error as i32), "a 5xx is an error");
}

#[test]
fn traceparent_puts_the_span_in_the_callers_trace() {
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut encoder = Encoder::new(&info(), Origin::Traced, Ids::new(7));
    let span = encoder.span(&http_span(Some((trace, "00f067aa0ba902b7"))));
    assert_eq!(hex(&span.trace_id), trace);
    assert_eq!(hex(&span.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(hex(&span.span_id), "0123456789abcdef");

    // A trace id that is not 32 hex digits is not used, nor its parent.
    let span = encoder.span(&http_span(Some(("not-a-trace-id", "00f067aa0ba902b7"))));
    assert_ne!(hex(&span.trace_id), trace);
    assert!(span.parent_span_id.is_empty());
}

/// An outgoing call made in `caller`, with the caller's trace if it had one.
fn call_span(caller: &SpanRecord) -> SpanRecord {
    let mut call = http_span(None);
    call.span_id = caller.span_id + 1;
    call.kind = crate::model::spans::SpanKind::Client;
    call.parent_span_id = Some(caller.span_id);
    call.trace_id = caller.trace_id.clone();
    call.http.as_mut().unwrap().peer = Some("127.0.0.1:8001".into());
    call
}

#[test]
fn an_outgoing_call_is_a_client_child_in_its_callers_trace() {
    let mut encoder = Encoder::new(&info(), Origin::Traced, Ids::new(5));
    // The call ends, and is exported, before the request it was made for.
    let caller = http_span(None);
    let call = encoder.span(&call_span(&caller));
    let request = encoder.span(&caller);
    assert_eq!(call.kind, SpanKind::Client as i32);
    assert_eq!(call.parent_span_id, request.span_id);
    assert_eq!(call.trace_id, request.trace_id, "one trace");
    let a = attrs(&call);
    assert_eq!((a["server.address"].as_str(), a["server.port"].as_str()), ("127.0.0.1", "8001"));
    assert!(encoder.trace_of_parent.is_empty(), "the request took the trace it was kept for");

    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller = http_span(Some((trace, "00f067aa0ba902b7")));
    let call = encoder.span(&call_span(&caller));
    let request = encoder.span(&caller);
    assert_eq!((hex(&call.trace_id), hex(&request.trace_id)), (trace.to_owned(), trace.to_owned()));
    assert_eq!(call.parent_span_id, request.span_id);
    assert_eq!(hex(&request.parent_span_id), "00f067aa0ba902b7", "the caller keeps its traceparent's parent");
}

#[test]
fn a_request_across_processes_is_one_trace() {
    let mut encoder = Encoder::new(&info(), Origin::Traced, Ids::new(7));
    // The proxy's request, its call upstream, and the application's span
    // for that call (another process), exported in the order they arrive.
    let root = http_span(None);
    let call = call_span(&root);
    let mut app = http_span(None);
    (app.pid, app.span_id, app.parent_span_id, app.parent_pid) = (root.pid + 1, 99, Some(call.span_id), Some(root.pid));
    let app = encoder.span(&app);
    let call = encoder.span(&call);
    let root = encoder.span(&root);
    assert_eq!(app.parent_span_id, call.span_id);
    assert_eq!(call.parent_span_id, root.span_id);
    assert_eq!((&app.trace_id, &call.trace_id), (&root.trace_id, &root.trace_id), "one trace");
    assert!(encoder.trace_of_parent.is_empty(), "each kept trace was taken");
}

#[test]
fn a_joined_span_becomes_the_child_of_the_applications_own() {
    let mut joined = test_span(5, 5, 0, Verdict::OnCpu);
    joined.trace_id = Some("4BF92F3577B34DA6A3CE929D0E0E4736".into());
    joined.span_id = 0x00f0_67aa_0ba9_02b7;
    let mut encoder = Encoder::new(&info(), Origin::Joined, Ids::new(3));
    let span = encoder.span(&joined);
    assert_eq!(hex(&span.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(hex(&span.parent_span_id), "00f067aa0ba902b7");
    assert_ne!(span.span_id, span.parent_span_id, "a span id of its own");
    joined.trace_id = None;
    let span = encoder.span(&joined);
    assert!(span.parent_span_id.is_empty(), "no trace, no parent");
}

#[test]
fn ids_are_unique_and_never_zero() {
    let mut ids = Ids::new(0);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10_000 {
        let id = ids.span_id();
        assert!(id.iter().any(|&b| b != 0));
        assert!(seen.insert(id));
    }
    assert_eq!(ids.trace_id().len(), 16);
}

#[test]
fn partial_success_is_read_from_the_answer() {
    let answer = ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess { rejected_spans: 2, error_message: "too old".into() }),
    };
    assert_eq!(rejected(&answer.encode_to_vec()), Some((2, "too old".into())));
    assert_eq!(rejected(b""), None, "an empty answer is full success");
    assert_eq!(rejected(b"\xff\xff not protobuf"), None);
}

#[test]
fn spans_of_several_processes_carry_their_own_resource() {
    let mut encoder = Encoder::new(&info(), Origin::Traced, Ids::new(5));
    let proxy = ResourceInfo { service_name: "nginx".into(), host_name: "box".into(), executable_name: "nginx".into() };
    encoder.set_resource(7, &proxy);
    let mut of_proxy = test_span(10, 5, 0, Verdict::OnCpu);
    of_proxy.pid = 7;
    let of_app = test_span(20, 5, 0, Verdict::OnCpu);
    let mut also_proxy = of_proxy.clone();
    also_proxy.span_id += 1;
    let request = encoder.request(&[of_app, of_proxy, also_proxy]);
    let services: Vec<(String, usize)> = request
        .resource_spans
        .iter()
        .map(|group| {
            let service = group.resource.as_ref().unwrap().attributes.iter().find(|kv| kv.key == "service.name");
            let Some(Value::StringValue(name)) = service.and_then(|kv| kv.value.as_ref()?.value.clone()) else {
                panic!("service.name")
            };
            (name, group.scope_spans[0].spans.len())
        })
        .collect();
    assert_eq!(services, [("shop".to_owned(), 1), ("nginx".to_owned(), 2)], "the others first, then by PID");
}
