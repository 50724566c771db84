//! Types and names shared by the kernel programs (`tracer-ebpf`) and the
//! loader (`tracer-user`).
//!
//! Every type here crosses the kernel/user boundary as raw bytes, so each is
//! `#[repr(C)]`, `Copy`, and laid out without implicit padding (checked by the
//! `const` assertion next to each type). The `user` feature adds `aya::Pod`.
//!
//! One module per feature; everything is also re-exported here, so
//! `tracer_common::ThreadStats` and `tracer_common::sched::ThreadStats` name
//! the same type.
#![no_std]

/// Marks boundary types as `aya::Pod` for the loader (`user` feature).
/// Only for types that are `repr(C)`, `Copy`, made only of integers (and
/// arrays and structs of them), with their no-padding size asserted next to
/// their definition.
macro_rules! impl_pod {
    ($($ty:ty),* $(,)?) => {
        $(
            // SAFETY: see the macro's contract above: every bit pattern of
            // such a type is a valid value.
            #[cfg(feature = "user")]
            unsafe impl aya::Pod for $ty {}
        )*
    };
}

pub mod block;
pub mod config;
pub mod counters;
pub mod hist;
pub mod http;
pub mod maps;
pub mod programs;
pub mod sched;
pub mod spans;
pub mod syscalls;
pub mod timeline;
pub mod totals;

pub use block::*;
pub use config::*;
pub use counters::*;
pub use hist::*;
pub use http::*;
pub use maps::*;
pub use sched::*;
pub use spans::*;
pub use syscalls::*;
pub use timeline::*;
pub use totals::*;
