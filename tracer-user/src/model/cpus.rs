//! The per-CPU view over a window: run-queue lengths from the kernel
//! program's per-CPU state, busy time from the kernel's per-CPU counters
//! (/proc/stat, as mpstat reads them). Pure: given two readings, it says
//! what happened between them.
use tracer_common::{CpuQueue, RUNQ_LEN_SLOTS};

/// A CPU's busy and total time so far, in clock ticks (/proc/stat).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTicks {
    pub busy: u64,
    pub total: u64,
}

/// Everything known about the CPUs at one moment.
#[derive(Clone, Debug, Default)]
pub struct CpuReading {
    /// CLOCK_MONOTONIC, the clock of `CpuQueue::since_ns`.
    pub at_ns: u64,
    /// By CPU number.
    pub queues: Vec<CpuQueue>,
    /// By CPU number; empty when /proc/stat could not be read.
    pub ticks: Vec<CpuTicks>,
}

/// One CPU (or several, summed) over a window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuWindow {
    pub cpu: u32,
    /// Nanoseconds at each run-queue length (the last slot: that or more).
    pub time_at_len: [u64; RUNQ_LEN_SLOTS],
    pub ticks: CpuTicks,
}

impl CpuWindow {
    fn empty(cpu: u32) -> Self {
        CpuWindow { cpu, time_at_len: [0; RUNQ_LEN_SLOTS], ticks: CpuTicks::default() }
    }

    /// Time whose run-queue length is known (from the CPU's first change).
    pub fn measured_ns(&self) -> u64 {
        self.time_at_len.iter().sum()
    }

    /// Time-weighted average number of tasks waiting.
    pub fn average_len(&self) -> Option<f64> {
        let measured = self.measured_ns();
        let weighted: f64 = self.time_at_len.iter().enumerate().map(|(len, &ns)| len as f64 * ns as f64).sum();
        (measured > 0).then(|| weighted / measured as f64)
    }

    /// The longest run queue seen (the last slot stands for that or more).
    pub fn max_len(&self) -> Option<usize> {
        self.time_at_len.iter().rposition(|&ns| ns > 0)
    }

    /// Share of the time with at least one task waiting (runqlen's `-O`).
    pub fn occupancy(&self) -> Option<f64> {
        let measured = self.measured_ns();
        (measured > 0).then(|| (measured - self.time_at_len[0]) as f64 / measured as f64)
    }

    /// Share of the time the CPU ran something other than its idle task.
    pub fn busy(&self) -> Option<f64> {
        (self.ticks.total > 0).then(|| self.ticks.busy as f64 / self.ticks.total as f64)
    }

    /// Adds another CPU's window (for the all-CPUs histogram).
    pub fn add(&mut self, other: &CpuWindow) {
        for (mine, theirs) in self.time_at_len.iter_mut().zip(other.time_at_len) {
            *mine += theirs;
        }
        self.ticks.busy += other.ticks.busy;
        self.ticks.total += other.ticks.total;
    }
}

/// A CPU's time at each length up to `at_ns`, its open period included.
fn time_at_len_until(queue: &CpuQueue, at_ns: u64) -> [u64; RUNQ_LEN_SLOTS] {
    let mut time = queue.time_at_len;
    if queue.since_ns != 0 && at_ns > queue.since_ns {
        time[(queue.len as usize).min(RUNQ_LEN_SLOTS - 1)] += at_ns - queue.since_ns;
    }
    time
}

/// Each CPU between two readings.
pub fn windows(earlier: &CpuReading, later: &CpuReading) -> Vec<CpuWindow> {
    (0..later.queues.len().max(later.ticks.len()))
        .map(|cpu| {
            let mut window = CpuWindow::empty(cpu as u32);
            if let Some(queue) = later.queues.get(cpu) {
                let after = time_at_len_until(queue, later.at_ns);
                let before = earlier.queues.get(cpu).map(|q| time_at_len_until(q, earlier.at_ns));
                for (slot, ns) in window.time_at_len.iter_mut().enumerate() {
                    *ns = after[slot].saturating_sub(before.map_or(0, |b| b[slot]));
                }
            }
            if let (Some(after), Some(before)) = (later.ticks.get(cpu), earlier.ticks.get(cpu)) {
                window.ticks = CpuTicks {
                    busy: after.busy.saturating_sub(before.busy),
                    total: after.total.saturating_sub(before.total),
                };
            }
            window
        })
        .collect()
}

/// All CPUs summed (a machine-wide histogram, as runqlen prints without `-C`).
pub fn all_cpus(windows: &[CpuWindow]) -> CpuWindow {
    let mut sum = CpuWindow::empty(u32::MAX);
    windows.iter().for_each(|window| sum.add(window));
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn queue(since_ns: u64, len: u32, time: &[(usize, u64)]) -> CpuQueue {
        let mut queue = CpuQueue { since_ns, len, ..Default::default() };
        for &(slot, ns) in time {
            queue.time_at_len[slot] = ns;
        }
        queue
    }

    #[test]
    fn a_window_counts_the_open_period_at_both_ends() {
        // Three tasks waiting since 10 ms, read at 20 ms and at 50 ms.
        let earlier = CpuReading { at_ns: 20 * MS, queues: vec![queue(10 * MS, 3, &[(0, 10 * MS)])], ticks: vec![] };
        let later = CpuReading { at_ns: 50 * MS, queues: vec![queue(10 * MS, 3, &[(0, 10 * MS)])], ticks: vec![] };
        let window = &windows(&earlier, &later)[0];
        assert_eq!(window.measured_ns(), 30 * MS);
        assert_eq!(window.time_at_len[3], 30 * MS);
        assert_eq!(window.average_len(), Some(3.0));
        assert_eq!(window.max_len(), Some(3));
        assert_eq!(window.occupancy(), Some(1.0));
    }

    #[test]
    fn averages_are_weighted_by_time_and_busy_comes_from_ticks() {
        let earlier = CpuReading {
            at_ns: 0,
            queues: vec![CpuQueue::default()],
            ticks: vec![CpuTicks { busy: 100, total: 1000 }],
        };
        // 30 ms empty, 10 ms with two waiting, then one waiting since 40 ms.
        let later = CpuReading {
            at_ns: 50 * MS,
            queues: vec![queue(40 * MS, 1, &[(0, 30 * MS), (2, 10 * MS)])],
            ticks: vec![CpuTicks { busy: 150, total: 1100 }],
        };
        let window = &windows(&earlier, &later)[0];
        assert_eq!(window.average_len(), Some((2.0 * 10.0 + 10.0) / 50.0));
        assert_eq!(window.occupancy(), Some(20.0 / 50.0));
        assert_eq!(window.busy(), Some(0.5));
    }

    #[test]
    fn a_cpu_never_seen_changing_is_unmeasured_not_empty() {
        let reading = CpuReading { at_ns: 10 * MS, queues: vec![CpuQueue::default()], ticks: vec![] };
        let window = &windows(&reading, &reading)[0];
        assert_eq!(window.average_len(), None);
        assert_eq!(window.max_len(), None);
        assert_eq!(window.busy(), None);
    }

    #[test]
    fn long_queues_share_the_last_slot() {
        let reading = CpuReading { at_ns: 0, queues: vec![CpuQueue::default()], ticks: vec![] };
        let later = CpuReading { at_ns: 2 * MS, queues: vec![queue(MS, 500, &[])], ticks: vec![] };
        let window = &windows(&reading, &later)[0];
        assert_eq!(window.max_len(), Some(RUNQ_LEN_SLOTS - 1));
        let sum = all_cpus(&[window.clone(), window.clone()]);
        assert_eq!(sum.measured_ns(), 2 * MS);
    }
}
