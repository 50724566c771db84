//! HTTP/1.x request and response heads copied by the kernel for
//! `tracer spans --http`, parsed into the fields of a span line.
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tracer_common::{HTTP_CAPTURE_REQUEST, HTTP_CAPTURE_RESPONSE, HttpCapture};

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
}

/// Why a captured exchange was not made a span line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// The first bytes looked like a method, but no request line followed.
    NotHttp,
    /// The request's head never arrived (the capture buffer was full).
    HeadLost,
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
}

#[derive(Default)]
struct Heads {
    request: Vec<u8>,
    response: Vec<u8>,
}

impl HttpHeads {
    pub fn on_capture(&mut self, capture: &HttpCapture) {
        let heads = self.pending.entry((capture.tgid, capture.span_id)).or_default();
        let bytes = &capture.data[..(capture.len as usize).min(capture.data.len())];
        match capture.kind {
            HTTP_CAPTURE_REQUEST => heads.request.extend_from_slice(bytes),
            HTTP_CAPTURE_RESPONSE => heads.response.extend_from_slice(bytes),
            _ => {}
        }
    }

    /// The fields of span `span_id` of `tgid`, whose heads are forgotten.
    pub fn take(&mut self, tgid: u32, span_id: u64) -> Result<HttpFields, Rejected> {
        let heads = self.pending.remove(&(tgid, span_id)).unwrap_or_default();
        if heads.request.is_empty() {
            self.heads_lost += 1;
            return Err(Rejected::HeadLost);
        }
        let parsed = parse(&heads.request, &heads.response, self.keep_query);
        match &parsed {
            Ok((_, pipelined)) => self.pipelined += pipelined,
            Err(_) => self.not_http += 1,
        }
        parsed.map(|(fields, _)| fields)
    }

    /// Forgets heads of spans that never arrived (expired by the kernel side).
    pub fn forget_older_than(&mut self, span_ids_below: u64) {
        self.pending.retain(|(_, span_id), _| *span_id >= span_ids_below);
    }
}

/// Parses a request head (and what follows it in the same reads) and the
/// start of the response. Returns the fields and how many more requests
/// were pipelined behind the first.
fn parse(request: &[u8], response: &[u8], keep_query: bool) -> Result<(HttpFields, u64), Rejected> {
    let (line, rest) = split_line(request).ok_or(Rejected::NotHttp)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Rejected::NotHttp);
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Rejected::NotHttp);
    }
    let path = if keep_query { target } else { target.split('?').next().unwrap_or(target) };
    let (request_headers, after_head) = headers(rest);
    let pipelined = count_requests(after_head);
    let mut fields = HttpFields {
        http_method: method.to_owned(),
        http_path: path.to_owned(),
        ..HttpFields::default()
    };
    fields.request_id = header(&request_headers, "x-request-id").map(str::to_owned);
    fields.trace_id = header(&request_headers, "traceparent").and_then(trace_id_of);
    if let Some((status_line, rest)) = split_line(response) {
        fields.http_status = status_line
            .strip_prefix("HTTP/1.")
            .and_then(|s| s.get(2..5))
            .and_then(|code| code.parse().ok());
        if fields.request_id.is_none() {
            fields.request_id = header(&headers(rest).0, "x-request-id").map(str::to_owned);
        }
    }
    Ok((fields, pipelined))
}

/// The first CRLF-terminated line as text, and the bytes after it.
fn split_line(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let end = bytes.windows(2).position(|w| w == b"\r\n")?;
    Some((std::str::from_utf8(&bytes[..end]).ok()?, &bytes[end + 2..]))
}

/// Header lines up to the blank line (or as far as captured), and the bytes
/// after the blank line (empty if it was not seen).
fn headers(mut bytes: &[u8]) -> (Vec<(&str, &str)>, &[u8]) {
    let mut found = Vec::new();
    while let Some((line, rest)) = split_line(bytes) {
        bytes = rest;
        if line.is_empty() {
            return (found, bytes);
        }
        if let Some((name, value)) = line.split_once(':') {
            found.push((name.trim(), value.trim()));
        }
    }
    (found, &[])
}

fn header<'a>(headers: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v).filter(|v| !v.is_empty())
}

/// `00-<trace id>-<parent id>-<flags>`.
fn trace_id_of(traceparent: &str) -> Option<String> {
    let id = traceparent.split('-').nth(1)?;
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) && id.bytes().any(|b| b != b'0'))
        .then(|| id.to_ascii_lowercase())
}

/// Request lines at the start of `bytes` and behind each complete head.
fn count_requests(mut bytes: &[u8]) -> u64 {
    let mut count = 0;
    while let Some((line, rest)) = split_line(bytes) {
        if !line.ends_with("HTTP/1.1") && !line.ends_with("HTTP/1.0") {
            break;
        }
        count += 1;
        bytes = headers(rest).1;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(span_id: u64, kind: u32, bytes: &[u8]) -> HttpCapture {
        let mut data = [0u8; tracer_common::HTTP_CAPTURE_LEN];
        data[..bytes.len()].copy_from_slice(bytes);
        HttpCapture { span_id, tgid: 7, tid: 7, kind, len: bytes.len() as u32, data }
    }

    #[test]
    fn request_and_response_give_the_span_fields() {
        let mut heads = HttpHeads::default();
        heads.on_capture(&capture(
            1,
            HTTP_CAPTURE_REQUEST,
            b"GET /cpu?ms=3 HTTP/1.1\r\nHost: x\r\nX-Request-Id: req-42\r\n\
              traceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01\r\n\r\n",
        ));
        heads.on_capture(&capture(1, HTTP_CAPTURE_RESPONSE, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"));
        let fields = heads.take(7, 1).unwrap();
        assert_eq!(fields.http_method, "GET");
        assert_eq!(fields.http_path, "/cpu", "the query string is dropped by default");
        assert_eq!(fields.http_status, Some(404));
        assert_eq!(fields.request_id.as_deref(), Some("req-42"));
        assert_eq!(fields.trace_id.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert!(heads.pending.is_empty());
    }

    #[test]
    fn headers_split_over_reads_and_ids_from_the_response() {
        let mut heads = HttpHeads { keep_query: true, ..HttpHeads::default() };
        heads.on_capture(&capture(2, HTTP_CAPTURE_REQUEST, b"POST /a?b=1 HTTP/1.1\r\nHo"));
        heads.on_capture(&capture(2, HTTP_CAPTURE_REQUEST, b"st: x\r\n\r\n"));
        heads.on_capture(&capture(2, HTTP_CAPTURE_RESPONSE, b"HTTP/1.1 200 OK\r\nX-Request-Id: abc\r\n\r\n"));
        let fields = heads.take(7, 2).unwrap();
        assert_eq!((fields.http_method.as_str(), fields.http_path.as_str()), ("POST", "/a?b=1"));
        assert_eq!(fields.request_id.as_deref(), Some("abc"), "nginx-style id added to the response");
        assert_eq!(fields.trace_id, None);
    }

    #[test]
    fn pipelined_requests_are_counted_and_non_http_rejected() {
        let mut heads = HttpHeads::default();
        heads.on_capture(&capture(
            3,
            HTTP_CAPTURE_REQUEST,
            b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\n",
        ));
        assert_eq!(heads.take(7, 3).unwrap().http_path, "/1");
        assert_eq!(heads.pipelined, 2);
        heads.on_capture(&capture(4, HTTP_CAPTURE_REQUEST, b"GETTING STARTED is a heading\r\n"));
        assert_eq!(heads.take(7, 4), Err(Rejected::NotHttp));
        assert_eq!(heads.take(7, 5), Err(Rejected::HeadLost), "nothing captured");
        assert_eq!((heads.not_http, heads.heads_lost), (1, 1));
    }
}
