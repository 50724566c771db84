//! Perfetto traces (`--perfetto`): a timeline and its request spans in the
//! protobuf format that ui.perfetto.dev and Perfetto's trace processor open
//! (docs/report-format.md, "Perfetto trace").
//!
//! The scheduler part is ftrace events (`sched`), from which Perfetto
//! builds thread states and CPU tracks the way it does for its own
//! recordings; process and thread names come in a process tree; spans are
//! track-event slices on their threads (`spans`), with flows to the CPU
//! holders that kept them waiting (`flows`). A trace is a sequence of
//! `TracePacket`s, each written as field 1 of `Trace` as soon as it is
//! built, so a large timeline is never held as one message.
mod flows;
mod sched;
mod spans;
#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{BufWriter, Write},
    path::Path,
};

use perfetto_protos::{
    ftrace_event::FtraceEvent,
    ftrace_event_bundle::FtraceEventBundle,
    process_tree::{
        ProcessTree,
        process_tree::{Process, Thread},
    },
    sched::{SchedBlockedReasonFtraceEvent, SchedSwitchFtraceEvent, SchedWakingFtraceEvent},
    trace_packet::TracePacket,
    track_event::TrackEvent,
};
use protobuf::Message;

pub use sched::{PREV_STATE_PREEMPTED, PREV_STATE_RUNNABLE, PREV_STATE_SLEEPING, PREV_STATE_UNINTERRUPTIBLE};
use sched::{SchedEvent, cpu_events};

use super::atomic::{OutputError, OutputFile};
use crate::model::{spans::SpanRecord, timeline::Timeline};

#[derive(Debug, thiserror::Error)]
pub enum PerfettoError {
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("writing {path}")]
    Write { path: String, source: std::io::Error },
}

/// What a trace holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PerfettoSummary {
    pub threads: usize,
    pub cpus: usize,
    pub sched_events: usize,
    pub spans: usize,
    /// Flows from spans to the holders that kept them waiting.
    pub flows: usize,
    /// Spans whose start could not be placed on the trace's clock.
    pub spans_unplaced: usize,
}

/// The one sequence every packet is on (track events need one).
const SEQUENCE: u32 = 1;
/// `TracePacket.sequence_flags`: the sequence starts from a clean state.
const SEQ_INCREMENTAL_STATE_CLEARED: u32 = 1;
/// Ftrace events per bundle packet, as Perfetto's own recorder cuts them.
const BUNDLE_EVENTS: usize = 4096;
/// The priority shown for every thread (the timeline does not record it).
const DEFAULT_PRIO: i32 = 120;

/// Writes the trace of `timeline` and `spans` to `path` (atomically, like
/// every output: `output::atomic`). The spans are borrowed: a flight
/// recorder's dump reads them from its ring without copying them.
pub fn write(path: &Path, timeline: &Timeline, spans: &[&SpanRecord]) -> Result<PerfettoSummary, PerfettoError> {
    let failed = |source| PerfettoError::Write { path: path.display().to_string(), source };
    let mut out = BufWriter::new(OutputFile::create(path)?);
    let summary = encode(&mut out, timeline, spans).map_err(failed)?;
    out.into_inner().map_err(|e| failed(e.into_error()))?.finish()?;
    Ok(summary)
}

/// The names the trace shows for a thread: its own comm, else its
/// process's, else its number.
struct Names<'a> {
    timeline: &'a Timeline,
}

impl Names<'_> {
    fn process(&self, pid: u32) -> String {
        self.timeline
            .names
            .get(&pid)
            .map(|n| n.comm.to_string())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| pid.to_string())
    }

    fn thread(&self, tid: u32) -> String {
        if tid == 0 {
            return "swapper".into();
        }
        let tgid = process_of(self.timeline, tid);
        match self.timeline.thread_names.get(&tid) {
            Some(name) if !name.is_empty() => name.clone(),
            _ => self.process(tgid),
        }
    }
}

/// The process of thread `tid`: its recorded TGID, else itself (a holder
/// is shown as its process's main thread).
fn process_of(timeline: &Timeline, tid: u32) -> u32 {
    timeline.thread(tid).map(|t| t.tgid).filter(|&p| p != 0).unwrap_or(tid)
}

/// Writes the trace as `Trace` message bytes.
pub fn encode(out: &mut impl Write, timeline: &Timeline, spans: &[&SpanRecord]) -> std::io::Result<PerfettoSummary> {
    let names = Names { timeline };
    let cpu = cpu_events(timeline);
    let mut summary = PerfettoSummary { cpus: cpu.by_cpu.len(), ..PerfettoSummary::default() };

    let mut first = packet(timeline.header.first_monotonic_ns);
    first.set_sequence_flags(SEQ_INCREMENTAL_STATE_CLEARED);
    first.set_process_tree(process_tree(timeline, &cpu.holders, &names));
    put(out, &first)?;
    summary.threads = timeline.threads().count();

    for (&cpu_id, events) in &cpu.by_cpu {
        summary.sched_events += events.len();
        for chunk in events.chunks(BUNDLE_EVENTS) {
            let mut bundle = FtraceEventBundle::new();
            bundle.set_cpu(cpu_id);
            bundle.event = chunk.iter().map(|e| ftrace_event(e, &names)).collect();
            let mut p = packet(chunk[0].ts_ns());
            p.set_ftrace_events(bundle);
            put(out, &p)?;
        }
    }

    let (placed, unplaced) = spans::place(timeline, spans);
    summary.spans_unplaced = unplaced;
    let flows = flows::flows(timeline, &placed, &cpu.runs);
    for (&tid, thread_spans) in &placed {
        let pid = thread_spans[0].span.pid;
        let mut p = packet(thread_spans[0].start_ns);
        p.set_track_descriptor(spans::thread_track(pid, tid, &names.thread(tid)));
        put(out, &p)?;
        let lanes = thread_spans.iter().map(|s| s.lane).max().unwrap_or(0);
        for lane in 1..=lanes {
            let mut p = packet(thread_spans[0].start_ns);
            p.set_track_descriptor(spans::lane_track(tid, lane));
            put(out, &p)?;
        }
        for (index, placed) in thread_spans.iter().enumerate() {
            let (mut begin, end) = spans::slice(placed);
            if let Some(ids) = flows.from_span.get(&(tid, index)) {
                begin.flow_ids = ids.clone();
                summary.flows += ids.len();
            }
            put(out, &track_event(placed.start_ns, begin))?;
            put(out, &track_event(placed.end_ns, end))?;
            summary.spans += 1;
        }
    }
    let mut described: BTreeSet<(u32, Option<u32>)> = placed.keys().map(|&tid| (tid, None)).collect();
    for holder in &flows.to_holders {
        let (tid, at) = (holder.run.tid, holder.run.start);
        if described.insert((tid, None)) {
            let mut p = packet(at);
            p.set_track_descriptor(spans::thread_track(process_of(timeline, tid), tid, &names.thread(tid)));
            put(out, &p)?;
        }
        if described.insert((tid, Some(holder.cpu))) {
            let mut p = packet(at);
            p.set_track_descriptor(flows::holder_track(tid, holder.cpu));
            put(out, &p)?;
        }
        let (begin, end) = flows::holder_slice(holder);
        put(out, &track_event(at, begin))?;
        put(out, &track_event(holder.run.end, end))?;
    }
    out.flush()?;
    Ok(summary)
}

fn packet(ts_ns: u64) -> TracePacket {
    let mut p = TracePacket::new();
    p.set_timestamp(ts_ns);
    p.set_trusted_packet_sequence_id(SEQUENCE);
    p
}

fn track_event(ts_ns: u64, event: TrackEvent) -> TracePacket {
    let mut p = packet(ts_ns);
    p.set_track_event(event);
    p
}

/// One packet as a `Trace.packet` field (number 1, length-delimited).
fn put(out: &mut impl Write, p: &TracePacket) -> std::io::Result<()> {
    const TRACE_PACKET_TAG: u8 = (1 << 3) | 2;
    let bytes = p.write_length_delimited_to_bytes().map_err(std::io::Error::other)?;
    out.write_all(&[TRACE_PACKET_TAG])?;
    out.write_all(&bytes)
}

/// Every process and thread in the trace, named: the traced ones, and the
/// holders, each shown as its main thread.
fn process_tree(timeline: &Timeline, holders: &BTreeSet<u32>, names: &Names) -> ProcessTree {
    let mut processes: BTreeSet<u32> = timeline.names.keys().copied().collect();
    let mut threads: BTreeMap<u32, u32> = holders.iter().map(|&pid| (pid, pid)).collect();
    for (tid, thread) in timeline.threads() {
        let pid = if thread.tgid == 0 { tid } else { thread.tgid };
        threads.insert(tid, pid);
        processes.insert(pid);
    }
    let mut tree = ProcessTree::new();
    tree.processes = processes
        .into_iter()
        .filter(|&pid| pid != 0)
        .map(|pid| {
            let mut p = Process::new();
            p.set_pid(pid as i32);
            p.cmdline = vec![names.process(pid)];
            p.set_cmdline_is_comm(true);
            p
        })
        .collect();
    tree.threads = threads
        .into_iter()
        .map(|(tid, pid)| {
            let mut t = Thread::new();
            t.set_tid(tid as i32);
            t.set_tgid(pid as i32);
            t.set_name(names.thread(tid));
            t
        })
        .collect();
    tree
}

fn ftrace_event(event: &SchedEvent, names: &Names) -> FtraceEvent {
    let mut e = FtraceEvent::new();
    e.set_timestamp(event.ts_ns());
    match *event {
        SchedEvent::Switch { prev, prev_state, next, .. } => {
            e.set_pid(prev);
            let mut s = SchedSwitchFtraceEvent::new();
            s.set_prev_pid(prev as i32);
            s.set_prev_comm(names.thread(prev));
            s.set_prev_prio(DEFAULT_PRIO);
            s.set_prev_state(prev_state);
            s.set_next_pid(next as i32);
            s.set_next_comm(names.thread(next));
            s.set_next_prio(DEFAULT_PRIO);
            e.set_sched_switch(s);
        }
        SchedEvent::Waking { tid, target_cpu, .. } => {
            let mut w = SchedWakingFtraceEvent::new();
            w.set_pid(tid as i32);
            w.set_comm(names.thread(tid));
            w.set_prio(DEFAULT_PRIO);
            w.set_success(1);
            w.set_target_cpu(target_cpu as i32);
            e.set_sched_waking(w);
        }
        SchedEvent::IoWait { tid, .. } => {
            e.set_pid(tid);
            let mut b = SchedBlockedReasonFtraceEvent::new();
            b.set_pid(tid as i32);
            b.set_io_wait(1);
            e.set_sched_blocked_reason(b);
        }
    }
    e
}
