//! What the HTTP programs share (`http.rs` for HTTP/1.x, `h2.rs` for
//! HTTP/2): where a syscall's data is, a new exchange's entry, and the
//! capture records sent to the loader.
use tracer_common::{
    Counter, HTTP_CAPTURE_LEN, HttpCapture, HttpCaptureKind, HttpConn, HttpConnKey, HttpPhase, PEER_ADDR_LEN,
};

use crate::{
    kernel::read_user,
    maps::{HTTP_CONN_SCRATCH, HTTP_EVENTS, HTTP_PEERS, count, wake_when_filling},
};

// User-space layouts (64-bit): `struct msghdr { void *msg_name; int
// msg_namelen; struct iovec *msg_iov; ... }` and `struct iovec { void
// *iov_base; size_t iov_len; }`.
pub const MSGHDR_MSG_IOV: u64 = 16;

/// The `(iov_base, iov_len)` of the iovec at `at`: one read of both.
#[inline(always)]
pub fn read_iovec(at: u64) -> Option<(u64, u64)> {
    read_user::<[u64; 2]>(at).map(|[base, len]| (base, len))
}

/// Where a syscall's data is: a buffer, an iovec array, or a msghdr.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Data {
    Buffer,
    Vector,
    Message,
    None,
}

/// A new exchange of span `span_id` in `phase`, opened by thread `tid`,
/// with `reads` of its request captured (`tunnel`: the connection stops
/// being HTTP after it); made in this CPU's scratch slot, for
/// `HTTP_CONNS.insert`.
#[inline(always)]
pub fn fresh_exchange(
    span_id: u64,
    phase: HttpPhase,
    reads: u32,
    tid: u32,
    tunnel: bool,
) -> Option<&'static HttpConn> {
    let fresh = HTTP_CONN_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: this CPU's scratch slot; programs do not nest on a CPU here.
    let fresh = unsafe { &mut *fresh };
    reset_exchange(fresh, span_id, phase, reads, tid, tunnel);
    Some(fresh)
}

/// Makes `conn` a new exchange, as [`fresh_exchange`] does: a keep-alive
/// connection's next request reuses its entry in place, which costs a few
/// stores where a map update costs a new element, its bucket's lock and the
/// old one's release.
#[inline(always)]
pub fn reset_exchange(conn: &mut HttpConn, span_id: u64, phase: HttpPhase, reads: u32, tid: u32, tunnel: bool) {
    // SAFETY: all-zero bytes are a valid HttpConn (plain integers).
    unsafe { core::ptr::write_bytes(conn as *mut HttpConn, 0, 1) };
    conn.span_id = span_id;
    conn.phase = phase as u32;
    conn.reads = reads;
    conn.begin_tid = tid;
    conn.tunnel = u32::from(tunnel);
}

/// Sends one capture record; `fill` writes its data and returns how many
/// bytes of it the loader reads.
#[inline(always)]
pub fn send_capture(
    span_id: u64,
    tgid: u32,
    tid: u32,
    kind: HttpCaptureKind,
    fill: impl FnOnce(&mut [u8; HTTP_CAPTURE_LEN]) -> u32,
) {
    let Some(mut record) = HTTP_EVENTS.reserve::<HttpCapture>(0) else {
        count(Counter::LostHttpCaptures);
        return;
    };
    let capture = record.as_mut_ptr();
    // SAFETY: the reserved record is ours until submitted; every field is
    // written before it is (of `data`, the `len` bytes the loader reads).
    unsafe {
        (*capture).span_id = span_id;
        (*capture).tgid = tgid;
        (*capture).tid = tid;
        (*capture).kind = kind as u32;
        (*capture).len = fill(&mut (*capture).data);
    }
    record.submit(wake_when_filling(&HTTP_EVENTS));
}

/// Sends the address `connect` gave connection `key`, if it was seen, as
/// the peer of span (or HTTP/2 connection) `id`.
#[inline(always)]
pub fn send_peer(key: &HttpConnKey, id: u64, tgid: u32, tid: u32) {
    if let Some(peer) = HTTP_PEERS.get_ptr(key) {
        send_capture(id, tgid, tid, HttpCaptureKind::Peer, |bytes| {
            // SAFETY: a map value, copied at once.
            bytes[..PEER_ADDR_LEN].copy_from_slice(unsafe { &*peer });
            PEER_ADDR_LEN as u32
        });
    }
}
