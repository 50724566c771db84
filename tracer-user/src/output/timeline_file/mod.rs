//! The timeline file of `tracer record --timeline`: every state change,
//! syscall and CPU holder of the traced threads, so that spans recorded by
//! something else can be broken down after the fact (docs/spans.md). The
//! format is documented in docs/report-format.md, "Timeline file".
//!
//! The events are streamed through a zlib encoder into a temporary file as
//! they arrive, so a long recording costs disk, not memory; the header and
//! the process names, known only at the end, follow the events, and the
//! finished file is renamed into place (`output::atomic` says when not).
#[cfg(test)]
mod proptests;
mod reader;
#[cfg(test)]
pub(crate) mod tests;
mod writer;

use std::{collections::BTreeMap, io::Read};

use serde::{Deserialize, Serialize};
use tracer_common::{ThreadTotals, TimelineEvent};

pub use reader::read;
pub use writer::TimelineWriter;

use super::atomic::OutputError;
pub use crate::model::timeline::FORMAT_VERSION;
use crate::model::{names::ProcessName, timeline::TimelineHeader};

const MAGIC: &[u8; 8] = b"TRACERTL";
const END_MAGIC: &[u8; 8] = b"TLTRAILR";
/// Magic, version, record length.
const PREFIX_LEN: u64 = 16;
/// Trailer length, end magic.
const FOOTER_LEN: u64 = 16;
/// Bytes per event in the compressed stream: the fields of
/// [`TimelineEvent`] in declaration order, little-endian.
const RECORD_LEN: usize = 176;
const TOTALS_FIELDS: usize = 17;

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
/// What follows the events in the file.
#[derive(Serialize, Deserialize)]
struct Trailer {
    header: TimelineHeader,
    /// Events in the stream, to tell a damaged stream from a short recording.
    event_count: u64,
    names: BTreeMap<u32, ProcessName>,
    /// TID -> comm of the recorded threads (added within version 2:
    /// older files have none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    thread_names: BTreeMap<u32, String>,
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
    wakeup_idle_ns,
    idle_wakeups,
    throttled_ns,
    stolen_ns,
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

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub(crate) fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
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

