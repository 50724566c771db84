//! Spans as output: one JSON line per span (`tracer spans`, `tracer spans
//! join`), and the report's summary of a recording's spans.
use std::{collections::BTreeMap, io::Write};

use serde::Serialize;

use super::hist_json::HistJson;
use crate::model::{
    losses::SpanAnomalies,
    spans::{Holder, SpanRecord, SpanSummary},
};

/// One span as one JSON line, as `tracer spans` and `tracer spans join` print them.
pub fn write_line(out: &mut dyn Write, span: &SpanRecord) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, span)?;
    out.write_all(b"\n")
}

#[derive(Debug, Serialize)]
pub struct SpansJson {
    pub count: u64,
    pub by_name: BTreeMap<String, HistJson>,
    pub by_verdict: BTreeMap<&'static str, HistJson>,
    pub contention_free: HistJson,
    pub blame: Vec<Holder>,
    pub anomalies: SpanAnomalies,
    pub lost: u64,
}

impl SpansJson {
    pub fn new(summary: &SpanSummary, anomalies: SpanAnomalies, lost: u64) -> SpansJson {
        let mut blame: Vec<Holder> = summary.blame.values().cloned().collect();
        blame.sort_by_key(|h| std::cmp::Reverse(h.ns));
        SpansJson {
            count: summary.count,
            by_name: summary.by_name.iter().map(|(k, v)| (k.clone(), HistJson::from_buckets(v))).collect(),
            by_verdict: summary.by_verdict.iter().map(|(k, v)| (*k, HistJson::from_buckets(v))).collect(),
            contention_free: HistJson::from_buckets(&summary.contention_free),
            blame,
            anomalies,
            lost,
        }
    }
}

