//! Request spans: open spans, finished span records, and the per-CPU run
//! slices that tell who held a CPU while a span's thread waited for it.
use core::mem::size_of;

use crate::ThreadTotals;
#[cfg(doc)]
use crate::{HttpCapture, MAP_SPANS};

pub const SPAN_NAME_LEN: usize = 32;
/// Syscalls and CPU holders kept per span (the largest by time).
pub const SPAN_TOP: usize = 4;
/// Recent run slices remembered per CPU, to tell who held a CPU while a
/// traced thread waited for it. The holders' sums read a woken wait back
/// as far as it goes, so the ring is how far back they can name one:
/// behind a pipe ping-pong on its CPU (a switch every few microseconds),
/// its last few milliseconds; the rest is counted as not followed.
pub const CPU_SLICE_RING: usize = 2048;
/// Run slices the span programs read back for one wait: their room under
/// the verifier's limit is small (the syscall exit programs are near it).
pub const SPAN_SLICES_READ: usize = 16;
/// Each CPU's run slices, indexed by CPU: an array, not a per-CPU map (a
/// per-CPU value is at most 32 KiB), sized by the loader to the possible
/// CPUs when spans, the timeline or the holders' sums read it.
pub const MAP_CPU_SLICES: &str = "CPU_SLICES";

/// Key of [`MAP_SPANS`].
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SpanKey {
    pub tgid: u32,
    pub _pad: u32,
    pub span_id: u64,
}
const _: () = assert!(size_of::<SpanKey>() == 16);

/// A syscall (`id` = number) or CPU holder (`id` = TGID) and its time.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TopEntry {
    pub id: u32,
    pub count: u32,
    pub ns: u64,
}
const _: () = assert!(size_of::<TopEntry>() == 16);

/// An open span: its thread's totals when it began, and what has been
/// charged to it since.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SpanState {
    pub tid: u32,
    pub _pad: u32,
    pub start_ns: u64,
    /// The span open on the thread when this one began without taking the
    /// thread over (an outgoing call made while serving a request), or 0.
    pub parent_span_id: u64,
    pub name: [u8; SPAN_NAME_LEN],
    pub base: ThreadTotals,
    pub syscalls: [TopEntry; SPAN_TOP],
    pub holders: [TopEntry; SPAN_TOP],
    /// When it was opened (its start may be earlier: the wakeup of the run
    /// in which its request was read).
    pub opened_ns: u64,
    /// Its thread's totals from its start to its opening: what it keeps of
    /// that thread if another one ends it.
    pub first_part: ThreadTotals,
}
const _: () =
    assert!(size_of::<SpanState>() == 32 + SPAN_NAME_LEN + 2 * size_of::<ThreadTotals>() + 2 * 16 * SPAN_TOP);

/// `SpanEvent::flags`: ended on another thread than it began; the
/// breakdown (which follows one thread) is left empty.
pub const SPAN_MOVED_THREAD: u32 = 1 << 0;
/// `SpanEvent::flags`: an HTTP exchange found in socket syscalls; its
/// request and response heads arrived before it as [`HttpCapture`]s.
pub const SPAN_HTTP: u32 = 1 << 1;
/// `SpanEvent::flags`: with [`SPAN_HTTP`], an outgoing exchange (the
/// process wrote the request and read the response); a
/// [`HttpCaptureKind::Peer`](crate::HttpCaptureKind) capture names the peer
/// when its `connect` was seen.
pub const SPAN_CLIENT: u32 = 1 << 2;
/// `SpanEvent::flags`: with [`SPAN_HTTP`], a later round of a response
/// whose span was already sent: `start_ns` is where the span ended so far
/// (the end of the previous round), `end_ns` its new end, and `delta` the
/// thread's totals over that interval, to add to the span's (empty, with
/// [`SPAN_MOVED_THREAD`], when the round ended on another thread).
pub const SPAN_HTTP_ROUND: u32 = 1 << 3;
/// `SpanEvent::flags`: ended on another thread than it began, which took
/// the request up at a known point (its wakeup, or its switch-in, for the
/// run in which it answered): `delta` is the first thread's totals from the
/// start to the span's opening plus the second's from then to the end, and
/// `between_threads_ns` the time between, when neither thread is known to
/// have run the request (in the runtime's own scheduler, for Go or Tokio).
pub const SPAN_HANDED_OFF: u32 = 1 << 4;
/// `SpanEvent::flags`: with [`SPAN_HTTP`], its response was a `101` that
/// switched the connection to HTTP/2 (`Upgrade: h2c`): the request goes on
/// as the connection's stream 1, whose response comes in the connection's
/// HTTP/2 records ([`H2Record`](crate::H2Record)), which carry this span's
/// id as the connection's. The span ends at the `101`.
pub const SPAN_H2C_UPGRADE: u32 = 1 << 5;

/// A finished span: `delta` is its thread's totals at the end minus those
/// at the beginning.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SpanEvent {
    pub span_id: u64,
    pub tgid: u32,
    pub tid_begin: u32,
    pub tid_end: u32,
    pub flags: u32,
    pub start_ns: u64,
    pub end_ns: u64,
    /// As in [`SpanState`]: the span this one was made inside, or 0.
    pub parent_span_id: u64,
    pub name: [u8; SPAN_NAME_LEN],
    pub delta: ThreadTotals,
    pub syscalls: [TopEntry; SPAN_TOP],
    pub holders: [TopEntry; SPAN_TOP],
    /// Of an HTTP span: its response's bytes so far (written, or read by
    /// an outgoing exchange), head included; 0 otherwise.
    pub response_bytes: u64,
    /// With [`SPAN_HANDED_OFF`]: the time between the two threads' parts.
    pub between_threads_ns: u64,
}
const _: () = assert!(size_of::<SpanEvent>() == 64 + SPAN_NAME_LEN + size_of::<ThreadTotals>() + 2 * 16 * SPAN_TOP);

/// One run slice: `tgid` had a CPU from `start` to `end`.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuSlice {
    pub tgid: u32,
    pub _pad: u32,
    pub start: u64,
    pub end: u64,
}
const _: () = assert!(size_of::<CpuSlice>() == 24);

/// Value of [`MAP_CPU_SLICES`], one per CPU: the ring of its last run
/// slices, and the start of the slice in progress.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CpuSlices {
    pub _pad: u32,
    pub head: u32,
    pub current_start: u64,
    pub slices: [CpuSlice; CPU_SLICE_RING],
}
const _: () = assert!(size_of::<CpuSlices>() == 16 + 24 * CPU_SLICE_RING);

impl_pod!(SpanKey, TopEntry, SpanState, SpanEvent, CpuSlice, CpuSlices);
