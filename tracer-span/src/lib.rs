//! Request span markers for `tracer`.
//!
//! [`tracer_span_begin`] and [`tracer_span_end`] are exported C functions,
//! so every language can call them (ctypes, cgo, JNI, FFI) without compiler
//! support for probes. With no tracer attached each does one relaxed load
//! of [`TRACER_SPAN_ENABLED`] and a branch. `tracer spans -p PID` finds that
//! flag and the ring [`TRACER_SPAN_RING`] by their symbols in the target's
//! executable or libraries, sets the flag, and from then on each
//! marker appends a 64-byte record (kind, thread id, CLOCK_MONOTONIC time,
//! span id, name) to the ring, in this library's own memory: no trap into
//! the kernel per span. The tracer reads the ring a few
//! times a second (`process_vm_readv`) and breaks each span down with the
//! thread's scheduler events from the kernel; when the process exits, the
//! kernel copies out what the tracer had not read yet (where it reports the
//! exit before the memory goes: Linux 6.18 does). With
//! `--marker-uprobes` (and by default with `--http`) the tracer attaches
//! uprobes to the two functions instead. A full ring drops records and
//! counts them; the tracer reports the count. The ring is a zeroed static,
//! so it takes no memory until a tracer turns it on; a forked child starts
//! with it off and empty.
//!
//! ```
//! let span = tracer_span::Span::begin(42, c"GET /users");
//! // ... handle the request ...
//! drop(span); // tracer_span_end(42)
//! ```
mod ring;

use std::ffi::{CStr, c_char};

pub use ring::{MarkerRing, TRACER_SPAN_ENABLED, TRACER_SPAN_RING};
use tracer_common::{MARKER_BEGIN, MARKER_END};

/// Marks the start of span `span_id` on the calling thread.
///
/// # Safety
/// `name` must be null or point to a NUL-terminated string; its first 31
/// bytes are copied when a tracer is attached, never stored.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe extern "C" fn tracer_span_begin(span_id: u64, name: *const c_char) {
    ring::record(MARKER_BEGIN, span_id, name);
}

/// Marks the end of span `span_id`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tracer_span_end(span_id: u64) {
    ring::record(MARKER_END, span_id, std::ptr::null());
}

/// Begins a span; it ends when dropped.
#[must_use = "the span ends when this guard is dropped"]
pub struct Span {
    id: u64,
}

impl Span {
    pub fn begin(id: u64, name: &CStr) -> Span {
        // SAFETY: a valid NUL-terminated string.
        unsafe { tracer_span_begin(id, name.as_ptr()) };
        Span { id }
    }

    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        tracer_span_end(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test drives the shared ring through its states in turn (the
    /// ring and its flag are process-wide statics).
    #[test]
    fn guards_carry_their_id_and_enabled_markers_fill_the_ring_from_many_threads_then_count_overflow() {
        use std::sync::atomic::Ordering;
        use tracer_common::{MARKER_RING_RECORDS, SPAN_NAME_LEN};

        use crate::ring::inspect;

        let start = inspect::head();
        let span = Span::begin(7, c"test");
        assert_eq!(span.id(), 7);
        drop(span);
        // SAFETY: null is allowed.
        unsafe { tracer_span_begin(8, std::ptr::null()) };
        tracer_span_end(8);
        assert_eq!(inspect::head(), start, "off: nothing written");

        TRACER_SPAN_ENABLED.store(1, Ordering::Relaxed);
        const THREADS: u64 = 4;
        const PER_THREAD: u64 = 1000;
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..PER_THREAD {
                        let span = Span::begin(t * PER_THREAD + i, c"a name longer than thirty-one bytes, cut");
                        drop(span);
                    }
                    // SAFETY: gettid has no preconditions.
                    unsafe { libc::gettid() as u32 }
                })
            })
            .collect();
        let tids: Vec<u32> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let written = inspect::head() - start;
        assert_eq!(written, 2 * THREADS * PER_THREAD);
        let mut begun = std::collections::HashMap::new();
        for position in start..start + written {
            let record = inspect::record_at(position).expect("committed");
            assert!(tids.contains(&record.tid), "{record:?}");
            match record.kind {
                MARKER_BEGIN => {
                    assert_eq!(&record.name[..SPAN_NAME_LEN - 1], &b"a name longer than thirty-one bytes, cut"[..31]);
                    assert_eq!(record.name[SPAN_NAME_LEN - 1], 0);
                    begun.insert(record.span_id, (record.tid, record.ts_ns));
                }
                MARKER_END => {
                    let (tid, began) = begun[&record.span_id];
                    assert_eq!(tid, record.tid);
                    assert!(record.ts_ns >= began);
                }
                kind => panic!("kind {kind}"),
            }
        }
        assert_eq!(begun.len() as u64, THREADS * PER_THREAD);

        // Unread, the ring takes what fits and counts the rest.
        inspect::consume_all();
        let before = inspect::overflow();
        let spans = MARKER_RING_RECORDS as u64 / 2 + 10;
        for id in 0..spans {
            tracer_span_end(id);
            tracer_span_end(id);
        }
        assert_eq!(inspect::overflow() - before, 20);
        TRACER_SPAN_ENABLED.store(0, Ordering::Relaxed);
        inspect::consume_all();
        let head = inspect::head();
        tracer_span_end(1);
        assert_eq!(inspect::head(), head, "off: nothing written");
    }
}
