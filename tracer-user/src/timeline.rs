//! The timeline file of `tracer record --timeline`: every state change,
//! syscall and CPU holder of the traced threads, so that spans recorded by
//! something else can be broken down after the fact (docs/spans.md). The
//! format is documented in docs/report-format.md, "Timeline file".
//!
//! The events are streamed through a zlib encoder into a temporary file as
//! they arrive, so a long recording costs disk, not memory; the header and
//! the process names, known only at the end, follow the events, and the
//! finished file is renamed into place.
use std::{
    collections::{BTreeMap, HashMap},
    fs::File,
    io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use flate2::{Compression, read::ZlibDecoder, write::ZlibEncoder};
use serde::{Deserialize, Serialize};
use tracer_common::{
    OFF_CPU_IOWAIT, OFF_CPU_PREEMPTED, OFF_CPU_SLEEP, OFF_CPU_UNINTERRUPTIBLE, SPAN_TOP, SpanEvent,
    TIMELINE_HOLDER, TIMELINE_ON_CPU, TIMELINE_RUNNABLE, TIMELINE_SYSCALL, TIMELINE_TRANSITION, ThreadStats,
    ThreadTotals, TimelineEvent, TopEntry,
};

pub use crate::names::ProcessName;
use crate::{
    aggregate::totals_at,
    procfs,
    report::{self, OutputError},
};

/// Version of the file layout and of the event record; readers refuse
/// other versions rather than misread them.
pub const FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"TRACERTL";
const END_MAGIC: &[u8; 8] = b"TLTRAILR";
/// Magic, version, record length.
const PREFIX_LEN: u64 = 16;
/// Trailer length, end magic.
const FOOTER_LEN: u64 = 16;
/// Bytes per event in the compressed stream: the fields of
/// [`TimelineEvent`] in declaration order, little-endian.
const RECORD_LEN: usize = 144;
const TOTALS_FIELDS: usize = 13;

#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("writing {path}")]
    Write { path: String, source: std::io::Error },
    #[error("reading {path}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: not a tracer timeline file")]
    NotATimeline { path: String },
    #[error("{path}: timeline format version {found}; this tracer reads version {FORMAT_VERSION}")]
    UnsupportedVersion { path: String, found: u32 },
    #[error("{path}: truncated timeline file ({what})")]
    Truncated { path: String, what: &'static str },
    #[error("{path}: corrupt timeline file: {what}")]
    Corrupt { path: String, what: String },
}

/// CLOCK_MONOTONIC (the kernel's event clock) and CLOCK_REALTIME (what
/// other tracers stamp spans with) read at the same moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockPair {
    pub monotonic_ns: u64,
    pub unix_ns: u64,
}

impl ClockPair {
    /// Reads the wall clock between two reads of the monotonic clock and
    /// pairs it with their midpoint, so the pair is off by at most half
    /// the time between those reads (well under a microsecond).
    pub fn now() -> ClockPair {
        let before = procfs::monotonic_ns();
        let unix_ns = procfs::unix_ns();
        let after = procfs::monotonic_ns();
        ClockPair { monotonic_ns: before + (after - before) / 2, unix_ns }
    }
}

/// How and when a timeline was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineHeader {
    /// [`FORMAT_VERSION`]; set by the writer, whatever the caller put here.
    pub format_version: u32,
    /// The traced processes.
    pub pids: Vec<u32>,
    /// `tp_btf` or `tracepoint`, as in the report.
    pub probe_mode: String,
    /// Clock readings during the recording, at least one: at its start and
    /// end, and more in between to confine the error of a step of the wall
    /// clock to the interval around it (docs/spans.md).
    pub clock_pairs: Vec<ClockPair>,
    /// The recorded window, CLOCK_MONOTONIC: from when the probes were
    /// attached to when they were detached.
    pub first_monotonic_ns: u64,
    pub last_monotonic_ns: u64,
    /// Events the kernel could not stream (ring buffer full).
    pub events_lost: u64,
}

/// What follows the events in the file.
#[derive(Serialize, Deserialize)]
struct Trailer {
    header: TimelineHeader,
    /// Events in the stream, to tell a damaged stream from a short recording.
    event_count: u64,
    names: BTreeMap<u32, ProcessName>,
}

/// The temporary file of a writer; removed unless the writer finished.
struct TempFile {
    path: PathBuf,
    renamed: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Streams a timeline to a temporary file beside its destination; only
/// [`TimelineWriter::finish`] puts a file at the destination.
pub struct TimelineWriter {
    // Dropped first: an unfinished writer closes its file before the
    // temporary file is removed.
    encoder: ZlibEncoder<BufWriter<File>>,
    temp: TempFile,
    path: PathBuf,
    events: u64,
}

impl TimelineWriter {
    /// Checks that `path` can be written (before anything is recorded) and
    /// starts the temporary file.
    pub fn create(path: &Path) -> Result<TimelineWriter, TimelineError> {
        report::check_output_path(path)?;
        let temp_path = report::temp_path(path);
        let failed = |source| TimelineError::Write { path: temp_path.display().to_string(), source };
        let file = File::create(&temp_path).map_err(failed)?;
        let temp = TempFile { path: temp_path.clone(), renamed: false };
        let mut out = BufWriter::new(file);
        out.write_all(MAGIC)
            .and_then(|()| out.write_all(&FORMAT_VERSION.to_le_bytes()))
            .and_then(|()| out.write_all(&(RECORD_LEN as u32).to_le_bytes()))
            .map_err(failed)?;
        Ok(TimelineWriter {
            path: path.to_path_buf(),
            temp,
            // The recorder shares the machine with what it measures: the
            // fastest level still shrinks the records several times.
            encoder: ZlibEncoder::new(out, Compression::fast()),
            events: 0,
        })
    }

    pub fn push(&mut self, event: &TimelineEvent) -> Result<(), TimelineError> {
        self.encoder.write_all(&encode(event)).map_err(|source| self.write_error(source))?;
        self.events += 1;
        Ok(())
    }

    /// Ends the event stream, appends the header and the names of the
    /// processes in it (targets and CPU holders), and renames the file
    /// into place.
    pub fn finish(self, mut header: TimelineHeader, names: BTreeMap<u32, ProcessName>) -> Result<(), TimelineError> {
        header.format_version = FORMAT_VERSION;
        let trailer = Trailer { header, event_count: self.events, names };
        let json = serde_json::to_vec(&trailer).expect("the trailer serializes");
        let mut temp = self.temp;
        let failed = |source| TimelineError::Write { path: temp.path.display().to_string(), source };
        let mut out = self.encoder.finish().map_err(failed)?;
        out.write_all(&json)
            .and_then(|()| out.write_all(&(json.len() as u64).to_le_bytes()))
            .and_then(|()| out.write_all(END_MAGIC))
            .map_err(failed)?;
        let file = out.into_inner().map_err(|e| failed(e.into_error()))?;
        file.sync_all().map_err(failed)?;
        std::fs::rename(&temp.path, &self.path)
            .map_err(|source| TimelineError::Write { path: self.path.display().to_string(), source })?;
        temp.renamed = true;
        Ok(())
    }

    fn write_error(&self, source: std::io::Error) -> TimelineError {
        TimelineError::Write { path: self.temp.path.display().to_string(), source }
    }
}

/// The totals in file order (docs/report-format.md), named once for both
/// directions.
macro_rules! totals_in_file_order {
    ($($field:ident),* $(,)?) => {
        fn totals_fields(t: &ThreadTotals) -> [u64; TOTALS_FIELDS] {
            [$(t.$field),*]
        }

        fn totals_from(f: [u64; TOTALS_FIELDS]) -> ThreadTotals {
            let mut fields = f.into_iter();
            ThreadTotals { $($field: fields.next().unwrap_or(0)),* }
        }
    };
}

totals_in_file_order!(
    on_cpu_ns,
    runq_wait_ns,
    runq_waits,
    preempted_ns,
    uninterruptible_ns,
    sleep_ns,
    voluntary_switches,
    involuntary_switches,
    iowait_ns,
    syscall_ns,
    syscalls,
    migrations,
    unaccounted_ns,
);

fn encode(e: &TimelineEvent) -> [u8; RECORD_LEN] {
    let mut out = [0u8; RECORD_LEN];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        out[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    for v in [e.kind, e.tid, e.tgid, e.cpu] {
        put(&v.to_le_bytes());
    }
    put(&e.ts_ns.to_le_bytes());
    put(&e.value.to_le_bytes());
    put(&0u32.to_le_bytes());
    put(&e.ns.to_le_bytes());
    for v in totals_fields(&e.totals) {
        put(&v.to_le_bytes());
    }
    out
}

fn decode(b: &[u8; RECORD_LEN]) -> TimelineEvent {
    let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    TimelineEvent {
        kind: u32_at(0),
        tid: u32_at(4),
        tgid: u32_at(8),
        cpu: u32_at(12),
        ts_ns: u64_at(16),
        value: u32_at(24),
        _pad: 0,
        ns: u64_at(32),
        totals: totals_from(std::array::from_fn(|i| u64_at(40 + 8 * i))),
    }
}

/// A thread entered `state` (`TIMELINE_ON_CPU`, `TIMELINE_RUNNABLE` or an
/// `OFF_CPU_*` state) at `ts_ns`, with these cumulative totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub ts_ns: u64,
    pub state: u32,
    pub totals: ThreadTotals,
}

impl Transition {
    /// The thread's entry as the kernel's table holds it right after this
    /// transition, so that `totals_at` extends it to a later moment.
    fn as_stats(&self) -> ThreadStats {
        let mut stats = ThreadStats { totals: self.totals, ..ThreadStats::default() };
        match self.state {
            TIMELINE_ON_CPU => stats.on_cpu_since_ns = self.ts_ns,
            TIMELINE_RUNNABLE => stats.runnable_since_ns = self.ts_ns,
            OFF_CPU_PREEMPTED => {
                stats.runnable_since_ns = self.ts_ns;
                stats.off_cpu_state = OFF_CPU_PREEMPTED;
            }
            blocked => {
                stats.off_cpu_since_ns = self.ts_ns;
                stats.off_cpu_state = blocked;
            }
        }
        stats
    }

    fn is_wait_for_cpu(&self) -> bool {
        matches!(self.state, TIMELINE_RUNNABLE | OFF_CPU_PREEMPTED)
    }
}

fn known_state(state: u32) -> bool {
    matches!(
        state,
        TIMELINE_ON_CPU | TIMELINE_RUNNABLE | OFF_CPU_PREEMPTED | OFF_CPU_SLEEP | OFF_CPU_UNINTERRUPTIBLE | OFF_CPU_IOWAIT
    )
}

/// A syscall (`id` = number) or a CPU holder (`id` = TGID) whose time `ns`
/// ended at `ts_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub ts_ns: u64,
    pub id: u32,
    pub ns: u64,
}

/// One thread's events, each list sorted by time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadHistory {
    /// Its process (0 when no event said).
    pub tgid: u32,
    pub transitions: Vec<Transition>,
    pub syscalls: Vec<Point>,
    pub holders: Vec<Point>,
}

impl ThreadHistory {
    /// Totals at `t`: the last transition at or before `t`, extended to `t`.
    fn totals_at(&self, t: u64) -> Option<ThreadTotals> {
        let after = self.transitions.partition_point(|tr| tr.ts_ns <= t);
        let last = self.transitions.get(after.checked_sub(1)?)?;
        Some(totals_at(&last.as_stats(), t))
    }

    /// Syscalls ending in `(start, end]`, each with its whole duration (as
    /// the kernel charges a marker span): total time, count, the largest.
    fn syscalls_in(&self, start: u64, end: u64) -> (u64, u64, [TopEntry; SPAN_TOP]) {
        let mut by_nr: BTreeMap<u32, (u32, u64)> = BTreeMap::new();
        let (mut ns, mut count) = (0, 0);
        for s in points_in(&self.syscalls, start, end) {
            let entry = by_nr.entry(s.id).or_default();
            entry.0 = entry.0.saturating_add(1);
            entry.1 += s.ns;
            ns += s.ns;
            count += 1;
        }
        (ns, count, top(by_nr))
    }

    /// CPU holders of the waits that overlap `[start, end]`. A wait that
    /// straddles an end of the window is charged in proportion to its part
    /// inside it: which holder ran when within a wait is not recorded.
    fn holders_in(&self, start: u64, end: u64) -> [TopEntry; SPAN_TOP] {
        // The last wait overlapping the window ends at the first transition
        // after it.
        let after_end = self.transitions.partition_point(|t| t.ts_ns <= end);
        let until = self.transitions.get(after_end).map_or(end, |t| t.ts_ns);
        let mut by_tgid: BTreeMap<u32, (u32, u64)> = BTreeMap::new();
        for h in points_in(&self.holders, start, until) {
            let wait_start = self.wait_start(h.ts_ns).unwrap_or(h.ts_ns.saturating_sub(h.ns));
            let overlap = h.ts_ns.min(end).saturating_sub(wait_start.max(start));
            if overlap == 0 {
                continue;
            }
            let wait = h.ts_ns - wait_start;
            let ns = (u128::from(h.ns) * u128::from(overlap) / u128::from(wait)) as u64;
            let entry = by_tgid.entry(h.id).or_default();
            entry.0 = entry.0.saturating_add(1);
            entry.1 += ns;
        }
        top(by_tgid)
    }

    /// When the wait for a CPU that ended at `end` began.
    fn wait_start(&self, end: u64) -> Option<u64> {
        let upto = self.transitions.partition_point(|t| t.ts_ns <= end);
        self.transitions[..upto].iter().rev().find(|t| t.is_wait_for_cpu()).map(|t| t.ts_ns)
    }
}

fn points_in(points: &[Point], start: u64, end: u64) -> &[Point] {
    let from = points.partition_point(|p| p.ts_ns <= start);
    let to = points.partition_point(|p| p.ts_ns <= end).max(from);
    &points[from..to]
}

/// The `SPAN_TOP` largest by time (ties: lower id first), as a span carries them.
fn top(by_id: BTreeMap<u32, (u32, u64)>) -> [TopEntry; SPAN_TOP] {
    let mut all: Vec<TopEntry> = by_id.into_iter().map(|(id, (count, ns))| TopEntry { id, count, ns }).collect();
    all.sort_by_key(|e| std::cmp::Reverse(e.ns));
    let mut top = [TopEntry::default(); SPAN_TOP];
    for (slot, entry) in top.iter_mut().zip(all) {
        *slot = entry;
    }
    top
}

/// A timeline file, read back.
#[derive(Debug)]
pub struct Timeline {
    pub header: TimelineHeader,
    pub names: BTreeMap<u32, ProcessName>,
    threads: HashMap<u32, ThreadHistory>,
}

impl Timeline {
    pub fn read(path: &Path) -> Result<Timeline, TimelineError> {
        let shown = path.display().to_string();
        let read_error = |source| TimelineError::Read { path: shown.clone(), source };
        let corrupt = |what: String| TimelineError::Corrupt { path: shown.clone(), what };
        let truncated = |what| TimelineError::Truncated { path: shown.clone(), what };

        let mut file = File::open(path).map_err(read_error)?;
        let len = file.metadata().map_err(read_error)?.len();
        let mut prefix = [0u8; PREFIX_LEN as usize];
        let got = read_up_to(&mut file, &mut prefix).map_err(read_error)?;
        if got < MAGIC.len() || &prefix[..MAGIC.len()] != MAGIC {
            return Err(TimelineError::NotATimeline { path: shown.clone() });
        }
        if got < prefix.len() {
            return Err(truncated("it ends inside its first 16 bytes"));
        }
        let version = u32::from_le_bytes(prefix[8..12].try_into().expect("4 bytes"));
        if version != FORMAT_VERSION {
            return Err(TimelineError::UnsupportedVersion { path: shown.clone(), found: version });
        }
        let record_len = u32::from_le_bytes(prefix[12..16].try_into().expect("4 bytes"));
        if record_len as usize != RECORD_LEN {
            return Err(corrupt(format!("records of {record_len} bytes, version {FORMAT_VERSION} has {RECORD_LEN}")));
        }
        if len < PREFIX_LEN + FOOTER_LEN {
            return Err(truncated("no trailer: the file was cut short"));
        }
        let mut footer = [0u8; FOOTER_LEN as usize];
        file.seek(SeekFrom::End(-(FOOTER_LEN as i64)))
            .and_then(|_| file.read_exact(&mut footer))
            .map_err(read_error)?;
        if &footer[8..] != END_MAGIC {
            return Err(truncated("no trailer: the file was cut short"));
        }
        let trailer_len = u64::from_le_bytes(footer[..8].try_into().expect("8 bytes"));
        let Some(events_len) = (len - PREFIX_LEN - FOOTER_LEN).checked_sub(trailer_len) else {
            return Err(corrupt(format!("a trailer of {trailer_len} bytes in a file of {len}")));
        };
        let mut json = vec![0u8; trailer_len as usize];
        file.seek(SeekFrom::Start(PREFIX_LEN + events_len))
            .and_then(|_| file.read_exact(&mut json))
            .map_err(read_error)?;
        let trailer: Trailer = serde_json::from_slice(&json).map_err(|e| corrupt(format!("header: {e}")))?;
        let mut header = trailer.header;
        if header.clock_pairs.is_empty() {
            return Err(corrupt("the header has no clock pairs".into()));
        }
        header.clock_pairs.sort_by_key(|p| p.monotonic_ns);

        file.seek(SeekFrom::Start(PREFIX_LEN)).map_err(read_error)?;
        let mut events = ZlibDecoder::new(BufReader::new(file.take(events_len)));
        let mut threads: HashMap<u32, ThreadHistory> = HashMap::new();
        let mut record = [0u8; RECORD_LEN];
        let mut count = 0u64;
        loop {
            match read_up_to(&mut events, &mut record) {
                Ok(0) => break,
                Ok(RECORD_LEN) => {}
                Ok(_) => return Err(corrupt(format!("event {count} is cut short"))),
                Err(e) => return Err(corrupt(format!("event stream: {e}"))),
            }
            let event = decode(&record);
            let thread = threads.entry(event.tid).or_default();
            if event.tgid != 0 {
                thread.tgid = event.tgid;
            }
            let point = Point { ts_ns: event.ts_ns, id: event.value, ns: event.ns };
            match event.kind {
                TIMELINE_TRANSITION if known_state(event.value) => thread.transitions.push(Transition {
                    ts_ns: event.ts_ns,
                    state: event.value,
                    totals: event.totals,
                }),
                TIMELINE_TRANSITION => {
                    return Err(corrupt(format!("event {count}: unknown thread state {}", event.value)));
                }
                TIMELINE_SYSCALL => thread.syscalls.push(point),
                TIMELINE_HOLDER => thread.holders.push(point),
                kind => return Err(corrupt(format!("event {count}: unknown kind {kind}"))),
            }
            count += 1;
        }
        if count != trailer.event_count {
            return Err(corrupt(format!("{count} events, the header says {}", trailer.event_count)));
        }
        // Ring buffers are per CPU, so events arrive only roughly in order;
        // stable sorts keep the file order of events at the same moment.
        for thread in threads.values_mut() {
            thread.transitions.sort_by_key(|t| t.ts_ns);
            thread.syscalls.sort_by_key(|p| p.ts_ns);
            thread.holders.sort_by_key(|p| p.ts_ns);
        }
        Ok(Timeline { header, names: trailer.names, threads })
    }

    pub fn thread(&self, tid: u32) -> Option<&ThreadHistory> {
        self.threads.get(&tid)
    }

    /// The CLOCK_MONOTONIC time of a wall-clock time (may lie outside the
    /// recording, or be negative). NTP slews both clocks alike, so their
    /// offset changes only when the wall clock is stepped. Between two
    /// clock pairs it interpolates: exact when their offsets agree, and
    /// where a step moved the offset, continuous and increasing, so a span
    /// never maps to a negative length. Outside the pairs, and when a step
    /// back put their wall-clock times out of order, it uses the offset of
    /// the pair nearest in time.
    pub fn unix_to_monotonic(&self, unix_ns: u64) -> i128 {
        let pairs = &self.header.clock_pairs;
        let unix = i128::from(unix_ns);
        let offset_of = |p: &ClockPair| i128::from(p.monotonic_ns) - i128::from(p.unix_ns);
        let in_order = pairs.windows(2).all(|w| w[0].unix_ns < w[1].unix_ns);
        let after = pairs.partition_point(|p| i128::from(p.unix_ns) <= unix);
        if in_order && after > 0 && after < pairs.len() {
            let (a, b) = (&pairs[after - 1], &pairs[after]);
            let (a_unix, a_mono) = (i128::from(a.unix_ns), i128::from(a.monotonic_ns));
            let unix_span = i128::from(b.unix_ns) - a_unix;
            let mono_span = i128::from(b.monotonic_ns) - a_mono;
            return a_mono + (unix - a_unix) * mono_span / unix_span;
        }
        let nearest = pairs
            .iter()
            .min_by_key(|p| (i128::from(p.unix_ns) - unix).abs())
            .expect("a timeline has at least one clock pair");
        unix + offset_of(nearest)
    }

    /// The breakdown of thread `tid` over `[start_ns, end_ns]` (monotonic),
    /// as the kernel reports a marker span (`span_id` and `name` left
    /// empty): the difference of its totals, its syscalls ending inside,
    /// the holders of the CPU while it waited. `None` when the thread has
    /// no state recorded at `start_ns` (not recorded then).
    pub fn attribute(&self, tid: u32, start_ns: u64, end_ns: u64) -> Option<SpanEvent> {
        let thread = self.threads.get(&tid)?;
        let end_ns = end_ns.max(start_ns);
        let before = thread.totals_at(start_ns)?;
        let mut delta = thread.totals_at(end_ns)?.since(&before);
        // The totals' syscall time moves only at state changes; the syscall
        // events say exactly which syscalls ended inside the window.
        let (syscall_ns, syscalls, top_syscalls) = thread.syscalls_in(start_ns, end_ns);
        delta.syscall_ns = syscall_ns;
        delta.syscalls = syscalls;
        Some(SpanEvent {
            tgid: thread.tgid,
            tid_begin: tid,
            tid_end: tid,
            start_ns,
            end_ns,
            delta,
            syscalls: top_syscalls,
            holders: thread.holders_in(start_ns, end_ns),
            ..SpanEvent::default()
        })
    }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const MS: u64 = 1_000_000;
    /// Monotonic time of the synthetic recordings' start (0 means "unknown"
    /// to the accounting, so it is not used).
    pub const T0: u64 = 1_000_000 * MS;
    pub const TID: u32 = 101;
    pub const PID: u32 = 100;

    /// A fresh directory per call: tests run in parallel.
    pub fn scratch_dir(name: &str) -> PathBuf {
        static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tracer-timeline-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn transition(ms: f64, state: u32, totals: ThreadTotals) -> TimelineEvent {
        TimelineEvent {
            kind: TIMELINE_TRANSITION,
            tid: TID,
            tgid: PID,
            cpu: 1,
            ts_ns: T0 + (ms * MS as f64) as u64,
            value: state,
            totals,
            ..TimelineEvent::default()
        }
    }

    fn point(kind: u32, end_ms: f64, id: u32, ns: u64) -> TimelineEvent {
        TimelineEvent {
            kind,
            tid: TID,
            tgid: PID,
            ts_ns: T0 + (end_ms * MS as f64) as u64,
            value: id,
            ns,
            ..TimelineEvent::default()
        }
    }

    /// Thread 101 of process 100, in ms from T0: on a CPU 0-2, preempted
    /// 2-5 (process 900 held the CPU 2.4 ms of it, 901 0.6 ms), on a CPU
    /// 5-6 (after migrating), asleep 6-10, runnable 10-11 (the CPU was
    /// idle: wake-up latency), on a CPU from 11. Syscalls: read 0.5 ms
    /// ending at 1, write 0.3 ms ending at 5.5, read 0.2 ms ending at 5.8.
    pub fn history() -> Vec<TimelineEvent> {
        let preempted = ThreadTotals { on_cpu_ns: 2 * MS, involuntary_switches: 1, ..Default::default() };
        let running = ThreadTotals {
            runq_wait_ns: 3 * MS,
            runq_waits: 1,
            preempted_ns: 3 * MS,
            migrations: 1,
            ..preempted
        };
        let asleep = ThreadTotals {
            on_cpu_ns: 3 * MS,
            voluntary_switches: 1,
            syscall_ns: MS,
            syscalls: 3,
            ..running
        };
        let woken = ThreadTotals { sleep_ns: 4 * MS, ..asleep };
        let again = ThreadTotals { runq_wait_ns: 4 * MS, runq_waits: 2, ..woken };
        vec![
            transition(0.0, TIMELINE_ON_CPU, ThreadTotals::default()),
            point(TIMELINE_SYSCALL, 1.0, 0, MS / 2),
            transition(2.0, OFF_CPU_PREEMPTED, preempted),
            transition(5.0, TIMELINE_ON_CPU, running),
            point(TIMELINE_HOLDER, 5.0, 900, 2_400_000),
            point(TIMELINE_HOLDER, 5.0, 901, 600_000),
            point(TIMELINE_SYSCALL, 5.5, 1, 300_000),
            point(TIMELINE_SYSCALL, 5.8, 0, 200_000),
            transition(6.0, OFF_CPU_SLEEP, asleep),
            transition(10.0, TIMELINE_RUNNABLE, woken),
            transition(11.0, TIMELINE_ON_CPU, again),
            point(TIMELINE_HOLDER, 11.0, 0, MS),
        ]
    }

    pub fn header() -> TimelineHeader {
        TimelineHeader {
            format_version: 0,
            pids: vec![PID],
            probe_mode: "tp_btf".into(),
            clock_pairs: vec![ClockPair { monotonic_ns: T0, unix_ns: 1_700_000_000_000 * MS }],
            first_monotonic_ns: T0,
            last_monotonic_ns: T0 + 12 * MS,
            events_lost: 0,
        }
    }

    pub fn names() -> BTreeMap<u32, ProcessName> {
        BTreeMap::from([
            (PID, ProcessName { comm: "server".into(), cgroup: Some("/app.slice".into()) }),
            (900, ProcessName { comm: "batch".into(), cgroup: Some("/batch.slice".into()) }),
            (901, ProcessName { comm: "cron".into(), cgroup: None }),
        ])
    }

    pub fn write(path: &Path, events: &[TimelineEvent]) {
        let mut writer = TimelineWriter::create(path).unwrap();
        for event in events {
            writer.push(event).unwrap();
        }
        writer.finish(header(), names()).unwrap();
    }

    /// The synthetic history, written (out of order, as per-CPU buffers
    /// deliver it) and read back.
    pub fn synthetic() -> Timeline {
        let dir = scratch_dir("synthetic");
        let path = dir.join("t.timeline");
        let mut events = history();
        events.reverse();
        write(&path, &events);
        let timeline = Timeline::read(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        timeline
    }

    #[test]
    fn round_trip_keeps_every_event_header_and_name() {
        let dir = scratch_dir("round-trip");
        let path = dir.join("t.timeline");
        let mut events = history();
        events.swap(0, 4);
        let other = TimelineEvent { tid: 102, tgid: PID, ..transition(3.0, OFF_CPU_IOWAIT, ThreadTotals::default()) };
        events.push(other);

        let mut writer = TimelineWriter::create(&path).unwrap();
        for event in &events {
            writer.push(event).unwrap();
        }
        assert!(!path.exists(), "nothing at the destination before finish");
        writer.finish(header(), names()).unwrap();
        let leftovers = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(leftovers, 1, "only the timeline, no temporary file");

        let timeline = Timeline::read(&path).unwrap();
        assert_eq!(timeline.header, TimelineHeader { format_version: FORMAT_VERSION, ..header() });
        assert_eq!(timeline.names, names());
        let thread = timeline.thread(TID).unwrap();
        assert_eq!(thread.tgid, PID);
        let expected = history();
        let transitions: Vec<Transition> = expected
            .iter()
            .filter(|e| e.kind == TIMELINE_TRANSITION)
            .map(|e| Transition { ts_ns: e.ts_ns, state: e.value, totals: e.totals })
            .collect();
        assert_eq!(thread.transitions, transitions, "sorted back into time order, totals intact");
        let points = |kind| -> Vec<Point> {
            expected
                .iter()
                .filter(|e| e.kind == kind)
                .map(|e| Point { ts_ns: e.ts_ns, id: e.value, ns: e.ns })
                .collect()
        };
        assert_eq!(thread.syscalls, points(TIMELINE_SYSCALL));
        assert_eq!(thread.holders, points(TIMELINE_HOLDER));
        assert_eq!(timeline.thread(102).unwrap().transitions[0].state, OFF_CPU_IOWAIT);
        assert!(timeline.thread(103).is_none());

        // Record by record, the encoding is the event itself.
        for event in &events {
            assert_eq!(decode(&encode(event)), *event);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_writer_that_does_not_finish_leaves_nothing() {
        let dir = scratch_dir("abandoned");
        let path = dir.join("t.timeline");
        let mut writer = TimelineWriter::create(&path).unwrap();
        writer.push(&history()[0]).unwrap();
        drop(writer);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        assert!(matches!(
            TimelineWriter::create(&dir.join("missing/t.timeline")),
            Err(TimelineError::Output(OutputError::NoDirectory(_)))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn long_recordings_compress() {
        let dir = scratch_dir("compress");
        let path = dir.join("t.timeline");
        let mut writer = TimelineWriter::create(&path).unwrap();
        let mut totals = ThreadTotals::default();
        for i in 0..10_000u64 {
            totals.on_cpu_ns += 10_000 + i % 7;
            totals.voluntary_switches += 1;
            let state = if i % 2 == 0 { TIMELINE_ON_CPU } else { OFF_CPU_SLEEP };
            writer.push(&TimelineEvent { ts_ns: T0 + i * 20_000, ..transition(0.0, state, totals) }).unwrap();
        }
        writer.finish(header(), names()).unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size < 10_000 * RECORD_LEN as u64 / 8, "{size} bytes for 10,000 events");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn damaged_files_give_typed_errors() {
        let dir = scratch_dir("damaged");
        let good = dir.join("good.timeline");
        write(&good, &history());
        let bytes = std::fs::read(&good).unwrap();
        let read = |name: &str, content: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, content).unwrap();
            Timeline::read(&path).unwrap_err()
        };

        let err = read("garbage", b"{\"spans\": []}\n");
        assert!(matches!(err, TimelineError::NotATimeline { .. }), "{err}");
        assert_eq!(err.to_string(), format!("{}: not a tracer timeline file", dir.join("garbage").display()));
        assert!(matches!(read("empty", b""), TimelineError::NotATimeline { .. }));

        let mut other_version = bytes.clone();
        other_version[8] = 2;
        let err = read("v2", &other_version);
        assert!(matches!(err, TimelineError::UnsupportedVersion { found: 2, .. }), "{err}");

        for cut in [12, 40, bytes.len() / 2, bytes.len() - 1] {
            let err = read("cut", &bytes[..cut]);
            assert!(matches!(err, TimelineError::Truncated { .. }), "cut at {cut}: {err}");
        }

        let mut flipped = bytes.clone();
        flipped[PREFIX_LEN as usize + 20] ^= 0xff;
        let err = read("flipped", &flipped);
        assert!(matches!(err, TimelineError::Corrupt { .. }), "{err}");

        let missing = dir.join("missing.timeline");
        assert!(matches!(Timeline::read(&missing), Err(TimelineError::Read { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn attribution_follows_the_thread_through_each_state() {
        let timeline = synthetic();
        let at = |ms: f64| T0 + (ms * MS as f64) as u64;

        // On a CPU, preempted, on a CPU, asleep: 1 to 6.5 ms.
        let span = timeline.attribute(TID, at(1.0), at(6.5)).unwrap();
        assert_eq!((span.tgid, span.tid_begin, span.tid_end, span.flags), (PID, TID, TID, 0));
        assert_eq!((span.start_ns, span.end_ns), (at(1.0), at(6.5)));
        let expected = ThreadTotals {
            on_cpu_ns: 2 * MS,
            runq_wait_ns: 3 * MS,
            runq_waits: 1,
            preempted_ns: 3 * MS,
            sleep_ns: MS / 2,
            voluntary_switches: 1,
            involuntary_switches: 1,
            migrations: 1,
            // The read ending at exactly 1 ms belongs to the time before.
            syscall_ns: 500_000,
            syscalls: 2,
            ..Default::default()
        };
        assert_eq!(span.delta, expected);
        assert_eq!(span.syscalls[0], TopEntry { id: 1, count: 1, ns: 300_000 });
        assert_eq!(span.syscalls[1], TopEntry { id: 0, count: 1, ns: 200_000 });
        assert_eq!(span.syscalls[2].count, 0);
        assert_eq!(span.holders[0], TopEntry { id: 900, count: 1, ns: 2_400_000 });
        assert_eq!(span.holders[1], TopEntry { id: 901, count: 1, ns: 600_000 });
        assert_eq!(span.holders[2].count, 0);

        // Starting inside the wait: 2 of its 3 ms, and that share of its holders.
        let span = timeline.attribute(TID, at(3.0), at(8.0)).unwrap();
        let d = span.delta;
        assert_eq!((d.on_cpu_ns, d.runq_wait_ns, d.preempted_ns, d.sleep_ns), (MS, 2 * MS, 2 * MS, 2 * MS));
        assert_eq!((d.runq_waits, d.involuntary_switches, d.voluntary_switches), (1, 0, 1));
        assert_eq!(span.holders[0], TopEntry { id: 900, count: 1, ns: 1_600_000 });
        assert_eq!(span.holders[1], TopEntry { id: 901, count: 1, ns: 400_000 });

        // Ending inside the wait: its holders are recorded when it ends, after the span.
        let span = timeline.attribute(TID, at(4.0), at(4.5)).unwrap();
        assert_eq!((span.delta.runq_wait_ns, span.delta.on_cpu_ns), (MS / 2, 0));
        assert_eq!(span.holders[0], TopEntry { id: 900, count: 1, ns: 400_000 });
        assert_eq!(span.holders[1], TopEntry { id: 901, count: 1, ns: 100_000 });

        // Woken, waiting on an idle CPU (not preempted), then running.
        let span = timeline.attribute(TID, at(9.0), at(11.5)).unwrap();
        let d = span.delta;
        assert_eq!((d.sleep_ns, d.runq_wait_ns, d.preempted_ns, d.on_cpu_ns), (MS, MS, 0, MS / 2));
        assert_eq!(span.holders[0], TopEntry { id: 0, count: 1, ns: MS });
        assert_eq!(d.syscalls, 0);

        assert!(timeline.attribute(TID, T0 - 1, at(1.0)).is_none(), "not recorded before its first state");
        assert!(timeline.attribute(999, at(1.0), at(2.0)).is_none(), "a thread the timeline does not have");
    }

    #[test]
    fn blocked_states_land_in_their_totals() {
        let dir = scratch_dir("blocked");
        let path = dir.join("t.timeline");
        let io_start = ThreadTotals { on_cpu_ns: MS, voluntary_switches: 1, ..Default::default() };
        let io_done = ThreadTotals { uninterruptible_ns: 2 * MS, iowait_ns: 2 * MS, ..io_start };
        let lock_done = ThreadTotals { uninterruptible_ns: 3 * MS, ..io_done };
        write(
            &path,
            &[
                transition(0.0, TIMELINE_ON_CPU, ThreadTotals::default()),
                transition(1.0, OFF_CPU_IOWAIT, io_start),
                transition(3.0, OFF_CPU_UNINTERRUPTIBLE, io_done),
                transition(4.0, TIMELINE_ON_CPU, lock_done),
            ],
        );
        let timeline = Timeline::read(&path).unwrap();
        let d = timeline.attribute(TID, T0 + MS / 2, T0 + 4 * MS + MS / 2).unwrap().delta;
        assert_eq!((d.on_cpu_ns, d.uninterruptible_ns, d.iowait_ns), (MS, 3 * MS, 2 * MS));
        let d = timeline.attribute(TID, T0 + 2 * MS, T0 + 3 * MS + MS / 2).unwrap().delta;
        assert_eq!((d.uninterruptible_ns, d.iowait_ns), (MS + MS / 2, MS), "I/O wait extends to the moment asked");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn wall_clock_times_map_to_the_monotonic_clock() {
        const S: u64 = 1_000 * MS;
        let unix0 = 1_700_000_000 * S;
        let mut timeline = synthetic();
        // The wall clock was stepped 2 ms forward between the two pairs.
        timeline.header.clock_pairs = vec![
            ClockPair { monotonic_ns: 1_000 * S, unix_ns: unix0 },
            ClockPair { monotonic_ns: 1_010 * S, unix_ns: unix0 + 10 * S + 2 * MS },
        ];
        let mono = |unix: u64| timeline.unix_to_monotonic(unix);
        assert_eq!(mono(unix0), i128::from(1_000 * S));
        assert_eq!(mono(unix0 + 5 * S + MS), i128::from(1_005 * S), "halfway, half the step");
        assert_eq!(mono(unix0 + 10 * S + 2 * MS), i128::from(1_010 * S));
        assert_eq!(mono(unix0 - S), i128::from(999 * S), "before: the first pair's offset");
        assert_eq!(mono(unix0 + 12 * S + 2 * MS), i128::from(1_012 * S), "after: the last pair's offset");

        // Stepped back 1 s during the recording: the nearest pair decides.
        timeline.header.clock_pairs[1].unix_ns = unix0 - S / 2;
        let mono = |unix: u64| timeline.unix_to_monotonic(unix);
        assert_eq!(mono(unix0 + S), i128::from(1_001 * S));
        assert_eq!(mono(unix0 - S), i128::from(1_009_500 * MS));

        let single = synthetic();
        assert_eq!(single.unix_to_monotonic(1_700_000_000_000 * MS + 7), i128::from(T0 + 7));

        let pair = ClockPair::now();
        let offset = i128::from(procfs::unix_ns()) - i128::from(procfs::monotonic_ns());
        let sampled = i128::from(pair.unix_ns) - i128::from(pair.monotonic_ns);
        assert!((offset - sampled).abs() < i128::from(MS), "{offset} vs {sampled}");
    }
}

/// `tracer record --timeline`: the writer, plus what the header needs,
/// collected while recording. A write failure stops the timeline (it is
/// reported at the end) but never the recording.
pub struct Recorder {
    writer: TimelineWriter,
    pids: Vec<u32>,
    names: BTreeMap<u32, ProcessName>,
    clock_pairs: Vec<ClockPair>,
    first_monotonic_ns: u64,
    failure: Option<TimelineError>,
}

impl Recorder {
    pub fn create(path: &Path, pids: Vec<u32>) -> Result<Recorder, TimelineError> {
        let writer = TimelineWriter::create(path)?;
        let first = ClockPair::now();
        Ok(Recorder {
            writer,
            pids,
            names: BTreeMap::new(),
            first_monotonic_ns: first.monotonic_ns,
            clock_pairs: vec![first],
            failure: None,
        })
    }

    pub fn on_event(&mut self, event: &TimelineEvent) {
        // Holders may exit before the end: name them when first seen.
        for tgid in [event.tgid, if event.kind == tracer_common::TIMELINE_HOLDER { event.value } else { 0 }] {
            if tgid != 0 && !self.names.contains_key(&tgid) {
                let comm = procfs::comm_of(tgid).unwrap_or_default();
                self.names.insert(tgid, ProcessName { comm, cgroup: procfs::cgroup_of(tgid) });
            }
        }
        if self.failure.is_none()
            && let Err(err) = self.writer.push(event)
        {
            self.failure = Some(err);
        }
    }

    /// Samples the clocks again (a wall-clock step then only misplaces the
    /// spans of the interval around it).
    pub fn sample_clocks(&mut self) {
        self.clock_pairs.push(ClockPair::now());
    }

    /// Writes the header and names and puts the file in place.
    pub fn finish(mut self, probe_mode: &str, events_lost: u64) -> Result<u64, TimelineError> {
        if let Some(err) = self.failure.take() {
            return Err(err);
        }
        self.sample_clocks();
        let events = self.writer.events;
        let header = TimelineHeader {
            format_version: FORMAT_VERSION,
            pids: self.pids,
            probe_mode: probe_mode.to_owned(),
            first_monotonic_ns: self.first_monotonic_ns,
            last_monotonic_ns: self.clock_pairs.last().map_or(0, |pair| pair.monotonic_ns),
            clock_pairs: self.clock_pairs,
            events_lost,
        };
        self.writer.finish(header, self.names)?;
        Ok(events)
    }
}
