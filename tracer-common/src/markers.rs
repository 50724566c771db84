//! The span marker ring: `tracer-span` writes begin/end records into a ring
//! in its own memory (a zeroed static, so it costs no memory until a tracer
//! enables it); the tracer finds it by symbol and reads it with
//! `process_vm_readv`. No trap per span: enabled, a marker is a clock read,
//! an atomic reservation and a 64-byte store.
//!
//! Layout of the ring symbol ([`SYMBOL_MARKER_RING`], [`MARKER_RING_BYTES`]):
//! - offset 0: `head`, u64, positions reserved by the writers (CAS'ed);
//! - offset 64: `tail`, u64, positions the tracer has read (written by it);
//! - offset 72: `overflow`, u64, records not written because the ring was full;
//! - offset 128: [`MARKER_RING_RECORDS`] [`MarkerRecord`]s, position `p` in
//!   slot `p % MARKER_RING_RECORDS`, complete when its `seq` is `p + 1`.
use core::mem::size_of;

use crate::SPAN_NAME_LEN;

/// Set to non-zero by the tracer to turn the markers on (u32).
pub const SYMBOL_MARKER_ENABLED: &str = "TRACER_SPAN_ENABLED";
/// The ring itself.
pub const SYMBOL_MARKER_RING: &str = "TRACER_SPAN_RING";

/// Records in the ring: at the marker test server's saturation (about 150,000
/// records a second) it holds 400 ms, four of the tracer's drains.
pub const MARKER_RING_RECORDS: usize = 1 << 16;
pub const MARKER_HEAD_OFFSET: usize = 0;
pub const MARKER_TAIL_OFFSET: usize = 64;
pub const MARKER_OVERFLOW_OFFSET: usize = 72;
pub const MARKER_RECORDS_OFFSET: usize = 128;
pub const MARKER_RING_BYTES: usize = MARKER_RECORDS_OFFSET + MARKER_RING_RECORDS * size_of::<MarkerRecord>();

/// `MarkerRecord::kind`.
pub const MARKER_BEGIN: u32 = 1;
pub const MARKER_END: u32 = 2;

/// One `tracer_span_begin` or `tracer_span_end` call.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct MarkerRecord {
    /// Its position + 1 once written (first, so that a reader copying the
    /// record front to back sees the body complete when it sees this).
    pub seq: u64,
    /// CLOCK_MONOTONIC, the clock of the kernel's events.
    pub ts_ns: u64,
    pub span_id: u64,
    pub tid: u32,
    pub kind: u32,
    /// Begin only: the span's name, NUL-padded.
    pub name: [u8; SPAN_NAME_LEN],
}
const _: () = assert!(size_of::<MarkerRecord>() == 64);

impl_pod!(MarkerRecord);

/// A record of a marker ring the tracer had not read when the ring's
/// process exited, copied out by the kernel (`MAP_MARKER_EXITS`).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct MarkerExitRecord {
    pub tgid: u32,
    pub _pad: u32,
    pub record: MarkerRecord,
}
const _: () = assert!(size_of::<MarkerExitRecord>() == 72);

impl_pod!(MarkerExitRecord);
