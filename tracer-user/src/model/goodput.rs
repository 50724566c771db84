//! Goodput against a latency objective (`--slo MS`): per span name and per
//! second of the wall clock, the requests that finished, those within the
//! objective, and the verdicts of those that missed it, so that a person
//! sees at which load the misses turn from `on-cpu` to `cpu-contention`.
//!
//! A span counts in the second it ended (its response was written): the
//! second in which a client received it, give or take the network.
use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::spans::{SpanRecord, Verdict};

/// Seconds kept per span name: a day of a recording with spans every
/// second. Older seconds are dropped from the table (the totals keep them).
pub const MAX_SECONDS_PER_NAME: usize = 86_400;

/// Requests of one span name over some time: all of them, those within the
/// objective, and the verdicts of the others.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub requests: u64,
    pub within_slo: u64,
    /// Requests slower than the objective, per verdict (only verdicts seen).
    pub missed: BTreeMap<Verdict, u64>,
}

impl Tally {
    fn add(&mut self, within: bool, verdict: Verdict) {
        self.requests += 1;
        if within {
            self.within_slo += 1;
        } else {
            *self.missed.entry(verdict).or_default() += 1;
        }
    }

    /// Within the objective, as a share of all requests (1 when none).
    pub fn goodput_ratio(&self) -> f64 {
        if self.requests == 0 { 1.0 } else { self.within_slo as f64 / self.requests as f64 }
    }

    /// The misses' verdicts, most frequent first ("12 cpu-contention, 3 on-cpu").
    pub fn missed_mix(&self) -> String {
        let mut missed: Vec<(&Verdict, &u64)> = self.missed.iter().collect();
        missed.sort_by_key(|(verdict, count)| (std::cmp::Reverse(**count), **verdict));
        missed.iter().map(|(verdict, count)| format!("{count} {verdict}")).collect::<Vec<_>>().join(", ")
    }
}

/// One second of one span name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Second {
    /// Unix time of the second's start, in seconds.
    pub unix_s: u64,
    #[serde(flatten)]
    pub tally: Tally,
}

/// Goodput of one span name: the whole recording, and per second.
#[derive(Debug, Default, Clone)]
pub struct NameGoodput {
    pub total: Tally,
    /// Seconds with at least one request, oldest first.
    pub seconds: VecDeque<Second>,
}

/// Goodput of every span name against one objective.
#[derive(Debug, Clone)]
pub struct Goodput {
    pub slo_ns: u64,
    pub by_name: BTreeMap<String, NameGoodput>,
}

impl Goodput {
    pub fn new(slo_ns: u64) -> Goodput {
        Goodput { slo_ns, by_name: BTreeMap::new() }
    }

    pub fn add(&mut self, span: &SpanRecord) {
        let within = span.wall_ns <= self.slo_ns;
        let unix_s = (span.start_unix_ns + span.wall_ns) / 1_000_000_000;
        let name = self.by_name.entry(span.name.clone()).or_default();
        name.total.add(within, span.verdict);
        // Spans end in nearly the order they are reported: look for the
        // second from the newest back.
        let seconds = &mut name.seconds;
        let at = seconds.iter().rposition(|s| s.unix_s <= unix_s);
        match at {
            Some(i) if seconds[i].unix_s == unix_s => seconds[i].tally.add(within, span.verdict),
            _ => {
                let mut tally = Tally::default();
                tally.add(within, span.verdict);
                seconds.insert(at.map_or(0, |i| i + 1), Second { unix_s, tally });
                if seconds.len() > MAX_SECONDS_PER_NAME {
                    seconds.pop_front();
                }
            }
        }
    }

    /// The newest `count` seconds of every name (the live view's rows):
    /// (name, second), names in order, seconds oldest first.
    pub fn recent(&self, count: usize) -> Vec<(String, Second)> {
        let mut rows = Vec::new();
        for (name, goodput) in &self.by_name {
            let skip = goodput.seconds.len().saturating_sub(count);
            rows.extend(goodput.seconds.iter().skip(skip).map(|s| (name.clone(), s.clone())));
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spans::test_span;

    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;

    /// A span named `name` of `wall_ms` that ends at `end_ns` (Unix time).
    fn ending(name: &str, end_ns: u64, wall_ms: u64, verdict: Verdict) -> SpanRecord {
        let mut span = test_span(wall_ms, 0, 0, verdict);
        span.name = name.into();
        span.start_unix_ns = end_ns - wall_ms * MS;
        span
    }

    #[test]
    fn spans_count_in_the_second_they_end_with_the_misses_by_verdict() {
        let mut goodput = Goodput::new(20 * MS);
        goodput.add(&ending("a", 100 * S + 5 * MS, 10, Verdict::OnCpu));
        // Began in second 100, ended in 101: counted in 101.
        goodput.add(&ending("a", 101 * S + MS, 30, Verdict::CpuContention));
        goodput.add(&ending("a", 101 * S + 2 * MS, 20, Verdict::OnCpu));
        goodput.add(&ending("a", 101 * S + 3 * MS, 40, Verdict::CpuContention));
        goodput.add(&ending("a", 101 * S + 4 * MS, 25, Verdict::OnCpu));
        goodput.add(&ending("b", 100 * S, 50, Verdict::Io));
        let a = &goodput.by_name["a"];
        let seconds: Vec<(u64, u64, u64)> =
            a.seconds.iter().map(|s| (s.unix_s, s.tally.requests, s.tally.within_slo)).collect();
        assert_eq!(seconds, [(100, 1, 1), (101, 4, 1)], "at most the SLO is within it");
        assert_eq!(a.seconds[1].tally.missed_mix(), "2 cpu-contention, 1 on-cpu");
        assert_eq!((a.total.requests, a.total.within_slo), (5, 2));
        assert!((a.total.goodput_ratio() - 0.4).abs() < 1e-9);
        assert_eq!(goodput.by_name["b"].total.missed.get(&Verdict::Io), Some(&1));
    }

    #[test]
    fn a_span_reported_late_lands_in_its_own_second() {
        let mut goodput = Goodput::new(20 * MS);
        for end in [10 * S, 12 * S, 11 * S + 500 * MS, 9 * S, 12 * S + MS] {
            goodput.add(&ending("a", end, 1, Verdict::OnCpu));
        }
        let seconds: Vec<(u64, u64)> =
            goodput.by_name["a"].seconds.iter().map(|s| (s.unix_s, s.tally.requests)).collect();
        assert_eq!(seconds, [(9, 1), (10, 1), (11, 1), (12, 2)]);
        let recent: Vec<u64> = goodput.recent(2).iter().map(|(_, s)| s.unix_s).collect();
        assert_eq!(recent, [11, 12], "the newest two, oldest first");
    }

    #[test]
    fn the_table_keeps_a_bounded_number_of_seconds() {
        let mut goodput = Goodput::new(20 * MS);
        for second in 0..(MAX_SECONDS_PER_NAME as u64 + 10) {
            goodput.add(&ending("a", (second + 1) * S, 1, Verdict::OnCpu));
        }
        let a = &goodput.by_name["a"];
        assert_eq!(a.seconds.len(), MAX_SECONDS_PER_NAME);
        assert_eq!(a.seconds.front().map(|s| s.unix_s), Some(11), "the oldest dropped");
        assert_eq!(a.total.requests, MAX_SECONDS_PER_NAME as u64 + 10, "the totals keep them");
    }
}
