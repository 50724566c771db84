//! Threads that have exited, kept with their final totals but bounded: a
//! recording of a service that starts and ends 10,000 threads a second
//! must not grow without end. Per process, the `max_per_process` threads
//! that used the most time (on a CPU plus waiting for one) keep a row of
//! their own; the others are folded into one "other exited threads" row
//! (TID 0), so the process's totals stay the sum over every thread that
//! lived.
use std::collections::HashMap;

use tracer_common::ThreadTotals;

use super::thread::ThreadRecord;

/// Default of `--max-exited-threads`.
pub const DEFAULT_MAX_EXITED_THREADS: usize = 64;
/// Processes whose threads have all exited that keep rows of their own in
/// a system-wide recording; the least busy others are folded into one
/// "other exited processes" entry (PID 0).
pub const MAX_EXITED_PROCESSES: usize = 1_024;

#[derive(Debug, Default)]
struct ProcessExited {
    /// The threads kept by name, at most `max_per_process`.
    kept: Vec<ThreadRecord>,
    /// The rest, summed (TID 0), once there is any.
    folded: Option<ThreadRecord>,
    folded_count: u64,
}

#[derive(Debug)]
pub struct ExitedThreads {
    max_per_process: usize,
    by_process: HashMap<u32, ProcessExited>,
    /// Process of each kept thread, to answer `find` without a scan.
    kept_tgid: HashMap<u32, u32>,
}

/// What decides which exited threads keep a row: the time they used.
fn weight(thread: &ThreadRecord) -> u64 {
    thread.totals.on_cpu_ns.saturating_add(thread.totals.runq_wait_ns)
}

fn add_totals(sum: &mut ThreadTotals, more: &ThreadTotals) {
    let mut values = sum.values();
    for (value, add) in values.iter_mut().zip(more.values()) {
        *value = value.saturating_add(add);
    }
    *sum = ThreadTotals::from_values(values);
}

impl ExitedThreads {
    pub fn new(max_per_process: usize) -> ExitedThreads {
        ExitedThreads { max_per_process, by_process: HashMap::new(), kept_tgid: HashMap::new() }
    }

    /// Keeps a thread's final record, folding the least busy one of its
    /// process away when the process has too many.
    pub fn add(&mut self, thread: ThreadRecord) {
        let process = self.by_process.entry(thread.tgid).or_default();
        self.kept_tgid.insert(thread.tid, thread.tgid);
        process.kept.push(thread);
        if process.kept.len() <= self.max_per_process {
            return;
        }
        let Some((least, _)) = process.kept.iter().enumerate().min_by_key(|(_, t)| weight(t)) else {
            return;
        };
        let gone = process.kept.swap_remove(least);
        self.kept_tgid.remove(&gone.tid);
        process.folded_count += 1;
        let folded = process.folded.get_or_insert_with(|| ThreadRecord {
            tid: 0,
            tgid: gone.tgid,
            comm: String::new(),
            totals: ThreadTotals::ZERO,
            exited: true,
        });
        add_totals(&mut folded.totals, &gone.totals);
        folded.comm = format!("({} other exited threads)", process.folded_count);
    }

    /// A kept thread by TID.
    pub fn find(&self, tid: u32) -> Option<&ThreadRecord> {
        let tgid = self.kept_tgid.get(&tid)?;
        self.by_process.get(tgid)?.kept.iter().find(|t| t.tid == tid)
    }

    /// Every row: kept threads and the folded rows.
    pub fn iter(&self) -> impl Iterator<Item = &ThreadRecord> {
        self.by_process.values().flat_map(|p| p.kept.iter().chain(p.folded.iter()))
    }

    /// Threads folded into "other" rows, over all processes.
    pub fn folded(&self) -> u64 {
        self.by_process.values().map(|p| p.folded_count).sum()
    }

    /// Processes with exited threads, to know when to fold some away.
    pub fn processes(&self) -> usize {
        self.by_process.len()
    }

    /// Folds the least busy processes that have no live thread (`live`
    /// says which do) into the "other exited processes" entry (PID 0),
    /// until at most `max` processes keep their own.
    pub fn fold_processes(&mut self, max: usize, live: impl Fn(u32) -> bool) {
        let mut gone: Vec<(u64, u32)> = self
            .by_process
            .iter()
            .filter(|&(&tgid, _)| tgid != 0 && !live(tgid))
            .map(|(&tgid, p)| (p.kept.iter().chain(p.folded.iter()).map(weight).sum(), tgid))
            .collect();
        let excess = self.by_process.len().saturating_sub(max);
        gone.sort_unstable();
        for (_, tgid) in gone.into_iter().take(excess) {
            let Some(process) = self.by_process.remove(&tgid) else { continue };
            let other = self.by_process.entry(0).or_default();
            let row = other.folded.get_or_insert_with(|| ThreadRecord {
                tid: 0,
                tgid: 0,
                comm: String::new(),
                totals: ThreadTotals::ZERO,
                exited: true,
            });
            for thread in process.kept.iter().chain(process.folded.iter()) {
                self.kept_tgid.remove(&thread.tid);
                add_totals(&mut row.totals, &thread.totals);
            }
            other.folded_count += 1;
            row.comm = format!("({} other exited processes)", other.folded_count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread(tid: u32, on_cpu_ns: u64) -> ThreadRecord {
        let totals = ThreadTotals { on_cpu_ns, runq_waits: 1, ..ThreadTotals::ZERO };
        ThreadRecord { tid, tgid: 7, comm: format!("t{tid}"), totals, exited: true }
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
        assert_eq!((other.comm.as_str(), other.totals.runq_waits), ("(3 other exited threads)", 3));
        let total: u64 = exited.iter().map(|t| t.totals.on_cpu_ns).sum();
        assert_eq!(total, 165, "nothing lost in the fold");
        assert_eq!(exited.find(5).map(|t| t.comm.as_str()), Some("t5"));
        assert!(exited.find(2).is_none());
        assert_eq!(exited.folded(), 3);
    }

    #[test]
    fn exited_processes_beyond_the_bound_are_summed_under_pid_0() {
        let mut exited = ExitedThreads::new(4);
        for tgid in 1..=10u32 {
            let totals = ThreadTotals { on_cpu_ns: u64::from(tgid), ..ThreadTotals::ZERO };
            exited.add(ThreadRecord { tid: tgid, tgid, comm: "p".into(), totals, exited: true });
        }
        // Process 2 still has a live thread: it stays whatever its weight.
        exited.fold_processes(5, |tgid| tgid == 2);
        let mut kept: Vec<u32> = exited.iter().map(|t| t.tgid).collect();
        kept.sort();
        assert_eq!(kept, [0, 2, 7, 8, 9, 10]);
        let other = exited.iter().find(|t| t.tgid == 0).unwrap();
        assert_eq!((other.totals.on_cpu_ns, other.comm.as_str()), (1 + 3 + 4 + 5 + 6, "(5 other exited processes)"));
    }

    #[test]
    fn memory_stays_bounded_under_churn() {
        let mut exited = ExitedThreads::new(64);
        for tid in 0..100_000 {
            exited.add(thread(tid + 1, u64::from(tid % 1_000)));
        }
        assert_eq!(exited.iter().count(), 65);
        assert_eq!(exited.kept_tgid.len(), 64);
    }
}
