//! Maps shared with the loader. Static names must equal the `MAP_*`
//! constants of `tracer-common`, which the loader uses to find them.
use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf},
};
use tracer_common::{
    COUNTER_COUNT, DEFAULT_MAX_THREADS, DEFAULT_RUNQ_RING_BYTES, EXIT_RING_BYTES, ThreadStats,
};

#[map]
pub static THREADS: HashMap<u32, ThreadStats> = HashMap::with_max_entries(DEFAULT_MAX_THREADS, 0);

#[map]
pub static RUNQ_EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_RUNQ_RING_BYTES, 0);

#[map]
pub static EXITS: RingBuf = RingBuf::with_byte_size(EXIT_RING_BYTES, 0);

#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_COUNT, 0);

/// Counts a loss; the loader reports every non-zero counter.
#[inline(always)]
pub fn count(counter: u32) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter) {
        // SAFETY: per-CPU slot, only this CPU writes it, and programs do not
        // nest on one CPU for these tracepoints.
        unsafe { *slot += 1 };
    }
}
