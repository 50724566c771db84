//! Request spans (per name and verdict, within the SLO) and tracer's own
//! health (what was lost, what is attached) as metric families.
use std::collections::{BTreeMap, HashMap};

use prometheus::proto::MetricFamily;

use super::{
    Inputs,
    family::{Family, Labels, seconds},
    groups::OTHER,
    series::{Candidate, SeriesTable},
};
use crate::model::{aggregate::Aggregator, hist::Buckets, spans::Verdict};

/// Span metrics, when span markers (or `--http`) are attached. Span names
/// are label sets like processes: bounded, the rest in `name="other"`.
pub fn span_families(agg: &Aggregator, names: &mut SeriesTable<String>, out: &mut Vec<MetricFamily>) {
    let spans = &agg.spans;
    let mut seen: HashMap<String, Candidate> = HashMap::new();
    for (name, by_verdict) in &spans.by_name_verdict {
        let entry = seen.entry(name.clone()).or_default();
        entry.live = true;
        entry.busy += by_verdict.values().map(Buckets::count).sum::<u64>();
    }
    names.assign(&seen);
    let name_of = |name: &String| if names.has_own(name) { name.clone() } else { OTHER.to_owned() };

    let mut by_name_verdict: BTreeMap<(String, Verdict), Buckets> = BTreeMap::new();
    for (name, by_verdict) in &spans.by_name_verdict {
        for (verdict, buckets) in by_verdict {
            by_name_verdict.entry((name_of(name), *verdict)).or_default().merge(buckets);
        }
    }
    let mut duration =
        Family::histogram("tracer_span_duration_seconds", "Request spans' wall time, per span name and verdict.");
    for ((name, verdict), buckets) in &by_name_verdict {
        duration.add_histogram(&Labels::new().with("name", name.clone()).with("verdict", verdict.name()), buckets);
    }
    duration.push_into(out);

    let mut by_verdict = Family::counter("tracer_spans_total", "Finished request spans, per verdict.");
    let spans_by_verdict = spans.by_verdict();
    for verdict in Verdict::ALL {
        let count = spans_by_verdict.get(&verdict).map_or(0, Buckets::count);
        by_verdict.add(&Labels::new().with("verdict", verdict.name()), count as f64);
    }
    by_verdict.push_into(out);

    let Some(goodput) = &agg.goodput else { return };
    let mut slo = Family::gauge("tracer_span_slo_seconds", "The latency objective of --slo.");
    slo.add(&Labels::new(), seconds(goodput.slo_ns.into()));
    slo.push_into(out);
    let mut within: BTreeMap<String, u64> = by_name_verdict.keys().map(|(name, _)| (name.clone(), 0)).collect();
    for (name, of_name) in &goodput.by_name {
        *within.entry(name_of(name)).or_default() += of_name.total.within_slo;
    }
    let mut goodput = Family::counter(
        "tracer_spans_within_slo_total",
        "Finished request spans at most --slo long (goodput), per span name.",
    );
    for (name, count) in within {
        goodput.add(&Labels::new().with("name", name), count as f64);
    }
    goodput.push_into(out);
}

/// tracer's own state: build and probes, losses, threads, folded label sets.
pub fn health_families(agg: &Aggregator, inputs: &Inputs, folded: &[(&str, usize)], out: &mut Vec<MetricFamily>) {
    let mut info = Family::gauge("tracer_build_info", "tracer's version and how it attached to the scheduler; always 1.");
    let labels = Labels::new().with("version", env!("CARGO_PKG_VERSION")).with("probe_mode", inputs.probe_mode.clone());
    info.add(&labels, 1.0);
    info.push_into(out);

    let mut start = Family::gauge("tracer_start_time_seconds", "When tracing started, in seconds since the Unix epoch.");
    start.add(&Labels::new(), seconds(inputs.start_unix_ns.into()));
    start.push_into(out);

    let mut probes = Family::gauge("tracer_probe_in_use", "Probes attached (1) or not (0), by probe family.");
    let attached = &inputs.probes;
    for (probe, on) in [("sched", true), ("syscalls", attached.syscalls), ("block_io", attached.block_io), ("spans", attached.spans)] {
        probes.add(&Labels::new().with("probe", probe), f64::from(u8::from(on)));
    }
    probes.push_into(out);

    let lost = &inputs.lost;
    let mut losses = Family::counter(
        "tracer_lost_events_total",
        "What the kernel side could not deliver, by kind (see docs/report-format.md, `lost`).",
    );
    for (kind, n) in [
        ("runq_events", lost.runq_events),
        ("thread_exits", lost.thread_exits),
        ("stats_samples", lost.stats_samples),
        ("block_requests", lost.block_requests),
        ("spans", lost.spans),
        ("http_captures", lost.http_captures),
        ("timeline_events", lost.timeline_events),
        ("children_untracked", lost.children_untracked),
        ("wait_holders", lost.wait_holders),
    ] {
        losses.add(&Labels::new().with("kind", kind), n as f64);
    }
    losses.push_into(out);

    let counters = [
        ("tracer_untracked_threads_total", "Threads not tracked because the thread table was full (raise --max-threads).", lost.threads_untracked),
        ("tracer_accounting_gaps_total", "Scheduler switches of traced threads the kernel did not report.", lost.accounting_gaps),
    ];
    for (name, help, n) in counters {
        let mut family = Family::counter(name, help);
        family.add(&Labels::new(), n as f64);
        family.push_into(out);
    }

    let mut threads = Family::gauge("tracer_tracked_threads", "Live threads tracer follows now.");
    threads.add(&Labels::new(), agg.live_threads() as f64);
    threads.push_into(out);

    let mut folded_sets = Family::gauge(
        "tracer_folded_label_sets",
        "Label sets summed into the `other` series (beyond --max-series, or ended), by what they label.",
    );
    for (kind, n) in folded {
        folded_sets.add(&Labels::new().with("kind", *kind), *n as f64);
    }
    folded_sets.push_into(out);
}
