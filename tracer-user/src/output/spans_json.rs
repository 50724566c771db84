//! Spans as output: one JSON line per span (`tracer spans`, `tracer spans
//! join`), and the report's summary of a recording's spans.
use std::{collections::BTreeMap, io::Write};

use serde::{Deserialize, Serialize};

use super::hist_json::HistJson;
use crate::model::{
    goodput::{Goodput, Second, Tally},
    losses::SpanAnomalies,
    spans::{Holder, SpanRecord, SpanSummary, Verdict},
};

thread_local! {
    /// The line being serialised (reused: tens of thousands a second).
    static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One span as one JSON line, as `tracer spans` and `tracer spans join` print them.
/// Written whole into memory (`span_line`), then to `out` at once: piece
/// by piece through `dyn Write` would cost a call (and a buffer copy) each.
pub fn write_line(out: &mut dyn Write, span: &SpanRecord) -> std::io::Result<()> {
    LINE.with_borrow_mut(|line| {
        line.clear();
        super::span_line::write_span(line, span);
        line.push(b'\n');
        out.write_all(line)
    })
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SpansJson {
    pub count: u64,
    pub by_name: BTreeMap<String, HistJson>,
    pub by_verdict: BTreeMap<Verdict, HistJson>,
    pub contention_free: HistJson,
    pub blame: Vec<Holder>,
    pub anomalies: SpanAnomalies,
    pub lost: u64,
    /// With `--slo`: requests, goodput and the misses' verdicts per name and second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goodput: Option<GoodputJson>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct GoodputJson {
    pub slo_ns: u64,
    pub by_name: BTreeMap<String, NameGoodputJson>,
}

/// One span name: the whole recording (flattened) and its seconds.
#[derive(Debug, Serialize, Deserialize)]
pub struct NameGoodputJson {
    #[serde(flatten)]
    pub total: Tally,
    pub per_second: Vec<Second>,
}

impl GoodputJson {
    pub fn new(goodput: &Goodput) -> GoodputJson {
        GoodputJson {
            slo_ns: goodput.slo_ns,
            by_name: goodput
                .by_name
                .iter()
                .map(|(name, of_name)| {
                    let per_second = of_name.seconds.iter().cloned().collect();
                    (name.clone(), NameGoodputJson { total: of_name.total.clone(), per_second })
                })
                .collect(),
        }
    }
}

impl SpansJson {
    pub fn new(summary: &SpanSummary, goodput: Option<&Goodput>, anomalies: SpanAnomalies, lost: u64) -> SpansJson {
        let mut blame: Vec<Holder> = summary.blame.values().cloned().collect();
        blame.sort_by_key(|h| std::cmp::Reverse(h.ns));
        SpansJson {
            count: summary.count,
            by_name: summary.by_name().iter().map(|(k, v)| (k.clone(), HistJson::from_buckets(v))).collect(),
            by_verdict: summary.by_verdict().iter().map(|(k, v)| (*k, HistJson::from_buckets(v))).collect(),
            contention_free: HistJson::from_buckets(&summary.contention_free),
            blame,
            anomalies,
            lost,
            goodput: goodput.map(GoodputJson::new),
        }
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        http::HttpFields,
        spans::{Verdict, test_span},
    };

    #[test]
    fn span_lines_round_trip_with_and_without_http_fields() {
        let plain = test_span(30, 10, 15, Verdict::CpuContention);
        let mut http = test_span(5, 5, 0, Verdict::OnCpu);
        http.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        http.http = Some(HttpFields {
            http_method: "GET".into(),
            http_path: "/cpu".into(),
            http_status: Some(200),
            request_id: None,
            response_bytes: Some(1234),
            ..HttpFields::default()
        });
        let mut out = Vec::new();
        for span in [&plain, &http] {
            write_line(&mut out, span).unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().next().unwrap().contains(r#""verdict":"cpu-contention""#));
        let read: Vec<SpanRecord> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(read, [plain, http], "the HTTP fields are flattened and read back; absent, None");
    }
}
