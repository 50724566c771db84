//! Goodput against `--slo` as text: one line per span name for the end of
//! `tracer record` and `tracer spans`, and one per second for the live view.
use super::text::duration;
use crate::model::goodput::{Goodput, Tally};

/// "1,234 requests, 1,100 within 15.0 ms (89.1%); missed: 100 cpu-contention, 34 on-cpu"
pub fn tally_line(tally: &Tally, slo_ns: u64) -> String {
    let mut line = format!(
        "{} requests, {} within {} ({:.1}%)",
        tally.requests,
        tally.within_slo,
        duration(slo_ns),
        100.0 * tally.goodput_ratio()
    );
    if !tally.missed.is_empty() {
        line.push_str("; missed: ");
        line.push_str(&tally.missed_mix());
    }
    line
}

/// One line per span name over the whole recording.
pub fn summary_lines(goodput: &Goodput) -> Vec<String> {
    goodput
        .by_name
        .iter()
        .map(|(name, of_name)| format!("{name}: {}", tally_line(&of_name.total, goodput.slo_ns)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spans::{Verdict, test_span};

    #[test]
    fn one_line_per_name_with_the_misses_most_frequent_first() {
        let mut goodput = Goodput::new(15_000_000);
        for (wall_ms, verdict) in [(5, Verdict::OnCpu), (20, Verdict::OnCpu), (30, Verdict::CpuContention), (40, Verdict::CpuContention)] {
            goodput.add(&test_span(wall_ms, 0, 0, verdict));
        }
        assert_eq!(
            summary_lines(&goodput),
            ["GET /cpu: 4 requests, 1 within 15.0 ms (25.0%); missed: 2 cpu-contention, 1 on-cpu"]
        );
        let mut all_good = Goodput::new(15_000_000);
        all_good.add(&test_span(5, 0, 0, Verdict::OnCpu));
        assert_eq!(summary_lines(&all_good), ["GET /cpu: 1 requests, 1 within 15.0 ms (100.0%)"]);
    }
}
