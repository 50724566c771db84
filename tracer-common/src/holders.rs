//! Who held the CPU while a traced process waited for one, summed per
//! (waiting process, holding process) over the whole recording.
use core::mem::size_of;

#[cfg(doc)]
use crate::MAP_WAIT_HOLDERS;

/// Key of [`MAP_WAIT_HOLDERS`]; the value is the nanoseconds `holder` ran
/// on the CPU while a thread of `waiter` waited for that CPU (cumulative).
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct WaitHolderKey {
    /// TGID of the waiting process.
    pub waiter: u32,
    /// TGID of the process that had the CPU (0: the CPU was idle;
    /// [`HOLDER_UNFOLLOWED`]: the wait could not be followed).
    pub holder: u32,
}
const _: () = assert!(size_of::<WaitHolderKey>() == 8);

/// Capacity of [`MAP_WAIT_HOLDERS`]: pairs beyond it are dropped and
/// counted (`Counter::WaitHoldersMapFull`).
pub const WAIT_HOLDERS_ENTRIES: u32 = 16_384;

/// [`WaitHolderKey::holder`] of wait time that could not be followed: spent
/// on another CPU's run queue before the thread moved to the one it ran on,
/// or older than that CPU's oldest kept run slice.
pub const HOLDER_UNFOLLOWED: u32 = u32::MAX;

impl_pod!(WaitHolderKey);
