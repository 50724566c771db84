//! Spans into the aggregator: HTTP records (heads and HTTP/2 bytes), span
//! events from the kernel and the marker rings, and those held for their
//! response's later rounds, each finished into a span line.
use super::Aggregator;
use crate::model::{
    goodput::Goodput,
    h2::{self, HttpRecord},
    http::{self, HttpFields},
    rounds,
    spans::{SpanRecord, Verdict},
};

/// Finished spans' room kept between drains (see `drain_finished_spans`).
const KEPT_SPAN_RECORDS: usize = 4096;

impl Aggregator {
    /// A record of the kernel's HTTP stream: heads for the HTTP/1.x spans
    /// to come, or an HTTP/2 connection's bytes, which may finish streams.
    pub fn on_http_record(&mut self, record: HttpRecord<'_>) {
        match record {
            HttpRecord::Capture(capture) => self.on_http_capture(&capture),
            HttpRecord::H2 { record, bytes } => {
                let mut done = Vec::new();
                self.h2.on_record(&record, bytes, &mut done);
                for (event, fields) in done {
                    self.finish_span(&event, Some(fields));
                }
            }
        }
    }

    fn on_http_capture(&mut self, capture: &http::Capture<'_>) {
        if capture.kind == tracer_common::HttpCaptureKind::Peer as u32
            && self.h2.on_peer(capture.tgid, capture.span_id, http::peer_of(capture.bytes))
        {
            return;
        }
        self.http.on_capture(capture);
        if capture.kind == tracer_common::HttpCaptureKind::OutgoingRequest as u32
            && let Some(request_id) = self.http.pending_request(capture.tgid, capture.span_id).and_then(|f| f.request_id)
        {
            self.flows.on_outgoing_request(request_id, capture.tgid, capture.span_id);
        }
    }

    /// A span from the kernel or the marker rings. An HTTP span whose
    /// response goes on in later rounds is held for them (`model::rounds`).
    pub fn on_span(&mut self, event: &tracer_common::SpanEvent) {
        if event.flags & tracer_common::SPAN_HTTP_ROUND != 0 {
            if let Some((event, fields)) = self.rounds.round(event) {
                self.finish_span(&event, Some(fields));
            }
            return;
        }
        if event.flags & tracer_common::SPAN_HTTP == 0 {
            return self.finish_span(event, None);
        }
        let Ok(fields) = self.http.take(event.tgid, event.span_id) else { return };
        if event.flags & tracer_common::SPAN_H2C_UPGRADE != 0 {
            if let Some((event, fields)) = self.h2.on_upgrade_span(*event, fields) {
                self.finish_span(&event, Some(fields));
            }
            return;
        }
        if let Some((event, fields)) = self.rounds.first(event, fields) {
            self.finish_span(&event, Some(fields));
        }
    }

    /// Held HTTP spans whose responses had no round for
    /// [`rounds::QUIET_NS`] before `now_ns` (CLOCK_MONOTONIC).
    pub fn release_quiet_spans(&mut self, now_ns: u64) {
        let quiet = self.rounds.quiet(now_ns.saturating_sub(rounds::QUIET_NS));
        self.finish_held(quiet);
        let mut upgraded = Vec::new();
        self.h2.forget_idle(now_ns.saturating_sub(h2::IDLE_NS), &mut upgraded);
        self.finish_held(upgraded);
    }

    /// Every held HTTP span, at the end of a recording (HTTP/2 streams not
    /// answered by then are counted).
    pub fn release_held_spans(&mut self) {
        let held = self.rounds.drain();
        self.finish_held(held);
        let mut upgraded = Vec::new();
        self.h2.finish(&mut upgraded);
        self.finish_held(upgraded);
    }

    fn finish_held(&mut self, spans: Vec<rounds::HttpSpan>) {
        for (event, fields) in spans {
            self.finish_span(&event, Some(fields));
        }
    }

    fn finish_span(&mut self, event: &tracer_common::SpanEvent, http: Option<HttpFields>) {
        if http.is_some() && event.flags & tracer_common::SPAN_CLIENT == 0 {
            for (call, fields) in self.rounds.take_children(event.tgid, event.span_id) {
                self.finish_span(&call, Some(fields));
            }
        }
        let now = std::time::Instant::now();
        for holder in event.holders.iter().filter(|h| h.count > 0 && h.id != 0) {
            self.refresh_holder_name(holder.id, now);
        }
        let mut record = SpanRecord::from_event(event, self.monotonic_to_unix_ns, self.contention_threshold, |pid| {
            self.holder_names.get(&pid).map(|(_, name)| name.clone()).unwrap_or_default()
        });
        if record.verdict == Verdict::CpuThrottled {
            record.throttle = self.cpu_limit(event.tgid);
        }
        if let Some(fields) = http {
            record.name = [fields.http_method.as_str(), fields.http_path.as_str()].join(" ");
            record.trace_id = fields.trace_id.clone();
            record.http = Some(fields);
        }
        if let Some(caller) = record.parent_span_id {
            record.trace_id = self.http.pending_request(event.tgid, caller).and_then(|fields| fields.trace_id);
        }
        self.flows.link(&mut record);
        self.downstream.on_span(&mut record);
        self.flows.explain(&mut record);
        self.spans.add(&record);
        if let Some(goodput) = &mut self.goodput {
            goodput.add(&record);
        }
        if self.keep_span_records {
            self.finished_spans.push(record);
        }
    }

    /// `--slo`: spans at most `slo_ns` long are within it.
    pub fn set_slo(&mut self, slo_ns: Option<u64>) {
        self.goodput = slo_ns.map(Goodput::new);
    }

    /// The finished spans, in the order they finished. Their list keeps
    /// its room for the next drain's (up to [`KEPT_SPAN_RECORDS`]): grown
    /// anew for each drain's thousands, it cost more than what it held.
    pub fn drain_finished_spans(&mut self) -> std::vec::Drain<'_, SpanRecord> {
        self.finished_spans.shrink_to(KEPT_SPAN_RECORDS);
        self.finished_spans.drain(..)
    }

    pub fn take_spans(&mut self) -> Vec<SpanRecord> {
        self.drain_finished_spans().collect()
    }
}
