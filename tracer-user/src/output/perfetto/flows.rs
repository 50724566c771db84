//! Flows from each request span to the CPU holders that kept it waiting.
//!
//! A span's thread waited for a CPU; the timeline's holder records say
//! which processes ran on that CPU meanwhile (`sched::held_slices`), and
//! the CPU track says which thread of each ran when (`sched::Run`). Every
//! run that overlaps one of those slices inside the span becomes a slice
//! of its own, "held CPU N", on a child track of the holder's thread, and
//! the span's slice gets one flow to each: `flow_ids` on the span's
//! beginning, `terminating_flow_ids` on the holder slice's end (the trace
//! processor binds a flow to the slice an event opens or closes, and drops
//! a flow whose end it reads before its start: a holder slice always ends
//! after the span began). One run that kept several spans waiting is one
//! slice where all their flows end.
use std::collections::{BTreeMap, BTreeSet};

use perfetto_protos::{
    track_descriptor::TrackDescriptor,
    track_event::{TrackEvent, track_event::Type},
};

use super::{
    process_of,
    sched::{Run, held_slices},
    spans::{PlacedSpan, thread_track_uuid},
};
use crate::model::timeline::Timeline;

/// The category of holder slices (spans have none), so that a reader can
/// tell them from spans.
pub const HOLDER_CATEGORY: &str = "cpu holder";

/// A run that kept spans waiting, and the flows that end on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderSlice {
    pub cpu: u32,
    pub run: Run,
    pub flow_ids: Vec<u64>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Flows {
    /// The flows leaving each span, by its thread and its index in that
    /// thread's placed spans.
    pub from_span: BTreeMap<(u32, usize), Vec<u64>>,
    /// Where they end, each run once, in CPU and time order.
    pub to_holders: Vec<HolderSlice>,
}

/// The flows of `spans` (as `spans::place` orders them) to the runs of
/// `runs` (per CPU, as `sched::cpu_events` places them).
pub fn flows(timeline: &Timeline, spans: &BTreeMap<u32, Vec<PlacedSpan>>, runs: &BTreeMap<u32, Vec<Run>>) -> Flows {
    let mut from_span = BTreeMap::new();
    // (CPU, index of the run) -> the flows ending there.
    let mut targets: BTreeMap<(u32, usize), Vec<u64>> = BTreeMap::new();
    let mut next_id = 1;
    for (&tid, thread_spans) in spans {
        let Some(thread) = timeline.thread(tid) else { continue };
        let mut held: Vec<_> = held_slices(thread).collect();
        held.sort_by_key(|h| h.start);
        for (index, span) in thread_spans.iter().enumerate() {
            // A thread waits for one CPU at a time: its slices do not
            // overlap, so those ending after the span's start are a suffix.
            let first = held.partition_point(|h| h.end <= span.start_ns);
            let mut reached = BTreeSet::new();
            for h in held[first..].iter().take_while(|h| h.start < span.end_ns) {
                let (start, end) = (h.start.max(span.start_ns), h.end.min(span.end_ns));
                let Some(on_cpu) = runs.get(&h.cpu) else { continue };
                let from = on_cpu.partition_point(|r| r.end <= start);
                for (i, run) in on_cpu.iter().enumerate().skip(from).take_while(|(_, r)| r.start < end) {
                    if run.tid != tid && process_of(timeline, run.tid) == h.pid {
                        reached.insert((h.cpu, i));
                    }
                }
            }
            if reached.is_empty() {
                continue;
            }
            let ids: Vec<u64> = (next_id..next_id + reached.len() as u64).collect();
            next_id += reached.len() as u64;
            for (&target, &id) in reached.iter().zip(&ids) {
                targets.entry(target).or_default().push(id);
            }
            from_span.insert((tid, index), ids);
        }
    }
    let to_holders = targets
        .into_iter()
        .map(|((cpu, i), flow_ids)| HolderSlice { cpu, run: runs[&cpu][i], flow_ids })
        .collect();
    Flows { from_span, to_holders }
}

/// The child track of thread `tid`'s runs on `cpu` (a thread of a holder
/// process may run on two CPUs at once; one CPU's runs never overlap).
pub fn holder_track_uuid(tid: u32, cpu: u32) -> u64 {
    (1 << 63) | (u64::from(tid) << 24) | u64::from(cpu & 0xff_ffff)
}

pub fn holder_track(tid: u32, cpu: u32) -> TrackDescriptor {
    let mut track = TrackDescriptor::new();
    track.set_uuid(holder_track_uuid(tid, cpu));
    track.set_parent_uuid(thread_track_uuid(tid));
    track.set_name(format!("held CPU {cpu}"));
    track
}

/// The holder slice's beginning and its end, where its flows end.
pub fn holder_slice(holder: &HolderSlice) -> (TrackEvent, TrackEvent) {
    let track = holder_track_uuid(holder.run.tid, holder.cpu);
    let mut begin = TrackEvent::new();
    begin.set_type(Type::TYPE_SLICE_BEGIN);
    begin.set_track_uuid(track);
    begin.set_name(format!("held CPU {}", holder.cpu));
    begin.categories = vec![HOLDER_CATEGORY.into()];
    let mut end = TrackEvent::new();
    end.set_type(Type::TYPE_SLICE_END);
    end.set_track_uuid(track);
    end.terminating_flow_ids = holder.flow_ids.clone();
    (begin, end)
}
