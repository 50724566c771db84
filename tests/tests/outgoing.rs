//! `tracer spans --http` on a server that calls another: each outgoing
//! exchange is a client span under the request's span, whose breakdown
//! shows the wait on that peer as `downstream_ns`.
use tracer_tests::*;
use tracer_user::model::spans::SpanKind;

/// What the downstream server sleeps before answering (`/call` asks it for
/// `/sleep?ms=30`).
const DOWNSTREAM_SLEEP_NS: u64 = 30_000_000;

/// The call's duration as the calling thread timed it (`X-Call-Ns`).
fn call_ns(response: &str) -> u64 {
    let line = response.lines().find_map(|l| l.strip_prefix("X-Call-Ns: ")).expect("X-Call-Ns header");
    line.trim().parse().expect("nanoseconds")
}

#[test]
fn outgoing_calls_are_child_spans_waiting_on_their_peer() {
    if !bpf_available("outgoing_calls_are_child_spans_waiting_on_their_peer") {
        return;
    }
    let downstream = Server::start_with(None, &["--no-markers"]);
    let server = Server::start_with(None, &["--no-markers"]);
    let fresh = format!("/call?port={}", downstream.port);
    let kept = format!("/call?port={}&reuse=1", downstream.port);
    // Opens the kept connection before tracing: its peer is not known.
    server.get(&kept);
    let peer = format!("127.0.0.1:{}", downstream.port);
    // The lean path (the HTTP syscalls' own tracepoints) and every syscall's.
    for probes in [&["--http"][..], &["--http", "--all-syscalls"]] {
        let mut caller_ns = Vec::new();
        let (mut spans, stderr) = spans_around(&server, probes, || {
            for path in [&fresh, &fresh, &kept] {
                caller_ns.push(call_ns(&server.get_with_headers(path).1));
            }
        });
        spans.sort_by_key(|s| s.start_unix_ns);
        let (requests, calls): (Vec<&SpanRecord>, Vec<&SpanRecord>) =
            spans.iter().partition(|s| s.kind == SpanKind::Server);
        assert_eq!((requests.len(), calls.len()), (3, 3), "{probes:?}: {spans:#?}\n{stderr:?}");
        for (i, (request, caller)) in requests.iter().zip(&caller_ns).enumerate() {
            let call = calls.iter().find(|c| c.parent_span_id == Some(request.span_id)).unwrap_or_else(|| {
                panic!("{probes:?}: no call under {request:#?} in {calls:#?}");
            });
            assert_eq!(call.kind, SpanKind::Client);
            let http = call.http.as_ref().expect("HTTP fields");
            assert_eq!((http.http_method.as_str(), http.http_path.as_str(), http.http_status), ("GET", "/sleep", Some(200)));
            let expected_peer = (i < 2).then_some(peer.as_str());
            assert_eq!(http.peer.as_deref(), expected_peer, "{call:#?}");
            assert!(call.wall_ns >= DOWNSTREAM_SLEEP_NS, "{call:#?}");
            assert_close("call wall vs the caller's timing", call.wall_ns, *caller, 0.0, 3_000_000);
            assert_close("downstream part", request.downstream_ns, *caller, 0.10, 0);
            assert_eq!(request.downstream.len(), 1, "{request:#?}");
            assert_eq!(request.downstream[0].peer, expected_peer.unwrap_or("(unknown)"));
            assert_eq!(request.downstream[0].count, 1);
            assert_parts_sum_to_wall(request);
            assert_parts_sum_to_wall(call);
        }
    }
}
