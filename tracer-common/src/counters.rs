//! Loss and anomaly counters: slots of the per-CPU `COUNTERS` map, which
//! the kernel programs increment and the loader reports when non-zero.
#[cfg(doc)]
use crate::{KernelSchedCounters, MAP_THREADS, TimelineEvent};

/// A run-queue event could not be written: the ring buffer was full.
pub const COUNTER_LOST_RUNQ_EVENTS: u32 = 0;
/// A thread exit record could not be written; the entry stays in the map.
pub const COUNTER_LOST_EXITS: u32 = 1;
/// A new thread could not be tracked: [`MAP_THREADS`] was full.
pub const COUNTER_THREADS_MAP_FULL: u32 = 2;
/// A syscall or block I/O statistics map was full; that sample was dropped.
pub const COUNTER_STATS_MAP_FULL: u32 = 3;
/// A block request could not be tracked: the in-flight table was full.
pub const COUNTER_BLOCK_INFLIGHT_FULL: u32 = 4;
/// `tracer_span_end` for a span that was never begun (or ended twice).
pub const COUNTER_SPAN_END_UNMATCHED: u32 = 5;
/// `tracer_span_begin` for an id already open (the earlier one is replaced).
pub const COUNTER_SPAN_BEGIN_DUPLICATE: u32 = 6;
/// A span was lost: the open-span table or the span ring buffer was full.
pub const COUNTER_LOST_SPANS: u32 = 7;
/// A thread was switched out while its entry said it was off the CPU, or
/// switched in while it said it was on one: the kernel did not emit the
/// transition in between. The period is split with the kernel's own
/// counters ([`KernelSchedCounters`]) when BTF gives their offsets;
/// otherwise, and for what they cannot place, it is `unaccounted_ns`.
pub const COUNTER_ACCOUNTING_GAPS: u32 = 8;
/// A [`TimelineEvent`] was dropped: the timeline ring buffer was full.
pub const COUNTER_LOST_TIMELINE: u32 = 9;
/// A request began on a connection whose previous request had no response
/// yet (HTTP pipelining): it is not made a span of its own.
pub const COUNTER_HTTP_PIPELINED: u32 = 10;
/// A connection closed between a request and its response.
pub const COUNTER_HTTP_UNANSWERED: u32 = 11;
pub const COUNTER_COUNT: u32 = 12;
