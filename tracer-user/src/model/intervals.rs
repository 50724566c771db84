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
        // (or, with its whole process, into PID 0's "other exited
        // processes") since the last interval took its whole totals there:
        // what it had already accrued was shown then, and is not new.
        for (&(tgid, tid), before) in &self.totals_before {
            if totals_now.contains_key(&(tgid, tid)) {
                continue;
            }
            let into = if totals_now.contains_key(&(tgid, 0)) { (tgid, 0) } else { (0, 0) };
            if into != (tgid, tid)
                && let Some(folded) = totals.get_mut(&into)
            {
                *folded = folded.since(before);
            }
        }
        self.totals_before = totals_now;
        IntervalView { runq, kernel, totals }
    }
}


#[cfg(test)]
mod tests {
    use tracer_common::{ThreadExit, ThreadStats};

    use super::*;
    use crate::model::{aggregate::HistogramScope, names::Offline};

    fn stats(on_cpu_ns: u64) -> ThreadStats {
        let mut stats = ThreadStats { tgid: 10, ..Default::default() };
        stats.totals.on_cpu_ns = on_cpu_ns;
        stats
    }

    /// A thread folded into "other exited threads" brings its whole totals
    /// there; an interval shows only what is new.
    #[test]
    fn folding_an_exited_thread_is_not_counted_twice() {
        let mut agg = Aggregator::new(HistogramScope::default(), 0, Box::new(Offline));
        agg.limit_exited_threads(1);
        let mut intervals = Intervals::default();
        agg.on_thread_snapshot(11, &stats(100), 0);
        agg.on_thread_snapshot(12, &stats(100), 0);
        let first = intervals.next(&mut agg);
        assert_eq!(first.totals.values().map(|t| t.on_cpu_ns).sum::<u64>(), 200);
        for (tid, on_cpu_ns) in [(11, 150), (12, 130)] {
            agg.on_thread_exit(&ThreadExit { tid, _pad: 0, exit_ns: 0, stats: stats(on_cpu_ns) });
        }
        let second = intervals.next(&mut agg);
        assert_eq!(second.totals[&(10, 11)].on_cpu_ns, 50, "kept by name");
        assert_eq!(second.totals[&(10, 0)].on_cpu_ns, 30, "folded: 130 minus the 100 shown before");
        let third = intervals.next(&mut agg);
        assert!(third.totals.values().all(|t| t.on_cpu_ns == 0), "nothing new");
    }
}
