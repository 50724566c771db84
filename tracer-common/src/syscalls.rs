//! Keys of the per-CPU syscall statistics maps.
use core::mem::size_of;

#[cfg(doc)]
use crate::{MAP_SYSCALL_ERRORS, MAP_SYSCALL_LATENCY, bucket_index};

/// Key of [`MAP_SYSCALL_LATENCY`].
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SyscallKey {
    /// TGID, or TID when aggregating per thread.
    pub id: u32,
    pub nr: u16,
    /// Log-linear bucket of the latency ([`bucket_index`]).
    pub bucket: u16,
}
const _: () = assert!(size_of::<SyscallKey>() == 8);

/// Key of [`MAP_SYSCALL_ERRORS`].
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SyscallErrorKey {
    pub id: u32,
    pub nr: u16,
    pub errno: u16,
}
const _: () = assert!(size_of::<SyscallErrorKey>() == 8);

impl_pod!(SyscallKey, SyscallErrorKey);
