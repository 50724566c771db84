//! HTTP/1.x exchanges found in the traced process's socket syscalls: the
//! connections in progress, and the request and response heads copied for
//! the loader to parse.
use core::mem::size_of;

use crate::ThreadTotals;

/// Bytes of a request or response head copied per read or write.
pub const HTTP_CAPTURE_LEN: usize = 512;
/// Reads of one request whose bytes are copied (headers split over reads).
pub const HTTP_CAPTURE_READS: u32 = 4;

raw_enum! {
    /// Which head an [`HttpCapture`] holds bytes of (`HttpCapture::kind`).
    pub enum HttpCaptureKind: u32 {
        Request = 1,
        Response = 2,
    }
}

/// The first bytes of one read of a request, or of the write that began
/// its response, sent before the span they belong to.
#[repr(C)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct HttpCapture {
    pub span_id: u64,
    pub tgid: u32,
    pub tid: u32,
    /// An [`HttpCaptureKind`].
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

raw_enum! {
    /// Where an exchange is (`HttpConn::phase`).
    pub enum HttpPhase: u32 {
        /// The request is being read; no response yet.
        Request = 1,
        /// The response is being written.
        Response = 2,
    }
}

/// An HTTP exchange in progress on one connection. The span's end moves to
/// each response write; the span is sent when its thread does anything else.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpConn {
    pub span_id: u64,
    /// An [`HttpPhase`].
    pub phase: u32,
    /// Reads of the request whose bytes were captured.
    pub reads: u32,
    pub end_tid: u32,
    pub _pad: u32,
    pub end_ns: u64,
    /// The writing thread's totals at the end of the last response write.
    pub end: ThreadTotals,
}
const _: () = assert!(size_of::<HttpConn>() == 32 + size_of::<ThreadTotals>());

impl_pod!(HttpCapture, HttpConnKey, HttpConn);
