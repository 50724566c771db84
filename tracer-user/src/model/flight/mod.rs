//! The flight recorder's ring (`tracer spans --flight-recorder`): the
//! target's recent timeline events and finished spans, kept for the last
//! `keep_ns` of the recording and within `max_bytes`, whichever limit comes
//! first, so that the window around a slow span can still be written out
//! after it ended.
//!
//! Both are kept in chunks of fixed capacity, dropped oldest first, so
//! memory is freed as the ring moves on (a deque never gives its capacity
//! back). A window taken for a dump shares the chunks it needs instead of
//! copying them, and the chunks the ring has dropped while a dump still
//! holds them keep counting against `max_bytes` until it lets them go: the
//! bound covers what a dump holds too.
use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Arc,
};

use tracer_common::{TIMELINE_HOLDER, TIMELINE_TRANSITION, TimelineEvent};

use super::{
    names::ProcessName,
    spans::SpanRecord,
    timeline::{ClockPair, FORMAT_VERSION, Timeline, TimelineHeader},
};

/// How much the ring keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingLimits {
    /// The newest stretch of the recording kept (CLOCK_MONOTONIC ns).
    pub keep_ns: u64,
    /// Bytes of events and spans kept, counting chunks a dump still holds.
    pub max_bytes: u64,
}

/// Items per chunk: about a sixteenth of the byte limit, so that dropping a
/// chunk frees a small share of it, between these bounds.
const MIN_CHUNK_ITEMS: usize = 64;
const MAX_CHUNK_ITEMS: usize = 4096;

fn chunk_items(max_bytes: u64, item_bytes: usize) -> usize {
    ((max_bytes / 16) as usize / item_bytes.max(1)).clamp(MIN_CHUNK_ITEMS, MAX_CHUNK_ITEMS)
}

/// A run of items, full or still filling.
#[derive(Debug)]
struct Chunk<T> {
    items: Vec<T>,
    /// The latest time of its items, which decides when it ages out.
    newest_ns: u64,
    /// Its memory: the allocation, plus what its items point to.
    bytes: u64,
}

impl<T> Chunk<T> {
    fn with_capacity(items: usize) -> Chunk<T> {
        let items = Vec::with_capacity(items);
        let bytes = (items.capacity() * size_of::<T>()) as u64;
        Chunk { items, newest_ns: 0, bytes }
    }
}

/// Items in chunks, oldest first: the full ones shared (a window may hold
/// them), the last one filling.
#[derive(Debug)]
struct Chunks<T> {
    full: VecDeque<Arc<Chunk<T>>>,
    filling: Chunk<T>,
    per_chunk: usize,
    /// The bytes of all of them, kept as they come and go.
    bytes: u64,
    /// Chunks dropped while a window still held them: counted until it
    /// lets go.
    held: Vec<Arc<Chunk<T>>>,
}

impl<T: Clone> Chunks<T> {
    fn new(per_chunk: usize) -> Chunks<T> {
        let filling = Chunk::with_capacity(per_chunk);
        Chunks { bytes: filling.bytes, full: VecDeque::new(), filling, per_chunk, held: Vec::new() }
    }

    fn push(&mut self, item: T, at_ns: u64, heap_bytes: u64) {
        if self.filling.items.len() == self.per_chunk {
            let full = std::mem::replace(&mut self.filling, Chunk::with_capacity(self.per_chunk));
            self.bytes += self.filling.bytes;
            self.full.push_back(Arc::new(full));
        }
        self.filling.items.push(item);
        self.filling.newest_ns = self.filling.newest_ns.max(at_ns);
        self.filling.bytes += heap_bytes;
        self.bytes += heap_bytes;
    }

    /// Drops the oldest full chunk (kept as held if a window has it).
    fn drop_oldest(&mut self) {
        if let Some(chunk) = self.full.pop_front() {
            self.bytes -= chunk.bytes;
            if Arc::strong_count(&chunk) > 1 {
                self.held.push(chunk);
            }
        }
    }

    /// Lets go of the held chunks no window holds any more.
    fn release(&mut self) {
        if !self.held.is_empty() {
            self.held.retain(|c| Arc::strong_count(c) > 1);
        }
    }

    fn total_bytes(&self) -> u64 {
        self.bytes + self.held.iter().map(|c| c.bytes).sum::<u64>()
    }

    fn first_ns(&self, ts: impl Fn(&T) -> u64) -> Option<u64> {
        let first = self.full.front().map_or(&self.filling, |c| &**c);
        first.items.first().map(ts)
    }

    fn oldest_ns(&self) -> Option<u64> {
        self.full.front().map(|c| c.newest_ns)
    }

    /// The full chunks and a copy of the filling one.
    fn share(&self) -> Vec<Arc<Chunk<T>>> {
        let mut shared: Vec<Arc<Chunk<T>>> = self.full.iter().cloned().collect();
        if !self.filling.items.is_empty() {
            let copy = Chunk {
                items: self.filling.items.clone(),
                newest_ns: self.filling.newest_ns,
                bytes: self.filling.bytes,
            };
            shared.push(Arc::new(copy));
        }
        shared
    }
}

/// A syscall or CPU holder event, without the totals only a state change
/// carries: a quarter of the size, and most of the events.
#[derive(Debug, Clone, Copy)]
struct Point {
    kind: u32,
    tid: u32,
    tgid: u32,
    cpu: u32,
    ts_ns: u64,
    value: u32,
    ns: u64,
}

impl Point {
    fn of(event: &TimelineEvent) -> Point {
        let TimelineEvent { kind, tid, tgid, cpu, ts_ns, value, ns, .. } = *event;
        Point { kind, tid, tgid, cpu, ts_ns, value, ns }
    }

    fn event(&self) -> TimelineEvent {
        let Point { kind, tid, tgid, cpu, ts_ns, value, ns } = *self;
        TimelineEvent { kind, tid, tgid, cpu, ts_ns, value, ns, ..TimelineEvent::default() }
    }
}

/// Heap bytes a span points to (its strings and lists), roughly.
fn span_heap_bytes(span: &SpanRecord) -> u64 {
    let http = span.http.as_ref().map_or(0, |h| {
        h.http_method.capacity()
            + h.http_path.capacity()
            + [&h.request_id, &h.trace_id, &h.parent_span_id]
                .iter()
                .filter_map(|s| s.as_ref())
                .map(String::capacity)
                .sum::<usize>()
    });
    // Names from the syscall table are borrowed: no heap of their own.
    let syscalls: usize = span
        .top_syscalls
        .iter()
        .map(|s| match &s.name {
            std::borrow::Cow::Owned(name) => name.capacity(),
            std::borrow::Cow::Borrowed(_) => 0,
        })
        .sum();
    // Shared with the other spans that name the same process, but counted
    // whole: an estimate on the side of the memory limit.
    let blame: usize = span.blame.iter().map(|h| h.comm.len() + h.cgroup.as_deref().map_or(0, str::len)).sum();
    (span.name.capacity()
        + span.trace_id.as_ref().map_or(0, String::capacity)
        + span.top_syscalls.capacity() * size_of::<super::spans::SyscallTime>()
        + span.blame.capacity() * size_of::<super::spans::Holder>()
        + syscalls
        + blame
        + http) as u64
}

/// What the ring keeps, and what it dropped to stay within its limits.
#[derive(Debug)]
pub struct FlightRing {
    limits: RingLimits,
    /// State changes, with the thread's totals.
    transitions: Chunks<TimelineEvent>,
    /// Syscalls and CPU holders.
    points: Chunks<Point>,
    spans: Chunks<SpanRecord>,
    /// The latest event time seen: the ring keeps `keep_ns` back from it.
    newest_ns: u64,
    /// Clock readings, for placing spans (wall clock) on the events' clock.
    clock_pairs: VecDeque<ClockPair>,
    names: HashMap<u32, ProcessName>,
    thread_names: HashMap<u32, String>,
    /// Chunks dropped because of the byte limit before they were `keep_ns` old.
    pub dropped_early: u64,
    /// The newest event of the event chunks dropped so far: the ring holds
    /// everything after it (none: everything since the start).
    pub dropped_until_ns: Option<u64>,
}

impl FlightRing {
    pub fn new(limits: RingLimits) -> FlightRing {
        FlightRing {
            limits,
            transitions: Chunks::new(chunk_items(limits.max_bytes, size_of::<TimelineEvent>())),
            points: Chunks::new(chunk_items(limits.max_bytes, size_of::<Point>())),
            spans: Chunks::new(chunk_items(limits.max_bytes, size_of::<SpanRecord>() + 256)),
            newest_ns: 0,
            clock_pairs: VecDeque::new(),
            names: HashMap::new(),
            thread_names: HashMap::new(),
            dropped_early: 0,
            dropped_until_ns: None,
        }
    }

    pub fn limits(&self) -> RingLimits {
        self.limits
    }

    /// Whether the names of thread `tid` and process `tgid` are known
    /// (the caller reads the missing ones and gives them with `name`).
    pub fn knows_thread(&self, tid: u32) -> bool {
        self.thread_names.contains_key(&tid)
    }

    pub fn knows_process(&self, tgid: u32) -> bool {
        self.names.contains_key(&tgid)
    }

    pub fn name_thread(&mut self, tid: u32, comm: String) {
        self.thread_names.insert(tid, comm);
    }

    pub fn name_process(&mut self, tgid: u32, name: ProcessName) {
        self.names.insert(tgid, name);
    }

    /// The processes an event names: its thread's, and a holder's.
    pub fn processes_of(event: &TimelineEvent) -> [u32; 2] {
        [event.tgid, if event.kind == TIMELINE_HOLDER { event.value } else { 0 }]
    }

    pub fn push_event(&mut self, event: &TimelineEvent) {
        if event.kind == TIMELINE_TRANSITION {
            self.transitions.push(*event, event.ts_ns, 0);
        } else {
            self.points.push(Point::of(event), event.ts_ns, 0);
        }
        self.newest_ns = self.newest_ns.max(event.ts_ns);
        self.evict();
    }

    /// A finished span, at `now_ns` (CLOCK_MONOTONIC).
    pub fn push_span(&mut self, span: SpanRecord, now_ns: u64) {
        let heap = span_heap_bytes(&span);
        self.spans.push(span, now_ns, heap);
        self.newest_ns = self.newest_ns.max(now_ns);
        self.evict();
    }

    /// A clock reading (at each tick): the last ones the ring covers are kept.
    pub fn push_clock_pair(&mut self, pair: ClockPair) {
        self.clock_pairs.push_back(pair);
        let oldest = self.newest_ns.saturating_sub(self.limits.keep_ns);
        while self.clock_pairs.len() > 2 && self.clock_pairs[1].monotonic_ns < oldest {
            self.clock_pairs.pop_front();
        }
    }

    /// Memory held: kept chunks, and dropped ones a window still holds.
    pub fn bytes(&self) -> u64 {
        self.transitions.total_bytes() + self.points.total_bytes() + self.spans.total_bytes()
    }

    /// The time of the oldest event the ring still holds.
    pub fn oldest_ns(&self) -> Option<u64> {
        let transition = self.transitions.first_ns(|e| e.ts_ns);
        let point = self.points.first_ns(|p| p.ts_ns);
        transition.into_iter().chain(point).min()
    }

    /// Drops the oldest chunks while the oldest is older than `keep_ns` or
    /// the ring is over `max_bytes`.
    fn evict(&mut self) {
        self.transitions.release();
        self.points.release();
        self.spans.release();
        let aged = self.newest_ns.saturating_sub(self.limits.keep_ns);
        loop {
            // The chunk whose newest item is oldest goes first.
            let fronts = [self.transitions.oldest_ns(), self.points.oldest_ns(), self.spans.oldest_ns()];
            let Some((stream, oldest)) =
                fronts.iter().enumerate().filter_map(|(i, ns)| Some((i, (*ns)?))).min_by_key(|&(_, ns)| ns)
            else {
                return;
            };
            let too_old = oldest < aged;
            if !too_old && self.bytes() <= self.limits.max_bytes {
                return;
            }
            if !too_old {
                self.dropped_early += 1;
            }
            if stream < 2 {
                self.dropped_until_ns = self.dropped_until_ns.max(Some(oldest));
            }
            match stream {
                0 => self.transitions.drop_oldest(),
                1 => self.points.drop_oldest(),
                _ => self.spans.drop_oldest(),
            }
        }
    }

    /// What a dump of `[start_ns, end_ns]` needs, sharing the ring's chunks.
    pub fn window(&self, start_ns: u64, end_ns: u64, header: WindowHeader) -> Window {
        Window {
            start_ns,
            end_ns,
            header,
            covered_from_ns: self.dropped_until_ns,
            transitions: self.transitions.share(),
            points: self.points.share(),
            spans: self.spans.share(),
            clock_pairs: self.clock_pairs.iter().copied().collect(),
            // Names are few next to events: copied whole.
            names: self.names.iter().map(|(&k, v)| (k, v.clone())).collect(),
            thread_names: self.thread_names.iter().map(|(&k, v)| (k, v.clone())).collect(),
        }
    }

    /// Forgets the names of threads and processes no event in the ring
    /// mentions any more (threads and holders come and go).
    pub fn forget_unseen_names(&mut self) {
        let mut threads = std::collections::HashSet::new();
        let mut processes = std::collections::HashSet::new();
        let transitions =
            self.transitions.full.iter().map(|c| &c.items[..]).chain([&self.transitions.filling.items[..]]);
        for event in transitions.flatten() {
            threads.insert(event.tid);
            processes.insert(event.tgid);
        }
        let points = self.points.full.iter().map(|c| &c.items[..]).chain([&self.points.filling.items[..]]);
        for point in points.flatten() {
            threads.insert(point.tid);
            processes.extend(FlightRing::processes_of(&point.event()));
        }
        self.thread_names.retain(|tid, _| threads.contains(tid));
        self.names.retain(|tgid, _| processes.contains(tgid));
    }
}

/// How the recording was made, for the dump's timeline header.
#[derive(Debug, Clone, Default)]
pub struct WindowHeader {
    pub pids: Vec<u32>,
    pub probe_mode: String,
    pub events_lost: u64,
}

/// A stretch of the ring for one dump: it holds the chunks it needs, so
/// the ring can move on while the dump is written elsewhere.
pub struct Window {
    pub start_ns: u64,
    pub end_ns: u64,
    header: WindowHeader,
    transitions: Vec<Arc<Chunk<TimelineEvent>>>,
    points: Vec<Arc<Chunk<Point>>>,
    spans: Vec<Arc<Chunk<SpanRecord>>>,
    clock_pairs: Vec<ClockPair>,
    names: BTreeMap<u32, ProcessName>,
    thread_names: BTreeMap<u32, String>,
    /// What the ring had dropped when the window was taken (its
    /// `dropped_until_ns`).
    covered_from_ns: Option<u64>,
}

impl Window {
    /// The window's timeline: the events inside it, and each thread's last
    /// state change before it, so that its state is known from the start.
    /// `truncated` says so when the ring no longer reached back to the start.
    pub fn timeline(&self) -> Timeline {
        let first_kept = self.covered_from_ns.unwrap_or(0).max(self.start_ns);
        let truncated = (first_kept > self.start_ns).then(|| {
            format!(
                "the flight recorder's ring began {:.3} s after the window's start (--keep, --max-mib)",
                (first_kept - self.start_ns) as f64 / 1e9
            )
        });
        let header = TimelineHeader {
            format_version: FORMAT_VERSION,
            pids: self.header.pids.clone(),
            probe_mode: self.header.probe_mode.clone(),
            clock_pairs: self.clock_pairs.clone(),
            first_monotonic_ns: first_kept,
            last_monotonic_ns: self.end_ns,
            events_lost: self.header.events_lost,
            truncated,
        };
        let mut timeline = Timeline::new(header, self.names.clone());
        let mut before: HashMap<u32, TimelineEvent> = HashMap::new();
        let inside = |ts_ns: u64| (self.start_ns..=self.end_ns).contains(&ts_ns);
        // Kinds and states come from the kernel program that defines them;
        // one the timeline does not know is left out.
        for event in self.transitions.iter().flat_map(|c| c.items.iter()) {
            if event.ts_ns < self.start_ns {
                let last = before.entry(event.tid).or_insert(*event);
                if event.ts_ns >= last.ts_ns {
                    *last = *event;
                }
            } else if inside(event.ts_ns) {
                let _ = timeline.push(event);
            }
        }
        for point in self.points.iter().flat_map(|c| c.items.iter()).filter(|p| inside(p.ts_ns)) {
            let _ = timeline.push(&point.event());
        }
        for event in before.values() {
            let _ = timeline.push(event);
        }
        let named = self.thread_names.iter().filter(|(tid, _)| timeline.thread(**tid).is_some());
        timeline.thread_names = named.map(|(&tid, name)| (tid, name.clone())).collect();
        timeline.finish()
    }

    /// The spans that overlap the window (placed by the wall clock),
    /// borrowed from the ring's chunks: at a high rate they are a large
    /// share of it, and a dump must not need as much again.
    pub fn spans(&self) -> Vec<&SpanRecord> {
        let Some(pair) = self.clock_pairs.last() else { return Vec::new() };
        let offset = i128::from(pair.unix_ns) - i128::from(pair.monotonic_ns);
        let (start, end) = (i128::from(self.start_ns) + offset, i128::from(self.end_ns) + offset);
        self.spans
            .iter()
            .flat_map(|c| c.items.iter())
            .filter(|s| i128::from(s.start_unix_ns) <= end && i128::from(s.start_unix_ns + s.wall_ns) >= start)
            .collect()
    }
}

#[cfg(test)]
mod tests;
