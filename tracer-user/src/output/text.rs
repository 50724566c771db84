//! runqlat-compatible text output: the log2 table and a percentile line.
use std::fmt::Write;

use crate::model::hist::{Buckets, PERCENTILES};

/// Time unit of the text output (`-m` selects milliseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Micros,
    Millis,
}

impl Unit {
    pub fn divisor(self) -> u64 {
        match self {
            Unit::Micros => 1_000,
            Unit::Millis => 1_000_000,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Unit::Micros => "usecs",
            Unit::Millis => "msecs",
        }
    }
    fn short(self) -> &'static str {
        match self {
            Unit::Micros => "us",
            Unit::Millis => "ms",
        }
    }
}

fn stars(out: &mut String, value: u64, max: u64, width: u64) {
    let shown = value.min(max);
    let count = if max == 0 { 0 } else { shown * width / max };
    for _ in 0..count {
        out.push('*');
    }
    for _ in count..width {
        out.push(' ');
    }
    if value > max {
        out.push('+');
    }
}

/// The table runqlat prints: `lo -> hi : count |****|`, one row per power of
/// two up to the highest non-empty one. Empty histograms print nothing.
pub fn log2_table(buckets: &Buckets, unit: Unit) -> String {
    let rows = buckets.log2_rows(unit.divisor());
    if rows.is_empty() {
        return String::new();
    }
    let max = rows.iter().map(|r| r.2).max().unwrap_or(0);
    let wide = rows.len() > 33;
    let (label_pad, label_width, col, star_width) =
        if wide { (15, 29, 20, 20) } else { (5, 19, 10, 40) };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:label_pad$}{:<label_width$} : count    distribution",
        "",
        unit.label()
    );
    for (low, high, count) in rows {
        let _ = write!(out, "{low:>col$} -> {high:<col$} : {count:<8} |");
        stars(&mut out, count, max, star_width);
        out.push_str("|\n");
    }
    out
}

/// `*` bars scaled to `width` for `value` out of `max`.
pub fn bar(value: u64, max: u64, width: u64) -> String {
    let mut out = String::new();
    stars(&mut out, value, max, width);
    out
}

fn human(ns: u64, unit: Unit) -> String {
    let value = ns as f64 / unit.divisor() as f64;
    if value >= 100.0 {
        format!("{value:.0} {}", unit.short())
    } else {
        format!("{value:.3} {}", unit.short())
    }
}

/// `count = N, p50 = ..., p90 = ..., p99 = ..., p99.9 = ..., max = ...`
pub fn percentile_line(buckets: &Buckets, unit: Unit) -> String {
    if buckets.count() == 0 {
        return "count = 0".to_owned();
    }
    let mut line = format!("count = {}", buckets.count());
    for (label, quantile) in PERCENTILES.iter().take(4) {
        let _ = write!(line, ", {label} = {}", human(buckets.percentile(*quantile), unit));
    }
    let _ = write!(line, ", max = {}", human(buckets.max(), unit));
    line
}

/// A titled log2 table with its percentile line; nothing when empty.
pub fn histogram_section(out: &mut String, header: Option<&str>, buckets: &Buckets, unit: Unit) {
    if buckets.count() == 0 {
        return;
    }
    if let Some(header) = header {
        out.push('\n');
        out.push_str(header);
        out.push('\n');
    }
    out.push_str(&log2_table(buckets, unit));
    out.push_str(&percentile_line(buckets, unit));
    out.push('\n');
}

/// `count 4  p50 1.50 ms  p90 ...  max 3.00 ms`: the percentile line in
/// the live view's narrower space, each value in its own best unit.
pub fn compact_percentiles(buckets: &Buckets) -> String {
    if buckets.count() == 0 {
        return "count 0".to_owned();
    }
    let mut line = format!("count {}", buckets.count());
    for (label, quantile) in PERCENTILES.iter().take(4) {
        let _ = write!(line, "  {label} {}", duration(buckets.percentile(*quantile)));
    }
    let _ = write!(line, "  max {}", duration(buckets.max()));
    line
}

/// A duration for tables: "812 ns", "3.42 us", "17.0 ms", "2.31 s".
pub fn duration(ns: u64) -> String {
    let ns = ns as f64;
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.2} us", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_runqlat_layout() {
        let mut b = Buckets::default();
        for _ in 0..4 {
            b.record(1_500); // 1 us -> "0 -> 1"
        }
        for _ in 0..2 {
            b.record(5_000); // 5 us -> "4 -> 7"
        }
        let table = log2_table(&b, Unit::Micros);
        let expected = "     usecs               : count    distribution\n\
\x20        0 -> 1          : 4        |****************************************|\n\
\x20        2 -> 3          : 0        |                                        |\n\
\x20        4 -> 7          : 2        |********************                    |\n";
        assert_eq!(table, expected);
        assert_eq!(log2_table(&Buckets::default(), Unit::Micros), "");
    }

    #[test]
    fn compact_percentiles_fit_the_live_view() {
        let mut b = Buckets::default();
        (1..=100u64).for_each(|v| b.record(v * 10_000));
        let line = compact_percentiles(&b);
        assert!(line.starts_with("count 100  p50 5"), "{line}");
        assert!(line.ends_with("  max 1.0 ms"), "{line}");
        assert!(line.len() <= 80, "{line}");
        assert_eq!(compact_percentiles(&Buckets::default()), "count 0");
    }

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(duration(812), "812 ns");
        assert_eq!(duration(3_420), "3.42 us");
        assert_eq!(duration(17_040_000), "17.0 ms");
        assert_eq!(duration(2_310_000_000), "2.31 s");
    }

    #[test]
    fn milliseconds_change_label_and_scale() {
        let mut b = Buckets::default();
        b.record(3_000_000);
        let table = log2_table(&b, Unit::Millis);
        assert!(table.starts_with("     msecs"));
        assert!(table.contains("         2 -> 3          : 1        |"), "{table}");
    }

    #[test]
    fn percentile_line_lists_the_standard_percentiles() {
        let mut b = Buckets::default();
        (1..=100u64).for_each(|v| b.record(v * 10_000));
        let line = percentile_line(&b, Unit::Micros);
        assert!(line.starts_with("count = 100, "), "{line}");
        assert!(line.ends_with(", max = 1000 us"), "{line}");
        let value = |label: &str| -> f64 {
            let start = line.find(&format!(", {label} = ")).expect(label) + label.len() + 5;
            line[start..].split(' ').next().unwrap().parse().unwrap()
        };
        for (label, exact) in [("p50", 500.0), ("p90", 900.0), ("p99", 990.0), ("p99.9", 1000.0)] {
            let got = value(label);
            assert!((got - exact).abs() / exact <= 0.01, "{label}: {got} vs {exact} in {line}");
        }
    }
}
