//! The span markers of the traced processes, read from their rings
//! (`sys::markers`) at each drain and broken down with the kernel's
//! timeline stream (`model::markers`). Rings are turned on once the probes
//! are attached and off when this is dropped.
use std::collections::{BTreeMap, HashSet};

use tracer_common::{MarkerExitRecord, SpanEvent, TimelineEvent};

use crate::{
    model::markers::{MarkerCounts, MarkerJoin},
    sys::{clock, markers::MarkerRing},
};

pub struct MarkerReader {
    rings: Vec<MarkerRing>,
    /// Rings whose process was found gone at the last read: the kernel
    /// copied out what they held unread as the process exited, which comes
    /// with this drain (`on_exit_record`).
    gone: Vec<MarkerRing>,
    /// Rings turned on since `take_started` was last called: (PID, address).
    started: Vec<(u32, u64)>,
    join: MarkerJoin,
    /// When the rings were read last, and the time before: the timeline
    /// drained after a read holds every event of the spans ended before
    /// the read before it (one drain of margin for events still in flight).
    read_at: u64,
    covered: u64,
    /// When the rings were turned off (the end of the run).
    stopped_at: Option<u64>,
    /// Records each ring's library could not write (its ring full), by PID.
    overflow: BTreeMap<u32, u64>,
    /// Processes looked at by `watch`, with a ring or without.
    seen: HashSet<u32>,
    /// Lines to say (a ring that could not be turned on or read).
    pub messages: Vec<String>,
}

impl MarkerReader {
    pub fn new() -> MarkerReader {
        MarkerReader {
            rings: Vec::new(),
            gone: Vec::new(),
            started: Vec::new(),
            join: MarkerJoin::new(),
            read_at: 0,
            covered: 0,
            stopped_at: None,
            overflow: BTreeMap::new(),
            seen: HashSet::new(),
            messages: Vec::new(),
        }
    }

    /// Reads the ring of process `pid` from now on, if it has one and it
    /// was not looked at before (a process that joined a traced cgroup).
    pub fn watch(&mut self, pid: u32) {
        if self.seen.insert(pid)
            && let Some(ring) = MarkerRing::find(pid)
        {
            self.add(ring);
        }
    }

    /// Turns `ring` on and reads it from now on.
    pub fn add(&mut self, mut ring: MarkerRing) {
        self.seen.insert(ring.pid);
        match ring.start() {
            Ok(()) => {
                self.started.push((ring.pid, ring.address()));
                self.rings.push(ring);
            }
            Err(err) => self.messages.push(format!("tracer: warning: {err}; its spans are not traced")),
        }
    }

    /// The processes whose rings are read.
    pub fn pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.rings.iter().map(|ring| ring.pid)
    }

    /// The rings turned on since the last call, (PID, address in it): for
    /// the kernel to copy out what they hold unread when their process exits.
    pub fn take_started(&mut self) -> Vec<(u32, u64)> {
        std::mem::take(&mut self.started)
    }

    /// The processes whose rings the last read found gone.
    pub fn gone(&self) -> impl Iterator<Item = u32> + '_ {
        self.gone.iter().map(|ring| ring.pid)
    }

    /// Reads every ring; a process that exited is dropped after its last
    /// records (`on_exit_record`).
    pub fn read(&mut self) {
        self.covered = self.read_at;
        self.read_at = clock::monotonic_ns();
        let MarkerReader { rings, gone, join, overflow, .. } = self;
        gone.clear();
        let mut index = 0;
        while index < rings.len() {
            let ring = &mut rings[index];
            let pid = ring.pid;
            match ring.read(|record| join.on_record(pid, record)) {
                Ok(read) => {
                    overflow.insert(pid, read.overflow);
                    index += 1;
                }
                Err(_) => gone.push(rings.swap_remove(index)),
            }
        }
    }

    /// A record the kernel copied out of a ring as its process exited: the
    /// next one the tracer had not read, or one it had (skipped).
    pub fn on_exit_record(&mut self, exit: &MarkerExitRecord) {
        let pid = exit.tgid;
        let ring = self.rings.iter_mut().chain(self.gone.iter_mut()).find(|ring| ring.pid == pid);
        if let Some(ring) = ring
            && ring.follows(&exit.record)
        {
            self.join.on_record(pid, &exit.record);
        }
    }

    pub fn on_event(&mut self, event: &TimelineEvent) {
        self.join.on_event(event);
    }

    /// Turns the markers off, before the probes are detached: the spans
    /// read after this ended while the timeline still streamed.
    pub fn stop(&mut self) {
        self.rings.iter_mut().for_each(MarkerRing::stop);
        self.stopped_at = Some(clock::monotonic_ns());
    }

    /// The spans the timeline now covers: after `stop` and a last read and
    /// drain, all of them.
    pub fn join(&mut self, each: impl FnMut(&SpanEvent)) {
        let covered = self.stopped_at.unwrap_or(self.covered);
        self.join.join(covered, each);
    }

    pub fn expire(&mut self, cutoff: u64) {
        self.join.expire(cutoff);
    }

    pub fn counts(&self) -> MarkerCounts {
        self.join.counts
    }

    /// Records lost to full rings, all processes.
    pub fn overflow(&self) -> u64 {
        self.overflow.values().sum()
    }
}

impl Default for MarkerReader {
    fn default() -> Self {
        Self::new()
    }
}
