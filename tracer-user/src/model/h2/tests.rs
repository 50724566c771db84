use httlib_hpack::Encoder;
use tracer_common::{
    H2Record, HttpCaptureKind, SPAN_CLIENT, SPAN_H2C_UPGRADE, SPAN_HANDED_OFF, SPAN_HTTP, SpanEvent, ThreadTotals,
};

use super::{
    super::http::HttpFields,
    H2Counts, H2Span, H2Streams,
    frames::{CONTINUATION, DATA, END_HEADERS, END_STREAM, HEADERS, PADDED, PREFACE, RST_STREAM, SETTINGS},
};

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut bytes = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    bytes.extend_from_slice(&stream.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// The client's preface: the magic, then its SETTINGS.
fn client_preface() -> Vec<u8> {
    let mut bytes = PREFACE.to_vec();
    bytes.extend(frame(SETTINGS, 0, 0, &[]));
    bytes
}

/// A client's first bytes: its preface, then `GET path` on `stream`.
fn preface_and_get(requests: &mut Encoder<'_>, flags: u8, stream: u32, path: &str) -> Vec<u8> {
    let mut bytes = client_preface();
    bytes.extend(frame(HEADERS, flags, stream, &block(requests, &[(":method", "GET"), (":path", path)])));
    bytes
}

/// Huffman-coded values, indexed when the table has them, added to it
/// when not (as nginx and Go encode).
fn block(encoder: &mut Encoder<'_>, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (name, value) in headers {
        let flags = Encoder::HUFFMAN_VALUE | Encoder::WITH_INDEXING | Encoder::BEST_FORMAT;
        encoder.encode((name.as_bytes().to_vec(), value.as_bytes().to_vec(), flags), &mut bytes).unwrap();
    }
    bytes
}

/// One connection of process 7 (id 1), fed record by record.
struct Conn {
    streams: H2Streams,
    done: Vec<H2Span>,
    /// Reads and writes so far, as the kernel numbers them.
    seq: [u32; 2],
}

impl Conn {
    fn new() -> Conn {
        Conn { streams: H2Streams::default(), done: Vec::new(), seq: [0, 0] }
    }

    /// A read (`read`) or write of `bytes` by thread `tid` at `ms`, of which
    /// only the first `copied` were copied; its on-CPU total is `ms` too.
    fn io(&mut self, read: bool, tid: u32, ms: u64, bytes: &[u8], copied: usize) {
        let kind = if read { HttpCaptureKind::H2Read } else { HttpCaptureKind::H2Write };
        let seq = &mut self.seq[usize::from(!read)];
        *seq += 1;
        let record = H2Record {
            span_id: 1,
            tgid: 7,
            tid,
            kind: kind as u32,
            len: copied as u32,
            ts_ns: ms * 1_000_000,
            transferred: bytes.len() as u64,
            cpu: 0,
            seq: *seq,
            totals: ThreadTotals { on_cpu_ns: ms * 1_000_000, ..ThreadTotals::default() },
        };
        self.streams.on_record(&record, &bytes[..copied], &mut self.done);
    }

    fn whole(&mut self, read: bool, tid: u32, ms: u64, bytes: &[u8]) {
        self.io(read, tid, ms, bytes, bytes.len());
    }
}

#[test]
fn each_stream_of_a_server_connection_is_a_span_across_reads_and_writes() {
    let (mut requests, mut responses) = (Encoder::default(), Encoder::default());
    let mut conn = Conn::new();
    let mut first = client_preface();
    let get = |path| [(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", "x"), ("x-request-id", "r1")];
    first.extend(frame(HEADERS, END_STREAM | END_HEADERS, 1, &block(&mut requests, &get("/a?q=1"))));
    conn.whole(true, 10, 1, &first);
    // Stream 3's frame header is cut between two reads; its block uses the
    // table entries stream 1's left (the same headers but the path).
    let third = frame(HEADERS, END_STREAM | END_HEADERS, 3, &block(&mut requests, &get("/b")));
    conn.whole(true, 10, 2, &third[..4]);
    conn.whole(true, 10, 3, &third[4..]);
    // Stream 1: the server's preface, the headers and the whole body in one write.
    let mut answer = frame(SETTINGS, 0, 0, &[]);
    answer.extend(frame(HEADERS, END_HEADERS, 1, &block(&mut responses, &[(":status", "200")])));
    answer.extend(frame(DATA, END_STREAM, 1, &[b'x'; 100]));
    // Its frames but the SETTINGS.
    let first_answer = answer.len() as u64 - 9;
    conn.whole(false, 10, 5, &answer);
    assert_eq!(conn.done.len(), 1);
    // Stream 3: a 404 whose 3,000-byte body goes out in two writes, the
    // second partly not copied (inside the DATA payload: followed).
    let mut answer = frame(HEADERS, END_HEADERS, 3, &block(&mut responses, &[(":status", "404"), ("x-request-id", "r3")]));
    let body = frame(DATA, END_STREAM, 3, &[b'y'; 3000]);
    answer.extend_from_slice(&body[..1000]);
    conn.whole(false, 10, 6, &answer);
    conn.io(false, 10, 9, &body[1000..], 500);
    assert_eq!(conn.streams.counts, H2Counts { connections: 1, streams: 2, ..H2Counts::default() });

    let (one, fields) = &conn.done[0];
    assert_eq!((one.start_ns, one.end_ns, one.delta.on_cpu_ns), (1_000_000, 5_000_000, 4_000_000));
    assert_eq!((one.flags, one.tid_begin, one.tid_end), (SPAN_HTTP, 10, 10));
    assert_eq!((fields.http_method.as_str(), fields.http_path.as_str(), fields.http_status), ("GET", "/a", Some(200)));
    assert_eq!(fields.request_id.as_deref(), Some("r1"), "the request's id");
    assert_eq!((one.response_bytes, fields.response_bytes), (first_answer, Some(first_answer)), "its frames whole");
    let (three, fields) = &conn.done[1];
    assert_eq!((three.start_ns, three.end_ns), (3_000_000, 9_000_000), "from the read that completed its headers");
    assert_eq!((fields.http_path.as_str(), fields.http_status), ("/b", Some(404)));
    assert_eq!(fields.request_id.as_deref(), Some("r1"), "its request's, before the response's");
    assert_eq!(three.response_bytes, 9 + 3000 + 9 + (answer.len() - 1000 - 9) as u64);
    assert!(three.span_id > one.span_id);
}

#[test]
fn padded_and_continued_header_blocks_are_decoded_whole() {
    let mut requests = Encoder::default();
    let mut conn = Conn::new();
    let encoded = block(&mut requests, &[(":method", "POST"), (":path", "/upload"), ("traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]);
    let (head, rest) = encoded.split_at(5);
    let mut padded = vec![3u8];
    padded.extend_from_slice(head);
    padded.extend_from_slice(&[0, 0, 0]);
    let mut bytes = client_preface();
    bytes.extend(frame(HEADERS, PADDED, 5, &padded));
    bytes.extend(frame(CONTINUATION, END_HEADERS, 5, rest));
    bytes.extend(frame(DATA, END_STREAM, 5, b"body"));
    conn.whole(true, 1, 1, &bytes);
    let mut reset = frame(SETTINGS, 0, 0, &[]);
    reset.extend(frame(RST_STREAM, 0, 5, &[0, 0, 0, 8]));
    conn.whole(false, 1, 2, &reset);
    let (_, fields) = &conn.done[0];
    assert_eq!((fields.http_method.as_str(), fields.http_path.as_str()), ("POST", "/upload"));
    assert_eq!(fields.trace_id.as_deref(), Some("0af7651916cd43dd8448eb211c80319c"));
    assert_eq!((conn.streams.counts.reset, fields.http_status), (1, None), "reset before an answer");
}

#[test]
fn bytes_not_copied_outside_a_data_frame_lose_the_connection() {
    let mut requests = Encoder::default();
    let mut conn = Conn::new();
    let bytes = preface_and_get(&mut requests, END_STREAM | END_HEADERS, 1, "/");
    conn.whole(true, 1, 1, &bytes);
    // A response whose headers were not copied.
    let mut answer = frame(SETTINGS, 0, 0, &[]);
    answer.extend(frame(HEADERS, END_STREAM | END_HEADERS, 1, &block(&mut Encoder::default(), &[(":status", "200")])));
    conn.io(false, 1, 2, &answer, 12);
    assert_eq!(conn.streams.counts, H2Counts { connections: 1, lost: 1, unfinished: 1, ..H2Counts::default() });
    assert!(conn.done.is_empty());
    // Later bytes start a new connection, as far as the loader can tell,
    // which is not a preface either: lost again, not mistaken for frames.
    conn.whole(true, 1, 3, &answer);
    assert_eq!(conn.streams.counts.lost, 2);
}

#[test]
fn a_client_connection_makes_client_spans_named_after_their_peer() {
    let (mut requests, mut responses) = (Encoder::default(), Encoder::default());
    let mut conn = Conn::new();
    let bytes = preface_and_get(&mut requests, END_STREAM | END_HEADERS, 1, "/x");
    conn.whole(false, 4, 1, &bytes);
    assert!(conn.streams.on_peer(7, 1, Some("127.0.0.1:8080".into())));
    assert!(!conn.streams.on_peer(7, 2, None), "not an HTTP/2 connection");
    // Read by another thread: the time in between is not attributed.
    let mut answer = frame(SETTINGS, 0, 0, &[]);
    answer.extend(frame(HEADERS, END_STREAM | END_HEADERS, 1, &block(&mut responses, &[(":status", "204")])));
    conn.whole(true, 5, 4, &answer);
    let (span, fields) = &conn.done[0];
    assert_eq!(span.flags, SPAN_HTTP | SPAN_CLIENT | SPAN_HANDED_OFF);
    assert_eq!((span.between_threads_ns, span.delta), (3_000_000, ThreadTotals::default()));
    assert_eq!((fields.peer.as_deref(), fields.http_status), (Some("127.0.0.1:8080"), Some(204)));
}

#[test]
fn a_closed_connection_counts_its_unanswered_streams() {
    let mut conn = Conn::new();
    let bytes = preface_and_get(&mut Encoder::default(), END_HEADERS, 1, "/");
    conn.whole(true, 1, 1, &bytes);
    let close = H2Record { span_id: 1, tgid: 7, kind: HttpCaptureKind::H2Close as u32, ..H2Record::default() };
    conn.streams.on_record(&close, &[], &mut conn.done);
    assert_eq!(conn.streams.counts.unfinished, 1);
    conn.streams.finish(&mut conn.done);
    assert_eq!(conn.streams.counts.unfinished, 1, "forgotten at its close");
}

#[test]
fn a_direction_whose_start_was_missed_is_not_followed() {
    // After an upgrade, the server's preface went out before the client's
    // showed the connection to be HTTP/2: its first frame seen is not SETTINGS.
    let mut conn = Conn::new();
    let bytes = preface_and_get(&mut Encoder::default(), END_STREAM | END_HEADERS, 3, "/");
    conn.whole(true, 1, 1, &bytes);
    let answer = frame(HEADERS, END_STREAM | END_HEADERS, 3, &block(&mut Encoder::default(), &[(":status", "200")]));
    conn.whole(false, 1, 2, &answer);
    assert!(conn.done.is_empty());
    assert_eq!((conn.streams.counts.lost, conn.streams.counts.unfinished), (1, 1));
}

#[test]
fn a_lost_record_loses_the_connection() {
    let mut requests = Encoder::default();
    let mut conn = Conn::new();
    let bytes = preface_and_get(&mut requests, END_STREAM | END_HEADERS, 1, "/");
    conn.whole(true, 1, 1, &bytes);
    // The next read's record was lost (its headers entered the table).
    conn.seq[0] += 1;
    let next = frame(HEADERS, END_STREAM | END_HEADERS, 3, &block(&mut requests, &[(":method", "GET"), (":path", "/")]));
    conn.whole(true, 1, 2, &next);
    assert_eq!((conn.streams.counts.lost, conn.streams.counts.unfinished), (1, 1));
}

/// `Upgrade: h2c`, server side: the connection's first record is the write
/// of the `101` (with the server's SETTINGS), the client's preface follows,
/// and stream 1, the request that asked, is answered in HTTP/2. Its span is
/// the kernel's HTTP/1.1 span of the request (to the `101`) joined with
/// stream 1 (from the `101` to its end); later streams are spans of their own.
#[test]
fn an_upgraded_connection_answers_the_request_that_asked_on_stream_1() {
    let (mut requests, mut responses) = (Encoder::default(), Encoder::default());
    let mut conn = Conn::new();
    let mut switch = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    switch.extend(frame(SETTINGS, 0, 0, &[]));
    conn.whole(false, 1, 3, &switch);
    let third = preface_and_get(&mut requests, END_STREAM | END_HEADERS, 3, "/third");
    conn.whole(true, 1, 5, &third);
    let mut answers = frame(HEADERS, END_HEADERS, 1, &block(&mut responses, &[(":status", "200")]));
    answers.extend(frame(DATA, END_STREAM, 1, b"slept"));
    answers.extend(frame(HEADERS, END_STREAM | END_HEADERS, 3, &block(&mut responses, &[(":status", "404")])));
    conn.whole(false, 1, 23, &answers);
    assert_eq!(conn.done.len(), 1, "stream 3; stream 1 waits for the request's own span");
    assert_eq!((conn.done[0].1.http_path.as_str(), conn.done[0].1.http_status), ("/third", Some(404)));

    // The kernel's span of the upgrading request: from 1 ms to the 101 at 3.
    let head = SpanEvent {
        span_id: 1,
        tgid: 7,
        tid_begin: 1,
        tid_end: 1,
        flags: SPAN_HTTP | SPAN_H2C_UPGRADE,
        start_ns: 1_000_000,
        end_ns: 3_000_000,
        delta: ThreadTotals { on_cpu_ns: 2_000_000, ..ThreadTotals::default() },
        ..SpanEvent::default()
    };
    let fields =
        HttpFields { http_method: "GET".into(), http_path: "/sleep".into(), http_status: Some(101), ..Default::default() };
    let (span, fields) = conn.streams.on_upgrade_span(head, fields).expect("stream 1 answered");
    assert_eq!((span.start_ns, span.end_ns), (1_000_000, 23_000_000));
    assert_eq!(span.delta.on_cpu_ns, 22_000_000, "the request's 2 ms and stream 1's 20");
    let answered = (fields.http_method.as_str(), fields.http_path.as_str(), fields.http_status);
    assert_eq!(answered, ("GET", "/sleep", Some(200)));
    assert_eq!(conn.streams.counts.lost, 0);
}
