//! Spans recorded by something else, read from JSON lines (one span per
//! line) or OTLP/JSON (an OpenTelemetry trace export: one document, or one
//! per line as the OTLP file exporter writes them). Each span that cannot
//! be used is passed on with where it was and why, and the rest still
//! count. The input is streamed: it may be larger than memory, a pipe, or
//! endless (docs/spans.md, "Input").
mod lines;
mod otlp;

use std::{
    io::{self, BufRead, Cursor, Read},
    ops::ControlFlow,
};

use lines::Line;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

/// The longest line read as one span (or as one OTLP document of the OTLP
/// file exporter); a longer line is one malformed span.
pub const MAX_LINE: usize = 1 << 20;

/// The largest single multi-line OTLP/JSON document read, and the most of
/// one over-long line skipped before the input is refused as not made of
/// lines (what /dev/zero or a binary file would be).
pub const MAX_DOCUMENT: u64 = 256 << 20;

/// The bounds of [`read`] ([`MAX_LINE`] and [`MAX_DOCUMENT`]; smaller in tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub line: usize,
    pub document: u64,
}

impl Limits {
    pub const DEFAULT: Limits = Limits { line: MAX_LINE, document: MAX_DOCUMENT };
}

/// Why the input as a whole cannot be read on (a span that cannot be used
/// is no such reason).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(transparent)]
    Read(#[from] io::Error),
    #[error("line {line} goes on for more than {} without a line end: not JSON lines", size(*.limit))]
    NoLineEnd { line: usize, limit: u64 },
    #[error(
        "one JSON document larger than {}, the most read as a whole: write its spans as JSON lines, \
         or one OTLP document per line",
        size(*.limit)
    )]
    DocumentTooLarge { limit: u64 },
}

/// The spans of an input in its order, and those that could not be read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Input {
    pub spans: Vec<(Location, ExternalSpan)>,
    pub unusable: Vec<(Location, Unusable)>,
}

/// Every span of an input in memory, collected (for tests and small inputs).
pub fn parse(bytes: &[u8]) -> Result<Input, InputError> {
    parse_with(bytes, Limits::DEFAULT)
}

/// [`parse`] within `limits`.
fn parse_with(bytes: &[u8], limits: Limits) -> Result<Input, InputError> {
    let mut input = Input::default();
    read_with(bytes, limits, &mut |at, span| {
        match span {
            Ok(span) => input.spans.push((at, span)),
            Err(why) => input.unusable.push((at, why)),
        }
        ControlFlow::Continue(())
    })?;
    Ok(input)
}

fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// Where a span was in the input: its line, or, in a single multi-line
/// OTLP document (where lines do not separate spans), its position among
/// the document's spans, from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Line(usize),
    Span(usize),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Span(n) => write!(f, "span {n}"),
        }
    }
}

/// Why a span of the input cannot be joined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("{0}")]
    Malformed(String),
    #[error("no thread id")]
    NoThreadId,
}

fn malformed(what: impl Into<String>) -> Unusable {
    Unusable::Malformed(what.into())
}

/// A span as its recorder saw it: wall-clock times, a thread id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalSpan {
    pub trace_id: Option<String>,
    pub span_id: u64,
    pub name: String,
    pub tid: u32,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
}

/// What [`read`] calls with each span, or why it cannot be used; `Break`
/// stops the reading.
pub type Found<'a> = dyn FnMut(Location, Result<ExternalSpan, Unusable>) -> ControlFlow<()> + 'a;

/// Reads spans from either format, told apart by content: a first
/// non-empty line that opens an object but is not a JSON value on its own
/// (or is longer than a line may be) begins one multi-line OTLP document.
/// Calls `found` with each span in input order. Holds one line of the input
/// at a time, or, in a multi-line document, one span.
pub fn read(input: impl BufRead, found: &mut Found) -> Result<(), InputError> {
    read_with(input, Limits::DEFAULT, found)
}

/// [`read`] within other bounds.
pub fn read_with(mut input: impl BufRead, limits: Limits, found: &mut Found) -> Result<(), InputError> {
    let mut first = Vec::new();
    let mut number = 0;
    let kind = loop {
        number += 1;
        match lines::read_line(&mut input, &mut first, limits.line)? {
            Line::End => return Ok(()),
            Line::Whole if first.trim_ascii().is_empty() => {}
            kind => break kind,
        }
    };
    let alone = kind == Line::Whole && serde_json::from_slice::<IgnoredAny>(&first).is_ok();
    let opens_object = first.trim_ascii_start().first() == Some(&b'{');
    if kind == Line::Whole {
        first.push(b'\n');
    }
    // The first line, read again by whichever reads the input.
    let again = Cursor::new(first).chain(input);
    if opens_object && !alone {
        otlp::document(again, number, limits, found)
    } else {
        read_lines(again, number, limits, found)
    }
}

/// JSON lines, or OTLP documents one per line; `number` is the first line's.
fn read_lines(mut input: impl BufRead, number: usize, limits: Limits, found: &mut Found) -> Result<(), InputError> {
    let mut line = Vec::new();
    for number in number.. {
        let at = Location::Line(number);
        let flow = match lines::read_line(&mut input, &mut line, limits.line)? {
            Line::End => break,
            Line::Whole if line.trim_ascii().is_empty() => continue,
            Line::Whole => one_line(line.trim_ascii(), at, found),
            Line::Long => {
                if !lines::skip_rest(&mut input, limits.document)? {
                    return Err(InputError::NoLineEnd { line: number, limit: limits.document });
                }
                found(at, Err(malformed(format!("longer than {}, the longest line read", size(limits.line as u64)))))
            }
        };
        if flow.is_break() {
            break;
        }
    }
    Ok(())
}

fn one_line(text: &[u8], at: Location, found: &mut Found) -> ControlFlow<()> {
    let value = match serde_json::from_slice::<Value>(text) {
        Ok(value) => value,
        Err(e) => return found(at, Err(malformed(format!("not JSON: {e}")))),
    };
    if value.get("resourceSpans").is_some() {
        otlp::one_line(&value, &mut |span| found(at, span))
    } else {
        found(at, span_line(&value))
    }
}

/// A field that is present and not null.
fn field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|v| !v.is_null())
}

fn required<'a>(object: &'a Map<String, Value>, key: &str) -> Result<&'a Value, Unusable> {
    field(object, key).ok_or_else(|| malformed(format!("no `{key}`")))
}

/// An unsigned integer written as a JSON number or a decimal string (JSON
/// numbers lose precision above 2^53 in many producers, so nanosecond
/// times often come as strings).
fn integer(value: &Value, key: &str) -> Result<u64, Unusable> {
    let parsed = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| malformed(format!("`{key}` is not a non-negative integer: {value}")))
}

/// A span id: a number, 16 hex digits (the W3C / OpenTelemetry form), or
/// a decimal string.
fn span_id(value: &Value, key: &str) -> Result<u64, Unusable> {
    if let Value::String(s) = value
        && s.len() == 16
        && s.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Ok(u64::from_str_radix(s, 16).expect("16 hex digits fit in 64 bits"));
    }
    integer(value, key).map_err(|_| malformed(format!("`{key}` is neither 16 hex digits nor an integer: {value}")))
}

fn string(value: &Value, key: &str) -> Result<String, Unusable> {
    value.as_str().map(str::to_owned).ok_or_else(|| malformed(format!("`{key}` is not a string: {value}")))
}

fn thread_id(value: &Value, key: &str) -> Result<u32, Unusable> {
    let id = integer(value, key)?;
    u32::try_from(id).map_err(|_| malformed(format!("`{key}` is not a thread id: {id}")))
}

fn times(start: u64, end: u64) -> Result<(u64, u64), Unusable> {
    if end < start {
        return Err(malformed(format!("it ends ({end}) before it starts ({start})")));
    }
    Ok((start, end))
}

/// `{"trace_id": "...", "span_id": 7, "name": "GET /", "tid": 1234,
/// "start_unix_ns": ..., "end_unix_ns": ...}`; `trace_id` is optional.
fn span_line(value: &Value) -> Result<ExternalSpan, Unusable> {
    let object = value.as_object().ok_or_else(|| malformed("not a JSON object"))?;
    let trace_id = field(object, "trace_id").map(|v| string(v, "trace_id")).transpose()?;
    let span_id = span_id(required(object, "span_id")?, "span_id")?;
    let name = string(required(object, "name")?, "name")?;
    let (start_unix_ns, end_unix_ns) = times(
        integer(required(object, "start_unix_ns")?, "start_unix_ns")?,
        integer(required(object, "end_unix_ns")?, "end_unix_ns")?,
    )?;
    let tid = thread_id(field(object, "tid").ok_or(Unusable::NoThreadId)?, "tid")?;
    Ok(ExternalSpan { trace_id, span_id, name, tid, start_unix_ns, end_unix_ns })
}

/// An OTLP/JSON span: `traceId`, `spanId` (hex), `name`,
/// `startTimeUnixNano`, `endTimeUnixNano`, and the thread in the
/// `thread.id` attribute (`{"key": "thread.id", "value": {"intValue": ...}}`).
fn otlp_span(value: &Value) -> Result<ExternalSpan, Unusable> {
    let object = value.as_object().ok_or_else(|| malformed("a span that is not a JSON object"))?;
    let trace_id = field(object, "traceId").map(|v| string(v, "traceId")).transpose()?.filter(|t| !t.is_empty());
    let span_id = span_id(required(object, "spanId")?, "spanId")?;
    let name = string(required(object, "name")?, "name")?;
    let (start_unix_ns, end_unix_ns) = times(
        integer(required(object, "startTimeUnixNano")?, "startTimeUnixNano")?,
        integer(required(object, "endTimeUnixNano")?, "endTimeUnixNano")?,
    )?;
    let attribute = field(object, "attributes")
        .and_then(Value::as_array)
        .and_then(|attributes| attributes.iter().find(|a| a.get("key").and_then(Value::as_str) == Some("thread.id")))
        .ok_or(Unusable::NoThreadId)?;
    let tid = match attribute.get("value").and_then(|v| v.get("intValue")) {
        Some(id) => thread_id(id, "thread.id")?,
        None => return Err(malformed(format!("`thread.id` has no intValue: {attribute}"))),
    };
    Ok(ExternalSpan { trace_id, span_id, name, tid, start_unix_ns, end_unix_ns })
}

#[cfg(test)]
pub(crate) mod tests;
