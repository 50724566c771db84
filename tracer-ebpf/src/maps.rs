//! Maps shared with the loader. Static names must equal the `MAP_*`
//! constants of `tracer-common`, which the loader uses to find them.
use aya_ebpf::{
    bindings::{BPF_NOEXIST, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE},
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use tracer_common::{
    MARKER_EXIT_RING_BYTES, MAX_MARKER_RINGS,
    BLOCK_INFLIGHT_ENTRIES, BlockKey, BucketStat, Counter, CpuQueue, CpuSlices, CpuWaiters, MAX_CPUS, DEFAULT_MAX_THREADS, DEFAULT_RUNQ_RING_BYTES,
    EXIT_RING_BYTES, ExchangeEnd, HTTP_CONNS_ENTRIES, HTTP_ROUNDS_ENTRIES, MAX_FOLLOWED, HTTP_RING_BYTES, HttpConn, HttpConnKey, PEER_ADDR_LEN, Inflight, InflightKey, MAX_OPEN_SPANS,
    SPAN_RING_BYTES, STATS_MAP_ENTRIES, SpanKey, SpanState, SyscallErrorKey, SyscallKey, TIMELINE_RING_BYTES,
    ThreadStats, WAIT_HOLDERS_ENTRIES, WaitHolderKey,
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

/// The statistics maps are shared by all CPUs, updated with atomic adds,
/// and preallocated (an insert takes a free entry, allocates nothing). Kept
/// per CPU instead, their values cost `value size x CPUs` each (805 MiB for
/// the three maps on a 128-CPU host); preallocated per CPU, the kernel made
/// one per-CPU allocation per entry at every start (393,216, which kept
/// kernel workers busy for a thousand runs around each start and stop);
/// allocated on use per CPU, each new key cost a block completion 19 us
/// instead of 2.

#[map]
pub static SYSCALL_LATENCY: HashMap<SyscallKey, BucketStat> =
    HashMap::with_max_entries(STATS_MAP_ENTRIES, 0);

#[map]
pub static SYSCALL_ERRORS: HashMap<SyscallErrorKey, u64> =
    HashMap::with_max_entries(STATS_MAP_ENTRIES, 0);

/// Shared and preallocated like the statistics maps above.
#[map]
pub static WAIT_HOLDERS: HashMap<WaitHolderKey, u64> = HashMap::with_max_entries(WAIT_HOLDERS_ENTRIES, 0);

/// The traced threads waiting on each CPU's run queue, indexed by CPU (the
/// loader sizes it to the possible CPUs when the holders' sums are on).
#[map]
pub static CPU_WAITERS: Array<CpuWaiters> = Array::with_max_entries(MAX_CPUS, 0);

#[map]
pub static BLOCK_INFLIGHT: HashMap<InflightKey, Inflight> =
    HashMap::with_max_entries(BLOCK_INFLIGHT_ENTRIES, 0);

#[map]
pub static BLOCK_STATS: HashMap<BlockKey, BucketStat> =
    HashMap::with_max_entries(STATS_MAP_ENTRIES, 0);

#[map]
pub static SPANS: HashMap<SpanKey, SpanState> = HashMap::with_max_entries(MAX_OPEN_SPANS, 0);

#[map]
pub static SPAN_EVENTS: RingBuf = RingBuf::with_byte_size(SPAN_RING_BYTES, 0);

#[map]
pub static HTTP_EVENTS: RingBuf = RingBuf::with_byte_size(HTTP_RING_BYTES, 0);

/// LRU: a connection that goes quiet without closing is evicted, not leaked.
#[map]
pub static HTTP_CONNS: LruHashMap<HttpConnKey, HttpConn> = LruHashMap::with_max_entries(HTTP_CONNS_ENTRIES, 0);

/// Where each exchange's span ended when it (or its last round) was sent:
/// the start of its next round. LRU like the above.
#[map]
pub static HTTP_ROUNDS: LruHashMap<HttpConnKey, ExchangeEnd> = LruHashMap::with_max_entries(HTTP_ROUNDS_ENTRIES, 0);

/// The bytes of a read shorter than a request method, per connection, for
/// the read that brings the rest (`bytes | len << 32`). LRU like the above.
#[map]
pub static HTTP_PREFIXES: LruHashMap<HttpConnKey, u64> = LruHashMap::with_max_entries(HTTP_CONNS_ENTRIES, 0);

/// The address each connection was `connect`ed to, naming the peer of its
/// outgoing exchanges. LRU like the above.
#[map]
pub static HTTP_PEERS: LruHashMap<HttpConnKey, [u8; PEER_ADDR_LEN]> = LruHashMap::with_max_entries(HTTP_CONNS_ENTRIES, 0);

#[map]
pub static TIMELINE_EVENTS: RingBuf = RingBuf::with_byte_size(TIMELINE_RING_BYTES, 0);

/// The marker rings to copy out at their process's exit (`MAP_MARKER_RINGS`).
#[map]
pub static MARKER_RINGS: HashMap<u32, u64> = HashMap::with_max_entries(MAX_MARKER_RINGS, 0);

#[map]
pub static MARKER_EXITS: RingBuf = RingBuf::with_byte_size(MARKER_EXIT_RING_BYTES, 0);

/// Where a new span's state is assembled: too large for the BPF stack.
#[map]
pub static SPAN_SCRATCH: PerCpuArray<SpanState> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU room to make a new exchange in: an `HttpConn` does not fit on
/// the BPF stack next to the syscall programs' frames.
#[map]
pub static HTTP_CONN_SCRATCH: PerCpuArray<HttpConn> = PerCpuArray::with_max_entries(1, 0);

/// Each CPU's recent run slices, indexed by CPU (`MAP_CPU_SLICES`).
#[map]
pub static CPU_SLICES: Array<CpuSlices> = Array::with_max_entries(MAX_CPUS, 0);

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
    count_many(counter, 1);
}

/// Adds `n` to a counter at once.
#[inline(always)]
pub fn count_many(counter: Counter, n: u64) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot, only this CPU writes it, and programs do not
        // nest on one CPU for these tracepoints.
        unsafe { *slot += n };
    }
}

/// Submit flags for a record of a ring the loader drains on a timer: no
/// wakeup (one per record would only cost), unless the ring is a quarter
/// full, when the loader is woken to drain it early: a burst faster than
/// the timer (markers run at hundreds of thousands of spans a second) would
/// otherwise overflow it between two drains.
#[inline(always)]
pub fn wake_when_filling(ring: &RingBuf) -> u64 {
    let size = ring.query(BPF_RB_RING_SIZE as u64);
    if ring.query(BPF_RB_AVAIL_DATA as u64) * 4 >= size { BPF_RB_FORCE_WAKEUP as u64 } else { BPF_RB_NO_WAKEUP as u64 }
}

/// `-EEXIST` from a `BPF_NOEXIST` insert: another CPU created the entry.
const EEXIST: i32 = 17;

/// Adds `value` to `*target` atomically: other CPUs update the same entry.
/// The BPF target has no compare-and-swap, so `AtomicU64::fetch_add` is not
/// offered, but the instruction set has an atomic add (`lock xadd`), which
/// this intrinsic compiles to.
#[inline(always)]
pub fn atomic_add(target: *mut u64, value: u64) {
    use core::intrinsics::{AtomicOrdering, atomic_xadd};
    // SAFETY: `target` points into a live map value, aligned for u64; every
    // writer goes through this atomic add.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(target, value) };
}

/// Adds one value to a shared bucket, creating the bucket on first use.
/// Not inlined: as a function of its own its branches end at its return,
/// instead of multiplying the paths the verifier walks through the rest of
/// the syscall exit program (which then passed its million-instruction
/// limit with `--http`).
#[inline(never)]
pub fn add_to_bucket<K>(map: &HashMap<K, BucketStat>, key: &K, value: u64) {
    if let Some(stat) = entry_or_insert(map, key, &BucketStat::default(), Counter::StatsMapFull) {
        // SAFETY: fields of a live map value.
        atomic_add(unsafe { &raw mut (*stat).count }, 1);
        atomic_add(unsafe { &raw mut (*stat).total }, value);
    }
}

/// The entry of `key`, created as `fresh` on first use (one lookup when it
/// exists, the common case); `None`, and `when_full` counted, when the map
/// has no room for it.
#[inline(always)]
fn entry_or_insert<K, V>(map: &HashMap<K, V>, key: &K, fresh: &V, when_full: Counter) -> Option<*mut V> {
    if let Some(entry) = map.get_ptr_mut(key) {
        return Some(entry);
    }
    // Losing the race to another CPU is fine: the entry exists then.
    if let Err(err) = map.insert(key, fresh, BPF_NOEXIST as u64)
        && err != -EEXIST
    {
        count(when_full);
        return None;
    }
    map.get_ptr_mut(key)
}

/// Adds one to a shared counter, creating it on first use.
#[inline(always)]
pub fn increment<K>(map: &HashMap<K, u64>, key: &K) {
    add_to_counter(map, key, 1, Counter::StatsMapFull);
}

/// Adds `value` to a shared counter, creating it on first use; counts
/// `when_full` when the map has no room for it. Not inlined, like
/// `add_to_bucket`.
#[inline(never)]
pub fn add_to_counter<K>(map: &HashMap<K, u64>, key: &K, value: u64, when_full: Counter) {
    if let Some(total) = entry_or_insert(map, key, &0, when_full) {
        atomic_add(total, value);
    }
}
