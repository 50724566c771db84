//! HTTP/2 streams as spans (`tracer spans --http`): the kernel copies each
//! read and write of a connection that began with the HTTP/2 preface, with
//! when it returned and its thread's totals then (`tracer-ebpf/src/h2.rs`).
//! Here the frames are followed in both directions, the header blocks
//! decoded (HPACK, with the dynamic table each direction keeps for the
//! whole connection, by `httlib-hpack`), and each stream becomes a span: from the read (or,
//! for a client, the write) that brought its request's headers to the
//! write (or read) that ended its response. Its breakdown is the thread's
//! totals between the two; a stream answered by another thread than the
//! one that read it is all "between threads". A connection switched to
//! HTTP/2 by `Upgrade: h2c` begins with the `101`'s syscall, and its stream
//! 1 is the request that asked (`upgrade.rs`).
mod frames;
#[cfg(test)]
mod tests;
mod upgrade;

use std::collections::HashMap;

use httlib_hpack::Decoder;
use tracer_common::{
    H2Record, HttpCaptureKind, SPAN_CLIENT, SPAN_HANDED_OFF, SPAN_HTTP, SpanEvent, ThreadTotals, http_span_id,
};

use self::{
    frames::{Frame, FrameReader, OutOfStep},
    upgrade::Upgrades,
};
use super::http::{Capture, HttpFields, request_fields_of};

/// The largest header table a peer may ask for (with a size update in a
/// block). The default is 4 KiB; peers rarely ask for more.
const MAX_TABLE_BYTES: u32 = 1 << 20;

/// How a `101` response begins. A connection whose first record begins so
/// was switched to HTTP/2 by `Upgrade: h2c` (the only `101` the kernel
/// follows).
const SWITCH_STATUS_LINE: &[u8] = b"HTTP/1.1 101";

/// A connection with nothing read or written for this long is forgotten
/// (one closed while its entry was evicted in the kernel, or never closed).
pub const IDLE_NS: u64 = 300_000_000_000;

/// What was seen of HTTP/2, for the end-of-run summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct H2Counts {
    pub connections: u64,
    /// Streams made spans.
    pub streams: u64,
    /// Streams reset (`RST_STREAM`) before their response ended: spans too.
    pub reset: u64,
    /// Connections whose bytes could not be followed from some point on
    /// (bytes not copied outside a `DATA` payload, a record lost, a header
    /// block that did not decode): their later streams are not seen.
    pub lost: u64,
    /// Streams whose response had not ended when their connection closed,
    /// was lost, or the recording ended.
    pub unfinished: u64,
}

/// A syscall's end: what a stream's start or end is.
#[derive(Debug, Clone, Copy)]
struct Point {
    tid: u32,
    cpu: u32,
    ts_ns: u64,
    totals: ThreadTotals,
}

#[derive(Debug)]
struct Stream {
    start: Point,
    fields: HttpFields,
    response_bytes: u64,
}

struct Connection {
    /// The process wrote the preface: its requests are its writes.
    client: bool,
    /// Switched by `Upgrade: h2c`: stream 1 is the request that asked.
    upgraded: bool,
    /// Stream 1 of an upgraded connection, answered: the second half of the
    /// request's span.
    upgraded_tail: Option<H2Span>,
    peer: Option<String>,
    requests: FrameReader,
    responses: FrameReader,
    request_headers: Decoder<'static>,
    response_headers: Decoder<'static>,
    streams: HashMap<u32, Stream>,
    /// The number the kernel gives the next read and the next write.
    next_seq: [u32; 2],
    last_span_id: u64,
    last_seen_ns: u64,
}

/// One record of the kernel's HTTP stream (handed on once, never kept).
pub enum HttpRecord<'a> {
    /// A head's bytes, or a peer's address.
    Capture(Capture<'a>),
    /// A read, write or close of an HTTP/2 connection, with the bytes copied.
    H2 { record: H2Record, bytes: &'a [u8] },
}

/// A finished stream: its span and its HTTP fields.
pub type H2Span = (SpanEvent, HttpFields);

/// The HTTP/2 connections of the traced processes, by (process, id).
#[derive(Default)]
pub struct H2Streams {
    connections: HashMap<(u32, u64), Connection>,
    upgrades: Upgrades,
    pub keep_query: bool,
    pub counts: H2Counts,
}

impl H2Streams {
    /// A record of the kernel's ([`HttpCaptureKind::H2Read`], `H2Write` or
    /// `H2Close`) with the bytes copied; finished streams go to `done`.
    pub fn on_record(&mut self, record: &H2Record, bytes: &[u8], done: &mut Vec<H2Span>) {
        let key = (record.tgid, record.span_id);
        let read = match HttpCaptureKind::from_u32(record.kind) {
            Some(HttpCaptureKind::H2Read) => true,
            Some(HttpCaptureKind::H2Write) => false,
            Some(HttpCaptureKind::H2Close) => {
                if let Some(connection) = self.connections.remove(&key) {
                    self.counts.unfinished += connection.streams.len() as u64;
                }
                done.extend(self.upgrades.give_up(record.tgid, record.span_id));
                return;
            }
            _ => return,
        };
        let point = Point { tid: record.tid, cpu: record.cpu, ts_ns: record.ts_ns, totals: record.totals };
        let connection = self.connections.entry(key).or_insert_with(|| {
            self.counts.connections += 1;
            // Its first record is the preface, read by a server, written by
            // a client; or the `101` of an `Upgrade: h2c`, written by a
            // server, read by a client.
            if bytes.starts_with(SWITCH_STATUS_LINE) {
                Connection::switched(read, point)
            } else {
                Connection::new(!read)
            }
        });
        connection.last_seen_ns = record.ts_ns;
        // A record of the direction was lost (the ring was full): its bytes,
        // and maybe headers the table needed, are missing.
        let next_seq = &mut connection.next_seq[usize::from(!read)];
        let in_order = record.seq == *next_seq;
        *next_seq = record.seq.wrapping_add(1);
        let requests = read != connection.client;
        let copied = bytes.len().min(record.len as usize);
        let uncopied = record.transferred.saturating_sub(copied as u64);
        let mut frames = Vec::new();
        let reader = if requests { &mut connection.requests } else { &mut connection.responses };
        let followed = if in_order {
            reader.feed(&bytes[..copied], &mut frames).and_then(|()| reader.skip(uncopied, &mut frames))
        } else {
            Err(OutOfStep)
        };
        let mut decoded = Ok(());
        for frame in frames {
            decoded = connection.on_frame(record.tgid, requests, frame, point, self.keep_query, &mut self.counts, done);
            if decoded.is_err() {
                break;
            }
        }
        if let Some(tail) = connection.upgraded_tail.take() {
            done.extend(self.upgrades.tail(record.tgid, record.span_id, tail));
        }
        if followed.is_err() || decoded.is_err() {
            let connection = self.connections.remove(&key).expect("looked up above");
            self.counts.lost += 1;
            self.counts.unfinished += connection.streams.len() as u64;
            done.extend(self.upgrades.give_up(record.tgid, record.span_id));
        }
    }

    /// The HTTP/1.x span of a request whose `101` switched its connection to
    /// HTTP/2 (`SPAN_H2C_UPGRADE`), with its fields: the whole request's
    /// span once its stream 1 is answered (now, or later from `on_record`).
    pub fn on_upgrade_span(&mut self, event: SpanEvent, fields: HttpFields) -> Option<H2Span> {
        if let Some(connection) = self.connections.get_mut(&(event.tgid, event.span_id))
            && connection.peer.is_none()
        {
            connection.peer = fields.peer.clone();
        }
        self.upgrades.head((event, fields))
    }

    /// The address an outgoing connection was `connect`ed to, sent right
    /// after its first write. Returns whether `id` is an HTTP/2 connection.
    pub fn on_peer(&mut self, tgid: u32, id: u64, peer: Option<String>) -> bool {
        match self.connections.get_mut(&(tgid, id)) {
            Some(connection) => {
                connection.peer = peer;
                true
            }
            None => false,
        }
    }

    /// Forgets connections idle since before `before_ns` (CLOCK_MONOTONIC);
    /// the requests that upgraded them go to `done` as they are.
    pub fn forget_idle(&mut self, before_ns: u64, done: &mut Vec<H2Span>) {
        let counts = &mut self.counts;
        let mut forgotten = Vec::new();
        self.connections.retain(|&key, connection| {
            let keep = connection.last_seen_ns >= before_ns;
            if !keep {
                counts.unfinished += connection.streams.len() as u64;
                forgotten.push(key);
            }
            keep
        });
        for (tgid, id) in forgotten {
            done.extend(self.upgrades.give_up(tgid, id));
        }
    }

    /// At the end of a recording: streams still open are unfinished, and
    /// halves of upgraded requests go as they are.
    pub fn finish(&mut self, done: &mut Vec<H2Span>) {
        self.forget_idle(u64::MAX, done);
        done.extend(self.upgrades.drain());
    }
}

impl Connection {
    fn new(client: bool) -> Connection {
        Connection {
            client,
            upgraded: false,
            upgraded_tail: None,
            peer: None,
            // The client's direction starts with the preface.
            requests: FrameReader::new(true),
            responses: FrameReader::new(false),
            request_headers: decoder(),
            response_headers: decoder(),
            streams: HashMap::new(),
            next_seq: [1, 1],
            last_span_id: 0,
            last_seen_ns: 0,
        }
    }

    /// A connection switched by a `101` (`Upgrade: h2c`) at `point`, `read`
    /// by a client or written by a server: the server's direction begins
    /// with its head, the client's with the preface, and stream 1 is the
    /// request that asked, answered from here on.
    fn switched(read: bool, point: Point) -> Connection {
        let mut connection = Connection::new(read);
        connection.upgraded = true;
        connection.responses = FrameReader::after_switch();
        connection.streams.insert(1, Stream { start: point, fields: HttpFields::default(), response_bytes: 0 });
        connection
    }

    /// A complete frame of the requests' direction (`requests`) or the
    /// responses', whose syscall ended at `point`.
    #[allow(clippy::too_many_arguments)]
    fn on_frame(
        &mut self,
        tgid: u32,
        requests: bool,
        frame: Frame,
        point: Point,
        keep_query: bool,
        counts: &mut H2Counts,
        done: &mut Vec<H2Span>,
    ) -> Result<(), OutOfStep> {
        match frame {
            Frame::Headers { stream, end_stream, push, block, frame_bytes } => {
                // Every block is decoded, to keep the table as the peer's.
                let decoder = if requests { &mut self.request_headers } else { &mut self.response_headers };
                let headers = decode(decoder, block)?;
                if push {
                    return Ok(());
                }
                if requests {
                    // Trailers of a request already open change nothing.
                    self.streams.entry(stream).or_insert_with(|| Stream {
                        start: point,
                        fields: fields_of(&headers, keep_query),
                        response_bytes: 0,
                    });
                    return Ok(());
                }
                let Some(open) = self.streams.get_mut(&stream) else { return Ok(()) };
                open.response_bytes += frame_bytes;
                let status = value(&headers, ":status").and_then(|s| s.parse::<u16>().ok());
                // An interim (1xx) response is not the answer.
                if let Some(status) = status.filter(|&s| s >= 200) {
                    open.fields.http_status = Some(status);
                }
                if open.fields.request_id.is_none() {
                    open.fields.request_id = value(&headers, "x-request-id");
                }
                if end_stream {
                    self.finish(tgid, stream, point, counts, done);
                }
            }
            Frame::Data { stream, len, end_stream } if !requests => {
                if let Some(open) = self.streams.get_mut(&stream) {
                    open.response_bytes += frames::FRAME_HEADER_LEN as u64 + len;
                    if end_stream {
                        self.finish(tgid, stream, point, counts, done);
                    }
                }
            }
            Frame::Data { .. } => {}
            Frame::Reset { stream } => {
                if self.streams.contains_key(&stream) {
                    counts.reset += 1;
                    self.finish(tgid, stream, point, counts, done);
                }
            }
        }
        Ok(())
    }

    /// Stream `stream`'s response ended (or it was reset) at `end`.
    fn finish(&mut self, tgid: u32, stream: u32, end: Point, counts: &mut H2Counts, done: &mut Vec<H2Span>) {
        let Some(Stream { start, mut fields, response_bytes }) = self.streams.remove(&stream) else { return };
        counts.streams += 1;
        // Streams that begin in one read share its time: ids stay unique
        // and in order of their start.
        let span_id = http_span_id(start.ts_ns, start.cpu).max(self.last_span_id + 1);
        self.last_span_id = span_id;
        let end_ns = end.ts_ns.max(start.ts_ns);
        let mut event = SpanEvent {
            span_id,
            tgid,
            tid_begin: start.tid,
            tid_end: end.tid,
            flags: SPAN_HTTP | if self.client { SPAN_CLIENT } else { 0 },
            start_ns: start.ts_ns,
            end_ns,
            response_bytes,
            ..SpanEvent::default()
        };
        if start.tid == end.tid {
            event.delta = end.totals.since(&start.totals);
        } else {
            // Which thread ran the stream in between is not known.
            event.flags |= SPAN_HANDED_OFF;
            event.between_threads_ns = end_ns - start.ts_ns;
        }
        fields.peer = self.peer.clone();
        fields.response_bytes = Some(response_bytes);
        if self.upgraded && stream == 1 {
            self.upgraded_tail = Some((event, fields));
        } else {
            done.push((event, fields));
        }
    }
}

/// A header decoder with the default table, which the peer may grow.
fn decoder() -> Decoder<'static> {
    let mut decoder = Decoder::default();
    decoder.set_max_dynamic_size(MAX_TABLE_BYTES);
    decoder
}

/// Decoded headers, as (name, value).
type Headers = Vec<(Vec<u8>, Vec<u8>)>;

/// A whole header block's headers.
fn decode(decoder: &mut Decoder<'static>, mut block: Vec<u8>) -> Result<Headers, OutOfStep> {
    let mut headers = Vec::new();
    decoder.decode(&mut block, &mut headers).map_err(|_| OutOfStep)?;
    Ok(headers.into_iter().map(|(name, value, _)| (name, value)).collect())
}

/// A decoded header's value, by its (lower-case) name.
fn value(headers: &Headers, name: &str) -> Option<String> {
    let (_, value) = headers.iter().find(|(n, _)| n.as_slice() == name.as_bytes())?;
    let value = std::str::from_utf8(value).ok()?.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

fn fields_of(headers: &Headers, keep_query: bool) -> HttpFields {
    let method = value(headers, ":method").unwrap_or_default();
    let path = value(headers, ":path").unwrap_or_default();
    request_fields_of(&method, &path, |name| value(headers, name), keep_query)
}
