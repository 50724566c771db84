//! Folds what the kernel sends (run-queue events, thread totals, exit
//! records) into per-thread and per-process state.
use std::collections::{BTreeMap, HashSet};

use foldhash::{HashMap, HashMapExt};

use tracer_common::{
    OFF_CPU_IOWAIT, THREAD_KERNEL_SAMPLED, OFF_CPU_SLEEP, OFF_CPU_UNINTERRUPTIBLE, RunqEvent, ThreadExit, ThreadStats,
    ThreadTotals,
};

mod spans_in;

pub use super::{
    runq::{HistogramScope, OffCpuHistograms, RunqHistograms},
    thread::ThreadRecord,
};
use super::{
    ProcessInfo,
    holders::{CpuHolders, Identity},
    downstream::Downstream,
    flows::Flows,
    h2::H2Streams,
    http::HttpHeads,
    rounds::Rounds,
    goodput::Goodput,
    kstats::KernelStats,
    exited::{DEFAULT_MAX_EXITED_THREADS, ExitedThreads, MAX_EXITED_PROCESSES},
    names::{CpuLimit, ProcessName, comm_string},
    spans::{SpanRecord, SpanSummary},
};

/// Default share of a span's wall time spent waiting for a CPU above which
/// its verdict is `cpu-contention`.
pub const DEFAULT_CONTENTION_THRESHOLD: f64 = 0.3;

/// How long a CPU holder's name and cgroup are reused before /proc is read
/// again (a PID reused sooner would be misnamed in blame).
const HOLDER_NAME_TTL: std::time::Duration = std::time::Duration::from_secs(2);
/// Cached holder names above which expired ones are dropped.
const MAX_HOLDER_NAMES: usize = 65_536;
/// Threads whose process is only known from /proc (classic tracepoints)
/// beyond which that cache is dropped, to be read again as needed: threads
/// whose exit is never seen (untracked ones) must not grow it for good.
const MAX_UNRESOLVED_TIDS: usize = 65_536;

pub struct Aggregator {
    scope: HistogramScope,
    pub runq: RunqHistograms,
    live: HashMap<u32, ThreadRecord>,
    /// Final records of exited threads, bounded per process.
    exited: ExitedThreads,
    /// TGIDs of threads whose events arrived before their TGID was known
    /// (classic tracepoints learn it late).
    tgid_of: HashMap<u32, u32>,
    /// Exited processes beyond which a thread's exit folds some away (see
    /// `on_thread_exit`).
    fold_exited_at: usize,
    /// Processes folded into PID 0 since `take_folded_processes`; `None`
    /// until the first call, so that a recording nobody cuts into intervals
    /// (`model::intervals`) keeps no log.
    folded_log: Option<Vec<u32>>,
    pub events: u64,
    /// Latest cumulative syscall and block I/O statistics from the kernel.
    pub kernel: KernelStats,
    /// Who held the CPU during each process's run-queue waits.
    pub holders: CpuHolders,
    pub spans: SpanSummary,
    /// Goodput per span name and second against `--slo` (none without it).
    pub goodput: Option<Goodput>,
    /// Heads of HTTP exchanges whose spans have not arrived yet.
    pub http: HttpHeads,
    /// HTTP/2 connections, whose streams are spans.
    pub h2: H2Streams,
    /// HTTP spans waiting for the rest of their response.
    pub rounds: Rounds,
    /// Outgoing calls' waits, until their parents arrive.
    downstream: Downstream,
    /// Requests from one traced process to another.
    flows: Flows,
    /// CPU holders' names, with when they were read.
    holder_names: HashMap<u32, (std::time::Instant, ProcessName)>,
    /// Throttled processes' CPU quotas, with when they were read.
    cpu_limits: HashMap<u32, (std::time::Instant, Option<CpuLimit>)>,
    /// Finished spans not yet taken by `take_spans` (kept only when asked).
    finished_spans: Vec<SpanRecord>,
    pub keep_span_records: bool,
    pub contention_threshold: f64,
    /// Add to a CLOCK_MONOTONIC time to get Unix time.
    monotonic_to_unix_ns: i128,
    /// Names and processes of live threads.
    system: Box<dyn ProcessInfo>,
}

/// The entry says the thread is on a CPU, but /proc says it is not (`state`
/// is not `R`): its switch-out was not reported (see
/// `Counter::AccountingGaps`). Corrects the snapshot so the time since is not
/// counted as on-CPU: the kernel's own `exec_ns` says how much of it was,
/// and the state letter what the thread is blocked in since.
pub fn settle_unreported_switch_out(stats: &mut ThreadStats, now_ns: u64, state: char, exec_ns: u64) {
    if stats.on_cpu_since_ns == 0 || now_ns <= stats.on_cpu_since_ns || state == 'R' || stats.flags & THREAD_KERNEL_SAMPLED == 0 {
        return;
    }
    let ran = exec_ns.saturating_sub(stats.kernel.exec_ns).min(now_ns - stats.on_cpu_since_ns);
    stats.totals.on_cpu_ns += ran;
    stats.off_cpu_since_ns = stats.on_cpu_since_ns + ran;
    stats.off_cpu_state = if state == 'D' { OFF_CPU_UNINTERRUPTIBLE } else { OFF_CPU_SLEEP };
    stats.on_cpu_since_ns = 0;
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
        OFF_CPU_UNINTERRUPTIBLE => totals.uninterruptible_ns += blocked,
        OFF_CPU_IOWAIT => {
            totals.uninterruptible_ns += blocked;
            totals.iowait_ns += blocked;
        }
        OFF_CPU_SLEEP => totals.sleep_ns += blocked,
        _ => {}
    }
    totals.syscall_ns += since(stats.syscall_since_ns);
    totals
}

impl Aggregator {
    /// `monotonic_to_unix_ns` dates spans; `system` names threads and
    /// finds their processes while they live.
    pub fn new(scope: HistogramScope, monotonic_to_unix_ns: i128, system: Box<dyn ProcessInfo>) -> Self {
        Self {
            scope,
            runq: RunqHistograms::default(),
            live: HashMap::new(),
            exited: ExitedThreads::new(DEFAULT_MAX_EXITED_THREADS),
            tgid_of: HashMap::new(),
            fold_exited_at: 2 * MAX_EXITED_PROCESSES,
            folded_log: None,
            events: 0,
            kernel: KernelStats::default(),
            holders: CpuHolders::default(),
            spans: SpanSummary::default(),
            goodput: None,
            http: HttpHeads::default(),
            h2: H2Streams::default(),
            rounds: Rounds::default(),
            downstream: Downstream::default(),
            flows: Flows::default(),
            holder_names: HashMap::new(),
            cpu_limits: HashMap::new(),
            finished_spans: Vec::new(),
            keep_span_records: false,
            contention_threshold: DEFAULT_CONTENTION_THRESHOLD,
            monotonic_to_unix_ns,
            system,
        }
    }

    /// The process of a thread, as far as known (the thread itself if not).
    pub fn process_of(&self, tid: u32) -> u32 {
        self.live
            .get(&tid)
            .map(|t| t.tgid)
            .filter(|&t| t != 0)
            .or_else(|| self.tgid_of.get(&tid).copied())
            .or_else(|| self.exited.find(tid).map(|t| t.tgid))
            .or_else(|| self.system.tgid_of(tid))
            .unwrap_or(tid)
    }

    /// Takes the kernel's cumulative CPU-holder sums, and names the
    /// processes new in them while they are alive.
    pub fn on_wait_holders(&mut self, sums: impl IntoIterator<Item = ((u32, u32), u64)>) {
        for pid in self.holders.update(sums) {
            let identity = self.system.comm_of(pid).map(|comm| Identity {
                name: ProcessName { comm: comm.into(), cgroup: self.system.cgroup_of(pid).map(Into::into) },
                kernel_thread: self.system.is_kernel_thread(pid),
            });
            self.holders.identify(pid, identity);
        }
    }

    /// Names a CPU holder from /proc, at most every `HOLDER_NAME_TTL` per
    /// process: at thousands of spans per second, reading /proc for each
    /// would cost the tracer more than everything else it does per span.
    fn refresh_holder_name(&mut self, pid: u32, now: std::time::Instant) {
        if self.holder_names.get(&pid).is_some_and(|(at, _)| now.duration_since(*at) < HOLDER_NAME_TTL) {
            return;
        }
        let name = ProcessName { comm: self.comm_of(pid).into(), cgroup: self.system.cgroup_of(pid).map(Into::into) };
        if self.holder_names.len() > MAX_HOLDER_NAMES {
            self.holder_names.retain(|_, (at, _)| now.duration_since(*at) < HOLDER_NAME_TTL);
        }
        self.holder_names.insert(pid, (now, name));
    }

    /// The CPU quota of a throttled process, read from its cgroup at most
    /// every `HOLDER_NAME_TTL` (as holders' names are).
    fn cpu_limit(&mut self, pid: u32) -> Option<CpuLimit> {
        let now = std::time::Instant::now();
        if let Some((at, limit)) = self.cpu_limits.get(&pid)
            && now.duration_since(*at) < HOLDER_NAME_TTL
        {
            return limit.clone();
        }
        if self.cpu_limits.len() > MAX_HOLDER_NAMES {
            self.cpu_limits.retain(|_, (at, _)| now.duration_since(*at) < HOLDER_NAME_TTL);
        }
        let limit = self.system.cpu_limit_of(pid);
        self.cpu_limits.insert(pid, (now, limit.clone()));
        limit
    }

    /// A thread's name as last known.
    pub fn comm_of(&self, tid: u32) -> String {
        self.system
            .comm_of(tid)
            .or_else(|| self.live.get(&tid).map(|t| t.comm.clone()))
            .or_else(|| self.exited.find(tid).map(|t| t.comm.clone()))
            .unwrap_or_default()
    }

    fn resolve_tgid(&mut self, tid: u32, tgid: u32) -> u32 {
        if tgid != 0 {
            return tgid;
        }
        if let Some(known) = self.live.get(&tid).map(|t| t.tgid).filter(|&t| t != 0) {
            return known;
        }
        let system = &self.system;
        *self.tgid_of.entry(tid).or_insert_with(|| system.tgid_of(tid).unwrap_or(tid))
    }

    pub fn on_runq_event(&mut self, event: &RunqEvent) {
        self.events += 1;
        let tgid = self.resolve_tgid(event.tid, event.tgid);
        self.runq.record(self.scope, tgid, event);
    }

    pub fn on_thread_exit(&mut self, exit: &ThreadExit) {
        let tgid = self.resolve_tgid(exit.tid, exit.stats.tgid);
        self.live.remove(&exit.tid);
        // Its process is in the record now; a TID the kernel reuses later
        // must be looked up afresh.
        self.tgid_of.remove(&exit.tid);
        self.exited.add(ThreadRecord {
            tid: exit.tid,
            tgid,
            comm: comm_string(&exit.stats.comm),
            totals: exit.stats.totals,
            exited: true,
            folded: 0,
        });
        // Between two `settle`s, process churn is bounded here; amortized:
        // when processes with live threads cannot be folded, the next try
        // waits for as many more again.
        if self.exited.processes() > self.fold_exited_at {
            self.fold_exited_processes(MAX_EXITED_PROCESSES, |_| false);
            self.fold_exited_at = (2 * MAX_EXITED_PROCESSES).max(self.exited.processes() + MAX_EXITED_PROCESSES);
        }
    }

    /// Folds processes whose threads have all exited into the "other
    /// exited processes" entry (PID 0), histograms included: the least busy
    /// first, until at most `max` processes keep rows of exited threads,
    /// sparing those `keep` names.
    pub fn fold_exited_processes(&mut self, max: usize, keep: impl Fn(u32) -> bool) {
        let live: HashSet<u32> = self.live.values().map(|t| t.tgid).collect();
        let folded = self.exited.fold_processes(max, |tgid| live.contains(&tgid) || keep(tgid));
        self.runq.fold_processes(&folded);
        if let Some(log) = &mut self.folded_log {
            log.extend(&folded);
        }
    }

    /// Processes folded into PID 0 since the last call; from the first
    /// call on, folds are logged for the next.
    pub fn take_folded_processes(&mut self) -> Vec<u32> {
        self.folded_log.replace(Vec::new()).unwrap_or_default()
    }

    /// Bounds what exited threads and processes leave behind; called at each
    /// refresh (`Session::sync`), so a report never lists more than
    /// `MAX_EXITED_PROCESSES` exited processes.
    pub fn settle(&mut self) {
        if self.exited.processes() > MAX_EXITED_PROCESSES {
            self.fold_exited_processes(MAX_EXITED_PROCESSES, |_| false);
        }
        let live = &self.live;
        self.tgid_of.retain(|tid, _| live.get(tid).is_none_or(|t| t.tgid == 0));
        if self.tgid_of.len() > MAX_UNRESOLVED_TIDS {
            self.tgid_of.clear();
        }
    }

    /// The processes with a live thread.
    pub fn live_processes(&self) -> HashSet<u32> {
        self.live.values().map(|t| t.tgid).collect()
    }

    /// Replaces the live threads' totals with a fresh read of the kernel map.
    pub fn on_thread_snapshot(&mut self, tid: u32, stats: &ThreadStats, now_ns: u64) {
        let tgid = self.resolve_tgid(tid, stats.tgid);
        let record = self.live.entry(tid).or_insert_with(|| ThreadRecord {
            tid,
            tgid,
            comm: self.system.comm_of(tid).unwrap_or_else(|| comm_string(&stats.comm)),
            totals: ThreadTotals::default(),
            exited: false,
            folded: 0,
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

    /// At most `max` exited threads per process keep a row of their own
    /// (`--max-exited-threads`); call before any thread has exited.
    pub fn limit_exited_threads(&mut self, max: usize) {
        self.exited = ExitedThreads::new(max);
    }

    /// Exited threads folded into their process's "other" row so far.
    pub fn exited_threads_folded(&self) -> u64 {
        self.exited.folded()
    }

    /// Exited processes folded into the "other exited processes" entry.
    pub fn exited_processes_folded(&self) -> u64 {
        self.exited.folded_processes()
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
            // The folded row of exited threads (TID 0) last.
            threads.sort_by_key(|t| (t.tid == 0, t.tid, !t.exited));
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
    use tracer_common::{OFF_CPU_PREEMPTED, OFF_CPU_SLEEP, OFF_CPU_UNINTERRUPTIBLE};

    use crate::model::hist::Buckets;

    use crate::model::names::Offline;

    fn aggregator(scope: HistogramScope) -> Aggregator {
        Aggregator::new(scope, 0, Box::new(Offline))
    }

    #[test]
    fn snapshot_includes_the_period_in_progress() {
        let mut stats = ThreadStats::default();
        stats.totals.on_cpu_ns = 100;
        stats.on_cpu_since_ns = 1_000;
        assert_eq!(totals_at(&stats, 1_500).on_cpu_ns, 600);

        // Its switch-out was not reported: /proc says it sleeps, and the
        // kernel's counter says it ran 100 ns of the 500 since.
        let mut unreported = stats;
        unreported.flags |= THREAD_KERNEL_SAMPLED;
        unreported.kernel.exec_ns = 7_000;
        let mut running = unreported;
        settle_unreported_switch_out(&mut running, 1_500, 'R', 7_100);
        assert_eq!(totals_at(&running, 1_500).on_cpu_ns, 600, "a running thread is left alone");
        settle_unreported_switch_out(&mut unreported, 1_500, 'S', 7_100);
        let settled = totals_at(&unreported, 1_500);
        assert_eq!((settled.on_cpu_ns, settled.sleep_ns), (200, 400));

        let mut blocked = ThreadStats::default();
        blocked.off_cpu_since_ns = 1_000;
        blocked.off_cpu_state = OFF_CPU_UNINTERRUPTIBLE;
        assert_eq!(totals_at(&blocked, 1_250).uninterruptible_ns, 250);
        blocked.off_cpu_state = OFF_CPU_SLEEP;
        assert_eq!(totals_at(&blocked, 1_250).sleep_ns, 250);

        blocked.off_cpu_state = OFF_CPU_IOWAIT;
        let io = totals_at(&blocked, 1_250);
        assert_eq!((io.uninterruptible_ns, io.iowait_ns), (250, 250), "I/O wait is uninterruptible");

        let mut in_syscall = ThreadStats::default();
        in_syscall.syscall_since_ns = 1_000;
        assert_eq!(totals_at(&in_syscall, 1_100).syscall_ns, 100);

        let mut queued = ThreadStats::default();
        queued.runnable_since_ns = 1_000;
        queued.off_cpu_state = tracer_common::OFF_CPU_PREEMPTED;
        let totals = totals_at(&queued, 1_300);
        assert_eq!((totals.runq_wait_ns, totals.preempted_ns), (300, 300));
    }

    #[test]
    fn exit_moves_a_thread_from_live_to_exited_with_final_totals() {
        let mut agg = aggregator(HistogramScope::default());
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
        let mut agg = aggregator(HistogramScope { per_process: true, per_thread: false });
        let events = [
            (1, 1, 1_000, OFF_CPU_PREEMPTED, 0),
            (2, 1, 3_000, OFF_CPU_IOWAIT, 2_000_000),
            (7, 7, 5_000, OFF_CPU_SLEEP, 10_000_000),
        ];
        for (tid, tgid, ns, blocked_state, blocked_ns) in events {
            agg.on_runq_event(&RunqEvent {
                tid,
                tgid,
                latency_ns: ns,
                blocked_state,
                blocked_ns,
                ..Default::default()
            });
        }
        assert_eq!(agg.runq.system.count(), 3);
        assert_eq!(agg.runq.by_process[&1].count(), 2);
        assert_eq!(agg.runq.by_process[&7].max(), 5_000);
        let off_cpu = &agg.runq.off_cpu_by_process[&1];
        assert_eq!(off_cpu.preempted.max(), 1_000, "a preemption episode is its run-queue wait");
        assert_eq!(off_cpu.iowait.max(), 2_000_000);
        assert_eq!(off_cpu.sleep.count(), 0);
        assert_eq!(agg.runq.off_cpu_by_process[&7].sleep.max(), 10_000_000);
        assert!(agg.runq.by_thread.is_empty());
        assert_eq!(agg.take_runq().system.count(), 3);
        assert_eq!(agg.runq.system.count(), 0);
    }

    #[test]
    fn settling_bounds_exited_processes_and_keeps_their_totals() {
        let mut agg = aggregator(HistogramScope { per_process: true, per_thread: false });
        let processes = MAX_EXITED_PROCESSES as u32 + 10;
        for tgid in 1..=processes {
            agg.on_runq_event(&RunqEvent { tid: tgid, tgid, latency_ns: 1_000, ..Default::default() });
            let mut stats = ThreadStats { tgid, ..Default::default() };
            stats.totals.on_cpu_ns = u64::from(tgid);
            agg.on_thread_exit(&ThreadExit { tid: tgid, _pad: 0, exit_ns: 0, stats });
        }
        agg.settle();
        let by_process = agg.processes();
        assert!(by_process.len() <= MAX_EXITED_PROCESSES, "{} processes", by_process.len());
        let on_cpu: u64 = by_process.values().flatten().map(|t| t.totals.on_cpu_ns).sum();
        assert_eq!(on_cpu, u64::from(processes) * u64::from(processes + 1) / 2, "nothing lost");
        assert!(by_process.contains_key(&0) && !by_process.contains_key(&1), "the least busy are summed");
        assert_eq!(agg.runq.by_process.values().map(Buckets::count).sum::<u64>(), u64::from(processes));
        assert_eq!(agg.runq.by_process.len(), by_process.len(), "histograms follow their processes");
        assert_eq!(agg.exited_processes_folded() as usize, processes as usize + 1 - by_process.len());
    }
}
