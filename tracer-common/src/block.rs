//! Block I/O: requests in flight, and the keys of their per-CPU statistics.
use core::mem::size_of;

#[cfg(doc)]
use crate::{MAP_BLOCK_INFLIGHT, MAP_BLOCK_STATS};

/// Length of the `rwbs` field read from block tracepoints.
pub const RWBS_LEN: usize = 8;

raw_enum! {
    /// Block operation, decoded from the tracepoints' `rwbs` string
    /// (`BlockKey::op`, `Inflight::op`).
    pub enum BlockOp: u8 {
        Read = 0,
        Write = 1,
        Flush = 2,
        Discard = 3,
        Other = 4,
    }
}

raw_enum! {
    /// What a [`BlockKey`] bucket measures (`BlockKey::metric`).
    pub enum BlockMetric: u8 {
        /// Issue to completion (device service time), ns.
        Latency = 0,
        /// Insert into the OS queue to issue, ns (0 when issued directly).
        Queue = 1,
        /// Insert (or issue, when not queued) to completion, ns.
        Total = 2,
        /// Request size, bytes.
        Size = 3,
    }
}

/// Key of [`MAP_BLOCK_STATS`].
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct BlockKey {
    /// TGID of the process that submitted the request (0: unknown).
    pub tgid: u32,
    /// Kernel `dev_t` of the disk (major << 20 | minor).
    pub dev: u32,
    /// A [`BlockOp`].
    pub op: u8,
    pub sync: u8,
    /// A [`BlockMetric`].
    pub metric: u8,
    pub _pad: u8,
    pub bucket: u16,
    pub _pad2: u16,
}
const _: () = assert!(size_of::<BlockKey>() == 16);

/// Key of [`MAP_BLOCK_INFLIGHT`]: a request is identified by its disk and
/// start sector while in flight.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct InflightKey {
    pub dev: u32,
    pub _pad: u32,
    pub sector: u64,
}
const _: () = assert!(size_of::<InflightKey>() == 16);

/// A block request between submission and completion.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Inflight {
    pub tgid: u32,
    pub bytes: u32,
    pub insert_ns: u64,
    pub issue_ns: u64,
    pub op: u8,
    pub sync: u8,
    pub _pad: [u8; 6],
}
const _: () = assert!(size_of::<Inflight>() == 32);

impl_pod!(BlockKey, InflightKey, Inflight);
