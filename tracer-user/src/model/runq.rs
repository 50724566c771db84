//! Run-queue and off-CPU histograms: system-wide, per process and per
//! thread, for one interval or a whole recording.
use std::collections::HashMap;

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
    }

    /// Merges what a report of the whole run shows: the system-wide and
    /// per-process histograms. Per-thread histograms are only shown per
    /// interval, and keeping them for the whole run would
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
        }
        if scope.per_thread {
            self.by_thread.entry(event.tid).or_default().record(event.latency_ns);
            self.off_cpu_by_thread.entry(event.tid).or_default().record(event);
        }
    }

    /// Moves the histograms of processes summed into the "other exited
    /// processes" entry (PID 0) under PID 0.
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_processes_land_under_pid_0() {
        let mut runq = RunqHistograms::default();
        let scope = HistogramScope { per_process: true, per_thread: true };
        for (tgid, latency_ns) in [(5, 100), (6, 200), (7, 300), (7, 400)] {
            runq.record(scope, tgid, &RunqEvent { tid: tgid, tgid, latency_ns, ..Default::default() });
        }
        runq.fold_processes(&[5, 6]);
        assert_eq!(runq.by_process[&0].count(), 2);
        assert!(!runq.by_process.contains_key(&5) && !runq.off_cpu_by_process.contains_key(&6));
        assert_eq!(runq.by_process[&7].count(), 2);
        assert_eq!(runq.by_thread.len(), 3, "threads are not folded here");

        let mut whole = RunqHistograms::default();
        whole.merge_whole_run(&runq);
        assert_eq!(whole.system.count(), 4);
        assert!(whole.by_thread.is_empty());
    }
}
