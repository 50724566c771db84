use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    sync::mpsc,
};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use super::*;
use crate::model::spans::{Verdict, test_span};

fn info() -> ResourceInfo {
    ResourceInfo { service_name: "s".into(), host_name: "h".into(), executable_name: "e".into() }
}

fn span(id: u64) -> SpanRecord {
    let mut span = test_span(2, 1, 0, Verdict::OnCpu);
    span.span_id = id;
    span
}

#[test]
fn endpoints_get_the_traces_path_and_bad_urls_say_why() {
    let url = |text: &str| Endpoint::parse(text).map(|e| e.to_string());
    assert_eq!(url("http://127.0.0.1:4318").as_deref(), Ok("http://127.0.0.1:4318/v1/traces"));
    assert_eq!(url("http://collector:4318/").as_deref(), Ok("http://collector:4318/v1/traces"));
    assert_eq!(url("http://[::1]:4318/custom/traces").as_deref(), Ok("http://[::1]:4318/custom/traces"));
    assert_eq!(url("https://127.0.0.1:4318"), Err(EndpointError::Scheme("https://127.0.0.1:4318".into())));
    assert_eq!(url("127.0.0.1:4318"), Err(EndpointError::NotAUrl("127.0.0.1:4318".into())), "no scheme");
    assert!(matches!(url("not a url"), Err(EndpointError::NotAUrl(_))));
    assert!(matches!(url("/v1/traces"), Err(EndpointError::NotAUrl(_))));
    assert!(matches!(url(""), Err(EndpointError::NotAUrl(_))));
    assert!(matches!(url("http://collector:99999"), Err(EndpointError::NotAUrl(_))), "port out of range");
}

/// A collector on loopback that answers each export with `answer`, and
/// hands over the spans it received, one decoded request at a time.
fn collector(answer: ExportTraceServiceResponse) -> (Endpoint, mpsc::Receiver<ExportTraceServiceRequest>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = Endpoint::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            let answer = answer.encode_to_vec();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                loop {
                    let mut length = None;
                    let mut content_type = None;
                    let mut line = String::new();
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    assert_eq!(request_line.trim(), "POST /v1/traces HTTP/1.1");
                    loop {
                        line.clear();
                        reader.read_line(&mut line).unwrap();
                        if line.trim().is_empty() {
                            break;
                        }
                        let (name, value) = line.split_once(':').unwrap();
                        match name.to_ascii_lowercase().as_str() {
                            "content-length" => length = value.trim().parse::<usize>().ok(),
                            "content-type" => content_type = Some(value.trim().to_owned()),
                            _ => {}
                        }
                    }
                    assert_eq!(content_type.as_deref(), Some("application/x-protobuf"));
                    let mut body = vec![0; length.expect("a Content-Length")];
                    reader.read_exact(&mut body).unwrap();
                    let _ = tx.send(ExportTraceServiceRequest::decode(body.as_slice()).unwrap());
                    write!(writer, "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n\r\n", answer.len())
                        .unwrap();
                    writer.write_all(&answer).unwrap();
                }
            });
        }
    });
    (endpoint, rx)
}

fn span_ids(requests: &[ExportTraceServiceRequest]) -> Vec<u64> {
    let mut ids: Vec<u64> = requests
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| u64::from_be_bytes(s.span_id.as_slice().try_into().unwrap()))
        .collect();
    ids.sort();
    ids
}

#[test]
fn every_span_is_sent_once_in_batches() {
    let (endpoint, received) = collector(ExportTraceServiceResponse::default());
    let mut exporter = Exporter::start_with(endpoint, Resources::One(info()), Origin::Traced, 1, EXPORT_TIMEOUT).unwrap();
    for id in 1..=1_200 {
        exporter.send(span(id));
    }
    let totals = exporter.finish();
    assert_eq!(totals, ExportTotals { sent: 1_200, ..Default::default() });
    let requests: Vec<_> = received.try_iter().collect();
    assert!(requests.len() >= 3, "batches of at most {BATCH_SPANS}: {}", requests.len());
    assert_eq!(span_ids(&requests), (1..=1_200).collect::<Vec<_>>());
}

#[test]
fn spans_the_collector_refuses_are_counted() {
    let answer = ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess { rejected_spans: 1, error_message: "no".into() }),
    };
    let (endpoint, _received) = collector(answer);
    let mut exporter = Exporter::start_with(endpoint, Resources::One(info()), Origin::Traced, 1, EXPORT_TIMEOUT).unwrap();
    exporter.send(span(1));
    exporter.send(span(2));
    let totals = exporter.finish();
    assert_eq!((totals.sent, totals.refused, totals.lost()), (1, 1, 1));
}

#[test]
fn an_unreachable_collector_costs_failures_not_waiting() {
    // A port nothing listens on: connections are refused.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = Endpoint::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let mut exporter = Exporter::start_with(endpoint.clone(), Resources::One(info()), Origin::Traced, 1, EXPORT_TIMEOUT).unwrap();
    for id in 1..=600 {
        exporter.send(span(id));
    }
    let totals = exporter.finish();
    assert_eq!((totals.sent, totals.failed, totals.dropped), (0, 600, 0));
    assert!(totals.failed_requests >= 1);
    let line = summary_line(&endpoint, &totals);
    assert!(line.contains("0 spans sent, 600 not sent"), "{line}");
}

#[test]
fn a_collector_that_does_not_answer_fills_the_queue_and_the_rest_is_dropped() {
    // Accepts connections, never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = Endpoint::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    let mut exporter =
        Exporter::start_with(endpoint, Resources::One(info()), Origin::Traced, 1, Duration::from_millis(300)).unwrap();
    let offered = QUEUE_SPANS as u64 + 5 * BATCH_SPANS as u64;
    let started = Instant::now();
    for id in 1..=offered {
        exporter.send(span(id));
    }
    assert!(started.elapsed() < Duration::from_millis(250), "sending never waits: {:?}", started.elapsed());
    let totals = exporter.finish();
    drop(listener);
    assert_eq!(totals.sent, 0);
    assert!(totals.dropped > 0, "{totals:?}");
    assert_eq!(totals.dropped + totals.failed, offered, "every span is accounted for: {totals:?}");
}

#[test]
fn the_resource_names_the_process_unless_told_otherwise() {
    let me = std::process::id();
    let own = resource(Some(me), "x", None);
    assert_eq!(own.service_name, procfs::comm_of(me).unwrap());
    assert_eq!(own.executable_name, procfs::executable_name(me).unwrap());
    assert!(!own.host_name.is_empty());
    let named = resource(None, "server", Some("shop"));
    assert_eq!((named.service_name.as_str(), named.executable_name.as_str()), ("shop", "server"));
}
