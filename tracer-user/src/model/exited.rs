//! Threads that have exited, kept with their final totals but bounded: a
//! recording of a service that starts and ends 10,000 threads a second
//! must not grow without end. Per process, the `max_per_process` threads
//! that used the most time (on a CPU plus waiting for one) keep a row of
//! their own; the others are summed into one "other exited threads" row
//! (TID 0, with how many it holds), so the process's totals stay the sum
//! over every thread that lived. Processes whose threads have all exited
//! can likewise be summed into one "other exited processes" entry (PID 0).
use std::collections::HashMap;

use tracer_common::ThreadTotals;

use super::thread::ThreadRecord;

/// Default of `--max-exited-threads`.
pub const DEFAULT_MAX_EXITED_THREADS: usize = 64;
/// Processes whose threads have all exited that keep rows of their own in
/// a system-wide recording; the least busy others are summed into one
/// "other exited processes" entry (PID 0).
pub const MAX_EXITED_PROCESSES: usize = 1_024;
/// The name of a process's row of summed exited threads.
pub const OTHER_EXITED_THREADS: &str = "(other exited threads)";
/// The name of the thread row of the entry of summed exited processes.
pub const OTHER_EXITED_PROCESSES: &str = "(other exited processes)";

#[derive(Debug, Default)]
struct ProcessExited {
    /// The threads kept by name, at most `max_per_process`.
    kept: Vec<ThreadRecord>,
    /// The rest, summed (TID 0), once there is any.
    folded: Option<ThreadRecord>,
}

impl ProcessExited {
    fn rows(&self) -> impl Iterator<Item = &ThreadRecord> {
        self.kept.iter().chain(self.folded.iter())
    }

    /// Adds `rows` (each counting as `folded` threads, or one) to the
    /// summed row, created under `tgid` and `name` if need be.
    fn fold<'a>(&mut self, tgid: u32, name: &str, rows: impl Iterator<Item = &'a ThreadRecord>) {
        let sum = self.folded.get_or_insert_with(|| ThreadRecord {
            tid: 0,
            tgid,
            comm: name.to_owned(),
            totals: ThreadTotals::ZERO,
            exited: true,
            folded: 0,
        });
        for row in rows {
            let mut values = sum.totals.values();
            for (value, add) in values.iter_mut().zip(row.totals.values()) {
                *value = value.saturating_add(add);
            }
            sum.totals = ThreadTotals::from_values(values);
            sum.folded += row.folded.max(1);
        }
    }
}

#[derive(Debug)]
pub struct ExitedThreads {
    max_per_process: usize,
    by_process: HashMap<u32, ProcessExited>,
    /// Process of each kept thread, to answer `find` without a scan.
    kept_tgid: HashMap<u32, u32>,
    /// Processes summed into the PID 0 entry.
    folded_processes: u64,
}

/// What decides which exited threads keep a row: the time they used.
fn weight(thread: &ThreadRecord) -> u64 {
    thread.totals.on_cpu_ns.saturating_add(thread.totals.runq_wait_ns)
}

impl ExitedThreads {
    pub fn new(max_per_process: usize) -> ExitedThreads {
        ExitedThreads { max_per_process, by_process: HashMap::new(), kept_tgid: HashMap::new(), folded_processes: 0 }
    }

    /// Keeps a thread's final record, folding the least busy one of its
    /// process away when the process has too many.
    pub fn add(&mut self, thread: ThreadRecord) {
        let tgid = thread.tgid;
        let process = self.by_process.entry(tgid).or_default();
        self.kept_tgid.insert(thread.tid, tgid);
        process.kept.push(thread);
        if process.kept.len() <= self.max_per_process {
            return;
        }
        let Some((least, _)) = process.kept.iter().enumerate().min_by_key(|(_, t)| weight(t)) else {
            return;
        };
        let gone = process.kept.swap_remove(least);
        self.kept_tgid.remove(&gone.tid);
        process.fold(tgid, OTHER_EXITED_THREADS, std::iter::once(&gone));
    }

    /// A kept thread by TID.
    pub fn find(&self, tid: u32) -> Option<&ThreadRecord> {
        let tgid = self.kept_tgid.get(&tid)?;
        self.by_process.get(tgid)?.kept.iter().find(|t| t.tid == tid)
    }

    /// Every row: kept threads and the summed rows.
    pub fn iter(&self) -> impl Iterator<Item = &ThreadRecord> {
        self.by_process.values().flat_map(ProcessExited::rows)
    }

    /// Threads summed into "other exited threads" rows, over all processes
    /// (those of folded processes included).
    pub fn folded(&self) -> u64 {
        self.by_process.values().filter_map(|p| p.folded.as_ref()).map(|row| row.folded).sum()
    }

    /// Processes summed into the "other exited processes" entry.
    pub fn folded_processes(&self) -> u64 {
        self.folded_processes
    }

    /// Processes with exited threads (the PID 0 entry included), to know
    /// when to fold some away.
    pub fn processes(&self) -> usize {
        self.by_process.len()
    }

    /// Folds the least busy processes that `keep` does not spare (it must
    /// spare those with live threads) into the "other exited processes"
    /// entry (PID 0), until at most `max` processes keep their own.
    /// Returns the PIDs folded.
    pub fn fold_processes(&mut self, max: usize, keep: impl Fn(u32) -> bool) -> Vec<u32> {
        // The PID 0 entry counts too, once the first fold makes it.
        let entries = self.by_process.len() + usize::from(!self.by_process.contains_key(&0));
        let excess = entries.saturating_sub(max);
        if self.by_process.len() <= max {
            return Vec::new();
        }
        let mut candidates: Vec<(u64, u32)> = self
            .by_process
            .iter()
            .filter(|&(&tgid, _)| tgid != 0 && !keep(tgid))
            .map(|(&tgid, p)| (p.rows().map(weight).sum(), tgid))
            .collect();
        candidates.sort_unstable();
        let folded: Vec<u32> = candidates.into_iter().take(excess).map(|(_, tgid)| tgid).collect();
        for tgid in &folded {
            let Some(process) = self.by_process.remove(tgid) else { continue };
            for thread in &process.kept {
                self.kept_tgid.remove(&thread.tid);
            }
            self.by_process.entry(0).or_default().fold(0, OTHER_EXITED_PROCESSES, process.rows());
            self.folded_processes += 1;
        }
        folded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread(tid: u32, on_cpu_ns: u64) -> ThreadRecord {
        let totals = ThreadTotals { on_cpu_ns, runq_waits: 1, ..ThreadTotals::ZERO };
        ThreadRecord { tid, tgid: 7, comm: format!("t{tid}"), totals, exited: true, folded: 0 }
    }

    #[test]
    fn the_busiest_keep_rows_and_the_rest_are_summed() {
        let mut exited = ExitedThreads::new(2);
        for (tid, ns) in [(1, 50), (2, 10), (3, 30), (4, 5), (5, 70)] {
            exited.add(thread(tid, ns));
        }
        let mut rows: Vec<(u32, u64)> = exited.iter().map(|t| (t.tid, t.totals.on_cpu_ns)).collect();
        rows.sort();
        assert_eq!(rows, [(0, 45), (1, 50), (5, 70)], "kept: 1 and 5; folded: 2, 3, 4");
        let other = exited.iter().find(|t| t.tid == 0).unwrap();
        assert_eq!((other.comm.as_str(), other.folded, other.totals.runq_waits), (OTHER_EXITED_THREADS, 3, 3));
        let total: u64 = exited.iter().map(|t| t.totals.on_cpu_ns).sum();
        assert_eq!(total, 165, "nothing lost in the fold");
        assert_eq!(exited.find(5).map(|t| t.comm.as_str()), Some("t5"));
        assert!(exited.find(2).is_none());
        assert_eq!(exited.folded(), 3);
    }

    #[test]
    fn exited_processes_beyond_the_bound_are_summed_under_pid_0() {
        let mut exited = ExitedThreads::new(1);
        for tgid in 1..=10u32 {
            for (tid, on_cpu_ns) in [(tgid, u64::from(tgid)), (tgid + 100, 1)] {
                let totals = ThreadTotals { on_cpu_ns, ..ThreadTotals::ZERO };
                exited.add(ThreadRecord { tid, tgid, comm: "p".into(), totals, exited: true, folded: 0 });
            }
        }
        // Process 2 still has a live thread: it stays whatever its weight.
        // Five entries at most, the PID 0 one included.
        let folded = exited.fold_processes(5, |tgid| tgid == 2);
        assert_eq!(folded, [1, 3, 4, 5, 6, 7]);
        let mut kept: Vec<u32> = exited.iter().map(|t| t.tgid).collect();
        kept.sort();
        kept.dedup();
        assert_eq!(kept, [0, 2, 8, 9, 10]);
        let other = exited.iter().find(|t| t.tgid == 0).unwrap();
        assert_eq!((other.tid, other.comm.as_str()), (0, OTHER_EXITED_PROCESSES));
        assert_eq!(other.totals.on_cpu_ns, (1 + 3 + 4 + 5 + 6 + 7) + 6, "each process's own row and its other row");
        assert_eq!((other.folded, exited.folded_processes()), (12, 6), "threads, processes");
        assert!(exited.find(3).is_none() && exited.find(8).is_some());
        assert!(exited.fold_processes(5, |_| false).is_empty(), "within the bound");
    }

    #[test]
    fn memory_stays_bounded_under_churn() {
        let mut exited = ExitedThreads::new(64);
        for tid in 0..100_000 {
            exited.add(thread(tid + 1, u64::from(tid % 1_000)));
        }
        assert_eq!(exited.iter().count(), 65);
        assert_eq!(exited.kept_tgid.len(), 64);
        assert_eq!(exited.folded(), 100_000 - 64);
    }
}
