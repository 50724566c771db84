//! HTTP/1.x exchanges found in the traced process's socket syscalls: the
//! connections in progress, and the request and response heads copied for
//! the loader to parse.
use core::mem::size_of;

use crate::ThreadTotals;

/// Bytes of a request or response head copied per read or write.
pub const HTTP_CAPTURE_LEN: usize = 512;
/// Reads of one request whose bytes are copied (headers split over reads).
pub const HTTP_CAPTURE_READS: u32 = 4;
/// `HttpCapture::kind`.
pub const HTTP_CAPTURE_REQUEST: u32 = 1;
pub const HTTP_CAPTURE_RESPONSE: u32 = 2;

/// The first bytes of one read of a request, or of the write that began
/// its response, sent before the span they belong to.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct HttpCapture {
    pub span_id: u64,
    pub tgid: u32,
    pub tid: u32,
    pub kind: u32,
    /// Bytes of `data` that are valid.
    pub len: u32,
    pub data: [u8; HTTP_CAPTURE_LEN],
}
const _: () = assert!(size_of::<HttpCapture>() == 24 + HTTP_CAPTURE_LEN);

#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct HttpConnKey {
    pub tgid: u32,
    pub _pad: u32,
    /// The connection's `struct file` (shared by descriptors `dup`ed from
    /// one another), or its descriptor number when that cannot be read.
    pub file: u64,
}
const _: () = assert!(size_of::<HttpConnKey>() == 16);

/// `HttpConn::phase`.
pub const HTTP_PHASE_REQUEST: u32 = 1;
pub const HTTP_PHASE_RESPONSE: u32 = 2;

/// An HTTP exchange in progress on one connection. The span's end moves to
/// each response write; the span is sent when its thread does anything else.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpConn {
    pub span_id: u64,
    pub phase: u32,
    pub reads: u32,
    pub end_tid: u32,
    pub _pad: u32,
    pub end_ns: u64,
    /// The writing thread's totals at the end of the last response write.
    pub end: ThreadTotals,
}
const _: () = assert!(size_of::<HttpConn>() == 32 + size_of::<ThreadTotals>());

impl_pod!(HttpCapture, HttpConnKey, HttpConn);
