//! The marker ring in this library's memory (layout: `tracer_common::markers`)
//! and the flag that turns it on. Both are zero-initialised statics: they
//! live in .bss, so an untraced process pays no memory for the ring.
use std::{
    cell::{Cell, UnsafeCell},
    ffi::c_char,
    mem::offset_of,
    sync::{
        Once,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
};

use tracer_common::{
    MARKER_HEAD_OFFSET, MARKER_OVERFLOW_OFFSET, MARKER_RECORDS_OFFSET, MARKER_RING_BYTES, MARKER_RING_RECORDS,
    MARKER_TAIL_OFFSET, MarkerRecord, SPAN_NAME_LEN,
};

/// Non-zero while a tracer reads the ring; set and cleared by the tracer
/// (`process_vm_writev`), checked with one relaxed load per marker.
#[unsafe(no_mangle)]
pub static TRACER_SPAN_ENABLED: AtomicU32 = AtomicU32::new(0);

/// The ring the tracer drains.
#[unsafe(no_mangle)]
pub static TRACER_SPAN_RING: MarkerRing = MarkerRing::new();

/// A record slot: written only by the writer that reserved its position,
/// its `seq` last and atomically; read by the tracer once committed.
#[repr(transparent)]
pub struct Slot(UnsafeCell<MarkerRecord>);

impl Slot {
    /// The commit word.
    fn seq(&self) -> &AtomicU64 {
        // SAFETY: `seq` is an aligned u64 inside the slot, which lives as
        // long as the ring, and every access to it goes through an atomic.
        unsafe { AtomicU64::from_ptr(std::ptr::addr_of_mut!((*self.0.get()).seq)) }
    }
}

#[repr(C, align(64))]
pub struct MarkerRing {
    head: AtomicU64,
    _head_line: [u64; 7],
    tail: AtomicU64,
    overflow: AtomicU64,
    _tail_line: [u64; 6],
    records: [Slot; MARKER_RING_RECORDS],
}

// The layout the tracer reads.
const _: () = {
    assert!(size_of::<MarkerRing>() == MARKER_RING_BYTES);
    assert!(offset_of!(MarkerRing, head) == MARKER_HEAD_OFFSET);
    assert!(offset_of!(MarkerRing, tail) == MARKER_TAIL_OFFSET);
    assert!(offset_of!(MarkerRing, overflow) == MARKER_OVERFLOW_OFFSET);
    assert!(offset_of!(MarkerRing, records) == MARKER_RECORDS_OFFSET);
};

// SAFETY: a slot's body is written only by the one writer whose CAS on
// `head` reserved its position, before it publishes `seq` (Release); the
// tracer, the only reader, reads it only after that, from another process.
unsafe impl Sync for MarkerRing {}

impl MarkerRing {
    const fn new() -> MarkerRing {
        const EMPTY: Slot = Slot(UnsafeCell::new(MarkerRecord {
            seq: 0,
            ts_ns: 0,
            span_id: 0,
            tid: 0,
            kind: 0,
            name: [0; SPAN_NAME_LEN],
        }));
        MarkerRing {
            head: AtomicU64::new(0),
            _head_line: [0; 7],
            tail: AtomicU64::new(0),
            overflow: AtomicU64::new(0),
            _tail_line: [0; 6],
            records: [EMPTY; MARKER_RING_RECORDS],
        }
    }

    /// Appends a record, or counts it in `overflow` when the tracer has
    /// not yet read far enough to make room.
    fn push(&self, kind: u32, span_id: u64, name: *const c_char) {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let tail = self.tail.load(Ordering::Acquire);
            if head.wrapping_sub(tail) >= MARKER_RING_RECORDS as u64 {
                self.overflow.fetch_add(1, Ordering::Relaxed);
                return;
            }
            match self.head.compare_exchange_weak(head, head + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => head = now,
            }
        }
        let slot = &self.records[(head % MARKER_RING_RECORDS as u64) as usize];
        let body = slot.0.get();
        // SAFETY: this position is ours alone until `seq` publishes it;
        // every field but `seq` is written through the raw pointer.
        unsafe {
            (*body).ts_ns = monotonic_ns();
            (*body).span_id = span_id;
            (*body).tid = thread_id();
            (*body).kind = kind;
            (*body).name = [0; SPAN_NAME_LEN];
            copy_name(name, &mut (*body).name);
        }
        slot.seq().store(head + 1, Ordering::Release);
    }

    /// In a forked child: its copy of the parent's unread records, and of
    /// positions the parent's other threads had reserved, are not its own.
    fn forget_parents_records(&self) {
        let head = self.head.load(Ordering::Relaxed);
        self.tail.store(head, Ordering::Relaxed);
        self.overflow.store(0, Ordering::Relaxed);
    }
}

/// Records a marker when a tracer is attached; one load and a branch when not.
#[inline(always)]
pub fn record(kind: u32, span_id: u64, name: *const c_char) {
    if TRACER_SPAN_ENABLED.load(Ordering::Relaxed) != 0 {
        TRACER_SPAN_RING.push(kind, span_id, name);
    }
}

thread_local! {
    /// The calling thread's id (0: not asked yet): gettid is a syscall.
    static THREAD_ID: Cell<u32> = const { Cell::new(0) };
}

static AT_FORK: Once = Once::new();

fn thread_id() -> u32 {
    THREAD_ID.with(|cached| {
        if cached.get() == 0 {
            AT_FORK.call_once(|| {
                // SAFETY: registers a handler that only touches this thread's
                // cache and atomics; a failure (ENOMEM) leaves forks untraced
                // only in that their first spans carry the parent's TID.
                unsafe { libc::pthread_atfork(None, None, Some(in_forked_child)) };
            });
            // SAFETY: gettid has no preconditions.
            cached.set(unsafe { libc::gettid() } as u32);
        }
        cached.get()
    })
}

/// A forked child is a process of its own, untraced until a tracer
/// attaches to it: the thread's cached id is the parent's, and the ring
/// (a copy of the parent's) starts empty.
extern "C" fn in_forked_child() {
    THREAD_ID.with(|cached| cached.set(0));
    TRACER_SPAN_ENABLED.store(0, Ordering::Relaxed);
    TRACER_SPAN_RING.forget_parents_records();
}

fn monotonic_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out pointer; CLOCK_MONOTONIC always exists (vDSO).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// Copies at most `SPAN_NAME_LEN - 1` bytes of a NUL-terminated string.
fn copy_name(name: *const c_char, out: &mut [u8; SPAN_NAME_LEN]) {
    if name.is_null() {
        return;
    }
    for (i, byte) in out.iter_mut().take(SPAN_NAME_LEN - 1).enumerate() {
        // SAFETY: the caller's string, read up to its NUL.
        let c = unsafe { *name.add(i) } as u8;
        if c == 0 {
            return;
        }
        *byte = c;
    }
}

/// The ring's state, for the tests of this crate.
#[cfg(test)]
pub(crate) mod inspect {
    use super::*;

    pub fn head() -> u64 {
        TRACER_SPAN_RING.head.load(Ordering::Acquire)
    }

    pub fn overflow() -> u64 {
        TRACER_SPAN_RING.overflow.load(Ordering::Relaxed)
    }

    /// Marks everything written so far as read, as the tracer does.
    pub fn consume_all() {
        TRACER_SPAN_RING.tail.store(head(), Ordering::Release);
    }

    /// The record at `position`, once committed.
    pub fn record_at(position: u64) -> Option<MarkerRecord> {
        let slot = &TRACER_SPAN_RING.records[(position % MARKER_RING_RECORDS as u64) as usize];
        // SAFETY: committed, so no writer touches it until it is consumed.
        (slot.seq().load(Ordering::Acquire) == position + 1).then(|| unsafe { *slot.0.get() })
    }
}
