//! What the kernel side could not deliver, and marker calls that did not
//! pair up: counted by the probes, reported with every output.
/// Counts of what the kernel side could not deliver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Losses {
    pub runq_events: u64,
    pub thread_exits: u64,
    pub threads_untracked: u64,
    /// Syscall or block I/O samples dropped because a statistics map was full.
    pub stats_samples: u64,
    /// Block requests not tracked because the in-flight table was full.
    pub block_requests: u64,
    /// Spans lost because the open-span table or the span ring was full.
    pub spans: u64,
    /// Scheduler switches the kernel did not report (see
    /// docs/report-format.md).
    pub accounting_gaps: u64,
    /// Timeline events dropped because the timeline ring was full.
    pub timeline_events: u64,
    /// Processes forked by a target that were not traced (no `--children`).
    pub children_left_out: u64,
    /// Children of a target not followed because their table was full.
    pub children_untracked: u64,
    /// HTTP request or response heads not streamed (ring buffer full).
    pub http_captures: u64,
    /// (waiting process, CPU holder) pairs not summed because their table
    /// was full (their wait is still counted, without its holder).
    #[serde(default)]
    pub wait_holders: u64,
    /// Span marker records the marker library could not write because its
    /// ring was full (the tracer did not read it fast enough).
    #[serde(default)]
    pub marker_records: u64,
    /// Marker spans read from their ring on a thread with no scheduler event
    /// recorded to join them with: not broken down, not reported.
    #[serde(default)]
    pub marker_spans_unjoined: u64,
}

/// Marker calls that did not pair up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpanAnomalies {
    /// `tracer_span_end` for an id that was not open (never begun, or ended twice).
    pub end_without_begin: u64,
    /// `tracer_span_begin` for an id already open.
    pub begun_twice: u64,
    /// Spans still open after the expiry time, removed.
    pub never_ended: u64,
    /// HTTP requests sent before the previous one on their connection was
    /// answered (pipelining): not made spans of their own.
    pub http_pipelined: u64,
    /// HTTP connections closed between a request and its response.
    pub http_unanswered: u64,
}
