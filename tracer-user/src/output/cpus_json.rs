//! The report's per-CPU section (docs/report-format.md, CPUS).
use serde::{Deserialize, Serialize};

use crate::model::cpus::CpuWindow;

/// One CPU over the recording.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq)]
pub struct CpuJson {
    pub cpu: u32,
    /// Time whose run-queue length is known: from the CPU's first
    /// run-queue change after the start.
    pub measured_ns: u64,
    /// Time-weighted average of the tasks waiting for this CPU.
    pub runqlen_avg: f64,
    pub runqlen_max: u32,
    /// Share of the time with at least one task waiting, in percent.
    pub runq_occupancy_pct: f64,
    /// Share of the time it ran anything but its idle task (/proc/stat).
    pub busy_pct: Option<f64>,
    /// `[length, ns]` for each length seen; the last length (31) stands for
    /// that many or more.
    pub runqlen_ns: Vec<(u32, u64)>,
}

impl CpuJson {
    pub fn new(window: &CpuWindow) -> Self {
        CpuJson {
            cpu: window.cpu,
            measured_ns: window.measured_ns(),
            runqlen_avg: window.average_len().unwrap_or(0.0),
            runqlen_max: window.max_len().unwrap_or(0) as u32,
            runq_occupancy_pct: window.occupancy().unwrap_or(0.0) * 100.0,
            busy_pct: window.busy().map(|busy| busy * 100.0),
            runqlen_ns: (0u32..)
                .zip(window.time_at_len)
                .filter(|&(_, ns)| ns > 0)
                .collect(),
        }
    }
}
