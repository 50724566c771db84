//! Cuts a running aggregation into intervals (what each printed interval
//! or live-view refresh shows), keeping the whole run for the report.
use std::collections::HashMap;

use tracer_common::ThreadTotals;

use super::{
    aggregate::{Aggregator, RunqHistograms},
    kstats::KernelStats,
};

/// What happened during one printed interval.
pub struct IntervalView {
    pub runq: RunqHistograms,
    pub kernel: KernelStats,
    /// Per thread: (TGID, totals accrued during the interval).
    pub totals: HashMap<u32, (u32, ThreadTotals)>,
}

/// Cuts the running aggregation into intervals, keeping the whole run for
/// the JSON report.
#[derive(Default)]
pub struct Intervals {
    pub whole_run: RunqHistograms,
    kernel_before: KernelStats,
    totals_before: HashMap<u32, ThreadTotals>,
}

impl Intervals {
    pub fn next(&mut self, agg: &mut Aggregator) -> IntervalView {
        let runq = agg.take_runq();
        self.whole_run.merge(&runq);
        let kernel = agg.kernel.since(&self.kernel_before);
        self.kernel_before = agg.kernel.clone();
        let mut totals = HashMap::new();
        let mut totals_now = HashMap::new();
        for thread in agg.processes().values().flatten() {
            let before = self.totals_before.get(&thread.tid).copied().unwrap_or_default();
            totals.insert(thread.tid, (thread.tgid, thread.totals.since(&before)));
            totals_now.insert(thread.tid, thread.totals);
        }
        self.totals_before = totals_now;
        IntervalView { runq, kernel, totals }
    }
}

