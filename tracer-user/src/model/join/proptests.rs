//! Generated span inputs: random bytes, and JSON lines and OTLP documents
//! with random values where fields belong, must each give spans or
//! reasons, never panic.
use proptest::prelude::*;

use super::input::parse;

/// A JSON scalar of any kind, as text.
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_owned()),
        Just("\"\"".to_owned()),
        Just("-1".to_owned()),
        Just("1e400".to_owned()),
        Just("\"18446744073709551616\"".to_owned()),
        any::<i64>().prop_map(|i| i.to_string()),
        any::<u64>().prop_map(|i| format!("\"{i}\"")),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        "[0-9a-f]{16}".prop_map(|s| format!("\"{s}\"")),
        "[ -~]{0,20}".prop_map(|s| serde_json::Value::String(s).to_string()),
    ]
}

fn span_line() -> impl Strategy<Value = String> {
    prop::collection::vec(scalar(), 6).prop_map(|v| {
        format!(
            r#"{{"trace_id": {}, "span_id": {}, "name": {}, "tid": {}, "start_unix_ns": {}, "end_unix_ns": {}}}"#,
            v[0], v[1], v[2], v[3], v[4], v[5]
        )
    })
}

fn otlp_document() -> impl Strategy<Value = String> {
    (prop::collection::vec(scalar(), 5), any::<bool>()).prop_map(|(v, multi_line)| {
        let document = format!(
            r#"{{"resourceSpans": [{{"scopeSpans": [{{"spans": [{{"traceId": {}, "spanId": {}, "name": {}, "startTimeUnixNano": {}, "endTimeUnixNano": {}, "attributes": [{{"key": "thread.id", "value": {{"intValue": {}}}}}]}}]}}]}}]}}"#,
            v[0], v[1], v[2], v[3], v[4], v[1]
        );
        if multi_line { document.replace(", ", ",\n") } else { document }
    })
}

fn input() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        prop::collection::vec(prop_oneof![span_line(), otlp_document(), "[ -~]{0,30}"], 0..6)
            .prop_map(|lines| lines.join("\n").into_bytes()),
        otlp_document().prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_input_gives_spans_or_reasons(bytes in input()) {
        let _ = parse(&bytes);
    }
}
