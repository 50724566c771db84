//! A histogram as JSON: summary, percentiles, log2 buckets and
//! HdrHistogram's own V2 encoding.
use std::borrow::Cow;

use base64::Engine;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use crate::model::hist::Buckets;

/// Histogram summary plus the full data: log2 buckets and HdrHistogram's
/// compressed V2 encoding (base64), which other HdrHistogram libraries decode.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct HistJson {
    /// `ns`, or `bytes` for request sizes.
    pub unit: Cow<'static, str>,
    pub count: u64,
    pub min: u64,
    pub max: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    /// Non-empty power-of-two buckets: [lower_ns, upper_ns, count].
    pub buckets: Vec<[u64; 3]>,
    pub hdr: String,
}

impl HistJson {
    pub fn from_buckets(buckets: &Buckets) -> Self {
        let hdr = buckets.to_hdr();
        let mut encoded = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&hdr, &mut encoded)
            .expect("serializing into memory cannot fail");
        let q = |quantile: f64| buckets.percentile(quantile);
        let log2 = buckets.log2_rows(1).into_iter().filter(|row| row.2 > 0).map(|(lo, hi, n)| [lo, hi, n]).collect();
        HistJson {
            unit: Cow::Borrowed("ns"),
            count: buckets.count(),
            min: buckets.min(),
            max: buckets.max(),
            mean: buckets.mean(),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            p9999: q(0.9999),
            buckets: log2,
            hdr: base64::engine::general_purpose::STANDARD.encode(encoded),
        }
    }
}


#[cfg(test)]
mod tests {
    use base64::Engine;
    use hdrhistogram::serialization::Deserializer;

    use super::*;

    #[test]
    fn hist_json_encodes_what_it_summarises() {
        let mut b = Buckets::default();
        for v in 1..=10_000u64 {
            b.record(v * 1_000);
        }
        let json = HistJson::from_buckets(&b);
        assert_eq!((json.count, json.min, json.max), (10_000, 1_000, 10_000_000));
        let raw = base64::engine::general_purpose::STANDARD.decode(&json.hdr).unwrap();
        let hdr: hdrhistogram::Histogram<u64> =
            Deserializer::new().deserialize(&mut raw.as_slice()).unwrap();
        assert_eq!(hdr.len(), json.count);
        assert_eq!(hdr.value_at_quantile(0.99).clamp(json.min, json.max), json.p99);
        // The live view, the tables and the JSON show the same p99.
        assert_eq!(b.percentile(0.99), json.p99);
        assert!((json.p50 as f64 - 5_000_000.0).abs() / 5_000_000.0 < 0.01);
        // Log2 buckets partition the count: 1 us .. 10 ms spans 1024 ns..16.7 ms.
        assert_eq!(json.buckets.iter().map(|b| b[2]).sum::<u64>(), 10_000);
        assert_eq!(json.buckets.first().unwrap()[..2], [512, 1023]);
        assert_eq!(json.buckets.last().unwrap()[..2], [8_388_608, 16_777_215]);
    }

    #[test]
    fn empty_hist_is_all_zero() {
        let json = HistJson::from_buckets(&Buckets::default());
        assert_eq!((json.count, json.p50, json.p9999, json.max), (0, 0, 0, 0));
        assert!(json.buckets.is_empty());
    }
}
