//! Request spans as Perfetto slices: one slice per span on its thread's
//! track, named like its span line, with every field of that line (the
//! breakdown, verdict, blame, HTTP fields) as the slice's arguments.
use std::collections::BTreeMap;

use perfetto_protos::{
    debug_annotation::DebugAnnotation,
    thread_descriptor::ThreadDescriptor,
    track_descriptor::TrackDescriptor,
    track_event::{TrackEvent, track_event::Type},
};
use serde_json::Value;

use crate::model::{spans::SpanRecord, timeline::Timeline};

/// A span placed on the trace's clock (the timeline's CLOCK_MONOTONIC).
pub struct PlacedSpan<'a> {
    pub span: &'a SpanRecord,
    pub start_ns: u64,
    pub end_ns: u64,
    /// 0 on the thread's own track; from 1, the child track of spans that
    /// overlap without nesting (a track's slices must nest).
    pub lane: u32,
}

/// The spans that can be placed, per thread, each thread's in time order
/// with its lanes; and how many could not (they began before the clock's
/// zero, which only a damaged input does).
pub fn place<'a>(timeline: &Timeline, spans: &[&'a SpanRecord]) -> (BTreeMap<u32, Vec<PlacedSpan<'a>>>, usize) {
    let mut by_thread: BTreeMap<u32, Vec<PlacedSpan<'a>>> = BTreeMap::new();
    let mut unplaced = 0;
    for &span in spans {
        let Ok(start_ns) = u64::try_from(timeline.unix_to_monotonic(span.start_unix_ns)) else {
            unplaced += 1;
            continue;
        };
        let end_ns = start_ns.saturating_add(span.wall_ns);
        by_thread.entry(span.tid).or_default().push(PlacedSpan { span, start_ns, end_ns, lane: 0 });
    }
    for spans in by_thread.values_mut() {
        // Longest first among equal starts, so that an enclosed span nests.
        spans.sort_by_key(|s| (s.start_ns, std::cmp::Reverse(s.end_ns)));
        // Per lane, the ends of the slices still open at this start.
        let mut open: Vec<Vec<u64>> = Vec::new();
        for s in spans.iter_mut() {
            for ends in open.iter_mut() {
                ends.retain(|&end| end > s.start_ns);
            }
            let fits = |ends: &Vec<u64>| ends.last().is_none_or(|&end| s.end_ns <= end);
            let lane = match open.iter().position(fits) {
                Some(lane) => lane,
                None => {
                    open.push(Vec::new());
                    open.len() - 1
                }
            };
            open[lane].push(s.end_ns);
            s.lane = lane as u32;
        }
    }
    (by_thread, unplaced)
}

/// The track of thread `tid` (Perfetto merges it with the thread's own).
pub fn thread_track_uuid(tid: u32) -> u64 {
    u64::from(tid) << 8
}

/// The track of a lane of a thread's spans.
pub fn lane_uuid(tid: u32, lane: u32) -> u64 {
    if lane == 0 { thread_track_uuid(tid) } else { thread_track_uuid(tid) | u64::from(lane.min(255)) }
}

pub fn thread_track(pid: u32, tid: u32, name: &str) -> TrackDescriptor {
    let mut thread = ThreadDescriptor::new();
    thread.set_pid(pid as i32);
    thread.set_tid(tid as i32);
    thread.set_thread_name(name.to_owned());
    let mut track = TrackDescriptor::new();
    track.set_uuid(thread_track_uuid(tid));
    track.thread = Some(thread).into();
    track
}

pub fn lane_track(tid: u32, lane: u32) -> TrackDescriptor {
    let mut track = TrackDescriptor::new();
    track.set_uuid(lane_uuid(tid, lane));
    track.set_parent_uuid(thread_track_uuid(tid));
    track.set_name(format!("overlapping spans {lane}"));
    track
}

/// The slice's beginning (named, with its arguments) and its end.
pub fn slice(placed: &PlacedSpan) -> (TrackEvent, TrackEvent) {
    let track = lane_uuid(placed.span.tid, placed.lane);
    let mut begin = TrackEvent::new();
    begin.set_type(Type::TYPE_SLICE_BEGIN);
    begin.set_track_uuid(track);
    begin.set_name(placed.span.name.clone());
    if let Value::Object(fields) = serde_json::to_value(placed.span).expect("a span line serializes") {
        begin.debug_annotations =
            fields.into_iter().filter_map(|(name, value)| annotation(value).map(|a| named(a, name))).collect();
    }
    let mut end = TrackEvent::new();
    end.set_type(Type::TYPE_SLICE_END);
    end.set_track_uuid(track);
    (begin, end)
}

fn named(mut annotation: DebugAnnotation, name: String) -> DebugAnnotation {
    annotation.set_name(name);
    annotation
}

/// A JSON value as an argument (`null`s are left out); arrays and objects
/// keep their structure, which the trace processor flattens into
/// `blame[0].comm`-style argument keys.
fn annotation(value: Value) -> Option<DebugAnnotation> {
    let mut a = DebugAnnotation::new();
    match value {
        Value::Null => return None,
        Value::Bool(b) => a.set_bool_value(b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) if i64::try_from(u).is_err() => a.set_uint_value(u),
            (_, Some(i)) => a.set_int_value(i),
            _ => a.set_double_value(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => a.set_string_value(s),
        Value::Array(items) => a.array_values = items.into_iter().filter_map(annotation).collect(),
        Value::Object(fields) => {
            a.dict_entries =
                fields.into_iter().filter_map(|(name, value)| annotation(value).map(|a| named(a, name))).collect()
        }
    }
    Some(a)
}
