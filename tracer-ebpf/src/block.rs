//! Block I/O: per request, OS queue time (insert to issue) and device time
//! (issue to completion), charged to the process that submitted it.
//!
//! The submitter is `current` when the request is first seen: at
//! `block_io_start` (Linux 6.5+, always the submitting task), else at
//! `block_rq_insert` or a direct `block_rq_issue`. Later stages may run in a
//! kworker or in interrupt context and only update the request's entry, so
//! for them the in-flight lookup is the filter.
use aya_ebpf::{bindings::BPF_ANY, macros::tracepoint, programs::TracePointContext};
use tracer_common::{BlockKey, BlockMetric, BlockOp, Counter, Inflight, InflightKey, RWBS_LEN, bucket_index};

use crate::{
    filter,
    kernel::{block_offsets, current_ids, now_ns, read_field},
    maps::{BLOCK_INFLIGHT, BLOCK_STATS, add_to_bucket, count},
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Start,
    Insert,
    Issue,
}

#[tracepoint]
pub fn tp_block_io_start(ctx: TracePointContext) -> u32 {
    on_submit(&ctx, Stage::Start);
    0
}

#[tracepoint]
pub fn tp_block_rq_insert(ctx: TracePointContext) -> u32 {
    on_submit(&ctx, Stage::Insert);
    0
}

#[tracepoint]
pub fn tp_block_rq_issue(ctx: TracePointContext) -> u32 {
    on_submit(&ctx, Stage::Issue);
    0
}

#[tracepoint]
pub fn tp_block_rq_complete(ctx: TracePointContext) -> u32 {
    on_complete(&ctx);
    0
}

/// Operation and sync flag from `rwbs` ("WS", "R", "FWS", "F", "DS", ...):
/// the first of R/W/D is the operation; a lone F is a flush.
#[inline(always)]
fn decode_rwbs(rwbs: &[u8; RWBS_LEN]) -> (BlockOp, u8) {
    let mut op = BlockOp::Other;
    let mut flush = false;
    let mut sync = 0;
    for &c in rwbs.iter() {
        match c {
            0 => break,
            b'R' if op == BlockOp::Other => op = BlockOp::Read,
            b'W' if op == BlockOp::Other => op = BlockOp::Write,
            b'D' if op == BlockOp::Other => op = BlockOp::Discard,
            b'F' => flush = true,
            b'S' => sync = 1,
            _ => {}
        }
    }
    if op == BlockOp::Other && flush {
        op = BlockOp::Flush;
    }
    (op, sync)
}

#[inline(always)]
fn on_submit(ctx: &TracePointContext, stage: Stage) {
    let offsets = block_offsets();
    let (Some(dev), Some(sector)) = (
        read_field::<u32>(ctx, offsets.rq_dev),
        read_field::<u64>(ctx, offsets.rq_sector),
    ) else {
        return;
    };
    let key = InflightKey { dev, _pad: 0, sector };
    let now = now_ns();
    if stage != Stage::Start
        && let Some(entry) = BLOCK_INFLIGHT.get_ptr_mut(&key)
    {
        // SAFETY: a map value; one request moves through one stage at a time.
        let entry = unsafe { &mut *entry };
        // Bios merged into the request since it started made it larger.
        if let Some(bytes) = read_field::<u32>(ctx, offsets.rq_bytes) {
            entry.bytes = bytes;
        }
        match stage {
            Stage::Insert => entry.insert_ns = now,
            Stage::Issue => entry.issue_ns = now,
            Stage::Start => {}
        }
        return;
    }
    let (tid, tgid) = current_ids();
    if !filter::current_measured(tid, tgid) {
        return;
    }
    let rwbs = read_field::<[u8; RWBS_LEN]>(ctx, offsets.rq_rwbs).unwrap_or([0; RWBS_LEN]);
    let (op, sync) = decode_rwbs(&rwbs);
    let fresh = Inflight {
        tgid,
        bytes: read_field::<u32>(ctx, offsets.rq_bytes).unwrap_or(0),
        insert_ns: if stage == Stage::Insert { now } else { 0 },
        issue_ns: if stage == Stage::Issue { now } else { 0 },
        op: op as u8,
        sync,
        _pad: [0; 6],
    };
    if BLOCK_INFLIGHT.insert(&key, &fresh, BPF_ANY as u64).is_err() {
        count(Counter::BlockInflightFull);
    }
}

#[inline(always)]
fn on_complete(ctx: &TracePointContext) {
    let offsets = block_offsets();
    let (Some(dev), Some(sector)) = (
        read_field::<u32>(ctx, offsets.done_dev),
        read_field::<u64>(ctx, offsets.done_sector),
    ) else {
        return;
    };
    let key = InflightKey { dev, _pad: 0, sector };
    let Some(entry) = BLOCK_INFLIGHT.get_ptr(&key) else { return };
    // SAFETY: a map value, copied before the entry is deleted.
    let request = unsafe { *entry };
    let _ = BLOCK_INFLIGHT.remove(&key);
    if request.issue_ns == 0 {
        return;
    }
    let now = now_ns();
    let latency = now.saturating_sub(request.issue_ns);
    let (queue, total) = if request.insert_ns != 0 && request.issue_ns >= request.insert_ns {
        (request.issue_ns - request.insert_ns, now.saturating_sub(request.insert_ns))
    } else {
        (0, latency)
    };
    let mut key = BlockKey {
        tgid: request.tgid,
        dev,
        op: request.op,
        sync: request.sync,
        metric: BlockMetric::Latency as u8,
        _pad: 0,
        bucket: bucket_index(latency),
        _pad2: 0,
    };
    add_to_bucket(&BLOCK_STATS, &key, latency);
    key.metric = BlockMetric::Queue as u8;
    key.bucket = bucket_index(queue);
    add_to_bucket(&BLOCK_STATS, &key, queue);
    key.metric = BlockMetric::Total as u8;
    key.bucket = bucket_index(total);
    add_to_bucket(&BLOCK_STATS, &key, total);
    key.metric = BlockMetric::Size as u8;
    key.bucket = bucket_index(u64::from(request.bytes));
    add_to_bucket(&BLOCK_STATS, &key, u64::from(request.bytes));
}
