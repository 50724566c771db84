//! HTTP/1.x exchanges found in the traced process's socket syscalls: the
//! connections in progress, and the request and response heads copied for
//! the loader to parse.
use core::mem::size_of;

use crate::ThreadTotals;

/// Low bits of an HTTP span id that hold the CPU it began on, below its
/// start time: requests that begin in the same nanosecond on different CPUs
/// get different ids, and ids still sort by start time.
const SPAN_ID_CPU_BITS: u32 = 8;
const SPAN_ID_CPU_MASK: u32 = (1 << SPAN_ID_CPU_BITS) - 1;

/// The id the kernel gives an HTTP span that began at `start_ns`
/// (`bpf_ktime_get_ns`) on CPU `cpu`.
#[inline(always)]
pub const fn http_span_id(start_ns: u64, cpu: u32) -> u64 {
    (start_ns << SPAN_ID_CPU_BITS) | (cpu & SPAN_ID_CPU_MASK) as u64
}

/// The lowest id an HTTP span that began at `start_ns` or later can have:
/// the ids below it are those of spans that began before.
#[inline(always)]
pub const fn http_span_id_lower_bound(start_ns: u64) -> u64 {
    http_span_id(start_ns, 0)
}

/// Bytes of a request or response head copied per read or write.
pub const HTTP_CAPTURE_LEN: usize = 512;
/// Reads of one request whose bytes are copied (headers split over reads).
pub const HTTP_CAPTURE_READS: u32 = 4;

raw_enum! {
    /// Which head an [`HttpCapture`] holds bytes of (`HttpCapture::kind`).
    pub enum HttpCaptureKind: u32 {
        Request = 1,
        Response = 2,
        /// The peer of an outgoing exchange: the `struct sockaddr` given to
        /// `connect` (its first [`PEER_ADDR_LEN`] bytes).
        Peer = 3,
        /// The head of a request the process wrote (an outgoing exchange):
        /// sent at the write, so its request id is known before the span
        /// it started in another traced process ends.
        OutgoingRequest = 4,
        /// An HTTP/2 connection's read: an [`H2Record`] (not an
        /// `HttpCapture`) whose bytes follow it.
        H2Read = 5,
        /// As `H2Read`, for a write.
        H2Write = 6,
        /// The connection was closed (an [`H2Record`] with no bytes).
        H2Close = 7,
    }
}

/// HTTP/2: bytes of one read or write copied (more, and a sendfile's, are
/// counted, not copied: the loader can follow a gap only inside a `DATA`
/// frame).
pub const H2_COPIED_PER_SYSCALL: usize = 32 * 1024;
/// The kernel's per-CPU buffer for a record's bytes: twice those copied,
/// which keeps the verifier's bounds simple (a power of two).
pub const H2_SCRATCH_LEN: usize = 2 * H2_COPIED_PER_SYSCALL;
/// `HttpConn::tunnel` of a connection that a `101` it wrote switched to
/// HTTP/2 in cleartext (`Upgrade: h2c`), while the exchange that did it
/// still has its span to send.
pub const H2C_UPGRADE: u32 = 2;
/// As [`H2C_UPGRADE`], for a `101` the process read (an outgoing exchange).
pub const H2C_UPGRADE_CLIENT: u32 = 3;
/// The map of those buffers (one per CPU).
pub const MAP_H2_SCRATCH: &str = "H2_SCRATCH";

/// One read or write of an HTTP/2 connection, followed in its record by
/// the `len` bytes copied of it. The first fields are those of an
/// [`HttpCapture`], so that a reader tells the two apart by `kind`.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct H2Record {
    /// The connection's id (given at its preface).
    pub span_id: u64,
    pub tgid: u32,
    pub tid: u32,
    /// [`HttpCaptureKind::H2Read`], `H2Write` or `H2Close`.
    pub kind: u32,
    /// Bytes copied (following the record).
    pub len: u32,
    /// When the syscall returned.
    pub ts_ns: u64,
    /// Bytes it transferred: those past `len` were not copied.
    pub transferred: u64,
    pub cpu: u32,
    /// The connection's reads (or writes) so far, this one included
    /// (wrapping): a gap means records were lost.
    pub seq: u32,
    /// The thread's totals when it returned.
    pub totals: ThreadTotals,
}
const _: () = assert!(size_of::<H2Record>() == 48 + size_of::<ThreadTotals>());

/// Bytes of a `connect` address kept: a `struct sockaddr_in6` (an
/// `sockaddr_in` is shorter).
pub const PEER_ADDR_LEN: usize = 28;

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

impl HttpCapture {
    /// The bytes of `data` that are valid.
    pub fn bytes(&self) -> &[u8] {
        &self.data[..(self.len as usize).min(HTTP_CAPTURE_LEN)]
    }
}

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
        /// Outgoing: the process wrote a request; no response read yet.
        ClientRequest = 3,
        /// Outgoing: the response is being read.
        ClientResponse = 4,
        /// The span went when the thread moved on; a later write is a later
        /// round of the same response (a large body as the socket drains, a
        /// proxy passing its upstream's response on as it arrives).
        Sent = 5,
        /// Outgoing, as [`HttpPhase::Sent`]: a later read is a later round.
        ClientSent = 6,
        /// An HTTP/2 connection (`HttpConn::span_id` is its id): its bytes
        /// are copied for the loader, which makes a span of each stream.
        H2 = 7,
    }
}

/// Where an exchange's response ended so far: the last response write (or
/// read, of an outgoing exchange).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ExchangeEnd {
    pub tid: u32,
    pub _pad: u32,
    pub ns: u64,
    /// That thread's totals then.
    pub totals: ThreadTotals,
}
const _: () = assert!(size_of::<ExchangeEnd>() == 16 + size_of::<ThreadTotals>());

/// An HTTP exchange in progress on one connection. The span's end moves to
/// each response write; the span is sent when its thread does anything
/// else, and the exchange stays for the response's later rounds (each sent
/// as a [`SPAN_HTTP_ROUND`](crate::SPAN_HTTP_ROUND)) until the connection's
/// next request or close.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpConn {
    pub span_id: u64,
    /// An [`HttpPhase`].
    pub phase: u32,
    /// Reads of the request whose bytes were captured (HTTP/2: the
    /// connection's reads so far).
    pub reads: u32,
    /// 1 once the span was sent: what follows goes as rounds (HTTP/2: the
    /// connection's writes so far).
    pub sent: u32,
    /// 1 when the connection stops being HTTP after this exchange (a 101
    /// Switching Protocols, a `CONNECT` tunnel): its later bytes are not
    /// rounds, and the exchange ends with its span. [`H2C_UPGRADE`] (or
    /// `H2C_UPGRADE_CLIENT`) when the 101 switched it to HTTP/2 in
    /// cleartext: it goes on as HTTP/2, and its span has not left yet.
    pub tunnel: u32,
    /// The thread that opened it (read the request, or wrote an outgoing one).
    pub begin_tid: u32,
    pub _pad: u32,
    /// The user address and length of the first bytes of the response's
    /// first write (or read), for a `101` to be looked at for `h2c`.
    pub switch_at: u64,
    pub switch_len: u64,
    /// Response bytes so far, head included.
    pub bytes: u64,
    pub end: ExchangeEnd,
}
const _: () = assert!(size_of::<HttpConn>() == 56 + size_of::<ExchangeEnd>());

impl_pod!(HttpCapture, HttpConnKey, HttpConn, ExchangeEnd, H2Record);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_ids_sort_by_start_time_then_cpu() {
        assert_eq!(http_span_id(5, 3), (5 << 8) | 3);
        assert!(http_span_id(5, 255) < http_span_id(6, 0));
        assert_eq!(http_span_id(5, 256), http_span_id(5, 0), "only the CPU's low bits are kept");
        assert!(http_span_id_lower_bound(6) > http_span_id(5, u32::MAX));
        assert!(http_span_id_lower_bound(6) <= http_span_id(6, 0));
    }
}
