//! Reading the kernel side's maps: draining ring buffers, reading and
//! pruning hash maps, summing per-CPU values.
use std::os::fd::{AsFd, OwnedFd};

use aya::maps::{HashMap, MapData, RingBuf};
use tracer_common::{
    MarkerExitRecord,
    BlockKey, BucketStat, Counter, H2Record, HttpCaptureKind, RunqEvent, SpanEvent, SpanKey, SyscallErrorKey, SyscallKey,
    ThreadExit, ThreadStats, TimelineEvent, WaitHolderKey,
};

use super::Probes;
use crate::model::{h2::HttpRecord, http::Capture};
use crate::model::losses::{Losses, SpanAnomalies};

impl Probes {
    pub fn drain_runq_events(&mut self, mut on_event: impl FnMut(&RunqEvent)) -> usize {
        drain(&mut self.runq_events, &mut on_event)
    }

    /// Has the kernel copy out what process `pid`'s marker ring (at
    /// `address` in it) holds unread when the process exits.
    pub fn copy_marker_ring_at_exit(&mut self, pid: u32, address: u64) {
        // Full (1,024 rings): that ring's last records may go with its process.
        let _ = self.marker_ring_addresses.insert(pid, address, 0);
    }

    /// Forgets a ring whose process is gone (its PID may be reused).
    pub fn forget_marker_ring(&mut self, pid: u32) {
        let _ = self.marker_ring_addresses.remove(&pid);
    }

    pub fn drain_marker_exits(&mut self, mut on_record: impl FnMut(&MarkerExitRecord)) -> usize {
        drain(&mut self.marker_exits, &mut on_record)
    }

    pub fn drain_exits(&mut self, mut on_exit: impl FnMut(&ThreadExit)) -> usize {
        drain(&mut self.exits, &mut on_exit)
    }

    /// Every tracked thread's current entry.
    pub fn threads(&self) -> Vec<(u32, ThreadStats)> {
        self.threads.iter().filter_map(Result::ok).collect()
    }

    pub fn forget_thread(&mut self, tid: u32) {
        let _ = self.threads.remove(&tid);
    }

    pub fn losses(&self) -> Losses {
        let sum = |index: u32| {
            self.counters
                .get(&index, 0)
                .map(|values| values.iter().sum())
                .unwrap_or(0)
        };
        Losses {
            runq_events: sum(Counter::LostRunqEvents as u32),
            thread_exits: sum(Counter::LostExits as u32),
            threads_untracked: sum(Counter::ThreadsMapFull as u32),
            stats_samples: sum(Counter::StatsMapFull as u32),
            block_requests: sum(Counter::BlockInflightFull as u32),
            spans: sum(Counter::LostSpans as u32),
            accounting_gaps: sum(Counter::AccountingGaps as u32),
            timeline_events: sum(Counter::LostTimeline as u32),
            children_left_out: sum(Counter::ChildrenLeftOut as u32),
            children_untracked: sum(Counter::ChildrenUntracked as u32),
            http_captures: sum(Counter::LostHttpCaptures as u32),
            wait_holders: sum(Counter::WaitHoldersMapFull as u32),
            // Those copied out at a process's exit that did not fit; the
            // session adds those the marker library could not write.
            marker_records: sum(Counter::LostMarkerExits as u32),
            marker_spans_unjoined: 0,
        }
    }

    pub fn span_anomalies(&self) -> SpanAnomalies {
        let sum = |index: u32| self.counters.get(&index, 0).map(|v| v.iter().sum()).unwrap_or(0);
        SpanAnomalies {
            end_without_begin: sum(Counter::SpanEndUnmatched as u32),
            begun_twice: sum(Counter::SpanBeginDuplicate as u32),
            never_ended: self.spans_expired,
            http_pipelined: sum(Counter::HttpPipelined as u32),
            http_unanswered: sum(Counter::HttpUnanswered as u32),
        }
    }

    /// HTTP request and response heads (sent before their span; see
    /// `session::drain_spans` for the order to drain them in), and the
    /// reads and writes of HTTP/2 connections with the bytes copied.
    pub fn drain_http_captures(&mut self, mut on_record: impl FnMut(HttpRecord<'_>)) -> usize {
        let mut seen = 0;
        while let Some(item) = self.http_events.next() {
            let bytes: &[u8] = &item;
            if let Some(record) = http_record(bytes) {
                on_record(record);
                seen += 1;
            }
        }
        seen
    }

    pub fn drain_span_events(&mut self, mut on_span: impl FnMut(&SpanEvent)) -> usize {
        drain(&mut self.span_events, &mut on_span)
    }

    pub fn drain_timeline(&mut self, mut on_event: impl FnMut(&TimelineEvent)) -> usize {
        drain(&mut self.timeline_events, &mut on_event)
    }

    /// Descriptors that become readable when the kernel asks for an early
    /// drain of the span, HTTP or timeline stream (a ring a quarter full);
    /// duplicates, so that the event loop can own them.
    pub fn early_drain_fds(&self) -> std::io::Result<Vec<OwnedFd>> {
        [self.span_events.as_fd(), self.http_events.as_fd(), self.timeline_events.as_fd()]
            .into_iter()
            .map(|fd| fd.try_clone_to_owned())
            .collect()
    }

    /// Removes spans open since before `older_than_ns` (CLOCK_MONOTONIC),
    /// so a program that never ends its spans cannot fill the table.
    pub fn expire_spans(&mut self, older_than_ns: u64) -> u64 {
        let stale: Vec<SpanKey> = self
            .spans
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, state)| state.start_ns < older_than_ns)
            .map(|(key, _)| key)
            .collect();
        for key in &stale {
            let _ = self.spans.remove(key);
        }
        self.spans_expired += stale.len() as u64;
        stale.len() as u64
    }

    /// Cumulative syscall latency buckets.
    pub fn syscall_latency(&self) -> Vec<(SyscallKey, BucketStat)> {
        read_all(&self.syscall_latency)
    }

    /// Cumulative failed-syscall counts.
    pub fn syscall_errors(&self) -> Vec<(SyscallErrorKey, u64)> {
        read_all(&self.syscall_errors)
    }

    /// Cumulative CPU holders of run-queue waits: (waiting process,
    /// holding process) -> ns. Empty unless asked for at load.
    pub fn wait_holders(&self) -> Vec<(WaitHolderKey, u64)> {
        if self.holders { read_all(&self.wait_holders) } else { Vec::new() }
    }

    /// Cumulative block I/O buckets.
    pub fn block_stats(&self) -> Vec<(BlockKey, BucketStat)> {
        read_all(&self.block_stats)
    }
}

fn read_all<K: aya::Pod, V: aya::Pod>(map: &HashMap<MapData, K, V>) -> Vec<(K, V)> {
    map.iter().filter_map(Result::ok).collect()
}

/// A record of the HTTP ring: a fixed-size capture, or an HTTP/2 record
/// followed by its bytes (told apart by `kind`, at the same place in both).
fn http_record(bytes: &[u8]) -> Option<HttpRecord<'_>> {
    let kind = u32::from_ne_bytes(bytes.get(16..20)?.try_into().ok()?);
    let h2 = matches!(
        HttpCaptureKind::from_u32(kind),
        Some(HttpCaptureKind::H2Read | HttpCaptureKind::H2Write | HttpCaptureKind::H2Close)
    );
    if h2 {
        let head = std::mem::size_of::<H2Record>();
        // SAFETY: the kernel wrote an H2Record (Pod, no padding) at the start
        // of the record; read_unaligned does not assume alignment.
        let record = unsafe { std::ptr::read_unaligned(bytes.get(..head)?.as_ptr().cast::<H2Record>()) };
        return Some(HttpRecord::H2 { record, bytes: &bytes[head..] });
    }
    Capture::read(bytes).map(HttpRecord::Capture)
}

fn drain<T: aya::Pod>(ring: &mut RingBuf<MapData>, on_item: &mut impl FnMut(&T)) -> usize {
    let mut seen = 0;
    while let Some(item) = ring.next() {
        let bytes: &[u8] = &item;
        if bytes.len() >= std::mem::size_of::<T>() {
            let start = bytes.as_ptr().cast::<T>();
            if start.is_aligned() {
                // SAFETY: the kernel wrote a T (Pod, no padding) at the start
                // of the record, which stays as it is until `item` is dropped
                // (the kernel reuses no space it has not been given back).
                // The kernel keeps records 8-byte aligned: read in place,
                // without a copy of each record.
                on_item(unsafe { &*start });
            } else {
                // SAFETY: as above; read_unaligned does not assume alignment.
                on_item(&unsafe { std::ptr::read_unaligned(start) });
            }
            seen += 1;
        }
    }
    seen
}
