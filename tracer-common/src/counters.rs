//! Loss and anomaly counters: slots of the per-CPU `COUNTERS` map, which
//! the kernel programs increment and the loader reports when non-zero.
#[cfg(doc)]
use crate::{KernelSchedCounters, MAP_FOLLOWED, MAP_THREADS, TimelineEvent};

raw_enum! {
    /// A slot of the counters map (its index is `counter as u32`).
    pub enum Counter: u32 {
        /// A run-queue event could not be written: the ring buffer was full.
        LostRunqEvents = 0,
        /// A thread exit record could not be written; the entry stays in the map.
        LostExits = 1,
        /// A new thread could not be tracked: [`MAP_THREADS`] was full.
        ThreadsMapFull = 2,
        /// A syscall or block I/O statistics map was full; that sample was dropped.
        StatsMapFull = 3,
        /// A block request could not be tracked: the in-flight table was full.
        BlockInflightFull = 4,
        /// `tracer_span_end` for a span that was never begun (or ended twice).
        SpanEndUnmatched = 5,
        /// `tracer_span_begin` for an id already open (the earlier one is replaced).
        SpanBeginDuplicate = 6,
        /// A span was lost: the open-span table or the span ring buffer was full.
        LostSpans = 7,
        /// A thread was switched out while its entry said it was off the CPU, or
        /// switched in while it said it was on one: the kernel did not emit the
        /// transition in between. The period is split with the kernel's own
        /// counters ([`KernelSchedCounters`]) when BTF gives their offsets;
        /// otherwise, and for what they cannot place, it is `unaccounted_ns`.
        AccountingGaps = 8,
        /// A [`TimelineEvent`] was dropped: the timeline ring buffer was full.
        LostTimeline = 9,
        /// A request began on a connection whose previous request had no response
        /// yet (HTTP pipelining): it is not made a span of its own.
        HttpPipelined = 10,
        /// A connection closed between a request and its response.
        HttpUnanswered = 11,
        /// A traced process forked a new process that is not traced (no
        /// `--children`): the report says how many were left out.
        ChildrenLeftOut = 12,
        /// A child of a traced process could not be followed: the table of
        /// followed processes ([`MAP_FOLLOWED`]) was full.
        ChildrenUntracked = 13,
        /// The head of an HTTP request or response could not be streamed:
        /// the HTTP ring buffer was full (its span still ends, unnamed).
        LostHttpCaptures = 14,
        /// A (waiting process, CPU holder) pair could not be summed: the
        /// table of CPU holders ([`crate::MAP_WAIT_HOLDERS`]) was full.
        WaitHoldersMapFull = 15,
        /// A marker ring's record could not be copied out as its process
        /// exited: the ring buffer for them ([`crate::MAP_MARKER_EXITS`]) was
        /// full, or the ring could no longer be read.
        LostMarkerExits = 16,
    }
}

impl Counter {
    /// Slots of the counters map.
    pub const COUNT: u32 = Counter::ALL.len() as u32;
}

// The counters are the map's slots 0..COUNT, so none may be skipped.
const _: () = {
    let mut slot = 0;
    while slot < Counter::ALL.len() {
        assert!(Counter::ALL[slot] as usize == slot);
        slot += 1;
    }
};
