//! Sending finished spans to an OpenTelemetry collector (`--otlp URL`):
//! a bounded queue that the tracing loop never waits on, and a thread that
//! batches the spans, encodes them (`output::otlp`) and posts them as
//! OTLP/HTTP protobuf. What could not be sent is counted, never retried
//! into the queue, and reported at the end.
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use ureq::http::Uri;

use crate::{
    model::spans::SpanRecord,
    output::otlp::{CONTENT_TYPE, Encoder, Ids, Origin, ResourceInfo, rejected},
    sys::procfs,
};

/// Spans waiting to be sent; when full, finished spans are dropped (and
/// counted) rather than making the tracing loop wait. About 4 s of spans
/// at 4,000 spans/s, or a drain tick's worth at 80,000 spans/s.
pub const QUEUE_SPANS: usize = 16_384;
/// Spans per export request.
pub const BATCH_SPANS: usize = 512;
/// A batch not yet full is sent this long after its first span arrived.
pub const BATCH_DELAY: Duration = Duration::from_millis(500);
/// How long one export may take; a collector that does not answer within it
/// costs that batch, not the run.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The most of a collector's answer that is read.
const ANSWER_LIMIT: u64 = 64 << 10;

/// Why an `--otlp` URL cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    #[error("`{0}` is not a URL (expected e.g. http://127.0.0.1:4318)")]
    NotAUrl(String),
    #[error("`{0}`: only plain http:// is supported (OTLP/HTTP to a collector, e.g. http://127.0.0.1:4318)")]
    Scheme(String),
    #[error("`{0}` names no host (expected e.g. http://127.0.0.1:4318)")]
    NoHost(String),
}

/// Where spans are posted: the URL as given, with `/v1/traces` added when
/// it has no path (as OpenTelemetry's `OTEL_EXPORTER_OTLP_ENDPOINT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    uri: Uri,
}

impl Endpoint {
    pub fn parse(text: &str) -> Result<Endpoint, EndpointError> {
        let uri: Uri = text.parse().map_err(|_| EndpointError::NotAUrl(text.to_owned()))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(_) => return Err(EndpointError::Scheme(text.to_owned())),
            None => return Err(EndpointError::NotAUrl(text.to_owned())),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(EndpointError::NoHost(text.to_owned()));
        }
        // A port that is not a u16 parses, as no port at all.
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        let port = authority.rsplit_once(':').map(|(_, port)| port).filter(|port| !port.contains(']'));
        if port.is_some_and(|port| !port.is_empty()) && uri.port_u16().is_none() {
            return Err(EndpointError::NotAUrl(text.to_owned()));
        }
        let uri = if matches!(uri.path(), "" | "/") && uri.query().is_none() {
            let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
            format!("http://{authority}/v1/traces").parse().map_err(|_| EndpointError::NotAUrl(text.to_owned()))?
        } else {
            uri
        };
        Ok(Endpoint { uri })
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.uri)
    }
}

/// What became of the spans handed to the exporter.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExportTotals {
    /// Accepted by the collector.
    pub sent: u64,
    /// Refused by the collector (OTLP partial success).
    pub refused: u64,
    /// In batches that failed: collector unreachable, an error status, no
    /// answer in time.
    pub failed: u64,
    /// Dropped because the queue was full (the collector too slow).
    pub dropped: u64,
    /// Export requests that failed.
    pub failed_requests: u64,
}

impl ExportTotals {
    /// Spans that did not reach the collector, for whatever reason.
    pub fn lost(&self) -> u64 {
        self.refused + self.failed + self.dropped
    }
}

/// The sending side, owned by the command that finishes spans.
pub struct Exporter {
    queue: Option<SyncSender<SpanRecord>>,
    thread: Option<JoinHandle<ExportTotals>>,
    /// Set when the run has ended: what is left is sent, not waited for.
    closing: Arc<AtomicBool>,
    dropped: u64,
    endpoint: Endpoint,
}

impl Exporter {
    /// Starts the export thread.
    pub fn start(endpoint: Endpoint, resources: Resources, origin: Origin) -> std::io::Result<Exporter> {
        Exporter::start_with(endpoint, resources, origin, procfs::random_seed(), EXPORT_TIMEOUT)
    }

    /// `seed` draws the random trace and span ids.

    fn start_with(
        endpoint: Endpoint,
        resources: Resources,
        origin: Origin,
        seed: u64,
        timeout: Duration,
    ) -> std::io::Result<Exporter> {
        let (queue, spans) = std::sync::mpsc::sync_channel(QUEUE_SPANS);
        let (fallback, per_process, known_pids) = match resources {
            Resources::One(info) => (info, None, Vec::new()),
            Resources::PerProcess { pids, service_name } => {
                (resource(None, "unknown", service_name.as_deref()), Some(service_name), pids)
            }
        };
        let mut encoder = Encoder::new(&fallback, origin, Ids::new(seed));
        if let Some(service_name) = &per_process {
            // Known before the first span, while they surely run.
            for pid in known_pids {
                encoder.set_resource(pid, &resource(Some(pid), &pid.to_string(), service_name.as_deref()));
            }
        }
        let target = endpoint.clone();
        let closing = Arc::new(AtomicBool::new(false));
        let closed = closing.clone();
        let thread = std::thread::Builder::new()
            .name("otlp-export".into())
            .spawn(move || Batcher::new(target, encoder, per_process, timeout).run(spans, &closed))?;
        Ok(Exporter { queue: Some(queue), thread: Some(thread), closing, dropped: 0, endpoint })
    }

    /// Queues a span; never waits. A full queue drops it (counted).
    pub fn send(&mut self, span: SpanRecord) {
        let Some(queue) = &self.queue else { return };
        match queue.try_send(span) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.dropped += 1,
        }
    }

    /// Queues a span, waiting for room: for `spans join`, which reads a
    /// file and has no tracing to hold up.
    pub fn send_waiting(&mut self, span: SpanRecord) {
        let Some(queue) = &self.queue else { return };
        if queue.send(span).is_err() {
            self.dropped += 1;
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Sends what is queued and stops the thread; returns the totals.
    pub fn finish(mut self) -> ExportTotals {
        self.closing.store(true, Ordering::Release);
        self.queue = None;
        let mut totals = self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default();
        totals.dropped += self.dropped;
        totals
    }
}

/// Which resource the exported spans get.
pub enum Resources {
    /// All the same (`spans join`: its input names no traced process).
    One(ResourceInfo),
    /// Each span its process's, named by `service_name` or the process's
    /// own name (`tracer spans`, which may trace several).
    PerProcess { pids: Vec<u32>, service_name: Option<String> },
}

/// The export thread: batches, posts, counts.
struct Batcher {
    endpoint: Endpoint,
    encoder: Encoder,
    /// `Resources::PerProcess`: the resource of processes first seen in a
    /// batch is read here, off the tracing path.
    per_process: Option<Option<String>>,
    agent: ureq::Agent,
    totals: ExportTotals,
    warned: bool,
}

impl Batcher {
    fn new(endpoint: Endpoint, encoder: Encoder, per_process: Option<Option<String>>, timeout: Duration) -> Batcher {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(CONNECT_TIMEOUT.min(timeout)))
            .http_status_as_error(false)
            // A collector is a local agent: no proxy from the environment.
            .proxy(None)
            .build()
            .new_agent();
        Batcher { endpoint, encoder, per_process, agent, totals: ExportTotals::default(), warned: false }
    }

    fn run(mut self, spans: Receiver<SpanRecord>, closing: &AtomicBool) -> ExportTotals {
        let mut batch = Vec::with_capacity(BATCH_SPANS);
        let mut open = true;
        while open {
            match spans.recv() {
                Ok(span) => batch.push(span),
                Err(_) => break,
            }
            let deadline = Instant::now() + BATCH_DELAY;
            while batch.len() < BATCH_SPANS {
                match spans.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(span) => batch.push(span),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            // Once the run has ended and the collector is failing, the
            // rest is counted, not waited for batch after batch.
            if (!open || closing.load(Ordering::Acquire)) && self.totals.failed_requests > 0 {
                self.totals.failed += (batch.len() + spans.try_iter().count()) as u64;
                break;
            }
            self.post(&batch);
            batch.clear();
        }
        self.totals
    }

    fn post(&mut self, batch: &[SpanRecord]) {
        if let Some(service_name) = &self.per_process {
            for span in batch {
                if !self.encoder.has_resource(span.pid) {
                    let info = resource(Some(span.pid), &span.pid.to_string(), service_name.as_deref());
                    self.encoder.set_resource(span.pid, &info);
                }
            }
        }
        let body = self.encoder.encode(batch);
        let result = self
            .agent
            .post(self.endpoint.uri.clone())
            .header("Content-Type", CONTENT_TYPE)
            .send(&body[..]);
        let failure = match result {
            Ok(mut answer) if answer.status().is_success() => {
                let body = answer.body_mut().with_config().limit(ANSWER_LIMIT).read_to_vec().unwrap_or_default();
                let (refused, message) = rejected(&body).unwrap_or_default();
                let refused = refused.min(batch.len() as u64);
                self.totals.sent += batch.len() as u64 - refused;
                self.totals.refused += refused;
                if refused > 0 && !self.warned {
                    self.warned = true;
                    say!("tracer: warning: the collector at {} refused {refused} spans: {message}", self.endpoint);
                }
                return;
            }
            Ok(answer) => format!("it answered {}", answer.status()),
            Err(err) => err.to_string(),
        };
        self.totals.failed += batch.len() as u64;
        self.totals.failed_requests += 1;
        if !self.warned {
            self.warned = true;
            say!(
                "tracer: warning: cannot send spans to {}: {failure}; tracing goes on, spans not sent are counted",
                self.endpoint
            );
        }
    }
}

/// The resource of spans of process `pid` (`None`: no live process, as
/// when joining; `name` names it then): `service.name` as asked, else the
/// process's name.
pub fn resource(pid: Option<u32>, name: &str, service_name: Option<&str>) -> ResourceInfo {
    let comm = pid.and_then(procfs::comm_of).unwrap_or_else(|| name.to_owned());
    ResourceInfo {
        service_name: service_name.map_or_else(|| comm.clone(), str::to_owned),
        host_name: procfs::host_name().unwrap_or_else(|| "unknown".into()),
        executable_name: pid.and_then(procfs::executable_name).unwrap_or(comm),
    }
}

/// The line on standard error at the end of a run.
pub fn summary_line(endpoint: &Endpoint, totals: &ExportTotals) -> String {
    format!(
        "tracer: OTLP export to {endpoint}: {} spans sent, {} not sent: {} dropped (export queue full), \
         {} failed ({} requests: collector unreachable or answering an error), {} refused by the collector",
        totals.sent,
        totals.lost(),
        totals.dropped,
        totals.failed,
        totals.failed_requests,
        totals.refused
    )
}

#[cfg(test)]
mod tests;
