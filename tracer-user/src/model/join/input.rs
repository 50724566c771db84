//! Spans recorded by something else, read from JSON lines (one span per
//! line) or OTLP/JSON (an OpenTelemetry trace export: one document, or one
//! per line as the OTLP file exporter writes them). Each span that cannot
//! be used is kept with where it was and why, and the rest still count.
use std::io::{BufRead, Read};

use serde_json::{Map, Value};

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

/// The spans of an input in its order, and those that could not be read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Input {
    pub spans: Vec<(Location, ExternalSpan)>,
    pub unusable: Vec<(Location, Unusable)>,
}

impl Input {
    fn take(&mut self, at: Location, span: Result<ExternalSpan, Unusable>) {
        match span {
            Ok(span) => self.spans.push((at, span)),
            Err(why) => self.unusable.push((at, why)),
        }
    }
}

/// The longest line of JSON lines read: a span is a few hundred bytes, and
/// an input without line breaks (`/dev/zero`, a binary file) must fail
/// rather than be read into memory whole.
pub const MAX_LINE: usize = 1 << 20;
/// The largest single multi-line OTLP/JSON document read: lines do not
/// separate its spans, so it is parsed whole (docs/spans.md).
pub const MAX_DOCUMENT: usize = 256 << 20;

/// Why an input could not be read at all (unlike [`Unusable`], which
/// concerns one span).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("line {0} is longer than {MAX_LINE} bytes: not JSON lines")]
    LineTooLong(usize),
    #[error(
        "a multi-line OTLP/JSON document of more than {} MiB: export it as JSON lines (one document per line)",
        MAX_DOCUMENT >> 20
    )]
    DocumentTooLarge,
    #[error(transparent)]
    Read(#[from] std::io::Error),
}

/// Reads the next line (without its line break) into `line`; false at the
/// end of the input.
fn next_line(input: &mut impl BufRead, line: &mut Vec<u8>, number: usize) -> Result<bool, InputError> {
    line.clear();
    let read = input.by_ref().take(MAX_LINE as u64 + 1).read_until(b'\n', line)?;
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if line.len() > MAX_LINE {
        return Err(InputError::LineTooLong(number));
    }
    Ok(read > 0)
}

/// Reads spans from either format, told apart by content, calling `found`
/// with each span (or why it is unusable) as it is read: JSON lines are
/// streamed line by line; a first non-empty line that opens an object but
/// is not a JSON value on its own means one multi-line document, read
/// whole up to [`MAX_DOCUMENT`].
pub fn read(
    mut input: impl BufRead,
    found: &mut dyn FnMut(Location, Result<ExternalSpan, Unusable>),
) -> Result<(), InputError> {
    let mut line = Vec::new();
    let mut number = 0;
    let mut lines_read = Vec::new();
    while next_line(&mut input, &mut line, number + 1)? {
        number += 1;
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            lines_read.extend_from_slice(&line);
            lines_read.push(b'\n');
            continue;
        }
        if trimmed.starts_with(b"{") && serde_json::from_slice::<Value>(trimmed).is_err() {
            lines_read.extend_from_slice(&line);
            lines_read.push(b'\n');
            return read_document(lines_read, input, found);
        }
        span_line_at(trimmed, Location::Line(number), found);
        break;
    }
    while next_line(&mut input, &mut line, number + 1)? {
        number += 1;
        let trimmed = line.trim_ascii();
        if !trimmed.is_empty() {
            span_line_at(trimmed, Location::Line(number), found);
        }
    }
    Ok(())
}

/// The rest of an input whose first lines (`head`) began a multi-line
/// value: one OTLP document, or, when it is not one, JSON lines after all.
fn read_document(
    mut head: Vec<u8>,
    input: impl BufRead,
    found: &mut dyn FnMut(Location, Result<ExternalSpan, Unusable>),
) -> Result<(), InputError> {
    let limit = (MAX_DOCUMENT + 1).saturating_sub(head.len()) as u64;
    input.take(limit).read_to_end(&mut head)?;
    if head.len() > MAX_DOCUMENT {
        return Err(InputError::DocumentTooLarge);
    }
    if let Ok(document) = serde_json::from_slice::<Value>(&head)
        && document.get("resourceSpans").is_some()
    {
        let mut n = 0;
        let whole = otlp_document(&document, &mut |span| {
            n += 1;
            found(Location::Span(n), span);
        });
        if let Err(why) = whole {
            found(Location::Line(1), Err(why));
        }
        return Ok(());
    }
    for (index, line) in head.split(|&b| b == b'\n').map(<[u8]>::trim_ascii).enumerate() {
        if !line.is_empty() {
            span_line_at(line, Location::Line(index + 1), found);
        }
    }
    Ok(())
}

/// One line of JSON lines: a span, or an OTLP document of its own.
fn span_line_at(line: &[u8], at: Location, found: &mut dyn FnMut(Location, Result<ExternalSpan, Unusable>)) {
    let value = match serde_json::from_slice::<Value>(line) {
        Ok(value) => value,
        Err(e) => return found(at, Err(malformed(format!("not JSON: {e}")))),
    };
    if value.get("resourceSpans").is_some() {
        if let Err(why) = otlp_document(&value, &mut |span| found(at, span)) {
            found(at, Err(why));
        }
    } else {
        found(at, span_line(&value));
    }
}

/// Every span of an input in memory, collected (for tests and small inputs).
pub fn parse(bytes: &[u8]) -> Result<Input, InputError> {
    let mut input = Input::default();
    read(bytes, &mut |at, span| input.take(at, span))?;
    Ok(input)
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

/// `resourceSpans[].scopeSpans[].spans[]`; calls `found` with each span.
/// Fails as a whole only when that structure itself is wrong.
fn otlp_document(document: &Value, found: &mut dyn FnMut(Result<ExternalSpan, Unusable>)) -> Result<(), Unusable> {
    for resource in list(document, "resourceSpans")? {
        for scope in list(resource, "scopeSpans")? {
            for span in list(scope, "spans")? {
                found(otlp_span(span));
            }
        }
    }
    Ok(())
}

/// A list member of an OTLP object (absent: empty).
fn list<'a>(parent: &'a Value, key: &str) -> Result<&'a [Value], Unusable> {
    match parent.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(malformed(format!("`{key}` is not a list"))),
    }
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
mod tests {
    use super::*;

    fn span(tid: u32, span_id: u64, name: &str, start: u64, end: u64, trace: Option<&str>) -> ExternalSpan {
        ExternalSpan {
            trace_id: trace.map(str::to_owned),
            span_id,
            name: name.into(),
            tid,
            start_unix_ns: start,
            end_unix_ns: end,
        }
    }

    fn why(input: &Input) -> Vec<(Location, String)> {
        input.unusable.iter().map(|(at, why)| (*at, why.to_string())).collect()
    }

    #[test]
    fn json_lines_with_bad_lines_among_good_ones() {
        let text = concat!(
            r#"{"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": 7, "name": "GET /a", "tid": 101, "start_unix_ns": 1000, "end_unix_ns": 2000}"#,
            "\n",
            r#"{"span_id": "00f067aa0ba902b7", "name": "GET /b", "tid": "102", "start_unix_ns": "1700000000000000001", "end_unix_ns": "1700000000000000002"}"#,
            "\n\n",
            "this is not json\n",
            r#"{"span_id": 9, "tid": 101, "start_unix_ns": 1, "end_unix_ns": 2}"#,
            "\n",
            r#"{"span_id": 10, "name": "no thread", "start_unix_ns": 1, "end_unix_ns": 2}"#,
            "\r\n",
            r#"{"trace_id": null, "span_id": "12345", "name": "null thread", "tid": null, "start_unix_ns": 1, "end_unix_ns": 2}"#,
            "\n",
            r#"{"span_id": 11, "name": "backwards", "tid": 101, "start_unix_ns": 5, "end_unix_ns": 4}"#,
            "\n",
            r#"{"span_id": 12, "name": "float", "tid": 101, "start_unix_ns": 1.7e18, "end_unix_ns": 2}"#,
            "\n",
            "[1, 2]\n",
            r#"{"span_id": "12345", "name": "decimal id", "tid": 103, "start_unix_ns": 1, "end_unix_ns": 2}"#,
        );
        let input = parse(text.as_bytes()).unwrap();
        assert_eq!(
            input.spans,
            vec![
                (Location::Line(1), span(101, 7, "GET /a", 1000, 2000, Some("4bf92f3577b34da6a3ce929d0e0e4736"))),
                (
                    Location::Line(2),
                    span(102, 0x00f0_67aa_0ba9_02b7, "GET /b", 1_700_000_000_000_000_001, 1_700_000_000_000_000_002, None)
                ),
                (Location::Line(11), span(103, 12345, "decimal id", 1, 2, None)),
            ]
        );
        let problems = why(&input);
        assert_eq!(
            problems.iter().map(|(at, _)| *at).collect::<Vec<_>>(),
            [4, 5, 6, 7, 8, 9, 10].map(Location::Line),
            "line numbers count blank lines: {problems:?}"
        );
        assert!(problems[0].1.starts_with("not JSON"), "{}", problems[0].1);
        assert_eq!(problems[1].1, "no `name`");
        assert_eq!((problems[2].1.as_str(), problems[3].1.as_str()), ("no thread id", "no thread id"));
        assert_eq!(problems[4].1, "it ends (4) before it starts (5)");
        assert!(problems[5].1.starts_with("`start_unix_ns` is not a non-negative integer"), "{}", problems[5].1);
        assert_eq!(problems[6].1, "not a JSON object");
        assert_eq!(input.unusable[2].1, Unusable::NoThreadId);
    }

    fn otlp_span(span_id: &str, tid: Option<&str>, start: &str) -> String {
        let attributes = match tid {
            Some(tid) => format!(r#"[{{"key": "http.method", "value": {{"stringValue": "GET"}}}}, {{"key": "thread.id", "value": {{"intValue": {tid}}}}}]"#),
            None => "[]".into(),
        };
        format!(
            concat!(
                r#"{{"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "{span_id}", "name": "GET /users", "#,
                r#""kind": 2, "startTimeUnixNano": {start}, "endTimeUnixNano": "1700000000500000000", "#,
                r#""attributes": {attributes}}}"#
            ),
            span_id = span_id,
            start = start,
            attributes = attributes,
        )
    }

    #[test]
    fn otlp_document_spread_over_lines() {
        let document = format!(
            "{{\n  \"resourceSpans\": [\n    {{\"resource\": {{\"attributes\": []}},\n     \"scopeSpans\": [{{\"scope\": {{\"name\": \"app\"}}, \"spans\": [\n      {},\n      {}\n    ]}}]}},\n    {{\"scopeSpans\": [{{\"spans\": [{}, {}, {}]}}]}}\n  ]\n}}\n",
            otlp_span("eee19b7ec3c1b174", Some("\"4242\""), "\"1700000000000000000\""),
            otlp_span("eee19b7ec3c1b175", Some("4243"), "1700000000100000000"),
            otlp_span("eee19b7ec3c1b176", None, "\"1700000000000000000\""),
            otlp_span("not-hex", Some("1"), "\"1700000000000000000\""),
            otlp_span("eee19b7ec3c1b177", Some("\"x\""), "\"1700000000000000000\""),
        );
        let input = parse(document.as_bytes()).unwrap();
        let trace = Some("5b8efff798038103d269b633813fc60c");
        assert_eq!(
            input.spans,
            vec![
                (
                    Location::Span(1),
                    span(4242, 0xeee1_9b7e_c3c1_b174, "GET /users", 1_700_000_000_000_000_000, 1_700_000_000_500_000_000, trace)
                ),
                (
                    Location::Span(2),
                    span(4243, 0xeee1_9b7e_c3c1_b175, "GET /users", 1_700_000_000_100_000_000, 1_700_000_000_500_000_000, trace)
                ),
            ]
        );
        let problems = why(&input);
        assert_eq!(problems[0], (Location::Span(3), "no thread id".into()));
        assert_eq!(problems[1].0, Location::Span(4));
        assert!(problems[1].1.starts_with("`spanId` is neither 16 hex digits nor an integer"), "{}", problems[1].1);
        assert_eq!(problems[2].0, Location::Span(5));
        assert!(problems[2].1.starts_with("`thread.id` is not a non-negative integer"), "{}", problems[2].1);
    }

    #[test]
    fn otlp_file_exporter_lines() {
        let document = |spans: &[String]| {
            format!(r#"{{"resourceSpans": [{{"scopeSpans": [{{"spans": [{}]}}]}}]}}"#, spans.join(","))
        };
        let text = [
            document(&[
                otlp_span("eee19b7ec3c1b174", Some("10"), "1700000000000000000"),
                otlp_span("eee19b7ec3c1b175", None, "1700000000000000000"),
            ]),
            "{\"resourceSpans\": [{\"scopeSpans\": [{\"spans\": [".into(),
            document(&[otlp_span("eee19b7ec3c1b176", Some("11"), "1700000000000000000")]),
            r#"{"resourceSpans": {"not": "a list"}}"#.into(),
            document(&[otlp_span("eee19b7ec3c1b177", Some("12"), "\"1700000000900000000\"")]),
        ]
        .join("\n");
        let input = parse(text.as_bytes()).unwrap();
        let found: Vec<(Location, u32)> = input.spans.iter().map(|(at, s)| (*at, s.tid)).collect();
        assert_eq!(found, [(Location::Line(1), 10), (Location::Line(3), 11)]);
        let problems = why(&input);
        assert_eq!(problems[0], (Location::Line(1), "no thread id".into()));
        assert_eq!(problems[1].0, Location::Line(2));
        assert!(problems[1].1.starts_with("not JSON"));
        assert_eq!(problems[2], (Location::Line(4), "`resourceSpans` is not a list".into()));
        assert_eq!(problems[3].0, Location::Line(5));
        assert!(problems[3].1.starts_with("it ends"), "end before start: {}", problems[3].1);
        assert_eq!(problems.len(), 4);
    }

    #[test]
    fn an_endless_line_is_refused_without_reading_it_all() {
        // /dev/zero: no line break, ever.
        let err = read(std::io::BufReader::new(std::io::repeat(0)), &mut |_, _| {}).unwrap_err();
        assert!(matches!(err, InputError::LineTooLong(1)), "{err}");
        let mut text = b"{\"span_id\": 1}\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_LINE + 1));
        let err = parse(&text).unwrap_err();
        assert_eq!(err.to_string(), format!("line 2 is longer than {MAX_LINE} bytes: not JSON lines"));
        text.truncate(text.len() - 1);
        assert_eq!(parse(&text).unwrap().unusable.len(), 2, "a line of the maximum length is read");
    }

    #[test]
    fn nothing_to_read() {
        assert_eq!(parse(b"").unwrap(), Input::default());
        assert_eq!(parse(b"\n  \n").unwrap(), Input::default());
        let input = parse(&[0xff, 0xfe, b'\n']).unwrap();
        assert_eq!(input.unusable.len(), 1, "invalid UTF-8 is a malformed line, not a failure");
    }
}
