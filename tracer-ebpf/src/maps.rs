//! Maps shared with the loader. Static names must equal the `MAP_*`
//! constants of `tracer-common`, which the loader uses to find them.
use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, PerCpuHashMap, RingBuf},
};
use tracer_common::{
    BLOCK_INFLIGHT_ENTRIES, BlockKey, BucketStat, Counter, CpuQueue, CpuSlices, MAX_CPUS, DEFAULT_MAX_THREADS, DEFAULT_RUNQ_RING_BYTES,
    EXIT_RING_BYTES, HTTP_CONNS_ENTRIES, MAX_FOLLOWED, HTTP_RING_BYTES, HttpConn, HttpConnKey, Inflight, InflightKey, MAX_OPEN_SPANS,
    SPAN_RING_BYTES, STATS_MAP_ENTRIES, SpanKey, SpanState, SyscallErrorKey, SyscallKey, TIMELINE_RING_BYTES,
    ThreadStats,
};

#[map]
pub static THREADS: HashMap<u32, ThreadStats> = HashMap::with_max_entries(DEFAULT_MAX_THREADS, 0);

/// Children of traced processes, traced too (`--children`).
#[map]
pub static FOLLOWED: HashMap<u32, u32> = HashMap::with_max_entries(MAX_FOLLOWED, 0);

#[map]
pub static RUNQ_EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_RUNQ_RING_BYTES, 0);

#[map]
pub static EXITS: RingBuf = RingBuf::with_byte_size(EXIT_RING_BYTES, 0);

/// The per-CPU statistics maps allocate an entry's per-CPU values when the
/// entry is first used. Preallocated, their 131,072 entries each cost
/// `value size x CPUs` at load time whether used or not (805 MiB of per-CPU
/// memory for the three maps on a 128-CPU host), and the 393,216 separate
/// per-CPU allocations and frees kept kernel workers busy for hundreds of
/// runs around every start and stop of tracer.
const STATS_MAP_FLAGS: u32 = BPF_F_NO_PREALLOC;

#[map]
pub static SYSCALL_LATENCY: PerCpuHashMap<SyscallKey, BucketStat> =
    PerCpuHashMap::with_max_entries(STATS_MAP_ENTRIES, STATS_MAP_FLAGS);

#[map]
pub static SYSCALL_ERRORS: PerCpuHashMap<SyscallErrorKey, u64> =
    PerCpuHashMap::with_max_entries(STATS_MAP_ENTRIES, STATS_MAP_FLAGS);

#[map]
pub static BLOCK_INFLIGHT: HashMap<InflightKey, Inflight> =
    HashMap::with_max_entries(BLOCK_INFLIGHT_ENTRIES, 0);

#[map]
pub static BLOCK_STATS: PerCpuHashMap<BlockKey, BucketStat> =
    PerCpuHashMap::with_max_entries(STATS_MAP_ENTRIES, STATS_MAP_FLAGS);

#[map]
pub static SPANS: HashMap<SpanKey, SpanState> = HashMap::with_max_entries(MAX_OPEN_SPANS, 0);

#[map]
pub static SPAN_EVENTS: RingBuf = RingBuf::with_byte_size(SPAN_RING_BYTES, 0);

#[map]
pub static HTTP_EVENTS: RingBuf = RingBuf::with_byte_size(HTTP_RING_BYTES, 0);

/// LRU: a connection that goes quiet without closing is evicted, not leaked.
#[map]
pub static HTTP_CONNS: LruHashMap<HttpConnKey, HttpConn> = LruHashMap::with_max_entries(HTTP_CONNS_ENTRIES, 0);

#[map]
pub static TIMELINE_EVENTS: RingBuf = RingBuf::with_byte_size(TIMELINE_RING_BYTES, 0);

/// Where a new span's state is assembled: too large for the BPF stack.
#[map]
pub static SPAN_SCRATCH: PerCpuArray<SpanState> = PerCpuArray::with_max_entries(1, 0);

#[map]
pub static CPU_SLICES: PerCpuArray<CpuSlices> = PerCpuArray::with_max_entries(1, 0);

/// Per CPU: `bpf_ktime_get_ns()` minus the scheduler clock (wrapping),
/// learned at each switch-out whose switch-in was seen. Converts a task's
/// `sched_info.last_arrival` into our timestamps.
#[map]
pub static CLOCK_OFFSETS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Each CPU's run-queue lengths over time (the per-CPU view).
#[map]
pub static CPU_QUEUES: Array<CpuQueue> = Array::with_max_entries(MAX_CPUS, 0);

#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

/// Counts a loss; the loader reports every non-zero counter.
#[inline(always)]
pub fn count(counter: Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot, only this CPU writes it, and programs do not
        // nest on one CPU for these tracepoints.
        unsafe { *slot += 1 };
    }
}

/// Adds one value to a per-CPU bucket, creating the bucket on first use.
#[inline(always)]
pub fn add_to_bucket<K>(map: &PerCpuHashMap<K, BucketStat>, key: &K, value: u64) {
    match map.get_ptr_mut(key) {
        Some(stat) => {
            // SAFETY: a per-CPU value, written only from this CPU.
            unsafe {
                (*stat).count += 1;
                (*stat).total += value;
            }
        }
        None => {
            let first = BucketStat { count: 1, total: value };
            if map.insert(key, &first, 0).is_err() {
                count(Counter::StatsMapFull);
            }
        }
    }
}

/// Adds one to a per-CPU counter map entry, creating it on first use.
#[inline(always)]
pub fn increment<K>(map: &PerCpuHashMap<K, u64>, key: &K) {
    match map.get_ptr_mut(key) {
        // SAFETY: a per-CPU value, written only from this CPU.
        Some(value) => unsafe { *value += 1 },
        None => {
            if map.insert(key, &1, 0).is_err() {
                count(Counter::StatsMapFull);
            }
        }
    }
}
