//! `tracer record --timeline`: streams the traced threads' events to the
//! timeline file while recording, with the names and clock readings its
//! header needs; within a size limit, and never filling its disk.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use tracer_common::{TIMELINE_HOLDER, TimelineEvent};

use crate::{
    bpf::Probes,
    model::{
        names::ProcessName,
        timeline::{ClockPair, FORMAT_VERSION, TimelineHeader},
    },
    output::timeline_file::{TimelineError, TimelineWriter},
    sys::{clock, procfs, space},
};

/// Default of `--timeline-max-mib`.
pub const DEFAULT_TIMELINE_MAX_MIB: u64 = 1_024;

/// Free space a timeline leaves on its filesystem, for the report (written
/// last) and everyone else writing there: 5% of it, at least 1 MiB, at
/// most 64 MiB.
pub fn space_margin(total: u64) -> u64 {
    (total / 20).clamp(1 << 20, 64 << 20)
}

/// Bytes in the unit people read them in.
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// How a timeline ended.
#[derive(Debug)]
pub struct TimelineSummary {
    /// Events in the file.
    pub events: u64,
    /// Why it stopped before the recording ended, if it did.
    pub truncated: Option<String>,
    /// Events that came after it stopped, not written.
    pub dropped: u64,
}

enum State {
    Writing(TimelineWriter),
    /// Finished early: the file is in place, marked truncated.
    Stopped { events: u64, reason: String },
    /// A write failed: no file.
    Failed(TimelineError),
}

/// `tracer record --timeline`: the writer, plus what the header needs,
/// collected while recording. A limit reached stops the timeline, finished
/// as it is; a write failure loses it; neither stops the recording.
pub struct Recorder {
    state: State,
    path: PathBuf,
    max_bytes: u64,
    /// Where free space is watched (none for a device or FIFO).
    dir: Option<PathBuf>,
    /// Output between two looks at the limit and the free space: a quarter
    /// of the margin, so that the disk cannot fill in between.
    check_every: u64,
    next_check: u64,
    /// Why it must stop, from when a check says so to the next tick, which
    /// finishes the file (what comes in between is dropped).
    stopping: Option<String>,
    dropped: u64,
    pids: Vec<u32>,
    names: BTreeMap<u32, ProcessName>,
    thread_names: BTreeMap<u32, String>,
    clock_pairs: Vec<ClockPair>,
    first_monotonic_ns: u64,
}

/// An error with its causes, on one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        text.push_str(&format!(": {err}"));
        cause = err.source();
    }
    text
}

/// The directory whose free space a timeline at `path` uses, unless it
/// goes to a device or FIFO.
fn watched_dir(path: &Path) -> Option<PathBuf> {
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if std::fs::metadata(&target).is_ok_and(|meta| !meta.is_file()) {
        return None;
    }
    Some(match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    })
}

impl Recorder {
    /// Starts the timeline at `path`, which stops at `max_bytes`, or when
    /// its filesystem's free space drops under `space_margin`.
    pub fn create(path: &Path, pids: Vec<u32>, max_bytes: u64) -> Result<Recorder, TimelineError> {
        let writer = TimelineWriter::create(path)?;
        let dir = watched_dir(path);
        let total = dir.as_deref().and_then(|dir| space::space_of(dir).ok()).map_or(0, |s| s.total);
        let check_every = (space_margin(total) / 4).min(max_bytes / 4).max(4 << 10);
        let first = clock::clock_pair();
        let mut recorder = Recorder {
            state: State::Writing(writer),
            path: path.to_path_buf(),
            max_bytes,
            dir,
            check_every,
            next_check: 0,
            stopping: None,
            dropped: 0,
            pids,
            names: BTreeMap::new(),
            thread_names: BTreeMap::new(),
            first_monotonic_ns: first.monotonic_ns,
            clock_pairs: vec![first],
        };
        recorder.check();
        Ok(recorder)
    }

    pub fn on_event(&mut self, event: &TimelineEvent) {
        let State::Writing(writer) = &mut self.state else {
            self.dropped += 1;
            return;
        };
        if self.stopping.is_some() {
            self.dropped += 1;
            return;
        }
        // Threads and holders may exit before the end: name them when first seen.
        if event.kind != TIMELINE_HOLDER && !self.thread_names.contains_key(&event.tid) {
            self.thread_names.insert(event.tid, procfs::comm_of(event.tid).unwrap_or_default());
        }
        for tgid in [event.tgid, if event.kind == TIMELINE_HOLDER { event.value } else { 0 }] {
            if tgid != 0 && !self.names.contains_key(&tgid) {
                let comm = procfs::comm_of(tgid).unwrap_or_default();
                let cgroup = procfs::cgroup_of(tgid).map(Into::into);
                self.names.insert(tgid, ProcessName { comm: comm.into(), cgroup });
            }
        }
        match writer.push(event) {
            Err(err) => self.fail(err),
            Ok(()) if writer.bytes() >= self.next_check => self.check(),
            Ok(()) => {}
        }
    }

    /// At each refresh: samples the clocks again (a wall-clock step then
    /// only misplaces the spans of the interval around it), looks at the
    /// free space (others write there too), and finishes the file if it
    /// must stop.
    pub fn tick(&mut self, probes: &Probes) {
        if !matches!(self.state, State::Writing(_)) {
            return;
        }
        self.clock_pairs.push(clock::clock_pair());
        self.check();
        if let Some(reason) = self.stopping.take() {
            self.finish_early(reason, probes.mode.name(), probes.losses().timeline_events, false);
        }
    }

    /// Decides whether the timeline must stop: its size limit reached, or
    /// its filesystem's free space under the margin.
    fn check(&mut self) {
        let State::Writing(writer) = &self.state else { return };
        if self.stopping.is_some() {
            return;
        }
        let bytes = writer.bytes();
        self.next_check = bytes + self.check_every;
        if bytes >= self.max_bytes {
            self.stopping = Some(format!("it reached its size limit of {} (--timeline-max-mib)", size(self.max_bytes)));
        } else if let Some(dir) = &self.dir
            && let Ok(space) = space::space_of(dir)
            && space.available < space_margin(space.total)
        {
            self.stopping = Some(format!(
                "{} free on {}, under the {} it leaves free",
                size(space.available),
                dir.display(),
                size(space_margin(space.total))
            ));
        }
    }

    fn header(&mut self, probe_mode: &str, events_lost: u64, truncated: Option<String>) -> TimelineHeader {
        self.clock_pairs.push(clock::clock_pair());
        TimelineHeader {
            format_version: FORMAT_VERSION,
            pids: self.pids.clone(),
            probe_mode: probe_mode.to_owned(),
            first_monotonic_ns: self.first_monotonic_ns,
            last_monotonic_ns: self.clock_pairs.last().map_or(0, |pair| pair.monotonic_ns),
            clock_pairs: std::mem::take(&mut self.clock_pairs),
            events_lost,
            truncated,
        }
    }

    /// Finishes the file now, while there is room for its header, marked
    /// truncated; later events are dropped.
    fn finish_early(&mut self, reason: String, probe_mode: &str, events_lost: u64, ending: bool) {
        let placeholder = State::Stopped { events: 0, reason: String::new() };
        let State::Writing(writer) = std::mem::replace(&mut self.state, placeholder) else { return };
        let events = writer.events();
        let header = self.header(probe_mode, events_lost, Some(reason.clone()));
        match writer.finish(header, std::mem::take(&mut self.names), std::mem::take(&mut self.thread_names)) {
            Ok(()) => {
                say!(
                    "tracer: warning: the timeline stopped after {events} events: {reason}; {} is finished as it is, \
                     marked truncated{}",
                    self.path.display(),
                    if ending { "" } else { ", and the recording goes on" }
                );
                self.state = State::Stopped { events, reason };
            }
            Err(err) => self.fail(err),
        }
    }

    /// A write failed: the timeline is lost (its temporary file goes,
    /// freeing its space), the recording goes on.
    fn fail(&mut self, err: TimelineError) {
        say!("tracer: warning: the timeline stopped: {}; the recording goes on without it", chain(&err));
        self.state = State::Failed(err);
    }

    /// Writes the header and names and puts the file in place, unless it
    /// was finished early or lost.
    pub fn finish(mut self, probe_mode: &str, events_lost: u64) -> Result<TimelineSummary, TimelineError> {
        if let Some(reason) = self.stopping.take() {
            self.finish_early(reason, probe_mode, events_lost, true);
        }
        match std::mem::replace(&mut self.state, State::Stopped { events: 0, reason: String::new() }) {
            State::Writing(writer) => {
                let events = writer.events();
                let header = self.header(probe_mode, events_lost, None);
                writer.finish(header, std::mem::take(&mut self.names), std::mem::take(&mut self.thread_names))?;
                Ok(TimelineSummary { events, truncated: None, dropped: 0 })
            }
            State::Stopped { events, reason } => Ok(TimelineSummary { events, truncated: Some(reason), dropped: self.dropped }),
            State::Failed(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use tracer_common::{TIMELINE_ON_CPU, TIMELINE_TRANSITION, ThreadTotals};

    use super::*;
    use crate::output::timeline_file::{self, tests::scratch_dir};

    fn event(i: u64) -> TimelineEvent {
        // Varied, so that the file grows despite compression.
        let totals = ThreadTotals { on_cpu_ns: i.wrapping_mul(0x9E37_79B9_7F4A_7C15), ..ThreadTotals::ZERO };
        TimelineEvent { kind: TIMELINE_TRANSITION, value: TIMELINE_ON_CPU, tid: 7, tgid: 7, ts_ns: i, totals, ..Default::default() }
    }

    #[test]
    fn the_margin_scales_with_the_filesystem() {
        assert_eq!(space_margin(64 << 10), 1 << 20, "a tiny filesystem: 1 MiB, more than it has");
        assert_eq!(space_margin(100 << 20), 5 << 20);
        assert_eq!(space_margin(1 << 40), 64 << 20);
        assert_eq!((size(508), size(3 << 10), size(5 << 20)), ("508 bytes".into(), "3 KiB".into(), "5.0 MiB".into()));
        assert_eq!(size(3 << 30), "3.0 GiB");
    }

    #[test]
    fn a_timeline_over_its_size_limit_is_finished_as_it_is() {
        let dir = scratch_dir("recorder-limit");
        let path = dir.join("t.timeline");
        let mut recorder = Recorder::create(&path, vec![7], 64 << 10).unwrap();
        let mut i = 0;
        while recorder.stopping.is_none() {
            recorder.on_event(&event(i));
            i += 1;
        }
        for _ in 0..10 {
            recorder.on_event(&event(i));
        }
        let summary = recorder.finish("tp_btf", 0).unwrap();
        let reason = summary.truncated.expect("truncated");
        assert!(reason.contains("--timeline-max-mib"), "{reason}");
        assert_eq!((summary.events, summary.dropped), (i, 10));
        let timeline = timeline_file::read(&path).expect("a valid file");
        assert_eq!((timeline.event_count, timeline.header.truncated), (i, Some(reason)));
        assert!(std::fs::metadata(&path).unwrap().len() < 128 << 10);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_timeline_within_its_limits_is_whole() {
        let dir = scratch_dir("recorder-whole");
        let path = dir.join("t.timeline");
        let mut recorder = Recorder::create(&path, vec![7], 1 << 30).unwrap();
        (0..1_000).for_each(|i| recorder.on_event(&event(i)));
        let summary = recorder.finish("tp_btf", 3).unwrap();
        assert_eq!((summary.events, summary.truncated, summary.dropped), (1_000, None, 0));
        let timeline = timeline_file::read(&path).unwrap();
        assert_eq!((timeline.header.events_lost, timeline.header.truncated), (3, None));
        let _ = std::fs::remove_dir_all(dir);
    }
}
