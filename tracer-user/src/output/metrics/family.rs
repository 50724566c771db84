//! Metric families as the `prometheus` crate models them, built from the
//! model's numbers: counters and gauges in base units, and histograms
//! whose `le` buckets are the log2 boundaries tracer keeps.
use std::ops::RangeInclusive;

use prometheus::proto::{Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType};

use crate::model::hist::Buckets;

/// The `le` boundaries of every histogram, as powers of two of
/// nanoseconds: 2^10 ns (1.024 µs) to 2^35 ns (34.4 s), then `+Inf`. The
/// same for every series, so that histograms can be summed across them.
pub const LOG2_BOUNDS: RangeInclusive<u32> = 10..=35;

/// Nanoseconds in seconds.
pub fn seconds(ns: u128) -> f64 {
    ns as f64 / 1e9
}

/// The label pairs of one series, in the order given.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Labels(Vec<(&'static str, String)>);

impl Labels {
    pub fn new() -> Labels {
        Labels::default()
    }

    /// These labels and one more.
    pub fn with(&self, name: &'static str, value: impl Into<String>) -> Labels {
        let mut pairs = self.0.clone();
        pairs.push((name, value.into()));
        Labels(pairs)
    }

    fn pairs(&self) -> Vec<LabelPair> {
        self.0
            .iter()
            .map(|(name, value)| {
                let mut pair = LabelPair::default();
                pair.set_name((*name).to_owned());
                pair.set_value(value.clone());
                pair
            })
            .collect()
    }
}

/// One metric family being filled.
pub struct Family(MetricFamily);

impl Family {
    fn new(name: &str, help: &str, kind: MetricType) -> Family {
        let mut family = MetricFamily::default();
        family.set_name(name.to_owned());
        family.set_help(help.to_owned());
        family.set_field_type(kind);
        Family(family)
    }

    pub fn counter(name: &str, help: &str) -> Family {
        Family::new(name, help, MetricType::COUNTER)
    }

    pub fn gauge(name: &str, help: &str) -> Family {
        Family::new(name, help, MetricType::GAUGE)
    }

    pub fn histogram(name: &str, help: &str) -> Family {
        Family::new(name, help, MetricType::HISTOGRAM)
    }

    /// A counter's or a gauge's value for one series.
    pub fn add(&mut self, labels: &Labels, value: f64) {
        let mut metric = Metric::from_label(labels.pairs());
        match self.0.get_field_type() {
            MetricType::GAUGE => {
                let mut gauge = Gauge::default();
                gauge.set_value(value);
                metric.set_gauge(gauge);
            }
            _ => {
                let mut counter = Counter::default();
                counter.set_value(value);
                metric.set_counter(counter);
            }
        }
        self.0.mut_metric().push(metric);
    }

    /// A histogram of nanoseconds for one series, in seconds.
    pub fn add_histogram(&mut self, labels: &Labels, values: &Buckets) {
        let mut histogram = Histogram::default();
        histogram.set_sample_count(values.count());
        histogram.set_sample_sum(seconds(values.sum()));
        histogram.set_bucket(
            log2_cumulative(values)
                .into_iter()
                .map(|(upper_ns, count)| {
                    let mut bucket = Bucket::default();
                    bucket.set_upper_bound(seconds(u128::from(upper_ns)));
                    bucket.set_cumulative_count(count);
                    bucket
                })
                .collect(),
        );
        let mut metric = Metric::from_label(labels.pairs());
        metric.set_histogram(histogram);
        self.0.mut_metric().push(metric);
    }

    /// Adds the family to `out` unless it has no series (an empty family
    /// is not valid in the exposition).
    pub fn push_into(self, out: &mut Vec<MetricFamily>) {
        if !self.0.get_metric().is_empty() {
            out.push(self.0);
        }
    }
}

/// Cumulative counts at each of [`LOG2_BOUNDS`] (`(2^k ns, values below
/// 2^k ns)`), from the model's log2 rows: row `i` holds the values from
/// 2^i to 2^(i+1) - 1 ns, so it is below 2^k exactly when `i < k`.
pub fn log2_cumulative(values: &Buckets) -> Vec<(u64, u64)> {
    let rows = values.log2_rows(1);
    let mut below = 0;
    let mut next_row = 0;
    LOG2_BOUNDS
        .map(|k| {
            while next_row < rows.len() && next_row < k as usize {
                below += rows[next_row].2;
                next_row += 1;
            }
            (1u64 << k, below)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_buckets_follow_the_log2_rows() {
        let mut values = Buckets::default();
        // Below the first bound, exactly at bounds, between, and past the last.
        for ns in [5u64, 1_023, 1_024, 1_500, 2_047, 2_048, 1 << 20, (1 << 35) - 1, 1 << 35, 1 << 40] {
            values.record(ns);
        }
        let cumulative = log2_cumulative(&values);
        assert_eq!(cumulative.len(), LOG2_BOUNDS.count());
        assert_eq!(cumulative[0], (1_024, 2), "values below 2^10 ns");
        assert_eq!(cumulative[1], (2_048, 5), "1,024 .. 2,047 ns");
        assert_eq!(cumulative[2], (4_096, 6));
        assert_eq!(cumulative[10], (1 << 20, 6), "2^20 ns is not below 2^20 ns");
        assert_eq!(cumulative[11], (1 << 21, 7));
        assert_eq!(*cumulative.last().unwrap(), (1 << 35, 8), "the rest only in +Inf");
        assert!(cumulative.windows(2).all(|w| w[0].1 <= w[1].1), "cumulative");
        assert!(log2_cumulative(&Buckets::default()).iter().all(|&(_, n)| n == 0));
    }

    #[test]
    fn families_without_series_are_left_out() {
        let mut out = Vec::new();
        Family::counter("tracer_x_total", "x").push_into(&mut out);
        assert!(out.is_empty());
        let mut family = Family::gauge("tracer_y", "y");
        family.add(&Labels::new().with("a", "1"), 2.5);
        family.push_into(&mut out);
        assert_eq!(out[0].get_metric()[0].get_gauge().get_value(), 2.5);
        assert_eq!(out[0].get_metric()[0].get_label()[0].name(), "a");
    }
}
