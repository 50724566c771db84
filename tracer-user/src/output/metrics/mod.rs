//! The Prometheus metrics of a recording (`--listen`, `tracer serve`;
//! every metric is listed in docs/metrics.md): the model turned into metric
//! families (the `prometheus` crate's model), and those into the text
//! exposition format (0.0.4). Label sets are bounded (`--max-series`): the
//! rest are summed into one `other` series and counted.
mod family;
mod groups;
mod health;
mod series;

pub use family::LOG2_BOUNDS;
pub use prometheus::proto::MetricFamily;

use crate::model::{aggregate::Aggregator, losses::Losses};
use groups::Key;
use series::SeriesTable;

/// The content type of [`encode_text`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the per-process metrics are labelled by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    /// `pid` and `comm`.
    #[default]
    Process,
    /// `cgroup`: the cgroup v2 path of the processes.
    Cgroup,
}

/// Probes attached besides the scheduler's.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProbesInUse {
    pub syscalls: bool,
    pub block_io: bool,
    pub spans: bool,
}

/// What the metrics need besides the model: how tracing runs, and names
/// the system gives (block devices, cgroups).
pub struct Inputs<'a> {
    /// What the per-process metrics are labelled by; the same every time.
    pub by: By,
    pub probe_mode: String,
    pub probes: ProbesInUse,
    pub lost: Losses,
    /// Syscall statistics are keyed by TID (else by TGID).
    pub syscalls_by_thread: bool,
    pub start_unix_ns: u64,
    /// A block device's name by its kernel `dev_t`.
    pub disk_name: &'a dyn Fn(u32) -> String,
    /// A process's cgroup v2 path, as far as known (for `By::Cgroup`).
    pub cgroup_of: &'a dyn Fn(u32) -> Option<String>,
}

/// Turns successive states of a recording into metric families, keeping
/// which label sets have a series of their own from one to the next.
pub struct Exporter {
    groups: SeriesTable<Key>,
    span_names: SeriesTable<String>,
}

impl Exporter {
    /// At most `max_series` label sets per metric, `other` included.
    pub fn new(max_series: usize) -> Exporter {
        Exporter { groups: SeriesTable::new(max_series), span_names: SeriesTable::new(max_series) }
    }

    /// Every metric family of the model now.
    pub fn families(&mut self, agg: &Aggregator, inputs: &Inputs) -> Vec<MetricFamily> {
        let mut out = Vec::new();
        groups::families(agg, inputs, &mut self.groups, &mut out);
        if inputs.probes.spans {
            health::span_families(agg, &mut self.span_names, &mut out);
        }
        let kind = match inputs.by {
            By::Process => "process",
            By::Cgroup => "cgroup",
        };
        let folded = [(kind, self.groups.folded()), ("span_name", self.span_names.folded())];
        health::health_families(agg, inputs, &folded, &mut out);
        out
    }
}

#[derive(Debug, thiserror::Error)]
#[error("encoding the metrics: {0}")]
pub struct EncodeError(#[from] prometheus::Error);

/// The families in the Prometheus text exposition format.
pub fn encode_text(families: &[MetricFamily]) -> Result<String, EncodeError> {
    Ok(prometheus::TextEncoder::new().encode_to_string(families)?)
}

#[cfg(test)]
mod tests;
