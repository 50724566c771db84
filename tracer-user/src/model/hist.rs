//! Latency histograms.
//!
//! Events are counted in log-linear buckets (128 linear sub-buckets per power
//! of two, so each bucket is at most 0.79% wide) kept sparse, because a
//! recording may track tens of thousands of threads and a dense HDR histogram
//! costs tens of KiB each. For display and export, a bucket set becomes an
//! `hdrhistogram::Histogram` (each bucket recorded at its midpoint), so
//! percentiles, merging and the standard encoding come from HdrHistogram and
//! are within 0.5% of the exact values.
use hdrhistogram::Histogram;

pub use tracer_common::{bucket_index, bucket_range};

/// Largest value an exported histogram distinguishes (one hour); larger
/// values are clamped to it.
pub const MAX_TRACKABLE_NS: u64 = 3_600_000_000_000;

/// Sub-buckets per power of two of the exported HdrHistogram: 3
/// significant digits need 2,000, rounded up to a power of two (2^11).
const HDR_SUB_BUCKET_BITS: u32 = 11;

/// The largest value the exported HdrHistogram (3 significant digits,
/// lowest value 1) does not tell from `value`: values below 2^11 are
/// exact; above, its buckets are 2^(log2(value) - 10) wide.
fn hdr_highest_equivalent(value: u64) -> u64 {
    let magnitude = u64::BITS - 1 - value.max(1).leading_zeros();
    if magnitude < HDR_SUB_BUCKET_BITS {
        return value;
    }
    let width = 1u64 << (magnitude + 1 - HDR_SUB_BUCKET_BITS);
    (value & !(width - 1)) + width - 1
}

/// Value a bucket's counts stand for when exported.
fn bucket_midpoint(index: u16) -> u64 {
    let (lower, upper) = bucket_range(index);
    lower + (upper - lower) / 2
}

/// Sparse log-linear counts plus exact count, sum, min and max.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Buckets {
    /// Sorted by bucket index.
    counts: Vec<(u16, u64)>,
    total: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Buckets {
    pub fn record(&mut self, value: u64) {
        self.record_n(value, 1);
    }

    pub fn record_n(&mut self, value: u64, n: u64) {
        if n == 0 {
            return;
        }
        let index = bucket_index(value);
        match self.counts.binary_search_by_key(&index, |(i, _)| *i) {
            Ok(at) => self.counts[at].1 += n,
            Err(at) => self.counts.insert(at, (index, n)),
        }
        self.min = if self.total == 0 { value } else { self.min.min(value) };
        self.max = self.max.max(value);
        self.total += n;
        self.sum += u128::from(value) * u128::from(n);
    }

    /// Adds a bucket aggregated elsewhere (in the kernel): `n` values that
    /// sum to `total`. Min and max then have the bucket's resolution.
    pub fn add_bucket(&mut self, index: u16, n: u64, total: u64) {
        if n == 0 {
            return;
        }
        let (lower, upper) = bucket_range(index);
        match self.counts.binary_search_by_key(&index, |(i, _)| *i) {
            Ok(at) => self.counts[at].1 += n,
            Err(at) => self.counts.insert(at, (index, n)),
        }
        self.min = if self.total == 0 { lower } else { self.min.min(lower) };
        self.max = self.max.max(upper);
        self.total += n;
        self.sum += u128::from(total);
    }

    /// Total of the recorded values (exact).
    pub fn sum(&self) -> u128 {
        self.sum
    }

    pub fn merge(&mut self, other: &Buckets) {
        for &(index, n) in &other.counts {
            match self.counts.binary_search_by_key(&index, |(i, _)| *i) {
                Ok(at) => self.counts[at].1 += n,
                Err(at) => self.counts.insert(at, (index, n)),
            }
        }
        if other.total > 0 {
            self.min = if self.total == 0 { other.min } else { self.min.min(other.min) };
            self.max = self.max.max(other.max);
        }
        self.total += other.total;
        self.sum += other.sum;
    }

    pub fn count(&self) -> u64 {
        self.total
    }
    pub fn min(&self) -> u64 {
        self.min
    }
    pub fn max(&self) -> u64 {
        self.max
    }
    pub fn mean(&self) -> f64 {
        if self.total == 0 { 0.0 } else { self.sum as f64 / self.total as f64 }
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.counts.iter().map(|&(i, n)| {
            let (lo, hi) = bucket_range(i);
            (lo, hi, n)
        })
    }

    /// Counts per power of two of `value / divisor`, as runqlat prints them:
    /// slot 0 holds 0 and 1, slot k holds [2^k, 2^(k+1) - 1]. A log-linear
    /// bucket never straddles a power of two, so its midpoint decides.
    fn log2_slots(&self, divisor: u64) -> Vec<u64> {
        let mut slots = Vec::new();
        for &(index, n) in &self.counts {
            let scaled = bucket_midpoint(index) / divisor.max(1);
            let slot = if scaled <= 1 { 0 } else { (u64::BITS - 1 - scaled.leading_zeros()) as usize };
            if slots.len() <= slot {
                slots.resize(slot + 1, 0);
            }
            slots[slot] += n;
        }
        slots
    }

    /// The log2 histogram, the one fold used by the text tables, the live
    /// view and the JSON: `(low, high, count)` per power of two of
    /// `value / divisor`, from slot 0 (`0..=1`) up to the highest non-empty
    /// one, empty slots included (as runqlat prints them).
    pub fn log2_rows(&self, divisor: u64) -> Vec<(u64, u64, u64)> {
        let slots = self.log2_slots(divisor);
        let last = slots.iter().rposition(|&n| n > 0).map_or(0, |l| l + 1);
        slots
            .iter()
            .enumerate()
            .take(last)
            .map(|(slot, &count)| {
                let (low, high) = if slot == 0 { (0, 1) } else { (1u64 << slot, (1u64 << (slot + 1)) - 1) };
                (low, high, count)
            })
            .collect()
    }

    /// The value at quantile `q` (0..=1): the one percentile definition of
    /// the tables, the live view and the JSON. It is what HdrHistogram's
    /// `value_at_quantile` answers for the exported histogram (`to_hdr`),
    /// capped to the exact minimum and maximum (a bucket's representative
    /// value can lie a hair past them), computed from the buckets directly
    /// so the live view can afford it for every row. 0 when empty.
    pub fn percentile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        if q <= 0.0 {
            return self.min;
        }
        // HdrHistogram's rank: the ceiling of q * count, at least 1.
        let rank = ((q.min(1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for &(index, n) in &self.counts {
            seen += n;
            if seen >= rank {
                let exported = bucket_midpoint(index).min(MAX_TRACKABLE_NS);
                return hdr_highest_equivalent(exported).clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// The same counts as an HdrHistogram (3 significant digits).
    pub fn to_hdr(&self) -> Histogram<u64> {
        let mut hdr = Histogram::<u64>::new_with_bounds(1, MAX_TRACKABLE_NS, 3)
            .expect("static histogram bounds are valid");
        for &(index, n) in &self.counts {
            hdr.saturating_record_n(bucket_midpoint(index).min(MAX_TRACKABLE_NS), n);
        }
        hdr
    }
}

/// Percentiles shown and exported everywhere, as (label, quantile).
pub const PERCENTILES: [(&str, f64); 5] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_once_and_in_order() {
        let mut previous_upper = None;
        for index in 0..bucket_index(u64::MAX) {
            let (lo, hi) = bucket_range(index);
            if let Some(prev) = previous_upper {
                assert_eq!(lo, prev + 1, "bucket {index} must start where the last ended");
            }
            assert_eq!(bucket_index(lo), index);
            assert_eq!(bucket_index(hi), index);
            previous_upper = Some(hi);
        }
    }

    #[test]
    fn buckets_are_narrow_enough_for_two_percent() {
        for value in [1_000u64, 1_023, 1_024, 65_537, 10_000_000, 10_000_000_000] {
            let (lo, hi) = bucket_range(bucket_index(value));
            assert!(lo <= value && value <= hi);
            assert!(((hi - lo) as f64) / lo as f64 <= 1.0 / 128.0 + 1e-9, "{value}: [{lo}, {hi}]");
        }
    }

    /// Exact percentiles of a known skewed sample from 1 us to 10 s versus
    /// the exported histogram: within 2% everywhere (the bound).
    #[test]
    fn percentiles_within_two_percent_from_1us_to_10s() {
        let mut values = Vec::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Log-uniform between 1e3 and 1e10 ns.
            let exponent = 3.0 + 7.0 * (x % 1_000_000) as f64 / 1_000_000.0;
            values.push(10f64.powf(exponent) as u64);
        }
        let mut buckets = Buckets::default();
        values.iter().for_each(|&v| buckets.record(v));
        values.sort_unstable();
        let hdr = buckets.to_hdr();
        for q in [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999] {
            let rank = ((q * values.len() as f64).ceil() as usize).max(1) - 1;
            let exact = values[rank] as f64;
            let got = hdr.value_at_quantile(q) as f64;
            let err = (got - exact).abs() / exact;
            assert!(err <= 0.02, "q={q}: exact {exact}, got {got} ({:.3}%)", err * 100.0);
        }
        assert_eq!(hdr.len(), 200_000);
        assert_eq!(buckets.min(), values[0]);
        assert_eq!(buckets.max(), *values.last().unwrap());
    }

    /// The one percentile definition is HdrHistogram's answer for the
    /// exported histogram, capped to the extremes: checked over random data
    /// of every magnitude and many quantiles.
    #[test]
    fn percentiles_are_hdrs_capped_to_the_extremes() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for round in 0..50 {
            let mut b = Buckets::default();
            for _ in 0..(1 + round * 37) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let exponent = 12.0 * (x % 1_000_000) as f64 / 1_000_000.0;
                b.record(10f64.powf(exponent) as u64);
            }
            let hdr = b.to_hdr();
            for q in [0.0, 0.001, 0.1, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999, 1.0] {
                let reference = hdr.value_at_quantile(q).clamp(b.min(), b.max());
                assert_eq!(b.percentile(q), reference, "round {round}, q={q}");
            }
        }
        assert_eq!(Buckets::default().percentile(0.5), 0);
        for v in [1u64, 2_047, 2_048, 2_049, 123_456_789, MAX_TRACKABLE_NS] {
            let hdr = b_hdr_of(v);
            assert_eq!(hdr_highest_equivalent(v), hdr.highest_equivalent(v), "{v}");
        }
    }

    fn b_hdr_of(v: u64) -> Histogram<u64> {
        let mut b = Buckets::default();
        b.record(v);
        b.to_hdr()
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let (mut a, mut b, mut all) = (Buckets::default(), Buckets::default(), Buckets::default());
        for v in [5u64, 900, 12_345, 7_000_000] {
            a.record(v);
            all.record(v);
        }
        for v in [1u64, 900, 44_000_000_000] {
            b.record(v);
            all.record(v);
        }
        a.merge(&b);
        assert_eq!(a, all);
        assert_eq!(a.count(), 7);
        assert_eq!(a.min(), 1);
        assert_eq!(a.max(), 44_000_000_000);
    }

    #[test]
    fn kernel_buckets_add_up_like_recorded_values() {
        let mut recorded = Buckets::default();
        let mut added = Buckets::default();
        for v in [3u64, 5_000, 5_001, 9_999_999] {
            recorded.record(v);
            added.add_bucket(bucket_index(v), 1, v);
        }
        assert_eq!(added.count(), 4);
        assert_eq!(added.sum(), recorded.sum());
        assert_eq!(added.log2_rows(1), recorded.log2_rows(1));
        assert_eq!(added.min(), 3);
        let (lower, upper) = bucket_range(bucket_index(9_999_999));
        assert!(lower <= 9_999_999 && added.max() == upper);
    }

    #[test]
    fn log2_rows_match_runqlat_layout() {
        let mut b = Buckets::default();
        // In microseconds: 0, 1 -> slot 0; 2, 3 -> slot 1; 1000 -> slot 9.
        for us in [0u64, 1, 2, 3, 1000] {
            b.record(us * 1000 + 500);
        }
        let counts: Vec<u64> = b.log2_rows(1000).iter().map(|r| r.2).collect();
        assert_eq!(counts, vec![2, 2, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(b.log2_rows(1000)[..3], [(0, 1, 2), (2, 3, 2), (4, 7, 0)]);
        assert_eq!(b.log2_rows(1000)[9], (512, 1023, 1));
        assert!(Buckets::default().log2_rows(1).is_empty());
    }
}
