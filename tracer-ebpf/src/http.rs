//! HTTP/1.x exchanges found in the traced process's socket syscalls
//! (`tracer spans --http`). A read whose first bytes are a request method
//! opens a span on its connection (process, fd); the first write that starts
//! with a status line turns the connection to its response; each response
//! write (or sendfile) moves the span's end; the span is sent when the
//! writing thread does anything else. The exchange stays until the
//! connection's next request or close: a later write is a later round of
//! the response (a large body as the socket drains, a proxy passing on its
//! upstream's response as it arrives), sent as a round record that moves
//! the span's end again. The loader, which knows from the response's head
//! where it ends, waits for its last round. Request and response heads are
//! copied (bounded) for the loader, which parses them.
//!
//! The mirror is an outgoing exchange: a write that starts with a method on
//! a connection with no exchange opens a client span (which leaves the
//! thread's own span in charge of its syscalls and waits, and names it as
//! its parent); the first read that starts with a status line turns it to
//! its response, each response read moves its end, and it is sent when the
//! reading thread does anything else. The address given to `connect` names
//! its peer.
//!
//! A `101` that upgrades a connection to HTTP/2 in cleartext (`Upgrade:
//! h2c`) hands the connection to `h2.rs` from that syscall on (found at
//! the thread's next syscall); its exchange's span leaves when the thread
//! moves on, marked for the loader to go on with the request as the
//! connection's stream 1.
use tracer_common::{
    Counter, HTTP_CAPTURE_READS, HttpCaptureKind, HttpConn, HttpConnKey, HttpPhase, PEER_ADDR_LEN, SPAN_NAME_LEN,
    SpanKey, THREAD_HTTP_CLIENT, THREAD_HTTP_RESPONDING, THREAD_HTTP_SWITCHING, THREAD_HTTP_SWITCHING_SHIFT,
    ThreadStats, http_span_id,
};

use crate::{
    kernel::{current_file_of, http_syscalls, now_ns, read_user, read_user_prefix, read_user_short, this_cpu},
    maps::{HTTP_CONNS, HTTP_PEERS, HTTP_PREFIXES, count},
    h2,
    http_records::{
        Data, MSGHDR_MSG_IOV, fresh_exchange, read_iovec, reset_exchange, send_capture, send_peer,
    },
    http_send::{begin_round, finish_response, flush, forget_connection, remember_taking_up},
    spans,
};



/// Bytes that tell a request line by its method ("GET ", "POST", ...).
const REQUEST_START_LEN: usize = 4;
/// How a response starts: the status line's "HTTP/1.", then the minor
/// version digit, a space and the status code.
const STATUS_LINE_PREFIX: [u8; 7] = *b"HTTP/1.";
const STATUS_LINE_START_LEN: usize = 12;
/// The status after which a connection is no longer HTTP.
const SWITCHING_PROTOCOLS: [u8; 3] = *b"101";
/// A request that makes its connection a tunnel once answered.
const CONNECT_METHOD: [u8; REQUEST_START_LEN] = *b"CONN";
/// The name of every HTTP span (the loader names it from the request line).
const HTTP_SPAN_NAME: &[u8] = b"HTTP";


#[derive(Clone, Copy, PartialEq, Eq)]
enum Io {
    Read(Data),
    Write(Data),
    Close,
    Connect,
    Other,
}

/// What syscall `nr` does with a connection. The numbers come from the
/// loader, for the running kernel's architecture.
#[inline(always)]
fn io_of(nr: u32) -> Io {
    let sys = http_syscalls();
    if nr == sys.read || nr == sys.recvfrom {
        Io::Read(Data::Buffer)
    } else if nr == sys.readv {
        Io::Read(Data::Vector)
    } else if nr == sys.recvmsg {
        Io::Read(Data::Message)
    } else if nr == sys.write || nr == sys.sendto {
        Io::Write(Data::Buffer)
    } else if nr == sys.writev {
        Io::Write(Data::Vector)
    } else if nr == sys.sendmsg {
        Io::Write(Data::Message)
    } else if nr == sys.sendfile {
        Io::Write(Data::None)
    } else if nr == sys.close {
        Io::Close
    } else if nr == sys.connect {
        Io::Connect
    } else {
        Io::Other
    }
}

/// At a syscall's entry. `args` reads its first two arguments, only for
/// the syscalls that matter here.
#[inline(always)]
pub fn on_enter(tgid: u32, stats: &mut ThreadStats, nr: u32, args: impl FnOnce() -> [u64; 2]) {
    let io = io_of(nr);
    if stats.flags & THREAD_HTTP_SWITCHING != 0 {
        stats.flags &= !THREAD_HTTP_SWITCHING;
        if h2::tracer_h2c_upgrade(stats.http_file) != 0 {
            // Its response is no longer read as HTTP/1.x: the exchange's
            // span is sent below, at its thread's next syscall that is not
            // a write of the connection.
            stats.flags &= !THREAD_HTTP_CLIENT;
        }
    }
    let responding = stats.flags & THREAD_HTTP_RESPONDING != 0;
    if io == Io::Other && !responding {
        return;
    }
    let mut file = 0;
    if io != Io::Other {
        let [fd, buf] = args();
        // The connection is its `struct file`, so descriptors dup'ed from
        // one another (a reader and a writer) are one connection.
        file = current_file_of(fd as u32).unwrap_or(u64::from(fd as u32));
        stats.syscall_file = file;
        stats.syscall_buf = buf;
    }
    // A server's response goes on with writes; an outgoing exchange's with
    // reads, and a write there is the connection's next request.
    let reading_response = stats.flags & THREAD_HTTP_CLIENT != 0 && matches!(io, Io::Read(_));
    if responding && !((matches!(io, Io::Write(_)) || reading_response) && file == stats.http_file) {
        finish_response(tgid, stats);
    }
    let key = HttpConnKey { tgid, _pad: 0, file };
    if io == Io::Close {
        forget_connection(tgid, file, stats);
        // Most closed files are not connections (a server's static files):
        // a lookup takes no lock, a delete takes its bucket's.
        if HTTP_PREFIXES.get_ptr(&key).is_some() {
            let _ = HTTP_PREFIXES.remove(&key);
        }
        if HTTP_PEERS.get_ptr(&key).is_some() {
            let _ = HTTP_PEERS.remove(&key);
        }
    } else if io == Io::Connect {
        remember_peer(&key, stats.syscall_buf);
    }
}

/// At a syscall's exit with its return value; `entered_at` is when it began.
#[inline(always)]
pub fn on_exit(tid: u32, tgid: u32, stats: &mut ThreadStats, nr: u32, ret: i64, entered_at: u64) {
    if ret <= 0 {
        return;
    }
    match io_of(nr) {
        Io::Read(data) => on_read(tid, tgid, stats, data, ret as u64),
        Io::Write(data) => on_write(tid, tgid, stats, data, ret as u64, entered_at),
        _ => {}
    }
}

/// The user address and length of the first bytes a syscall transferred.
#[inline(always)]
fn first_bytes(data: Data, arg: u64, transferred: u64) -> Option<(u64, u64)> {
    let iovec = match data {
        Data::Buffer => return Some((arg, transferred)),
        Data::Vector => arg,
        Data::Message => read_user::<u64>(arg + MSGHDR_MSG_IOV)?,
        Data::None => return None,
    };
    // The first iovec.
    let (base, len) = read_iovec(iovec)?;
    Some((base, if len < transferred { len } else { transferred }))
}

/// A request line starts with a method; the loader checks the rest.
#[inline(always)]
fn is_request_start(head: [u8; REQUEST_START_LEN]) -> bool {
    matches!(
        &head,
        b"GET " | b"POST" | b"PUT " | b"HEAD" | b"DELE" | b"PATC" | b"OPTI" | b"CONN" | b"TRAC"
    )
}

#[inline(always)]
fn on_read(tid: u32, tgid: u32, stats: &mut ThreadStats, data: Data, transferred: u64) {
    let Some((at, len)) = first_bytes(data, stats.syscall_buf, transferred) else { return };
    let key = HttpConnKey { tgid, _pad: 0, file: stats.syscall_file };
    let conn = HTTP_CONNS.get_ptr_mut(&key);
    if let Some(conn) = conn {
        // SAFETY: a map value; one connection is read by one thread at a time.
        let conn = unsafe { &mut *conn };
        if conn.phase == HttpPhase::H2 as u32 {
            h2::copy(tid, tgid, stats, conn, true, data, transferred);
            return;
        }
        if is_outgoing(conn) {
            // Whatever its bytes are, they are the response.
            on_response_read(tid, tgid, stats, conn, &key, at, len, transferred);
            return;
        }
    }
    if len < REQUEST_START_LEN as u64 {
        remember_prefix(&key, at, len);
        return;
    }
    let Some(head) = read_user::<[u8; REQUEST_START_LEN]>(at) else { return };
    if head == h2::PREFACE_START {
        h2::open(tid, tgid, stats, &key, false, data, transferred);
        return;
    }
    let mut prefix = None;
    if !is_request_start(head) {
        prefix = take_prefix(&key, head);
        if prefix.is_none() {
            // The rest of a request head split over several reads.
            if let Some(conn) = conn {
                // SAFETY: as above.
                let conn = unsafe { &mut *conn };
                if conn.phase == HttpPhase::Request as u32 && conn.reads < HTTP_CAPTURE_READS {
                    conn.reads += 1;
                    capture(conn.span_id, tgid, tid, HttpCaptureKind::Request, at, len);
                }
            }
            return;
        }
    }
    let mut kept = None;
    if let Some(conn) = conn {
        // SAFETY: as above.
        let conn = unsafe { &mut *conn };
        if conn.phase == HttpPhase::Request as u32 {
            count(Counter::HttpPipelined);
            return;
        }
        if conn.phase == HttpPhase::Response as u32 {
            flush(tgid, &key, conn, stats);
        }
        // A tunnel's exchange left the table with its span.
        if conn.tunnel == 0 {
            kept = Some(conn);
        }
    }
    let span_id = http_span_id(now_ns(), this_cpu());
    // The request was there to read since the thread was woken for this run
    // (if it was): its wait for a CPU since then is part of the request's.
    // Only the first request of a run claims it.
    let woken_at = core::mem::take(&mut stats.woken_at_ns);
    if spans::open(tid, tgid, stats, span_id, woken_at, 0, true, name_http).is_none() {
        return;
    }
    let connect = head == CONNECT_METHOD;
    let stored = match kept {
        Some(conn) => {
            reset_exchange(conn, span_id, HttpPhase::Request, 1, tid, connect);
            true
        }
        None => fresh_exchange(span_id, HttpPhase::Request, 1, tid, connect)
            .is_some_and(|fresh| HTTP_CONNS.insert(&key, fresh, 0).is_ok()),
    };
    if stored {
        if let Some(prefix) = prefix {
            capture_prefix(span_id, tgid, tid, prefix);
        }
        capture(span_id, tgid, tid, HttpCaptureKind::Request, at, len);
    }
}


/// An exchange the process began by writing a request.
#[inline(always)]
fn is_outgoing(conn: &HttpConn) -> bool {
    conn.phase == HttpPhase::ClientRequest as u32
        || conn.phase == HttpPhase::ClientResponse as u32
        || conn.phase == HttpPhase::ClientSent as u32
}

/// A read shorter than a request method whose first byte could begin one:
/// kept for the read that brings the rest. Go's net/http reads one byte of
/// each idle keep-alive connection in the background; when the client's
/// next request comes before the read is called off, its "G" is read there
/// and "ET /..." by the next read. Kept apart from the connection's
/// exchange, which the thread that wrote the last response may be ending
/// at this moment.
#[inline(always)]
fn remember_prefix(key: &HttpConnKey, at: u64, len: u64) {
    let Some(bytes) = read_user_short(at, len) else { return };
    if !(b'A'..=b'Z').contains(&(bytes as u8)) {
        return;
    }
    let _ = HTTP_PREFIXES.insert(key, &(u64::from(bytes) | (len & 3) << 32), 0);
}

/// The connection's kept prefix, if with the `head` of this read it begins
/// a request, as kept (`bytes | len << 32`). A kept prefix is used once.
#[inline(always)]
fn take_prefix(key: &HttpConnKey, head: [u8; REQUEST_START_LEN]) -> Option<u64> {
    // SAFETY: a map value, copied before its entry is deleted.
    let prefix = unsafe { *HTTP_PREFIXES.get(key)? };
    let _ = HTTP_PREFIXES.remove(key);
    let len = (prefix >> 32) & 3;
    // The kept bytes come first; the head's last ones fall off.
    let joined = (prefix as u32 | u32::from_le_bytes(head) << (8 * len)).to_le_bytes();
    is_request_start(joined).then_some(prefix)
}

fn name_http(name: &mut [u8; SPAN_NAME_LEN]) {
    name[..HTTP_SPAN_NAME.len()].copy_from_slice(HTTP_SPAN_NAME);
}

#[inline(always)]
fn on_write(tid: u32, tgid: u32, stats: &mut ThreadStats, data: Data, transferred: u64, entered_at: u64) {
    let key = HttpConnKey { tgid, _pad: 0, file: stats.syscall_file };
    if let Some(conn) = HTTP_CONNS.get_ptr_mut(&key) {
        // SAFETY: a map value; one connection is written by one thread at a time.
        let conn = unsafe { &mut *conn };
        if conn.phase == HttpPhase::H2 as u32 {
            h2::copy(tid, tgid, stats, conn, false, data, transferred);
            return;
        }
        if conn.phase == HttpPhase::Request as u32 {
            let Some((at, len)) = first_bytes(data, stats.syscall_buf, transferred) else { return };
            let Some(switching) = status_line(at, len) else { return };
            conn.tunnel |= u32::from(switching);
            conn.phase = HttpPhase::Response as u32;
            capture(conn.span_id, tgid, tid, HttpCaptureKind::Response, at, len);
            mark_end(tid, stats, conn, key.file, transferred, THREAD_HTTP_RESPONDING);
            if tid != conn.begin_tid {
                remember_taking_up(tgid, &key, conn, stats);
            }
            remember_switching(stats, conn, switching, at, len);
            return;
        } else if conn.phase == HttpPhase::Sent as u32 {
            begin_round(&key, conn, HttpPhase::Response);
        }
        if conn.phase == HttpPhase::Response as u32 {
            mark_end(tid, stats, conn, key.file, transferred, THREAD_HTTP_RESPONDING);
        }
        if conn.phase != HttpPhase::ClientResponse as u32 && conn.phase != HttpPhase::ClientSent as u32 {
            // A response, or the rest of an outgoing request.
            return;
        }
        // The connection's next outgoing request: the last one is complete.
        if conn.phase == HttpPhase::ClientResponse as u32 {
            flush(tgid, &key, conn, stats);
        }
        let _ = HTTP_CONNS.remove(&key);
    }
    open_outgoing(tid, tgid, stats, &key, data, transferred, entered_at);
}

/// Whether the first `len` bytes at `at` start a status line, and if so
/// whether it switches protocols.
#[inline(always)]
fn status_line(at: u64, len: u64) -> Option<bool> {
    if len < STATUS_LINE_START_LEN as u64 {
        return None;
    }
    let start = read_user::<[u8; STATUS_LINE_START_LEN]>(at)?;
    let prefix = [start[0], start[1], start[2], start[3], start[4], start[5], start[6]];
    (prefix == STATUS_LINE_PREFIX).then_some([start[9], start[10], start[11]] == SWITCHING_PROTOCOLS)
}

/// A response's first write (or read) at `at`, of `len` bytes (first
/// buffer): if it `switching` protocols, its bytes are looked at for
/// `h2c` at the thread's next syscall. Without a branch: the program that
/// calls this is near the verifier's limit, and the look is made by the
/// syscall entry's program (`on_enter`).
#[inline(always)]
fn remember_switching(stats: &mut ThreadStats, conn: &mut HttpConn, switching: bool, at: u64, len: u64) {
    conn.switch_at = at;
    conn.switch_len = len;
    stats.flags |= u32::from(switching) << THREAD_HTTP_SWITCHING_SHIFT;
}

/// The exchange on `file` ends here for now: a response write, or an
/// outgoing exchange's response read (`flags` says which), of `transferred`
/// bytes.
#[inline(always)]
fn mark_end(tid: u32, stats: &mut ThreadStats, conn: &mut HttpConn, file: u64, transferred: u64, flags: u32) {
    let (totals, now) = spans::own_totals(tid, stats);
    conn.end.ns = now;
    conn.end.tid = tid;
    conn.end.totals = totals;
    conn.bytes += transferred;
    stats.flags |= flags;
    stats.http_file = file;
}

/// A write with no exchange on its connection: if it starts with a method,
/// an outgoing exchange begins. Its span leaves the thread to the span it
/// is serving, if any, and names that as its parent.
#[inline(always)]
fn open_outgoing(
    tid: u32,
    tgid: u32,
    stats: &mut ThreadStats,
    key: &HttpConnKey,
    data: Data,
    transferred: u64,
    entered_at: u64,
) {
    let Some((at, len)) = first_bytes(data, stats.syscall_buf, transferred) else { return };
    if len < REQUEST_START_LEN as u64 {
        return;
    }
    let Some(head) = read_user::<[u8; REQUEST_START_LEN]>(at) else { return };
    if head == h2::PREFACE_START {
        h2::open(tid, tgid, stats, key, true, data, transferred);
        return;
    }
    if !is_request_start(head) {
        return;
    }
    let span_id = http_span_id(now_ns(), this_cpu());
    // From the write's entry: the peer may read the request, and start its
    // own span, before the write returns.
    if spans::open(tid, tgid, stats, span_id, 0, entered_at, false, name_http).is_none() {
        return;
    }
    let Some(fresh) = fresh_exchange(span_id, HttpPhase::ClientRequest, 0, tid, head == CONNECT_METHOD) else {
        spans::discard(&SpanKey { tgid, _pad: 0, span_id });
        return;
    };
    if HTTP_CONNS.insert(key, fresh, 0).is_err() {
        spans::discard(&SpanKey { tgid, _pad: 0, span_id });
        return;
    }
    capture(span_id, tgid, tid, HttpCaptureKind::OutgoingRequest, at, len);
    send_peer(key, span_id, tgid, tid);
}

/// A read of an outgoing exchange's connection, whose first bytes are
/// `len` at `at`: its status line turns it to its response
/// (a `101` to `h2c` turns the connection to HTTP/2); each response read
/// moves its end.
#[inline(always)]
fn on_response_read(
    tid: u32,
    tgid: u32,
    stats: &mut ThreadStats,
    conn: &mut HttpConn,
    key: &HttpConnKey,
    at: u64,
    len: u64,
    transferred: u64,
) {
    if conn.phase == HttpPhase::ClientRequest as u32 {
        let Some(switching) = status_line(at, len) else { return };
        conn.tunnel |= u32::from(switching);
        conn.phase = HttpPhase::ClientResponse as u32;
        capture(conn.span_id, tgid, tid, HttpCaptureKind::Response, at, len);
        mark_end(tid, stats, conn, key.file, transferred, THREAD_HTTP_RESPONDING | THREAD_HTTP_CLIENT);
        if tid != conn.begin_tid {
            remember_taking_up(tgid, key, conn, stats);
        }
        remember_switching(stats, conn, switching, at, len);
        return;
    } else if conn.phase == HttpPhase::ClientSent as u32 {
        begin_round(key, conn, HttpPhase::ClientResponse);
    }
    if conn.phase == HttpPhase::ClientResponse as u32 {
        mark_end(tid, stats, conn, key.file, transferred, THREAD_HTTP_RESPONDING | THREAD_HTTP_CLIENT);
    }
}

/// `connect(fd, addr, len)`: the address names the peer of the
/// connection's outgoing exchanges (an `AF_INET` address is shorter than
/// the bytes kept; the loader reads what its family uses).
#[inline(always)]
fn remember_peer(key: &HttpConnKey, addr: u64) {
    if let Some(bytes) = read_user::<[u8; PEER_ADDR_LEN]>(addr) {
        let _ = HTTP_PEERS.insert(key, &bytes, 0);
    }
}

/// Sends the bytes a request's first read brought alone (`prefix`, as kept
/// by `remember_prefix`), as the start of its head.
#[inline(always)]
fn capture_prefix(span_id: u64, tgid: u32, tid: u32, prefix: u64) {
    send_capture(span_id, tgid, tid, HttpCaptureKind::Request, |data| {
        let [b0, b1, b2, _] = (prefix as u32).to_le_bytes();
        data[0] = b0;
        data[1] = b1;
        data[2] = b2;
        ((prefix >> 32) & 3) as u32
    });
}

/// Copies the first bytes of a request read or response write.
#[inline(always)]
fn capture(span_id: u64, tgid: u32, tid: u32, kind: HttpCaptureKind, at: u64, len: u64) {
    send_capture(span_id, tgid, tid, kind, |data| read_user_prefix(at, len, data));
}

