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
    /// Per thread, keyed by (TGID, TID): totals accrued during the
    /// interval. TID 0 is a process's row of folded exited threads.
    pub totals: HashMap<(u32, u32), ThreadTotals>,
}

/// Cuts the running aggregation into intervals, keeping the whole run for
/// the JSON report.
#[derive(Default)]
pub struct Intervals {
    pub whole_run: RunqHistograms,
    kernel_before: KernelStats,
    totals_before: HashMap<(u32, u32), ThreadTotals>,
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
            let key = (thread.tgid, thread.tid);
            let before = self.totals_before.get(&key).copied().unwrap_or_default();
            totals.insert(key, thread.totals.since(&before));
            totals_now.insert(key, thread.totals);
        }
        // A thread folded into its process's "other exited threads" row
        // since the last interval took its whole totals there: what it had
        // already accrued was shown then, and is not new.
        for (&(tgid, tid), before) in &self.totals_before {
            if tid != 0
                && !totals_now.contains_key(&(tgid, tid))
                && let Some(folded) = totals.get_mut(&(tgid, 0))
            {
                *folded = folded.since(before);
            }
        }
        self.totals_before = totals_now;
        IntervalView { runq, kernel, totals }
    }
}

