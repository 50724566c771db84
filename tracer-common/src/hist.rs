//! Log-linear histogram buckets, computed in the kernel and read back by the
//! loader: both sides must agree on the bucketing, so it is defined once here.
use core::mem::size_of;

/// Count and sum of the values in one bucket.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketStat {
    pub count: u64,
    pub total: u64,
}
const _: () = assert!(size_of::<BucketStat>() == 16);

/// Log-linear histogram bucketing shared by kernel and user side: values
/// below 128 are exact; above, 128 linear sub-buckets per power of two, so
/// a bucket is at most 1/128 (0.79%) of its lower bound wide.
pub const BUCKET_SUB_BITS: u32 = 7;
const BUCKET_SUB_COUNT: u64 = 1 << BUCKET_SUB_BITS;

#[inline(always)]
pub fn bucket_index(value: u64) -> u16 {
    if value < BUCKET_SUB_COUNT {
        return value as u16;
    }
    let msb = u64::BITS - 1 - value.leading_zeros();
    let shift = msb - BUCKET_SUB_BITS;
    let sub = (value >> shift) - BUCKET_SUB_COUNT;
    (BUCKET_SUB_COUNT + u64::from(shift) * BUCKET_SUB_COUNT + sub) as u16
}

/// Inclusive value range `[lower, upper]` of a bucket.
pub fn bucket_range(index: u16) -> (u64, u64) {
    let index = u64::from(index);
    if index < BUCKET_SUB_COUNT {
        return (index, index);
    }
    let shift = (index - BUCKET_SUB_COUNT) / BUCKET_SUB_COUNT;
    let sub = (index - BUCKET_SUB_COUNT) % BUCKET_SUB_COUNT;
    let lower = (BUCKET_SUB_COUNT + sub) << shift;
    (lower, lower + (1 << shift) - 1)
}

impl_pod!(BucketStat);
