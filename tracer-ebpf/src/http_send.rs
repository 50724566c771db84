//! How an HTTP exchange's span leaves the kernel (`http.rs` finds the
//! exchanges): when the thread that wrote its response moves on, as later
//! rounds of the same response, at the connection's close, and, for a
//! request answered on another thread than the one that read it, with the
//! point where that thread took it up.
use tracer_common::{
    Counter, H2C_UPGRADE, H2C_UPGRADE_CLIENT, HttpConn, HttpConnKey, HttpPhase, SPAN_CLIENT, SPAN_H2C_UPGRADE,
    SPAN_HTTP, SPAN_HTTP_ROUND, SPAN_MOVED_THREAD, SPAN_NAME_LEN, SPAN_TOP, SpanEvent, SpanKey, THREAD_HTTP_CLIENT, THREAD_HTTP_RESPONDING, ThreadStats, TopEntry,
};

use crate::{
    h2,
    maps::{HTTP_CONNS, HTTP_ROUNDS, SPAN_EVENTS, count, wake_when_filling},
    spans,
};

/// The first response write (or read) of an exchange, on another thread
/// than the one that opened it: this thread took the request up at the
/// latest when it was woken for this run (or got its CPU, if it was not
/// woken), unless that was before the span opened (then at this write).
/// Kept (in `HTTP_ROUNDS`, free until the span is sent) for `flush`.
#[inline(always)]
pub fn remember_taking_up(tgid: u32, key: &HttpConnKey, conn: &HttpConn, stats: &ThreadStats) {
    let Some(opened) = spans::opened_at(&SpanKey { tgid, _pad: 0, span_id: conn.span_id }) else { return };
    if HTTP_ROUNDS.insert(key, &conn.end, 0).is_err() {
        return;
    }
    let Some(taken_up) = HTTP_ROUNDS.get_ptr_mut(key) else { return };
    // SAFETY: a map value just inserted; this thread's syscall is the
    // connection's only user now.
    let taken_up = unsafe { &mut *taken_up };
    let (got_cpu, woken) = (stats.on_cpu_since_ns, stats.woken_at_ns);
    if got_cpu < opened || got_cpu > taken_up.ns {
        return;
    }
    // The thread has run without a switch since: its totals are those of
    // the switch-in.
    taken_up.totals = stats.totals;
    taken_up.ns = got_cpu;
    if woken != 0 && opened <= woken && woken <= got_cpu {
        spans::before_wakeup(&mut taken_up.totals, stats, got_cpu - woken);
        taken_up.ns = woken;
    }
}

/// A write (or read) after the exchange's span was sent: a later round of
/// its response, which starts where the span ended so far.
#[inline(always)]
pub fn begin_round(key: &HttpConnKey, conn: &mut HttpConn, phase: HttpPhase) {
    if HTTP_ROUNDS.insert(key, &conn.end, 0).is_ok() {
        conn.phase = phase as u32;
    }
}

/// The thread that wrote a response (or read an outgoing exchange's) moved
/// on: its span, or its round, is complete.
#[inline(always)]
pub fn finish_response(tgid: u32, stats: &mut ThreadStats) {
    stats.flags &= !(THREAD_HTTP_RESPONDING | THREAD_HTTP_CLIENT);
    let key = HttpConnKey { tgid, _pad: 0, file: stats.http_file };
    let Some(conn) = HTTP_CONNS.get_ptr_mut(&key) else { return };
    // SAFETY: a map value; its connection's syscalls are this thread's now.
    let conn = unsafe { &mut *conn };
    if conn.phase == HttpPhase::Response as u32 || conn.phase == HttpPhase::ClientResponse as u32 {
        flush(tgid, &key, conn, stats);
    } else {
        send_upgrading_span(tgid, &key, conn, stats);
    }
}

/// The span of the exchange whose `101` switched `conn` to HTTP/2, if it
/// has not left: the loader goes on with its request as the connection's
/// stream 1.
#[inline(always)]
fn send_upgrading_span(tgid: u32, key: &HttpConnKey, conn: &mut HttpConn, stats: &mut ThreadStats) {
    let outgoing = match conn.tunnel {
        H2C_UPGRADE => false,
        H2C_UPGRADE_CLIENT => true,
        _ => return,
    };
    send_span(tgid, key, conn, stats, SPAN_HTTP | SPAN_H2C_UPGRADE | if outgoing { SPAN_CLIENT } else { 0 });
    conn.tunnel = 0;
}

/// Sends what an exchange whose response is being written (or read) has
/// not sent: its span, or the round since. The exchange stays, for later
/// rounds.
#[inline(always)]
pub fn flush(tgid: u32, key: &HttpConnKey, conn: &mut HttpConn, stats: &mut ThreadStats) {
    let outgoing = conn.phase == HttpPhase::ClientResponse as u32;
    let flags = SPAN_HTTP | if outgoing { SPAN_CLIENT } else { 0 };
    if conn.sent == 0 {
        send_span(tgid, key, conn, stats, flags);
        conn.sent = 1;
    } else {
        send_round(tgid, key, conn, flags);
    }
    conn.phase = if outgoing { HttpPhase::ClientSent as u32 } else { HttpPhase::Sent as u32 };
    if conn.tunnel != 0 {
        let _ = HTTP_CONNS.remove(key);
    }
}

/// Sends the exchange's span, which ends where its response has so far.
#[inline(always)]
fn send_span(tgid: u32, key: &HttpConnKey, conn: &mut HttpConn, stats: &mut ThreadStats, flags: u32) {
    let span = SpanKey { tgid, _pad: 0, span_id: conn.span_id };
    let taken_up = if conn.end.tid != conn.begin_tid { HTTP_ROUNDS.get_ptr(key) } else { None };
    // SAFETY: a map value, read at once.
    let taken_up = taken_up.map(|t| unsafe { &*t });
    spans::close(&span, conn.end.tid, conn.end.ns, Some(&conn.end.totals), flags, conn.bytes, taken_up);
    spans::release_thread(stats, conn.span_id);
}

/// Sends a later round of `conn`'s response: from where its span ended
/// before (kept at the round's first write) to its end now, with the
/// thread's totals over it when one thread did both.
#[inline(always)]
fn send_round(tgid: u32, key: &HttpConnKey, conn: &HttpConn, flags: u32) {
    let Some(start) = HTTP_ROUNDS.get_ptr(key) else { return };
    // SAFETY: a map value, copied into the record at once.
    let start = unsafe { &*start };
    let Some(mut record) = SPAN_EVENTS.reserve::<SpanEvent>(0) else {
        count(Counter::LostSpans);
        return;
    };
    let moved = start.tid != conn.end.tid;
    let event = record.as_mut_ptr();
    // SAFETY: the reserved record is ours until submitted; every field is
    // written before it is.
    unsafe {
        (*event).span_id = conn.span_id;
        (*event).tgid = tgid;
        (*event).tid_begin = start.tid;
        (*event).tid_end = conn.end.tid;
        (*event).flags = flags | SPAN_HTTP_ROUND | if moved { SPAN_MOVED_THREAD } else { 0 };
        (*event).start_ns = start.ns;
        (*event).end_ns = conn.end.ns;
        (*event).parent_span_id = 0;
        (*event).name = [0; SPAN_NAME_LEN];
        if moved {
            (*event).delta.set_since(&start.totals, &start.totals);
        } else {
            (*event).delta.set_since(&conn.end.totals, &start.totals);
        }
        (*event).syscalls = [TopEntry { id: 0, count: 0, ns: 0 }; SPAN_TOP];
        (*event).holders = [TopEntry { id: 0, count: 0, ns: 0 }; SPAN_TOP];
        (*event).response_bytes = conn.bytes;
    }
    record.submit(wake_when_filling(&SPAN_EVENTS));
}

/// `close(fd)`: an exchange in progress on it ends here.
#[inline(always)]
pub fn forget_connection(tgid: u32, file: u64, stats: &mut ThreadStats) {
    let key = HttpConnKey { tgid, _pad: 0, file };
    let Some(conn) = HTTP_CONNS.get_ptr_mut(&key) else { return };
    // SAFETY: a map value, used before its entry is deleted.
    let conn = unsafe { &mut *conn };
    if conn.phase == HttpPhase::H2 as u32 {
        send_upgrading_span(tgid, &key, conn, stats);
        h2::close(tgid, conn.span_id);
    } else if conn.phase == HttpPhase::Response as u32 || conn.phase == HttpPhase::ClientResponse as u32 {
        flush(tgid, &key, conn, stats);
    } else if conn.phase == HttpPhase::Request as u32 || conn.phase == HttpPhase::ClientRequest as u32 {
        count(Counter::HttpUnanswered);
        spans::discard(&SpanKey { tgid, _pad: 0, span_id: conn.span_id });
        spans::release_thread(stats, conn.span_id);
    }
    let _ = HTTP_CONNS.remove(&key);
}
