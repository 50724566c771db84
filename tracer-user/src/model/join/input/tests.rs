//! The formats, bad spans among good ones, and reading in bounded memory
//! whatever the input.
use std::{cell::Cell, io::BufReader, rc::Rc};

use super::*;

/// Every span of a slice (which cannot fail to be read).
fn parsed(bytes: &[u8]) -> Input {
    parse(bytes).expect("a slice is read to its end")
}

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
    let input = parsed(text.as_bytes());
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
    let input = parsed(document.as_bytes());
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
    let input = parsed(text.as_bytes());
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
fn nothing_to_read() {
    assert_eq!(parsed(b""), Input::default());
    assert_eq!(parsed(b"\n  \n"), Input::default());
    let input = parsed(&[0xff, 0xfe, b'\n']);
    assert_eq!(input.unusable.len(), 1, "invalid UTF-8 is a malformed line, not a failure");
}

const SMALL: Limits = Limits { line: 200, document: 10_000 };

fn good(span_id: u64) -> String {
    format!(r#"{{"span_id": {span_id}, "name": "GET /", "tid": 7, "start_unix_ns": 1, "end_unix_ns": 2}}"#)
}

#[test]
fn a_line_longer_than_the_limit_is_one_malformed_span() {
    let long_object = format!("{{\"span_id\": 4, \"name\": \"{}\"}}", "y".repeat(300));
    let text = [good(1), "x".repeat(500), good(3), long_object, good(5)].join("\n");
    let input = parse_with(text.as_bytes(), SMALL).unwrap();
    let found: Vec<Location> = input.spans.iter().map(|(at, _)| *at).collect();
    assert_eq!(found, [1, 3, 5].map(Location::Line));
    assert_eq!(
        why(&input),
        [2, 4].map(|n| (Location::Line(n), "longer than 200 bytes, the longest line read".to_owned()))
    );
}

#[test]
fn a_first_line_that_is_not_json_is_a_bad_line_of_json_lines() {
    let text = format!("\n{{oops\n{}\n", good(3));
    let input = parse_with(text.as_bytes(), SMALL).unwrap();
    assert_eq!(input.spans.iter().map(|(at, _)| *at).collect::<Vec<_>>(), [Location::Line(3)]);
    assert_eq!(input.unusable.len(), 1);
    assert_eq!(input.unusable[0].0, Location::Line(2));
    assert!(input.unusable[0].1.to_string().starts_with("not JSON"), "{:?}", input.unusable);
}

fn otlp(span_id: u64) -> String {
    format!(
        r#"{{"spanId": "{span_id:016x}", "name": "a", "startTimeUnixNano": 1, "endTimeUnixNano": 2, "attributes": [{{"key": "thread.id", "value": {{"intValue": 7}}}}]}}"#
    )
}

#[test]
fn a_document_that_breaks_off_keeps_the_spans_before() {
    let text = format!("{{\n\"resourceSpans\": [{{\"scopeSpans\": [{{\"spans\": [\n{},\n{},\n{{\"spanId\": ", otlp(1), otlp(2));
    let input = parse_with(text.as_bytes(), SMALL).unwrap();
    assert_eq!(input.spans.iter().map(|(at, _)| *at).collect::<Vec<_>>(), [Location::Span(1), Location::Span(2)]);
    assert_eq!(why(&input), [(Location::Line(5), "not OTLP/JSON: EOF while parsing a value".to_owned())]);

    let text = "{\n\"resourceSpans\": {\"not\": \"a list\"}}";
    assert_eq!(why(&parsed(text.as_bytes())), [(Location::Line(2), "`resourceSpans` is not a list".to_owned())]);
    let text = "{\n\"traces\": []}";
    let input = parsed(text.as_bytes());
    assert!(why(&input)[0].1.contains("without `resourceSpans`"), "{input:?}");
}

#[test]
fn a_value_too_long_to_read_again_is_one_bad_span_and_the_lines_go_on() {
    // A first line too long to be kept for a second reading, that opens an
    // object: read as a document, which it is not.
    let long_span = format!(r#"{{"span_id": 1, "name": "{}", "tid": 7, "start_unix_ns": 1, "end_unix_ns": 2}}"#, "x".repeat(500));
    let text = format!("{long_span}\n{}\n\n{}\n", good(2), good(4));
    let input = parse_with(text.as_bytes(), SMALL).unwrap();
    assert_eq!(input.spans.iter().map(|(at, _)| *at).collect::<Vec<_>>(), [Location::Line(2), Location::Line(4)]);
    assert_eq!(why(&input), [(Location::Line(1), "longer than 200 bytes, the longest line read".to_owned())]);

    let text = format!("{{\n\"traces\": []\n}}  \n{}\n", good(4));
    let input = parse(text.as_bytes()).unwrap();
    assert_eq!(input.spans.iter().map(|(at, _)| *at).collect::<Vec<_>>(), [Location::Line(4)]);
    assert_eq!(why(&input), [(Location::Line(1), "a JSON value over 3 lines without `resourceSpans`".to_owned())]);
}

#[test]
fn reading_stops_when_told() {
    let lines = [good(1), good(2)].join("\n");
    let document = format!("{{\n\"resourceSpans\": [{{\"scopeSpans\": [{{\"spans\": [{}, {}]}}]}}]}}", otlp(1), otlp(2));
    for text in [lines, document] {
        let mut calls = 0;
        read_with(text.as_bytes(), SMALL, &mut |_, _| {
            calls += 1;
            ControlFlow::Break(())
        })
        .unwrap();
        assert_eq!(calls, 1, "{text}");
    }
}

/// An input made up as it is read, counting what it handed out: as large
/// as wanted without being in memory.
struct Made<F> {
    next: F,
    chunk: Vec<u8>,
    at: usize,
    handed_out: Rc<Cell<u64>>,
}

impl<F: FnMut() -> Option<Vec<u8>>> Made<F> {
    fn new(next: F) -> (Self, Rc<Cell<u64>>) {
        let handed_out = Rc::new(Cell::new(0));
        (Made { next, chunk: Vec::new(), at: 0, handed_out: handed_out.clone() }, handed_out)
    }
}

impl<F: FnMut() -> Option<Vec<u8>>> Read for Made<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.chunk.len() {
            match (self.next)() {
                Some(chunk) => (self.chunk, self.at) = (chunk, 0),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        self.handed_out.set(self.handed_out.get() + n as u64);
        Ok(n)
    }
}

const READ_BUFFER: usize = 64 << 10;

#[test]
fn json_lines_are_read_a_line_at_a_time() {
    const LINES: u64 = 200_000;
    let line = |n: u64| format!("{:<150}\n", good(n)).into_bytes();
    let line_len = line(0).len() as u64;
    let mut n = 0;
    let (made, handed_out) = Made::new(|| (n < LINES).then(|| { n += 1; line(n) }));
    let mut seen = 0;
    let mut most_ahead = 0;
    read_with(BufReader::with_capacity(READ_BUFFER, made), Limits::DEFAULT, &mut |at, span| {
        seen += 1;
        assert_eq!((at, span.map(|s| s.span_id)), (Location::Line(seen as usize), Ok(seen)));
        most_ahead = most_ahead.max(handed_out.get() - seen * line_len);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(seen, LINES, "{} MB read", (LINES * line_len) >> 20);
    assert!(most_ahead <= (READ_BUFFER as u64) + line_len, "read {most_ahead} bytes ahead of the spans");
}

#[test]
fn a_document_is_read_a_span_at_a_time() {
    const SPANS: u64 = 50_000;
    let head = b"{\n\"resourceSpans\": [{\"scopeSpans\": [{\"spans\": [\n".to_vec();
    let span = |n: u64| format!("{},\n", otlp(n)).into_bytes();
    let span_len = span(1).len() as u64;
    let mut n = 0;
    let (made, handed_out) = Made::new(|| {
        n += 1;
        match n {
            1 => Some(head.clone()),
            n if n <= SPANS + 1 => Some(span(n - 1)),
            n if n == SPANS + 2 => Some(format!("{}]}}]}}]}}\n", otlp(SPANS + 1)).into_bytes()),
            _ => None,
        }
    });
    let mut seen = 0u64;
    let mut most_ahead = 0;
    read_with(BufReader::with_capacity(READ_BUFFER, made), Limits::DEFAULT, &mut |at, span| {
        seen += 1;
        assert_eq!((at, span.map(|s| s.span_id)), (Location::Span(seen as usize), Ok(seen)));
        let through = head.len() as u64 + seen.min(SPANS) * span_len;
        most_ahead = most_ahead.max(handed_out.get().saturating_sub(through));
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(seen, SPANS + 1);
    assert!(most_ahead <= (READ_BUFFER + 200) as u64, "read {most_ahead} bytes ahead of the spans");
}

#[test]
fn an_endless_input_is_refused_after_the_limit() {
    let bounded = |prefix: &'static [u8], filler: u8| {
        let (made, handed_out) = Made::new(move || Some(if filler == 0 { vec![0; 4096] } else { vec![filler; 4096] }));
        let input = BufReader::new(prefix.chain(made));
        let err = read_with(input, SMALL, &mut |_, _| ControlFlow::Continue(())).unwrap_err();
        let most = SMALL.document + 2 * (SMALL.line as u64) + 2 * 8192;
        assert!(handed_out.get() <= most, "{} bytes read", handed_out.get());
        err.to_string()
    };
    // /dev/zero; the same after what looks like a document.
    assert_eq!(bounded(b"", 0), "line 1 goes on for more than 10000 bytes without a line end: not JSON lines");
    assert_eq!(bounded(b"{", 0), "line 1 goes on for more than 10000 bytes without a line end: not JSON lines");
    let too_large = "one JSON document larger than 10000 bytes, the most read as a whole";
    assert!(bounded(b"{\"resourceSpans\": \"", b'x').starts_with(too_large));
    assert!(bounded(b"{\n\"other\": [", b' ').starts_with(too_large));
}

mod generated {
    use proptest::prelude::*;

    use super::*;

    /// Pieces of JSON, of the two formats, and of anything else.
    fn piece() -> impl Strategy<Value = Vec<u8>> {
        let pieces = [
            "{", "}", "[", "]", ",", ":", "\n", "\r\n", " ", "null", "\"", "\\", "\"resourceSpans\":", "\"scopeSpans\":",
            "\"spans\":", "\"span_id\":", "\"tid\":", "\"name\":", "\"start_unix_ns\":", "\"end_unix_ns\":", "\"spanId\":",
            "\"attributes\":", "{\"key\": \"thread.id\", \"value\": {\"intValue\":", "-1", "1e400", "18446744073709551616",
            "\"00f067aa0ba902b7\"", "\u{feff}", "\0",
        ];
        prop_oneof![
            4 => prop::sample::select(pieces.map(|p| p.as_bytes().to_vec()).to_vec()),
            1 => any::<u64>().prop_map(|n| n.to_string().into_bytes()),
            1 => any::<u64>().prop_map(|n| good(n).into_bytes()),
            1 => any::<u64>().prop_map(|n| otlp(n).into_bytes()),
            1 => prop::collection::vec(any::<u8>(), 0..40),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_input_gives_spans_or_reasons_never_a_panic(pieces in prop::collection::vec(piece(), 0..40), small in any::<bool>()) {
            let bytes = pieces.concat();
            let limits = if small { Limits { line: 16, document: 200 } } else { Limits::DEFAULT };
            let mut calls = 0;
            let read = read_with(&bytes[..], limits, &mut |_, _| {
                calls += 1;
                ControlFlow::Continue(())
            });
            prop_assert!(calls <= bytes.len(), "{calls} spans from {} bytes", bytes.len());
            if let Err(e) = read {
                prop_assert!(!matches!(e, InputError::Read(_)), "a slice cannot fail to read: {e}");
            }
        }
    }
}
