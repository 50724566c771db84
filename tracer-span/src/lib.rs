//! Request span markers for `tracer`.
//!
//! `tracer spans -p PID` attaches uprobes to [`tracer_span_begin`] and
//! [`tracer_span_end`] in the target process (its executable or any loaded
//! library exporting them) and measures, in the kernel, what each span's
//! thread did between the two calls. Uprobes on exported functions were
//! chosen over USDT notes because every language can call a C function
//! (ctypes, cgo, JNI, FFI) without compiler support for probes, and because
//! with no tracer attached the cost is exactly one ordinary function call:
//! the functions do nothing but exist.
//!
//! ```
//! let span = tracer_span::Span::begin(42, c"GET /users");
//! // ... handle the request ...
//! drop(span); // tracer_span_end(42)
//! ```
use std::ffi::{CStr, c_char};

/// Marks the start of span `span_id` on the calling thread.
///
/// # Safety
/// `name` must be null or point to a NUL-terminated string; it is only
/// read (by the tracer, when attached), never stored.
#[unsafe(no_mangle)]
#[inline(never)]
pub unsafe extern "C" fn tracer_span_begin(span_id: u64, name: *const c_char) {
    // Keep the arguments live in their registers for the uprobe to read,
    // and the function from being folded into another empty one.
    std::hint::black_box((span_id, name));
}

/// Marks the end of span `span_id`.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn tracer_span_end(span_id: u64) {
    std::hint::black_box(span_id);
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

    #[test]
    fn guard_carries_its_id_and_calls_are_harmless_untraced() {
        let span = Span::begin(7, c"test");
        assert_eq!(span.id(), 7);
        drop(span);
        // SAFETY: null is allowed.
        unsafe { tracer_span_begin(8, std::ptr::null()) };
        tracer_span_end(8);
    }
}
