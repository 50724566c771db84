//! Run-queue and off-CPU histograms: system-wide, per process and per
//! thread, for one interval or a whole recording.
use std::collections::{HashMap, HashSet};

use tracer_common::{
    OFF_CPU_IOWAIT, OFF_CPU_PREEMPTED, OFF_CPU_SLEEP, OFF_CPU_UNINTERRUPTIBLE, RUNQ_WOKEN_ON_IDLE, RunqEvent,
};

use super::hist::Buckets;

/// Which run-queue histograms to keep besides the system-wide one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistogramScope {
    pub per_process: bool,
    pub per_thread: bool,
}

/// Lengths of off-CPU episodes, by cause.
#[derive(Clone, Debug, Default)]
pub struct OffCpuHistograms {
    /// Preempted while runnable: the run-queue wait that followed.
    pub preempted: Buckets,
    /// Uninterruptible sleep waiting for I/O.
    pub iowait: Buckets,
    /// Other uninterruptible sleep (locks, page faults...).
    pub other_uninterruptible: Buckets,
    /// Interruptible and other sleep (futex, epoll, sockets, timers).
    pub sleep: Buckets,
}

impl OffCpuHistograms {
    fn record(&mut self, event: &RunqEvent) {
        match event.blocked_state {
            OFF_CPU_PREEMPTED => self.preempted.record(event.latency_ns),
            OFF_CPU_IOWAIT => self.iowait.record(event.blocked_ns),
            OFF_CPU_UNINTERRUPTIBLE => self.other_uninterruptible.record(event.blocked_ns),
            OFF_CPU_SLEEP => self.sleep.record(event.blocked_ns),
            _ => {}
        }
    }

    pub fn merge(&mut self, other: &OffCpuHistograms) {
        self.preempted.merge(&other.preempted);
        self.iowait.merge(&other.iowait);
        self.other_uninterruptible.merge(&other.other_uninterruptible);
        self.sleep.merge(&other.sleep);
    }
}

/// Run-queue and off-CPU histograms for one interval or one whole recording.
#[derive(Clone, Debug, Default)]
pub struct RunqHistograms {
    pub system: Buckets,
    pub by_process: HashMap<u32, Buckets>,
    pub by_thread: HashMap<u32, Buckets>,
    pub off_cpu_by_process: HashMap<u32, OffCpuHistograms>,
    pub off_cpu_by_thread: HashMap<u32, OffCpuHistograms>,
    /// Per waiting process: the process that had the CPU when each of its
    /// waits ended (the last holder, possibly itself through another
    /// thread), with the wait time charged to it.
    pub last_holders: HashMap<u32, HashMap<u32, u64>>,
}

fn merge_into<K: Copy + Eq + std::hash::Hash, V: Default>(
    into: &mut HashMap<K, V>,
    from: &HashMap<K, V>,
    merge: impl Fn(&mut V, &V),
) {
    for (key, value) in from {
        merge(into.entry(*key).or_default(), value);
    }
}

impl RunqHistograms {
    pub fn merge(&mut self, other: &RunqHistograms) {
        self.merge_whole_run(other);
        merge_into(&mut self.by_thread, &other.by_thread, Buckets::merge);
        merge_into(&mut self.off_cpu_by_thread, &other.off_cpu_by_thread, OffCpuHistograms::merge);
        for (waiter, holders) in &other.last_holders {
            let mine = self.last_holders.entry(*waiter).or_default();
            for (holder, ns) in holders {
                *mine.entry(*holder).or_default() += ns;
            }
        }
    }

    /// Merges what a report of the whole run shows: the system-wide and
    /// per-process histograms. Per-thread histograms and CPU holders are
    /// only shown per interval, and keeping them for the whole run would
    /// grow with every thread and process that ever lived.
    pub fn merge_whole_run(&mut self, other: &RunqHistograms) {
        self.system.merge(&other.system);
        merge_into(&mut self.by_process, &other.by_process, Buckets::merge);
        merge_into(&mut self.off_cpu_by_process, &other.off_cpu_by_process, OffCpuHistograms::merge);
    }

    pub fn record(&mut self, scope: HistogramScope, tgid: u32, event: &RunqEvent) {
        if event.flags & RUNQ_WOKEN_ON_IDLE != 0 {
            // No wait for a CPU: only the off-CPU episode it ended counts.
            if scope.per_process {
                self.off_cpu_by_process.entry(tgid).or_default().record(event);
            }
            if scope.per_thread {
                self.off_cpu_by_thread.entry(event.tid).or_default().record(event);
            }
            return;
        }
        self.system.record(event.latency_ns);
        if scope.per_process {
            self.by_process.entry(tgid).or_default().record(event.latency_ns);
            self.off_cpu_by_process.entry(tgid).or_default().record(event);
            // While its cgroup was throttled by its quota nobody held the CPU from it.
            let held = event.latency_ns.saturating_sub(event.throttled_ns);
            if event.prev_tgid != 0 && held > 0 {
                *self.last_holders.entry(tgid).or_default().entry(event.prev_tgid).or_default() += held;
            }
        }
        if scope.per_thread {
            self.by_thread.entry(event.tid).or_default().record(event.latency_ns);
            self.off_cpu_by_thread.entry(event.tid).or_default().record(event);
        }
    }

    /// Moves the histograms of processes summed into the "other exited
    /// processes" entry (PID 0) under PID 0, as waiters and as CPU holders.
    pub fn fold_processes(&mut self, pids: &[u32]) {
        if pids.is_empty() {
            return;
        }
        for pid in pids.iter().filter(|&&pid| pid != 0) {
            if let Some(buckets) = self.by_process.remove(pid) {
                self.by_process.entry(0).or_default().merge(&buckets);
            }
            if let Some(off_cpu) = self.off_cpu_by_process.remove(pid) {
                self.off_cpu_by_process.entry(0).or_default().merge(&off_cpu);
            }
            if let Some(holders) = self.last_holders.remove(pid) {
                let other = self.last_holders.entry(0).or_default();
                for (holder, ns) in holders {
                    *other.entry(holder).or_default() += ns;
                }
            }
        }
        let gone: HashSet<u32> = pids.iter().copied().filter(|&pid| pid != 0).collect();
        for holders in self.last_holders.values_mut() {
            let mut moved = 0;
            holders.retain(|holder, ns| {
                let fold = gone.contains(holder);
                if fold {
                    moved += *ns;
                }
                !fold
            });
            if moved > 0 {
                *holders.entry(0).or_default() += moved;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_processes_land_under_pid_0_as_waiters_and_holders() {
        let mut runq = RunqHistograms::default();
        let scope = HistogramScope { per_process: true, per_thread: true };
        for (tgid, prev_tgid, latency_ns) in [(5, 6, 100), (6, 5, 200), (7, 5, 300), (7, 7, 400)] {
            runq.record(scope, tgid, &RunqEvent { tid: tgid, tgid, prev_tgid, latency_ns, ..Default::default() });
        }
        runq.fold_processes(&[5, 6]);
        assert_eq!(runq.by_process[&0].count(), 2);
        assert!(!runq.by_process.contains_key(&5) && !runq.off_cpu_by_process.contains_key(&6));
        assert_eq!(runq.last_holders[&7][&0], 300, "5 held the CPU; it is now among the others");
        assert_eq!(runq.last_holders[&7][&7], 400);
        assert_eq!(runq.last_holders[&0][&0], 300, "5 and 6 waited for each other");
        assert_eq!(runq.by_thread.len(), 3, "threads are not folded here");

        let mut whole = RunqHistograms::default();
        whole.merge_whole_run(&runq);
        assert_eq!(whole.system.count(), 4);
        assert!(whole.by_thread.is_empty() && whole.last_holders.is_empty());
    }

    #[test]
    fn throttled_waits_are_not_charged_to_the_cpu_holder() {
        let mut runq = RunqHistograms::default();
        let scope = HistogramScope { per_process: true, per_thread: false };
        let wait = |latency_ns, throttled_ns| RunqEvent {
            tid: 5,
            tgid: 5,
            prev_tgid: 9,
            latency_ns,
            throttled_ns,
            ..Default::default()
        };
        runq.record(scope, 5, &wait(800, 800));
        runq.record(scope, 5, &wait(300, 100));
        assert_eq!(runq.last_holders[&5][&9], 200, "only the wait after the unthrottle");
        assert_eq!(runq.by_process[&5].count(), 2, "both are waits for a CPU");
    }
}
