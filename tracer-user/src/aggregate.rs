//! Folds what the kernel sends (run-queue events, thread totals, exit
//! records) into per-thread and per-process state.
use std::collections::{BTreeMap, HashMap};

use tracer_common::{RunqEvent, ThreadExit, ThreadStats, ThreadTotals};

use crate::{hist::Buckets, procfs};

/// Which run-queue histograms to keep besides the system-wide one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistogramScope {
    pub per_process: bool,
    pub per_thread: bool,
}

/// One thread's totals as last read (or final, once `exited`).
#[derive(Clone, Debug, PartialEq)]
pub struct ThreadRecord {
    pub tid: u32,
    pub tgid: u32,
    pub comm: String,
    pub totals: ThreadTotals,
    pub exited: bool,
}

/// Run-queue histograms for one interval or one whole recording.
#[derive(Clone, Debug, Default)]
pub struct RunqHistograms {
    pub system: Buckets,
    pub by_process: HashMap<u32, Buckets>,
    pub by_thread: HashMap<u32, Buckets>,
}

impl RunqHistograms {
    pub fn merge(&mut self, other: &RunqHistograms) {
        self.system.merge(&other.system);
        for (pid, b) in &other.by_process {
            self.by_process.entry(*pid).or_default().merge(b);
        }
        for (tid, b) in &other.by_thread {
            self.by_thread.entry(*tid).or_default().merge(b);
        }
    }

    fn record(&mut self, scope: HistogramScope, tid: u32, tgid: u32, latency_ns: u64) {
        self.system.record(latency_ns);
        if scope.per_process {
            self.by_process.entry(tgid).or_default().record(latency_ns);
        }
        if scope.per_thread {
            self.by_thread.entry(tid).or_default().record(latency_ns);
        }
    }
}

#[derive(Default)]
pub struct Aggregator {
    scope: HistogramScope,
    pub runq: RunqHistograms,
    live: HashMap<u32, ThreadRecord>,
    exited: Vec<ThreadRecord>,
    /// TGIDs of threads whose events arrived before their TGID was known
    /// (classic tracepoints learn it late).
    tgid_of: HashMap<u32, u32>,
    pub events: u64,
}

/// Totals of a thread including the period it is in right now, so a
/// snapshot does not miss the time since its last switch.
pub fn totals_at(stats: &ThreadStats, now_ns: u64) -> ThreadTotals {
    let mut totals = stats.totals;
    let since = |t: u64| if t != 0 && now_ns > t { now_ns - t } else { 0 };
    totals.on_cpu_ns += since(stats.on_cpu_since_ns);
    let waiting = since(stats.runnable_since_ns);
    totals.runq_wait_ns += waiting;
    if stats.off_cpu_state == tracer_common::OFF_CPU_PREEMPTED {
        totals.preempted_ns += waiting;
    }
    let blocked = since(stats.off_cpu_since_ns);
    match stats.off_cpu_state {
        tracer_common::OFF_CPU_UNINTERRUPTIBLE => totals.uninterruptible_ns += blocked,
        tracer_common::OFF_CPU_SLEEP => totals.sleep_ns += blocked,
        _ => {}
    }
    totals
}

pub fn comm_string(comm: &[u8]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

impl Aggregator {
    pub fn new(scope: HistogramScope) -> Self {
        Self {
            scope,
            ..Self::default()
        }
    }

    fn resolve_tgid(&mut self, tid: u32, tgid: u32) -> u32 {
        if tgid != 0 {
            return tgid;
        }
        if let Some(known) = self.live.get(&tid).map(|t| t.tgid).filter(|&t| t != 0) {
            return known;
        }
        *self
            .tgid_of
            .entry(tid)
            .or_insert_with(|| procfs::tgid_of(tid).unwrap_or(tid))
    }

    pub fn on_runq_event(&mut self, event: &RunqEvent) {
        self.events += 1;
        let tgid = self.resolve_tgid(event.tid, event.tgid);
        self.runq.record(self.scope, event.tid, tgid, event.latency_ns);
    }

    pub fn on_thread_exit(&mut self, exit: &ThreadExit) {
        let tgid = self.resolve_tgid(exit.tid, exit.stats.tgid);
        self.live.remove(&exit.tid);
        self.exited.push(ThreadRecord {
            tid: exit.tid,
            tgid,
            comm: comm_string(&exit.stats.comm),
            totals: exit.stats.totals,
            exited: true,
        });
    }

    /// Replaces the live threads' totals with a fresh read of the kernel map.
    pub fn on_thread_snapshot(&mut self, tid: u32, stats: &ThreadStats, now_ns: u64) {
        let tgid = self.resolve_tgid(tid, stats.tgid);
        let record = self.live.entry(tid).or_insert_with(|| ThreadRecord {
            tid,
            tgid,
            comm: procfs::comm_of(tid).unwrap_or_else(|| comm_string(&stats.comm)),
            totals: ThreadTotals::default(),
            exited: false,
        });
        record.tgid = tgid;
        record.totals = totals_at(stats, now_ns);
    }

    /// A thread whose exit record was lost: the kernel left its entry marked
    /// dead, with final totals.
    pub fn on_dead_entry(&mut self, tid: u32, stats: &ThreadStats) {
        self.on_thread_exit(&ThreadExit {
            tid,
            _pad: 0,
            exit_ns: 0,
            stats: *stats,
        });
    }

    pub fn live_threads(&self) -> usize {
        self.live.len()
    }

    /// All threads, grouped by process (TGID), sorted by TID.
    pub fn processes(&self) -> BTreeMap<u32, Vec<&ThreadRecord>> {
        let mut by_process: BTreeMap<u32, Vec<&ThreadRecord>> = BTreeMap::new();
        for thread in self.live.values().chain(self.exited.iter()) {
            by_process.entry(thread.tgid).or_default().push(thread);
        }
        for threads in by_process.values_mut() {
            threads.sort_by_key(|t| (t.tid, !t.exited));
        }
        by_process
    }

    /// Clears the histograms (per-interval output); totals are cumulative.
    pub fn take_runq(&mut self) -> RunqHistograms {
        std::mem::take(&mut self.runq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_common::{OFF_CPU_SLEEP, OFF_CPU_UNINTERRUPTIBLE};

    #[test]
    fn snapshot_includes_the_period_in_progress() {
        let mut stats = ThreadStats::default();
        stats.totals.on_cpu_ns = 100;
        stats.on_cpu_since_ns = 1_000;
        assert_eq!(totals_at(&stats, 1_500).on_cpu_ns, 600);

        let mut blocked = ThreadStats::default();
        blocked.off_cpu_since_ns = 1_000;
        blocked.off_cpu_state = OFF_CPU_UNINTERRUPTIBLE;
        assert_eq!(totals_at(&blocked, 1_250).uninterruptible_ns, 250);
        blocked.off_cpu_state = OFF_CPU_SLEEP;
        assert_eq!(totals_at(&blocked, 1_250).sleep_ns, 250);

        let mut queued = ThreadStats::default();
        queued.runnable_since_ns = 1_000;
        queued.off_cpu_state = tracer_common::OFF_CPU_PREEMPTED;
        let totals = totals_at(&queued, 1_300);
        assert_eq!((totals.runq_wait_ns, totals.preempted_ns), (300, 300));
    }

    #[test]
    fn exit_moves_a_thread_from_live_to_exited_with_final_totals() {
        let mut agg = Aggregator::new(HistogramScope::default());
        let mut stats = ThreadStats { tgid: 42, ..Default::default() };
        stats.totals.on_cpu_ns = 10;
        agg.on_thread_snapshot(43, &stats, 0);
        stats.totals.on_cpu_ns = 99;
        stats.comm[..4].copy_from_slice(b"work");
        agg.on_thread_exit(&ThreadExit { tid: 43, _pad: 0, exit_ns: 5, stats });
        let processes = agg.processes();
        let threads = &processes[&42];
        assert_eq!(threads.len(), 1);
        assert!(threads[0].exited);
        assert_eq!(threads[0].totals.on_cpu_ns, 99);
        assert_eq!(threads[0].comm, "work");
        assert_eq!(agg.live_threads(), 0);
    }

    #[test]
    fn events_land_in_the_requested_histograms() {
        let mut agg = Aggregator::new(HistogramScope { per_process: true, per_thread: false });
        for (tid, tgid, ns) in [(1, 1, 1_000), (2, 1, 3_000), (7, 7, 5_000)] {
            agg.on_runq_event(&RunqEvent { tid, tgid, latency_ns: ns, cpu: 0, prev_tgid: 0 });
        }
        assert_eq!(agg.runq.system.count(), 3);
        assert_eq!(agg.runq.by_process[&1].count(), 2);
        assert_eq!(agg.runq.by_process[&7].max(), 5_000);
        assert!(agg.runq.by_thread.is_empty());
        assert_eq!(agg.take_runq().system.count(), 3);
        assert_eq!(agg.runq.system.count(), 0);
    }
}
