//! Cuts a running aggregation into intervals (what each printed interval
//! or live-view refresh shows), keeping the whole run for the report.
use std::collections::HashMap;

use tracer_common::ThreadTotals;

use super::{
    aggregate::{Aggregator, RunqHistograms},
    holders::HolderSums,
    kstats::KernelStats,
};

/// What happened during one printed interval.
pub struct IntervalView {
    pub runq: RunqHistograms,
    pub kernel: KernelStats,
    /// Per thread, keyed by (TGID, TID): totals accrued during the
    /// interval. TID 0 is a process's row of folded exited threads, (0, 0)
    /// the entry of folded exited processes.
    pub totals: HashMap<(u32, u32), ThreadTotals>,
    /// CPU holders of the interval's run-queue waits, when summed.
    pub holders: HolderSums,
}

/// Cuts the running aggregation into intervals, keeping the whole run for
/// the JSON report.
#[derive(Default)]
pub struct Intervals {
    /// What the report of the whole run shows (see
    /// `RunqHistograms::merge_whole_run`).
    pub whole_run: RunqHistograms,
    kernel_before: KernelStats,
    totals_before: HashMap<(u32, u32), ThreadTotals>,
    holders_before: HolderSums,
}

impl Intervals {
    pub fn next(&mut self, agg: &mut Aggregator) -> IntervalView {
        let runq = agg.take_runq();
        self.whole_run.fold_processes(&agg.take_folded_processes());
        self.whole_run.merge_whole_run(&runq);
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
        let holders = agg.holders.since(&self.holders_before);
        self.holders_before = agg.holders.sums().clone();
        IntervalView { runq, kernel, totals, holders }
    }
}


#[cfg(test)]
mod tests {
    use tracer_common::{RunqEvent, ThreadExit, ThreadStats};

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

    fn exit(agg: &mut Aggregator, tid: u32, tgid: u32, on_cpu_ns: u64) {
        let mut stats = ThreadStats { tgid, ..Default::default() };
        stats.totals.on_cpu_ns = on_cpu_ns;
        agg.on_thread_exit(&ThreadExit { tid, _pad: 0, exit_ns: 0, stats });
    }

    #[test]
    fn folded_rows_and_processes_are_not_counted_twice() {
        let scope = HistogramScope { per_process: true, per_thread: false };
        let mut agg = Aggregator::new(scope, 0, Box::new(Offline));
        agg.limit_exited_threads(1);
        let mut intervals = Intervals::default();
        exit(&mut agg, 11, 10, 100);
        exit(&mut agg, 21, 20, 50);
        agg.on_runq_event(&RunqEvent { tid: 21, tgid: 20, latency_ns: 7, ..Default::default() });
        let first = intervals.next(&mut agg);
        assert_eq!((first.totals[&(10, 11)].on_cpu_ns, first.totals[&(20, 21)].on_cpu_ns), (100, 50));

        // 12 pushes 11 into process 10's other row: only 12's time is new.
        exit(&mut agg, 12, 10, 300);
        let second = intervals.next(&mut agg);
        let shown: u64 = second.totals.values().map(|t| t.on_cpu_ns).sum();
        assert_eq!(shown, 300);

        // Process 20 is folded into PID 0: nothing new, histograms moved.
        agg.fold_exited_processes(0, |pid| pid == 10);
        let third = intervals.next(&mut agg);
        assert_eq!(third.totals[&(0, 0)].on_cpu_ns, 0);
        assert_eq!(intervals.whole_run.by_process[&0].count(), 1);
        assert!(!intervals.whole_run.by_process.contains_key(&20));
    }
}
