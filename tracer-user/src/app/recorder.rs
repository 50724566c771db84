//! `tracer record --timeline`: streams the traced threads' events to the
//! timeline file while recording, with the names and clock readings its
//! header needs.
use std::{collections::BTreeMap, path::Path};

use tracer_common::{TIMELINE_HOLDER, TimelineEvent};

use crate::{
    model::{
        names::ProcessName,
        timeline::{ClockPair, FORMAT_VERSION, TimelineHeader},
    },
    output::timeline_file::{TimelineError, TimelineWriter},
    sys::{clock, procfs},
};

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
        let first = clock::clock_pair();
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
        for tgid in [event.tgid, if event.kind == TIMELINE_HOLDER { event.value } else { 0 }] {
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
        self.clock_pairs.push(clock::clock_pair());
    }

    /// Writes the header and names and puts the file in place.
    pub fn finish(mut self, probe_mode: &str, events_lost: u64) -> Result<u64, TimelineError> {
        if let Some(err) = self.failure.take() {
            return Err(err);
        }
        self.sample_clocks();
        let events = self.writer.events();
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
