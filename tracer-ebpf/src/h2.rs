//! HTTP/2 connections (cleartext, with prior knowledge: `h2load`, gRPC
//! without TLS): found by the connection preface, read (a server) or
//! written (a client), or by the `101` of an `Upgrade: h2c`. From then on
//! each read and write of the connection is copied to the loader in one
//! record, with when it returned and the
//! thread's totals then; the loader follows the frames, decodes the headers
//! (HPACK, whose table spans the whole connection) and makes a span of each
//! stream. Nothing is parsed here: frames cross reads, and a byte loop over
//! a buffer is more than the verifier allows. The bytes go through a
//! per-CPU scratch buffer, so that the record is exactly as long as they
//! are (one helper call per buffer, no loop over them).
use aya_ebpf::{macros::map, maps::Array};
use tracer_common::{
    Counter, H2_COPIED_PER_SYSCALL, H2_SCRATCH_LEN, H2C_UPGRADE, H2C_UPGRADE_CLIENT, H2Record, MAX_CPUS,
    HttpCaptureKind, HttpConn, HttpConnKey, HttpPhase, ThreadStats, http_span_id,
};

use crate::{
    http_records::{Data, MSGHDR_MSG_IOV, fresh_exchange, read_iovec, send_peer},
    kernel::{current_ids, now_ns, read_user, this_cpu},
    maps::{HTTP_CONNS, HTTP_EVENTS, count, wake_when_filling},
    spans,
};

/// The first bytes of the connection preface (`PRI * HTTP/2.0`).
pub const PREFACE_START: [u8; 4] = *b"PRI ";
/// Size of a `struct iovec`.
const IOVEC_SIZE: u64 = 16;
/// Iovecs of a vectored read or write followed.
const MAX_IOVECS: u64 = 8;
/// Bounds offsets and lengths in the scratch buffer for the verifier: both
/// are at most `H2_COPIED_PER_SYSCALL`, so together they stay inside it.
const COPY_MASK: u64 = (H2_SCRATCH_LEN - 1) as u64;
const RECORD_LEN: usize = core::mem::size_of::<H2Record>();
/// How far into a `101` response its `Upgrade: h2c` is looked for.
const UPGRADE_HEAD_SCAN: usize = 256;
/// The upgrade's token, as a header's whole value.
const H2C_VALUE: [u8; 4] = *b"h2c\r";

/// A record being made: the header, then room for twice the bytes copied
/// (the second half only keeps the verifier's bounds simple).
#[repr(C)]
pub struct H2Scratch {
    record: H2Record,
    bytes: [u8; H2_SCRATCH_LEN],
}

/// One per CPU (the loader sizes it); an array, as per-CPU map values
/// cannot be this large.
#[map]
static H2_SCRATCH: Array<H2Scratch> = Array::with_max_entries(MAX_CPUS, 0);

/// This CPU's scratch slot.
#[inline(always)]
fn scratch() -> Option<&'static mut H2Scratch> {
    let slot = H2_SCRATCH.get_ptr_mut(this_cpu())?;
    // SAFETY: this CPU's slot; programs do not nest on a CPU here.
    Some(unsafe { &mut *slot })
}

/// A read (`client` false) or write (`client` true) that starts with the
/// preface: the connection is HTTP/2 from here on, and this is its first
/// copied syscall.
#[inline(always)]
pub fn open(tid: u32, tgid: u32, stats: &mut ThreadStats, key: &HttpConnKey, client: bool, data: Data, transferred: u64) {
    let id = http_span_id(now_ns(), this_cpu());
    let Some(fresh) = fresh_exchange(id, HttpPhase::H2, 0, tid, false) else { return };
    if HTTP_CONNS.insert(key, fresh, 0).is_err() {
        return;
    }
    let Some(conn) = HTTP_CONNS.get_ptr_mut(key) else { return };
    // SAFETY: a map value just inserted; this thread's syscall is its only user now.
    copy(tid, tgid, stats, unsafe { &mut *conn }, !client, data, transferred);
    // After the first record, which makes the connection known to the loader.
    if client {
        send_peer(key, id, tgid, tid);
    }
}

/// The thread's next syscall after a `101` response was written (or read,
/// by an outgoing exchange) on connection `file` of the current process:
/// if the `101` switched it to HTTP/2 in cleartext (`Upgrade: h2c`), the
/// connection is HTTP/2 from that response's syscall on, which is sent now
/// as its first record (its bytes are still in the buffer it was written
/// from or read into, unless the process reused that buffer in between:
/// then the connection is not followed). Returns 1 if it did.
///
/// A global function: the verifier walks it once, not once for each path
/// that reaches it. Hence a plain number for an argument and its own map
/// lookups.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tracer_h2c_upgrade(file: u64) -> u64 {
    let (tid, tgid) = current_ids();
    let key = HttpConnKey { tgid, _pad: 0, file };
    let (Some(scratch), Some(conn)) = (scratch(), HTTP_CONNS.get_ptr_mut(&key)) else { return 0 };
    // SAFETY: a map value; this thread's syscall is its only user now.
    let conn = unsafe { &mut *conn };
    let outgoing = conn.phase == HttpPhase::ClientResponse as u32;
    if conn.tunnel == 0 || !(outgoing || conn.phase == HttpPhase::Response as u32) {
        return 0;
    }
    // Bytes past those read must not be an earlier record's.
    for word in 0..UPGRADE_HEAD_SCAN / 8 {
        // SAFETY: inside the scratch buffer (UPGRADE_HEAD_SCAN bytes of it).
        unsafe { scratch.bytes.as_mut_ptr().cast::<u64>().add(word).write_unaligned(0) };
    }
    // The syscall's bytes so far are all of its (the exchange's first).
    let transferred = conn.bytes;
    let len = if conn.switch_len < transferred { conn.switch_len } else { transferred };
    let copied = copy_user(&mut scratch.bytes, 0, conn.switch_at, len);
    if copied == 0 || !says_h2c(&scratch.bytes) {
        return 0;
    }
    conn.phase = HttpPhase::H2 as u32;
    conn.tunnel = if outgoing { H2C_UPGRADE_CLIENT } else { H2C_UPGRADE };
    // The `101`'s syscall is the first of its direction.
    conn.reads = u32::from(outgoing);
    conn.sent = u32::from(!outgoing);
    let record = &mut scratch.record;
    record.seq = 1;
    record.span_id = conn.span_id;
    record.tgid = tgid;
    record.tid = conn.end.tid;
    record.kind = if outgoing { HttpCaptureKind::H2Read } else { HttpCaptureKind::H2Write } as u32;
    // When that syscall returned, and its thread's totals then.
    record.ts_ns = conn.end.ns;
    record.transferred = transferred;
    record.cpu = this_cpu();
    record.totals = conn.end.totals;
    record.len = copied as u32;
    send(scratch, copied);
    if outgoing {
        // A client: its HTTP/2 connection's peer, as for one opened with the preface.
        send_peer(&key, conn.span_id, tgid, tid);
    }
    1
}

/// Whether a `101` response's head (its first bytes) has `h2c` as a
/// header's whole value: after `:` or a space, before `\r` (a websocket's
/// base64 key cannot hold those bytes). Without a branch in the loop.
#[inline(always)]
fn says_h2c(bytes: &[u8; H2_SCRATCH_LEN]) -> bool {
    let mut found = 0u64;
    for i in 1..UPGRADE_HEAD_SCAN - H2C_VALUE.len() {
        let word = u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let before = bytes[i - 1];
        found |= is_zero(u64::from(word ^ u32::from_le_bytes(H2C_VALUE)))
            & (is_zero(u64::from(before ^ b' ')) | is_zero(u64::from(before ^ b':')));
    }
    found != 0
}

/// 1 if `x` is 0, else 0, without a branch.
#[inline(always)]
fn is_zero(x: u64) -> u64 {
    1 ^ ((x | x.wrapping_neg()) >> 63)
}

/// Sends a read or write of HTTP/2 connection `conn` with the bytes it
/// transferred, up to [`H2_COPIED_PER_SYSCALL`] of them, numbered in its
/// direction (`HttpConn::reads` counts the reads, `sent` the writes), so
/// that the loader knows when one was lost.
#[inline(always)]
pub fn copy(tid: u32, tgid: u32, stats: &mut ThreadStats, conn: &mut HttpConn, read: bool, data: Data, transferred: u64) {
    let Some(scratch) = scratch() else { return };
    let seq = if read { &mut conn.reads } else { &mut conn.sent };
    *seq = seq.wrapping_add(1);
    let seq = *seq;
    let (totals, now) = spans::own_totals(tid, stats);
    let record = &mut scratch.record;
    record.seq = seq;
    record.span_id = conn.span_id;
    record.tgid = tgid;
    record.tid = tid;
    record.kind = if read { HttpCaptureKind::H2Read } else { HttpCaptureKind::H2Write } as u32;
    record.ts_ns = now;
    record.transferred = transferred;
    record.cpu = this_cpu();
    record.totals = totals;
    let copied = copy_bytes(&mut scratch.bytes, data, stats.syscall_buf, transferred);
    scratch.record.len = copied as u32;
    send(scratch, copied);
}

/// Tells the loader that connection `id` closed.
#[inline(always)]
pub fn close(tgid: u32, id: u64) {
    let Some(scratch) = scratch() else { return };
    scratch.record = H2Record { span_id: id, tgid, kind: HttpCaptureKind::H2Close as u32, ..H2Record::default() };
    send(scratch, 0);
}

#[inline(always)]
fn send(scratch: &H2Scratch, copied: u64) {
    // SAFETY: the scratch slot is plain bytes from its start.
    let bytes = unsafe { core::slice::from_raw_parts((scratch as *const H2Scratch).cast::<u8>(), RECORD_LEN + H2_SCRATCH_LEN) };
    let len = RECORD_LEN + (copied & COPY_MASK) as usize;
    if len > bytes.len() || HTTP_EVENTS.output::<[u8]>(&bytes[..len], wake_when_filling(&HTTP_EVENTS)).is_err() {
        count(Counter::LostHttpCaptures);
    }
}

/// Copies the bytes a syscall transferred, from its buffer or its iovecs,
/// into `out`. Returns how many were copied.
#[inline(always)]
fn copy_bytes(out: &mut [u8; H2_SCRATCH_LEN], data: Data, arg: u64, transferred: u64) -> u64 {
    let iovecs = match data {
        Data::Buffer => return copy_user(out, 0, arg, transferred),
        Data::Vector => arg,
        Data::Message => match read_user::<u64>(arg + MSGHDR_MSG_IOV) {
            Some(iovecs) => iovecs,
            None => return 0,
        },
        Data::None => return 0,
    };
    let mut copied = 0;
    for i in 0..MAX_IOVECS {
        if copied >= transferred || copied >= H2_COPIED_PER_SYSCALL as u64 {
            break;
        }
        let iovec = iovecs + i * IOVEC_SIZE;
        let Some((base, len)) = read_iovec(iovec) else { break };
        let len = if len < transferred - copied { len } else { transferred - copied };
        let got = copy_user(out, copied, base, len);
        copied += got;
        if got < len {
            break;
        }
    }
    copied
}

/// Copies `len` bytes at user address `src` to `out[offset..]`, as many as
/// fit in [`H2_COPIED_PER_SYSCALL`]. Returns how many.
#[inline(always)]
fn copy_user(out: &mut [u8; H2_SCRATCH_LEN], offset: u64, src: u64, len: u64) -> u64 {
    let limit = H2_COPIED_PER_SYSCALL as u64;
    if offset >= limit || len == 0 {
        return 0;
    }
    let want = if len < limit - offset { len } else { limit - offset };
    let (offset, want) = (offset & COPY_MASK, want & COPY_MASK);
    // SAFETY: offset and want are each below H2_SCRATCH_LEN (masked) and,
    // as computed, together at most H2_COPIED_PER_SYSCALL, half of it;
    // the helper checks `src`.
    let ret = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_user(
            out.as_mut_ptr().add(offset as usize).cast(),
            want as u32,
            src as *const core::ffi::c_void,
        )
    };
    if ret == 0 { want } else { 0 }
}
