//! HTTP/1.x request and response heads copied by the kernel for
//! `tracer spans --http`, parsed into the fields of a span line.
use foldhash::HashMap;

use std::mem::MaybeUninit;

use httparse::{Header, ParserConfig, Request, Response, Status};
use serde::{Deserialize, Serialize};
use tracer_common::{HTTP_CAPTURE_LEN, HttpCapture, HttpCaptureKind};

/// What a span line says about its HTTP exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HttpFields {
    pub http_method: String,
    /// The request target, without its query string unless asked for.
    pub http_path: String,
    pub http_status: Option<u16>,
    /// `X-Request-Id` of the request, or else of the response (servers such
    /// as nginx add it there).
    pub request_id: Option<String>,
    /// The trace id of a W3C `traceparent` header (the span line's
    /// `trace_id`; not read back from JSON).
    #[serde(skip)]
    pub trace_id: Option<String>,
    /// The parent id of that `traceparent` (16 hex digits): the caller's
    /// span, which the OTLP export makes this span's parent (not in JSON).
    #[serde(skip)]
    pub parent_span_id: Option<String>,
    /// Of an outgoing exchange: the address its connection was `connect`ed
    /// to ("127.0.0.1:8001", "[::1]:8001"); none when that was before
    /// tracing began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// The response's bytes, head included: written by a server, read by
    /// an outgoing exchange (as far as they were seen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_bytes: Option<u64>,
    /// Where the response ends, as its head says (not in JSON).
    #[serde(skip)]
    pub response_end: ResponseEnd,
}

/// Where a response ends, as its head says: what a span whose response
/// goes out in several rounds waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseEnd {
    /// Not known (the head was cut short, or an interim 1xx response): the
    /// span ends with its first round.
    #[default]
    Unknown,
    /// After this many bytes, head included (`Content-Length`; the head
    /// alone for a response to `HEAD`, a 204 or a 304).
    Bytes(u64),
    /// Chunked, or until the connection closes: when its rounds stop.
    Quiet,
}

/// Why a captured exchange was not made a span line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// The first bytes looked like a method, but no request line followed.
    NotHttp,
    /// The request's head never arrived (the capture buffer was full).
    HeadLost,
}

/// One capture of the kernel's HTTP stream (an [`HttpCapture`]), read in
/// place: its valid bytes only, not the whole record.
#[derive(Clone, Copy, Debug)]
pub struct Capture<'a> {
    pub span_id: u64,
    pub tgid: u32,
    /// An [`HttpCaptureKind`].
    pub kind: u32,
    pub bytes: &'a [u8],
}

impl<'a> Capture<'a> {
    /// The capture at the start of a ring record, if the record holds one.
    pub fn read(record: &'a [u8]) -> Option<Capture<'a>> {
        let record = record.get(..size_of::<HttpCapture>())?;
        let u32_at = |at: usize| Some(u32::from_ne_bytes(record.get(at..at + 4)?.try_into().ok()?));
        let span_id = u64::from_ne_bytes(record.get(..8)?.try_into().ok()?);
        let len = (u32_at(std::mem::offset_of!(HttpCapture, len))? as usize).min(HTTP_CAPTURE_LEN);
        let data = std::mem::offset_of!(HttpCapture, data);
        Some(Capture {
            span_id,
            tgid: u32_at(std::mem::offset_of!(HttpCapture, tgid))?,
            kind: u32_at(std::mem::offset_of!(HttpCapture, kind))?,
            bytes: record.get(data..data + len)?,
        })
    }
}

/// Heads received per span, until the span itself arrives.
#[derive(Default)]
pub struct HttpHeads {
    pending: HashMap<(u32, u64), Heads>,
    pub keep_query: bool,
    /// Spans whose request was not HTTP after all (dropped).
    pub not_http: u64,
    /// Spans whose request head was lost (dropped).
    pub heads_lost: u64,
    /// Further requests found behind the first in one read (pipelining):
    /// not made spans of their own.
    pub pipelined: u64,
    /// Heads taken and emptied, for spans to come: with their buffers kept,
    /// a span's heads cost no allocation.
    spare: Vec<Heads>,
}

/// Emptied heads kept for reuse (a drain's worth at tens of thousands of
/// spans a second), and the largest buffer kept among them (a head is a
/// few hundred bytes; a long pipelined read is not kept).
const SPARE_HEADS: usize = 1024;
const SPARE_HEAD_CAPACITY: usize = 4096;

#[derive(Default)]
struct Heads {
    request: Vec<u8>,
    response: Vec<u8>,
    peer: Option<String>,
}

impl HttpHeads {
    pub fn on_capture(&mut self, capture: &Capture<'_>) {
        let spare = &mut self.spare;
        let key = (capture.tgid, capture.span_id);
        let heads = self.pending.entry(key).or_insert_with(|| spare.pop().unwrap_or_default());
        let bytes = capture.bytes;
        match HttpCaptureKind::from_u32(capture.kind) {
            Some(HttpCaptureKind::Request | HttpCaptureKind::OutgoingRequest) => heads.request.extend_from_slice(bytes),
            Some(HttpCaptureKind::Response) => heads.response.extend_from_slice(bytes),
            Some(HttpCaptureKind::Peer) => heads.peer = peer_of(bytes),
            // HTTP/2 connections' bytes go to `model::h2`.
            Some(
                HttpCaptureKind::H2Read | HttpCaptureKind::H2Write | HttpCaptureKind::H2Close,
            )
            | None => {}
        }
    }

    /// The fields of span `span_id` of `tgid`, whose heads are forgotten.
    pub fn take(&mut self, tgid: u32, span_id: u64) -> Result<HttpFields, Rejected> {
        let Some(mut heads) = self.pending.remove(&(tgid, span_id)).filter(|heads| !heads.request.is_empty()) else {
            self.heads_lost += 1;
            return Err(Rejected::HeadLost);
        };
        let parsed = parse(&heads.request, &heads.response, self.keep_query);
        match &parsed {
            Ok((_, pipelined)) => self.pipelined += pipelined,
            Err(_) => self.not_http += 1,
        }
        let peer = heads.peer.take();
        self.recycle(heads);
        parsed.map(|(fields, _)| HttpFields { peer, ..fields })
    }

    fn recycle(&mut self, mut heads: Heads) {
        let small = heads.request.capacity().max(heads.response.capacity()) <= SPARE_HEAD_CAPACITY;
        if small && self.spare.len() < SPARE_HEADS {
            heads.request.clear();
            heads.response.clear();
            self.spare.push(heads);
        }
    }

    /// The request fields of span `span_id` of `tgid`, still in progress
    /// (its request head arrived, the span not yet): the `traceparent` of a
    /// request for the outgoing calls it makes, which share its trace; the
    /// request id of an outgoing request, for the span it starts in another
    /// traced process.
    pub fn pending_request(&self, tgid: u32, span_id: u64) -> Option<HttpFields> {
        let heads = self.pending.get(&(tgid, span_id))?;
        parse_request(&heads.request, self.keep_query).ok().map(|(fields, _)| fields)
    }

    /// Forgets heads of spans that never arrived (expired by the kernel side).
    pub fn forget_older_than(&mut self, span_ids_below: u64) {
        self.pending.retain(|(_, span_id), _| *span_id >= span_ids_below);
    }
}

/// Headers read per head; a head with more still gives its first line.
const MAX_HEADERS: usize = 64;

/// Room for a head's headers, left uninitialised: httparse fills what it
/// parses, and writing 64 empty headers (2 KiB) for each of a span's
/// heads cost more than parsing them.
type HeaderSlots<'b> = [MaybeUninit<Header<'b>>; MAX_HEADERS];

fn header_slots<'b>() -> HeaderSlots<'b> {
    [const { MaybeUninit::uninit() }; MAX_HEADERS]
}

/// A malformed header line costs that header, not the span: the server
/// may well have answered the request.
fn config() -> ParserConfig {
    let mut config = ParserConfig::default();
    config.ignore_invalid_headers_in_requests(true).ignore_invalid_headers_in_responses(true);
    config
}

/// Parses a request head (and what follows it in the same reads) and the
/// start of the response. Returns the fields and how many more requests
/// were pipelined behind the first.
fn parse(request: &[u8], response: &[u8], keep_query: bool) -> Result<(HttpFields, u64), Rejected> {
    let (mut fields, head_len) = parse_request(request, keep_query)?;
    let pipelined = head_len.map_or(0, |len| count_requests(&request[len..]));
    let (status, response_id, end) = parse_response(response, fields.http_method == "HEAD");
    fields.http_status = status;
    fields.request_id = fields.request_id.or(response_id);
    fields.response_end = end;
    Ok((fields, pipelined))
}

/// The request's fields, and the length of its head if it was captured
/// whole (what follows may be pipelined requests).
fn parse_request(bytes: &[u8], keep_query: bool) -> Result<(HttpFields, Option<usize>), Rejected> {
    let mut slots = header_slots();
    let mut request = Request::new(&mut []);
    match config().parse_request_with_uninit_headers(&mut request, bytes, &mut slots) {
        Ok(Status::Complete(len)) => Ok((request_fields(&request, true, keep_query)?, Some(len))),
        Ok(Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            let head = closed_head(bytes);
            let mut closed_slots = header_slots();
            let mut closed = Request::new(&mut []);
            if let Some(head) = &head
                && let Ok(Status::Complete(_)) =
                    config().parse_request_with_uninit_headers(&mut closed, head, &mut closed_slots)
            {
                return Ok((request_fields(&closed, true, keep_query)?, None));
            }
            // Cut short inside the request line, or too many headers: the
            // method and target still make a span if both arrived.
            Ok((request_fields(&request, false, keep_query)?, None))
        }
        Err(_) => Err(Rejected::NotHttp),
    }
}

/// The fields of a parsed request line, and of its headers when they were
/// parsed whole (after a partial parse they are not filled in).
fn request_fields(request: &Request<'_, '_>, with_headers: bool, keep_query: bool) -> Result<HttpFields, Rejected> {
    let (Some(method), Some(target)) = (request.method, request.path) else {
        return Err(Rejected::NotHttp);
    };
    // Methods are upper case: anything else is text that merely looks like
    // a request line.
    if !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Rejected::NotHttp);
    }
    let headers: &[Header<'_>] = if with_headers { request.headers } else { &[] };
    Ok(request_fields_of(method, target, |name| header(headers, name).map(str::to_owned), keep_query))
}

/// A request's fields from its method, target and headers (`header` finds
/// one by its lower-case name), HTTP/1.x or HTTP/2 alike.
pub fn request_fields_of(
    method: &str,
    target: &str,
    header: impl Fn(&str) -> Option<String>,
    keep_query: bool,
) -> HttpFields {
    let path = if keep_query { target } else { target.split('?').next().unwrap_or(target) };
    let traceparent = header("traceparent");
    HttpFields {
        http_method: method.to_owned(),
        http_path: path.to_owned(),
        http_status: None,
        request_id: header("x-request-id"),
        trace_id: traceparent.as_deref().and_then(trace_id_of),
        parent_span_id: traceparent.as_deref().and_then(parent_id_of),
        ..HttpFields::default()
    }
}

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// The address and port of a `struct sockaddr_in` or `sockaddr_in6` (the
/// port in network order after the family).
pub fn peer_of(sockaddr: &[u8]) -> Option<String> {
    let family = u16::from_ne_bytes(sockaddr.get(..2)?.try_into().ok()?);
    let port = u16::from_be_bytes(sockaddr.get(2..4)?.try_into().ok()?);
    let address = match family {
        AF_INET => std::net::IpAddr::from(<[u8; 4]>::try_from(sockaddr.get(4..8)?).ok()?),
        AF_INET6 => std::net::IpAddr::from(<[u8; 16]>::try_from(sockaddr.get(8..24)?).ok()?),
        _ => return None,
    };
    Some(std::net::SocketAddr::new(address, port).to_string())
}

/// The status code and `X-Request-Id` of a response head, as far as it
/// was captured, and where the response ends when the head was whole.
/// `to_head`: the request was a `HEAD`.
fn parse_response(bytes: &[u8], to_head: bool) -> (Option<u16>, Option<String>, ResponseEnd) {
    let mut slots = header_slots();
    let mut response = Response::new(&mut []);
    match config().parse_response_with_uninit_headers(&mut response, bytes, &mut slots) {
        Ok(Status::Complete(head_len)) => {
            let end = response_end(&response, head_len as u64, to_head);
            (response.code, header(response.headers, "x-request-id").map(str::to_owned), end)
        }
        Ok(Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            let head = closed_head(bytes);
            let mut closed_slots = header_slots();
            let mut closed = Response::new(&mut []);
            let id = match &head {
                Some(head)
                    if config()
                        .parse_response_with_uninit_headers(&mut closed, head, &mut closed_slots)
                        .is_ok_and(|s| s.is_complete()) =>
                {
                    header(closed.headers, "x-request-id").map(str::to_owned)
                }
                _ => None,
            };
            (response.code, id, ResponseEnd::Unknown)
        }
        Err(_) => (None, None, ResponseEnd::Unknown),
    }
}

/// Where a response whose whole head (`head_len` bytes) was parsed ends
/// (RFC 9112, section 6.3).
fn response_end(response: &Response<'_, '_>, head_len: u64, to_head: bool) -> ResponseEnd {
    let Some(code) = response.code else { return ResponseEnd::Unknown };
    if code < 200 {
        return ResponseEnd::Unknown;
    }
    if to_head || code == 204 || code == 304 {
        return ResponseEnd::Bytes(head_len);
    }
    let chunked = header(response.headers, "transfer-encoding")
        .is_some_and(|v| v.as_bytes().windows(7).any(|w| w.eq_ignore_ascii_case(b"chunked")));
    match header(response.headers, "content-length").and_then(|v| v.parse::<u64>().ok()) {
        Some(length) if !chunked => ResponseEnd::Bytes(head_len + length),
        _ => ResponseEnd::Quiet,
    }
}

/// A head the kernel cut short (it copies at most `HTTP_CAPTURE_LEN`
/// bytes of a read) made whole: cut after its last complete line and closed
/// with the blank line, so the header lines that did arrive are read.
fn closed_head(bytes: &[u8]) -> Option<Vec<u8>> {
    let end = bytes.windows(2).rposition(|w| w == b"\r\n")? + 2;
    let mut head = bytes[..end].to_vec();
    head.extend_from_slice(b"\r\n");
    Some(head)
}

fn header<'b>(headers: &[Header<'b>], name: &str) -> Option<&'b str> {
    let value = headers.iter().find(|h| h.name.eq_ignore_ascii_case(name))?.value;
    let value = std::str::from_utf8(value).ok()?.trim();
    (!value.is_empty()).then_some(value)
}

/// `00-<trace id>-<parent id>-<flags>`.
fn trace_id_of(traceparent: &str) -> Option<String> {
    let id = traceparent.split('-').nth(1)?;
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) && id.bytes().any(|b| b != b'0'))
        .then(|| id.to_ascii_lowercase())
}

/// The parent id of a `traceparent` whose trace id is valid: 16 hex
/// digits, not all zero (W3C Trace Context).
fn parent_id_of(traceparent: &str) -> Option<String> {
    trace_id_of(traceparent)?;
    let id = traceparent.split('-').nth(2)?;
    (id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) && id.bytes().any(|b| b != b'0'))
        .then(|| id.to_ascii_lowercase())
}

/// Requests behind the first: each complete head, and a last one whose
/// request line arrived.
fn count_requests(mut bytes: &[u8]) -> u64 {
    let mut count = 0;
    while !bytes.is_empty() {
        let mut slots = header_slots();
        let mut request = Request::new(&mut []);
        match config().parse_request_with_uninit_headers(&mut request, bytes, &mut slots) {
            Ok(Status::Complete(len)) if len > 0 => {
                count += 1;
                bytes = &bytes[len..];
            }
            Ok(Status::Partial) | Err(httparse::Error::TooManyHeaders) if request.version.is_some() => {
                return count + 1;
            }
            _ => return count,
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(span_id: u64, kind: HttpCaptureKind, bytes: &[u8]) -> Capture<'_> {
        Capture { span_id, tgid: 7, kind: kind as u32, bytes }
    }

    #[test]
    fn captures_are_read_in_place_from_ring_records() {
        let mut data = [0u8; HTTP_CAPTURE_LEN];
        data[..3].copy_from_slice(b"GET");
        let kind = HttpCaptureKind::Request as u32;
        let record = HttpCapture { span_id: 1 << 40, tgid: 7, tid: 8, kind, len: 3, data };
        // SAFETY: HttpCapture is plain integers and bytes, with no padding.
        let bytes = unsafe {
            std::slice::from_raw_parts(std::ptr::from_ref(&record).cast::<u8>(), size_of::<HttpCapture>())
        };
        let capture = Capture::read(bytes).unwrap();
        assert_eq!((capture.span_id, capture.tgid, capture.kind, capture.bytes), (1 << 40, 7, kind, &b"GET"[..]));
        assert!(Capture::read(&bytes[..size_of::<HttpCapture>() - 1]).is_none(), "a record cut short");
    }

    #[test]
    fn request_and_response_give_the_span_fields() {
        let mut heads = HttpHeads::default();
        heads.on_capture(&capture(
            1,
            HttpCaptureKind::Request,
            b"GET /cpu?ms=3 HTTP/1.1\r\nHost: x\r\nX-Request-Id: req-42\r\n\
              traceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01\r\n\r\n",
        ));
        heads.on_capture(&capture(1, HttpCaptureKind::Response, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"));
        let pending = heads.pending_request(7, 1).unwrap();
        assert_eq!(pending.trace_id.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"), "for its outgoing calls");
        assert_eq!(pending.request_id.as_deref(), Some("req-42"), "for the span it starts elsewhere");
        let fields = heads.take(7, 1).unwrap();
        assert_eq!(fields.http_method, "GET");
        assert_eq!(fields.http_path, "/cpu", "the query string is dropped by default");
        assert_eq!(fields.http_status, Some(404));
        assert_eq!(fields.request_id.as_deref(), Some("req-42"));
        assert_eq!(fields.trace_id.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(fields.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert!(heads.pending.is_empty());
    }

    #[test]
    fn headers_split_over_reads_and_ids_from_the_response() {
        let mut heads = HttpHeads { keep_query: true, ..HttpHeads::default() };
        heads.on_capture(&capture(2, HttpCaptureKind::Request, b"POST /a?b=1 HTTP/1.1\r\nHo"));
        heads.on_capture(&capture(2, HttpCaptureKind::Request, b"st: x\r\n\r\n"));
        heads.on_capture(&capture(2, HttpCaptureKind::Response, b"HTTP/1.1 200 OK\r\nX-Request-Id: abc\r\n\r\n"));
        let fields = heads.take(7, 2).unwrap();
        assert_eq!((fields.http_method.as_str(), fields.http_path.as_str()), ("POST", "/a?b=1"));
        assert_eq!(fields.request_id.as_deref(), Some("abc"), "nginx-style id added to the response");
        assert_eq!((fields.trace_id, fields.parent_span_id), (None, None));
    }

    #[test]
    fn the_response_head_says_where_the_response_ends() {
        let end_of = |method: &str, response: &str| {
            let mut heads = HttpHeads::default();
            heads.on_capture(&capture(3, HttpCaptureKind::Request, format!("{method} / HTTP/1.1\r\n\r\n").as_bytes()));
            heads.on_capture(&capture(3, HttpCaptureKind::Response, response.as_bytes()));
            heads.take(7, 3).unwrap().response_end
        };
        let sized = "HTTP/1.1 200 OK\r\ncontent-length: 1048576\r\n\r\nxxxx";
        assert_eq!(end_of("GET", sized), ResponseEnd::Bytes(sized.len() as u64 - 4 + 1_048_576));
        assert_eq!(end_of("HEAD", sized), ResponseEnd::Bytes(sized.len() as u64 - 4), "no body after a HEAD");
        let not_modified = "HTTP/1.1 304 Not Modified\r\nContent-Length: 612\r\n\r\n";
        assert_eq!(end_of("GET", not_modified), ResponseEnd::Bytes(not_modified.len() as u64));
        let chunked = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(end_of("GET", chunked), ResponseEnd::Quiet, "chunked wins over a length");
        assert_eq!(end_of("GET", "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n"), ResponseEnd::Quiet, "until close");
        assert_eq!(end_of("GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Cut: sho"), ResponseEnd::Unknown, "head cut short");
        assert_eq!(end_of("GET", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"), ResponseEnd::Unknown);
    }

    #[test]
    fn peers_are_read_from_connect_addresses() {
        let mut v4 = [0u8; tracer_common::PEER_ADDR_LEN];
        v4[..8].copy_from_slice(&[2, 0, 0x1f, 0x41, 127, 0, 0, 1]);
        assert_eq!(peer_of(&v4).as_deref(), Some("127.0.0.1:8001"));
        let mut v6 = [0u8; tracer_common::PEER_ADDR_LEN];
        v6[..4].copy_from_slice(&[10, 0, 0x1f, 0x41]);
        v6[23] = 1;
        assert_eq!(peer_of(&v6).as_deref(), Some("[::1]:8001"));
        assert_eq!(peer_of(&[1, 0, b'/', b't']), None, "a Unix socket is no peer address");
        let mut heads = HttpHeads::default();
        heads.on_capture(&capture(1, HttpCaptureKind::Request, b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
        heads.on_capture(&capture(1, HttpCaptureKind::Peer, &v4));
        assert_eq!(heads.take(7, 1).unwrap().peer.as_deref(), Some("127.0.0.1:8001"));
    }

    #[test]
    fn traceparent_parent_ids_are_checked() {
        let parent = |header: &str| parent_id_of(header);
        assert_eq!(parent("00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01").as_deref(), Some("00f067aa0ba902b7"));
        assert_eq!(parent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"), None, "all zero");
        assert_eq!(parent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902-01"), None, "too short");
        assert_eq!(parent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), None, "no trace id");
        assert_eq!(parent("00-4bf92f3577b34da6a3ce929d0e0e4736"), None);
    }

    #[test]
    fn pipelined_requests_are_counted_and_non_http_rejected() {
        let mut heads = HttpHeads::default();
        heads.on_capture(&capture(
            3,
            HttpCaptureKind::Request,
            b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\n",
        ));
        assert_eq!(heads.take(7, 3).unwrap().http_path, "/1");
        assert_eq!(heads.pipelined, 2);
        heads.on_capture(&capture(4, HttpCaptureKind::Request, b"GETTING STARTED is a heading\r\n"));
        assert_eq!(heads.take(7, 4), Err(Rejected::NotHttp));
        assert_eq!(heads.take(7, 5), Err(Rejected::HeadLost), "nothing captured");
        assert_eq!((heads.not_http, heads.heads_lost), (1, 1));
    }

    #[test]
    fn heads_cut_short_give_what_arrived() {
        let mut heads = HttpHeads::default();
        heads.on_capture(&capture(
            6,
            HttpCaptureKind::Request,
            b"GET /orders?id=7 HTTP/1.1\r\nHost: x\r\nnot a header\r\nX-Request-Id: req-9\r\nUser-Agent: lo",
        ));
        heads.on_capture(&capture(6, HttpCaptureKind::Response, b"HTTP/1.1 503 Service Unava"));
        let fields = heads.take(7, 6).unwrap();
        assert_eq!((fields.http_method.as_str(), fields.http_path.as_str()), ("GET", "/orders"));
        assert_eq!(fields.request_id.as_deref(), Some("req-9"), "complete header lines before the cut count");
        assert_eq!(fields.http_status, Some(503));
        assert_eq!(heads.pipelined, 0);

        heads.on_capture(&capture(8, HttpCaptureKind::Request, b"PUT /a/b HTTP/1."));
        let fields = heads.take(7, 8).unwrap();
        assert_eq!((fields.http_method.as_str(), fields.http_path.as_str(), fields.http_status), ("PUT", "/a/b", None));
        heads.on_capture(&capture(9, HttpCaptureKind::Request, b"GET /a/very/long/pa"));
        assert_eq!(heads.take(7, 9), Err(Rejected::NotHttp), "a target cut short is not reported as a path");
    }
}
