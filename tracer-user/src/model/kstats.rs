//! Syscall and block I/O statistics, aggregated per CPU in the kernel and
//! read here as cumulative snapshots. Interval views are differences of two
//! snapshots, so nothing is ever deleted under the kernel's feet.
use std::collections::{BTreeMap, HashMap};

use tracer_common::{BlockKey, BlockMetric, BlockOp, BucketStat, SyscallErrorKey, SyscallKey};

use super::hist::Buckets;

/// Cumulative kernel statistics at one moment.
#[derive(Clone, Debug, Default)]
pub struct KernelStats {
    pub syscall_latency: HashMap<SyscallKey, BucketStat>,
    pub syscall_errors: HashMap<SyscallErrorKey, u64>,
    pub block: HashMap<BlockKey, BucketStat>,
}

fn minus(now: &BucketStat, before: Option<&BucketStat>) -> BucketStat {
    let before = before.copied().unwrap_or_default();
    BucketStat {
        count: now.count.saturating_sub(before.count),
        total: now.total.saturating_sub(before.total),
    }
}

impl KernelStats {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &KernelStats) -> KernelStats {
        KernelStats {
            syscall_latency: self
                .syscall_latency
                .iter()
                .map(|(k, v)| (*k, minus(v, earlier.syscall_latency.get(k))))
                .filter(|(_, v)| v.count > 0)
                .collect(),
            syscall_errors: self
                .syscall_errors
                .iter()
                .map(|(k, v)| (*k, v.saturating_sub(earlier.syscall_errors.get(k).copied().unwrap_or(0))))
                .filter(|(_, v)| *v > 0)
                .collect(),
            block: self
                .block
                .iter()
                .map(|(k, v)| (*k, minus(v, earlier.block.get(k))))
                .filter(|(_, v)| v.count > 0)
                .collect(),
        }
    }

    /// Syscalls grouped by `(group(id), nr)`; `group` maps the kernel's key
    /// id (TGID or TID) to the grouping wanted (e.g. everything to 0).
    pub fn syscalls(&self, group: impl Fn(u32) -> u32) -> BTreeMap<(u32, u16), SyscallStats> {
        let mut out: BTreeMap<(u32, u16), SyscallStats> = BTreeMap::new();
        for (key, stat) in &self.syscall_latency {
            let entry = out.entry((group(key.id), key.nr)).or_default();
            entry.latency.add_bucket(key.bucket, stat.count, stat.total);
        }
        for (key, count) in &self.syscall_errors {
            let entry = out.entry((group(key.id), key.nr)).or_default();
            *entry.errors.entry(key.errno).or_default() += count;
        }
        out
    }

    /// Block I/O grouped by `(group(tgid), dev, op)`.
    pub fn block_io(&self, group: impl Fn(u32) -> u32) -> BTreeMap<(u32, u32, u8), BlockStats> {
        let mut out: BTreeMap<(u32, u32, u8), BlockStats> = BTreeMap::new();
        for (key, stat) in &self.block {
            let entry = out.entry((group(key.tgid), key.dev, key.op)).or_default();
            let target = match BlockMetric::from_u8(key.metric) {
                Some(BlockMetric::Latency) => {
                    if key.sync != 0 {
                        entry.sync_count += stat.count;
                    }
                    &mut entry.latency
                }
                Some(BlockMetric::Queue) => &mut entry.queue,
                Some(BlockMetric::Total) => &mut entry.total,
                Some(BlockMetric::Size) => &mut entry.size,
                None => continue,
            };
            target.add_bucket(key.bucket, stat.count, stat.total);
        }
        out
    }
}

#[derive(Clone, Debug, Default)]
pub struct SyscallStats {
    pub latency: Buckets,
    pub errors: BTreeMap<u16, u64>,
}

impl SyscallStats {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

#[derive(Clone, Debug, Default)]
pub struct BlockStats {
    /// Issue to completion.
    pub latency: Buckets,
    /// Insert to issue (0 for requests issued directly).
    pub queue: Buckets,
    /// Insert (or issue) to completion.
    pub total: Buckets,
    /// Request sizes in bytes.
    pub size: Buckets,
    pub sync_count: u64,
}

impl BlockStats {
    pub fn count(&self) -> u64 {
        self.latency.count()
    }
    pub fn bytes(&self) -> u64 {
        self.size.sum() as u64
    }
    pub fn merge(&mut self, other: &BlockStats) {
        self.latency.merge(&other.latency);
        self.queue.merge(&other.queue);
        self.total.merge(&other.total);
        self.size.merge(&other.size);
        self.sync_count += other.sync_count;
    }
}

pub fn block_op_name(op: u8) -> &'static str {
    match BlockOp::from_u8(op) {
        Some(BlockOp::Read) => "read",
        Some(BlockOp::Write) => "write",
        Some(BlockOp::Flush) => "flush",
        Some(BlockOp::Discard) => "discard",
        Some(BlockOp::Other) | None => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_common::bucket_index;

    fn bucket(stats: &mut KernelStats, id: u32, nr: u16, value: u64, n: u64) {
        let key = SyscallKey { id, nr, bucket: bucket_index(value) };
        let stat = stats.syscall_latency.entry(key).or_default();
        stat.count += n;
        stat.total += value * n;
    }

    #[test]
    fn interval_is_the_difference_of_snapshots() {
        let mut before = KernelStats::default();
        bucket(&mut before, 7, 110, 1_000, 5);
        let mut after = before.clone();
        bucket(&mut after, 7, 110, 1_000, 3);
        bucket(&mut after, 7, 35, 10_000_000, 2);
        after.syscall_errors.insert(SyscallErrorKey { id: 7, nr: 257, errno: 2 }, 4);
        let delta = after.since(&before);
        let by = delta.syscalls(|id| id);
        assert_eq!(by[&(7, 110)].latency.count(), 3);
        assert_eq!(by[&(7, 35)].latency.count(), 2);
        assert_eq!(by[&(7, 35)].latency.sum(), 20_000_000);
        assert_eq!(by[&(7, 257)].errors[&2], 4);
        assert_eq!(by[&(7, 257)].error_count(), 4);
        assert_eq!(after.syscalls(|_| 0)[&(0, 110)].latency.count(), 8);
    }

    #[test]
    fn block_metrics_land_in_their_histograms() {
        let mut stats = KernelStats::default();
        let key = |metric, value: u64| BlockKey {
            tgid: 9,
            dev: 1,
            op: BlockOp::Write as u8,
            sync: 1,
            metric,
            bucket: bucket_index(value),
            ..Default::default()
        };
        for (metric, value) in [
            (BlockMetric::Latency as u8, 100_000),
            (BlockMetric::Queue as u8, 5_000),
            (BlockMetric::Total as u8, 105_000),
            (BlockMetric::Size as u8, 65_536),
        ] {
            stats.block.insert(key(metric, value), BucketStat { count: 2, total: 2 * value });
        }
        let by = stats.block_io(|tgid| tgid);
        let io = &by[&(9, 1, BlockOp::Write as u8)];
        assert_eq!((io.count(), io.bytes(), io.sync_count), (2, 131_072, 2));
        assert_eq!(io.queue.sum(), 10_000);
        assert_eq!(block_op_name(BlockOp::Write as u8), "write");
    }
}
