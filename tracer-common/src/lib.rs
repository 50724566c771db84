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

/// Declares a family of values carried in an integer field across the
/// boundary as a `#[repr(u32)]` or `#[repr(u8)]` enum. The field itself stays
/// an integer: an enum is not `Pod`, since not every bit pattern is one of
/// its variants. The kernel stores `Variant as u32`; a reader converts back
/// with `from_u32`/`from_u8` (`None` for a value it does not know) or
/// `TryFrom` (the unknown value as the error).
macro_rules! raw_enum {
    ($(#[$meta:meta])* pub enum $name:ident: u32 { $($body:tt)* }) => {
        raw_enum!(@define $(#[$meta])* $name, u32, from_u32, { $($body)* });
    };
    ($(#[$meta:meta])* pub enum $name:ident: u8 { $($body:tt)* }) => {
        raw_enum!(@define $(#[$meta])* $name, u8, from_u8, { $($body)* });
    };
    (@define $(#[$meta:meta])* $name:ident, $raw:ident, $from:ident, {
        $($(#[$variant_meta:meta])* $variant:ident = $value:literal,)*
    }) => {
        $(#[$meta])*
        #[repr($raw)]
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$variant_meta])* $variant = $value,)*
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [$name; [$($value),*].len()] = [$($name::$variant),*];

            /// The variant stored as `raw`, if there is one.
            #[inline(always)]
            pub const fn $from(raw: $raw) -> Option<$name> {
                match raw {
                    $($value => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl TryFrom<$raw> for $name {
            /// The raw value that names no variant.
            type Error = $raw;

            #[inline(always)]
            fn try_from(raw: $raw) -> Result<$name, $raw> {
                $name::$from(raw).ok_or(raw)
            }
        }
    };
}

pub mod block;
pub mod config;
pub mod counters;
pub mod cpus;
pub mod hist;
pub mod holders;
pub mod http;
pub mod maps;
pub mod markers;
pub mod programs;
pub mod sched;
pub mod spans;
pub mod syscalls;
pub mod timeline;
pub mod totals;

pub use block::*;
pub use config::*;
pub use counters::*;
pub use cpus::*;
pub use hist::*;
pub use holders::*;
pub use http::*;
pub use maps::*;
pub use markers::*;
pub use sched::*;
pub use spans::*;
pub use syscalls::*;
pub use timeline::*;
pub use totals::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_enums_round_trip_and_reject_unknown_values() {
        for state in OffCpuState::ALL {
            assert_eq!(OffCpuState::from_u32(state as u32), Some(state));
            assert_eq!(OffCpuState::try_from(state as u32), Ok(state));
        }
        assert_eq!(OffCpuState::from_u32(TIMELINE_ON_CPU), None);
        assert_eq!(TimelineKind::try_from(0), Err(0));
        for op in BlockOp::ALL {
            assert_eq!(BlockOp::from_u8(op as u8), Some(op));
        }
        assert_eq!(BlockMetric::from_u8(u8::MAX), None);
        assert_eq!(HttpCaptureKind::from_u32(HttpCaptureKind::Response as u32), Some(HttpCaptureKind::Response));
        assert_eq!(CgroupAncestry::from_u32(0), Some(CgroupAncestry::Unavailable));
        assert_eq!(HttpPhase::ALL.len(), 7);
        assert_eq!(HttpPhase::from_u32(6), Some(HttpPhase::ClientSent));
        assert_eq!(HttpPhase::from_u32(7), Some(HttpPhase::H2));
        assert_eq!(HttpCaptureKind::from_u32(7), Some(HttpCaptureKind::H2Close));
        assert_eq!(HttpCaptureKind::from_u32(8), None);
        assert_eq!(HttpPhase::from_u32(4), Some(HttpPhase::ClientResponse));
        assert_eq!(HttpCaptureKind::from_u32(3), Some(HttpCaptureKind::Peer));
    }

    #[test]
    fn counters_are_the_map_slots() {
        assert_eq!(Counter::COUNT, 17);
        assert_eq!(Counter::from_u32(Counter::COUNT), None);
        assert_eq!(Counter::from_u32(Counter::COUNT - 1), Some(Counter::LostMarkerExits));
    }
}
