//! Finished request spans: their breakdown, verdict and blame, as JSON
//! lines, and the per-name / per-verdict summary for the report.
use std::{borrow::Cow, collections::BTreeMap, sync::Arc};

use serde::{Deserialize, Serialize};
use tracer_common::{
    SPAN_CLIENT, SPAN_HANDED_OFF, SPAN_HTTP, SPAN_HTTP_ROUND, SPAN_MOVED_THREAD, SpanEvent, ThreadTotals,
};

use super::{
    hist::Buckets,
    http::HttpFields,
    names::{CpuLimit, ProcessName, comm_string, syscall_name},
};

/// What made a span slow. The rule (documented in docs/spans.md):
/// `cpu-throttled` when the run-queue wait while its cgroup was throttled
/// by its CPU quota is at least the wait behind other tasks and is the
/// largest part or at least `contention_threshold` of the wall time;
/// `cpu-stolen` the same for the time the hypervisor took the CPU from the
/// thread while it held it (steal);
/// `cpu-contention` when the run-queue wait while other tasks held the CPU
/// (`runq`) is the largest part or at least
/// `contention_threshold` of the wall time; otherwise the largest of on-CPU
/// (`on-cpu`), I/O wait (`io`), and other waits (`blocked`: sleep and
/// uninterruptible waits that are not I/O). `moved` when the span ended on
/// another thread than it began, so no single thread's time explains it.
///
/// The variants are declared in the alphabetical order of their names, so
/// that maps keyed by verdict (the report's `spans.by_verdict`, the summary
/// on stderr) list them in the same order as when they were keyed by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Blocked,
    CpuContention,
    CpuStolen,
    CpuThrottled,
    Io,
    Moved,
    OnCpu,
}

impl Verdict {
    pub const ALL: [Verdict; 7] = [
        Verdict::Blocked,
        Verdict::CpuContention,
        Verdict::CpuStolen,
        Verdict::CpuThrottled,
        Verdict::Io,
        Verdict::Moved,
        Verdict::OnCpu,
    ];

    /// Its name in the JSON (`cpu-contention`).
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Blocked => "blocked",
            Verdict::CpuContention => "cpu-contention",
            Verdict::CpuStolen => "cpu-stolen",
            Verdict::CpuThrottled => "cpu-throttled",
            Verdict::Io => "io",
            Verdict::Moved => "moved",
            Verdict::OnCpu => "on-cpu",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so that widths (`{:<14}`) apply.
        f.pad(self.name())
    }
}

/// The waits for a CPU of a span: while its cgroup was throttled by its CPU
/// quota, while the hypervisor had taken its CPU, and behind other tasks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuWaits {
    pub throttled: u64,
    pub stolen: u64,
    pub contended: u64,
}

/// The verdict of a span that did not move between threads (see [`Verdict`]).
pub fn verdict(on_cpu: u64, waits: CpuWaits, io: u64, blocked: u64, wall: u64, contention_threshold: f64) -> Verdict {
    let largest = on_cpu.max(io).max(blocked);
    let dominates = |wait: u64| wait > 0 && (wait >= largest || wait as f64 >= contention_threshold * wall as f64);
    let CpuWaits { throttled, stolen, contended: runq } = waits;
    if throttled >= runq && throttled >= stolen && dominates(throttled) {
        Verdict::CpuThrottled
    } else if stolen >= runq && dominates(stolen) {
        Verdict::CpuStolen
    } else if dominates(runq) {
        Verdict::CpuContention
    } else if largest == on_cpu {
        Verdict::OnCpu
    } else if largest == io {
        Verdict::Io
    } else {
        Verdict::Blocked
    }
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq)]
pub struct SyscallTime {
    pub name: Cow<'static, str>,
    pub count: u32,
    pub ns: u64,
}

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq)]
pub struct Holder {
    pub pid: u32,
    pub comm: Arc<str>,
    /// Its cgroup v2 path, when it could still be read.
    pub cgroup: Option<Arc<str>>,
    pub ns: u64,
}

/// One peer a span waited on, over its outgoing calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownstreamWait {
    pub peer: String,
    pub count: u32,
    pub ns: u64,
}

/// Which side of an exchange a span is (OpenTelemetry's span kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanKind {
    /// Marked in the program's code (`tracer_span_begin`/`_end`).
    #[default]
    Internal,
    /// An HTTP request the process read and answered.
    Server,
    /// An HTTP request the process wrote, and the response it read.
    Client,
}

impl SpanKind {
    /// Its name in the JSON (`server`).
    pub fn name(self) -> &'static str {
        match self {
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
        }
    }
}

/// One JSON line of `tracer spans`.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq)]
pub struct SpanRecord {
    pub trace_id: Option<String>,
    pub span_id: u64,
    /// The span open on the thread when this outgoing call began: the
    /// request it was made for. For a request another traced process sent
    /// (both carried its `X-Request-Id`): that process's outgoing call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<u64>,
    /// The process of `parent_span_id`, when it is another one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_pid: Option<u32>,
    #[serde(default)]
    pub kind: SpanKind,
    pub name: String,
    pub pid: u32,
    pub tid: u32,
    pub start_unix_ns: u64,
    pub wall_ns: u64,
    pub on_cpu_ns: u64,
    /// The part of `on_cpu_ns` spent by the CPU leaving idle after the
    /// thread's wakeups (the kernel charges it to the thread's CPU clock).
    #[serde(default)]
    pub wakeup_idle_ns: u64,
    pub runq_wait_ns: u64,
    /// The part of `runq_wait_ns` while its cgroup was throttled by its CPU
    /// quota (nobody is blamed for it).
    #[serde(default)]
    pub throttled_ns: u64,
    /// The part of `runq_wait_ns` taken from the thread while it held its
    /// CPU (the hypervisor's steal): nobody in the machine is blamed for it.
    #[serde(default)]
    pub stolen_ns: u64,
    pub iowait_ns: u64,
    /// Uninterruptible waits other than I/O (locks, page faults).
    pub uninterruptible_ns: u64,
    pub sleep_ns: u64,
    /// The part of the thread's sleep spent waiting on its outgoing calls'
    /// peers (taken out of `sleep_ns`); `downstream` names them.
    #[serde(default)]
    pub downstream_ns: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub downstream: Vec<DownstreamWait>,
    /// Of a request that moved between threads: the time between the part
    /// on the thread that read it and the part on the thread that answered
    /// it, when neither thread is known to have run it (waiting in the
    /// runtime's own scheduler, for Go or Tokio, or running unseen).
    #[serde(default)]
    pub between_threads_ns: u64,
    /// When waiting on `downstream` peers is its largest part: where that
    /// time went, from the request's own span in the peer, if traced
    /// (`model::flows`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downstream_verdict: Option<String>,
    /// Time whose state is unknown (a switch-in the kernel probes did not
    /// see); with the six parts above it sums to `wall_ns`.
    pub unaccounted_ns: u64,
    pub syscall_ns: u64,
    pub top_syscalls: Vec<SyscallTime>,
    pub migrations: u64,
    /// Times its thread blocked, and was preempted, during the span.
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    pub verdict: Verdict,
    /// With `cpu-throttled`: the quota it waited for, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<CpuLimit>,
    /// Who had the CPU while this span's thread waited for it.
    pub blame: Vec<Holder>,
    /// Ended on a different thread (`tid_end`) than it began.
    pub moved_between_threads: bool,
    pub tid_end: u32,
    /// Why the parts do not cover the span (every part 0, or a later
    /// round's time missing), when they do not: what the kernel could not
    /// follow of a request that moved between threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_breakdown: Option<String>,
    /// The HTTP exchange, for spans found by `--http`.
    #[serde(flatten)]
    pub http: Option<HttpFields>,
}

impl SpanRecord {
    /// `name_of` names the processes that held the CPU (TGID -> comm and
    /// cgroup): live from /proc while tracing, from a recording's name table
    /// when joining after the fact.
    pub fn from_event(
        event: &SpanEvent,
        monotonic_to_unix_ns: i128,
        contention_threshold: f64,
        name_of: impl Fn(u32) -> ProcessName,
    ) -> SpanRecord {
        let wall = event.end_ns.saturating_sub(event.start_ns);
        let between = if event.flags & SPAN_HANDED_OFF != 0 { event.between_threads_ns.min(wall) } else { 0 };
        let d = &within_wall(event.delta, wall - between);
        let other_d = d.uninterruptible_ns.saturating_sub(d.iowait_ns);
        // Moved with no breakdown at all, or handed off with the two
        // threads' parts and the time between.
        let unattributed = event.flags & SPAN_MOVED_THREAD != 0;
        let moved = unattributed || between > 0;
        // Waiting while the CPU was idle is wake-up latency, not contention.
        let idle_ns: u64 = event.holders.iter().filter(|h| h.count > 0 && h.id == 0).map(|h| h.ns).sum();
        // Neither is waiting while its cgroup was throttled by its quota,
        // nor time the hypervisor took the CPU from the thread.
        let held_by_tasks = d.runq_wait_ns - d.throttled_ns - d.stolen_ns;
        let waits = CpuWaits {
            throttled: d.throttled_ns,
            stolen: d.stolen_ns,
            contended: held_by_tasks.saturating_sub(idle_ns),
        };
        let largest_part = d.on_cpu_ns.max(d.runq_wait_ns).max(d.uninterruptible_ns).max(d.sleep_ns);
        let verdict = if unattributed || (between > 0 && between >= largest_part) {
            Verdict::Moved
        } else {
            verdict(d.on_cpu_ns, waits, d.iowait_ns, d.sleep_ns + other_d, wall, contention_threshold)
        };
        let mut top_syscalls: Vec<SyscallTime> = event
            .syscalls
            .iter()
            .filter(|s| s.count > 0)
            .map(|s| SyscallTime { name: syscall_name(s.id), count: s.count, ns: s.ns })
            .collect();
        top_syscalls.sort_by_key(|s| std::cmp::Reverse(s.ns));
        let mut blame: Vec<Holder> = event
            .holders
            .iter()
            .filter(|h| h.count > 0)
            .map(|h| {
                let ProcessName { comm, cgroup } =
                    if h.id == 0 { ProcessName { comm: "(idle)".into(), cgroup: None } } else { name_of(h.id) };
                Holder { pid: h.id, comm, cgroup, ns: h.ns }
            })
            .collect();
        if !unattributed {
            fit_blame(&mut blame, held_by_tasks);
        }
        blame.sort_by_key(|h| std::cmp::Reverse(h.ns));
        let kind = match (event.flags & SPAN_HTTP != 0, event.flags & SPAN_CLIENT != 0) {
            (false, _) => SpanKind::Internal,
            (true, false) => SpanKind::Server,
            (true, true) => SpanKind::Client,
        };
        SpanRecord {
            trace_id: None,
            span_id: event.span_id,
            parent_span_id: (event.parent_span_id != 0).then_some(event.parent_span_id),
            parent_pid: None,
            kind,
            name: comm_string(&event.name),
            pid: event.tgid,
            tid: event.tid_begin,
            start_unix_ns: (i128::from(event.start_ns) + monotonic_to_unix_ns).max(0) as u64,
            wall_ns: wall,
            on_cpu_ns: d.on_cpu_ns,
            wakeup_idle_ns: d.wakeup_idle_ns,
            runq_wait_ns: d.runq_wait_ns,
            throttled_ns: d.throttled_ns,
            stolen_ns: d.stolen_ns,
            iowait_ns: d.iowait_ns,
            uninterruptible_ns: other_d,
            sleep_ns: d.sleep_ns,
            downstream_ns: 0,
            downstream: Vec::new(),
            downstream_verdict: None,
            between_threads_ns: between,
            unaccounted_ns: d.unaccounted_ns,
            syscall_ns: d.syscall_ns,
            top_syscalls,
            migrations: d.migrations,
            voluntary_switches: d.voluntary_switches,
            involuntary_switches: d.involuntary_switches,
            verdict,
            throttle: None,
            blame,
            moved_between_threads: moved,
            tid_end: event.tid_end,
            no_breakdown: unattributed.then(|| no_breakdown_reason(event.flags).to_owned()),
            http: None,
        }
    }
}

/// Why a span that moved between threads ([`SPAN_MOVED_THREAD`]) has no
/// breakdown, or not all of one.
fn no_breakdown_reason(flags: u32) -> &'static str {
    if flags & SPAN_HTTP == 0 {
        "ended on another thread than it began: markers do not say which threads ran it in between"
    } else if flags & SPAN_HTTP_ROUND != 0 {
        "a later round of its response went on another thread than the one before: that round's time is in no part"
    } else {
        "answered on another thread than the one that read it, not seen taking it up (it did not write the \
         response's first byte, or the kernel did not report its switch-in)"
    }
}

/// Spans summed over a recording, for the report.
#[derive(Debug, Default)]
pub struct SpanSummary {
    pub count: u64,
    /// Wall time minus run-queue wait: the latency without CPU contention.
    pub contention_free: Buckets,
    /// Run-queue wait of all spans, by who held the CPU.
    pub blame: BTreeMap<u32, Holder>,
    /// Wall time per span name, then verdict (the metrics endpoint's
    /// `tracer_span_duration_seconds`). Per name alone and per verdict
    /// alone are merged from these when shown: one histogram recorded per
    /// span, not three.
    pub by_name_verdict: BTreeMap<String, BTreeMap<Verdict, Buckets>>,
}

impl SpanSummary {
    pub fn add(&mut self, span: &SpanRecord) {
        self.count += 1;
        named(&mut self.by_name_verdict, &span.name).entry(span.verdict).or_default().record(span.wall_ns);
        self.contention_free.record(span.wall_ns.saturating_sub(span.runq_wait_ns));
        for holder in &span.blame {
            let entry = self.blame.entry(holder.pid).or_insert_with(|| Holder { ns: 0, ..holder.clone() });
            entry.ns += holder.ns;
        }
    }

    /// Wall time per span name.
    pub fn by_name(&self) -> BTreeMap<String, Buckets> {
        let merged = |verdicts: &BTreeMap<Verdict, Buckets>| {
            verdicts.values().fold(Buckets::default(), |mut all, buckets| {
                all.merge(buckets);
                all
            })
        };
        self.by_name_verdict.iter().map(|(name, verdicts)| (name.clone(), merged(verdicts))).collect()
    }

    /// Wall time per verdict.
    pub fn by_verdict(&self) -> BTreeMap<Verdict, Buckets> {
        let mut by_verdict = BTreeMap::<Verdict, Buckets>::new();
        for (verdict, buckets) in self.by_name_verdict.values().flatten() {
            by_verdict.entry(*verdict).or_default().merge(buckets);
        }
        by_verdict
    }
}

/// The entry of `name`, made on first use: the name is copied only then
/// (tens of thousands of spans a second share a few names).
fn named<'a, V: Default>(by_name: &'a mut BTreeMap<String, V>, name: &str) -> &'a mut V {
    if !by_name.contains_key(name) {
        by_name.insert(name.to_owned(), V::default());
    }
    by_name.get_mut(name).expect("inserted above")
}

/// A span's totals with the time the kernel's clock moved across its start
/// given back. A run the kernel counted shorter than its tracepoints ends
/// earlier, and the state the thread left into begins that much earlier
/// (docs/report-format.md, `on_cpu_ns`); when the span began inside that
/// run, less than the shortfall of it lies in the span: the span's on-CPU
/// part stops at zero and its wait (or blocked part) holds the rest, which
/// belongs before the span. That rest is the excess of the parts over the
/// wall time, and it comes out of the parts it went into, waits first.
pub fn within_wall(mut d: ThreadTotals, wall: u64) -> ThreadTotals {
    let parts = d.on_cpu_ns + d.runq_wait_ns + d.uninterruptible_ns + d.sleep_ns;
    let mut excess = parts.saturating_sub(wall);
    let mut give_back = |part: &mut u64| {
        let taken = excess.min(*part);
        *part -= taken;
        excess -= taken;
    };
    give_back(&mut d.runq_wait_ns);
    d.throttled_ns = d.throttled_ns.min(d.runq_wait_ns);
    d.stolen_ns = d.stolen_ns.min(d.runq_wait_ns - d.throttled_ns);
    give_back(&mut d.sleep_ns);
    // `uninterruptible_ns` includes `iowait_ns`.
    let mut not_io = d.uninterruptible_ns.saturating_sub(d.iowait_ns);
    give_back(&mut not_io);
    give_back(&mut d.iowait_ns);
    d.uninterruptible_ns = not_io + d.iowait_ns;
    give_back(&mut d.on_cpu_ns);
    d.wakeup_idle_ns = d.wakeup_idle_ns.min(d.on_cpu_ns);
    d
}

/// Scales the holders down to the span's wait for a CPU, when they name
/// more: they are timed between tracepoints, the wait by the kernel's own
/// clock, and the wait may have given time back to fit the wall time
/// (`within_wall`). Each keeps its share. (A span that moved between
/// threads has no breakdown: its holders are all it says.)
fn fit_blame(blame: &mut [Holder], wait_ns: u64) {
    let named: u64 = blame.iter().map(|h| h.ns).sum();
    if named <= wait_ns {
        return;
    }
    for holder in blame {
        holder.ns = (u128::from(holder.ns) * u128::from(wait_ns) / u128::from(named)) as u64;
    }
}

/// A span for tests of what displays spans: `wall_ms` split into on-CPU,
/// run-queue wait and sleep, with the run-queue wait blamed on "load-gen".
#[cfg(test)]
pub fn test_span(wall_ms: u64, on_cpu_ms: u64, runq_ms: u64, verdict: Verdict) -> SpanRecord {
    const MS: u64 = 1_000_000;
    SpanRecord {
        trace_id: None,
        span_id: wall_ms,
        parent_span_id: None,
        parent_pid: None,
        kind: SpanKind::Internal,
        name: "GET /cpu".into(),
        pid: 100,
        tid: 101,
        start_unix_ns: 0,
        wall_ns: wall_ms * MS,
        on_cpu_ns: on_cpu_ms * MS,
        wakeup_idle_ns: 0,
        runq_wait_ns: runq_ms * MS,
        throttled_ns: 0,
        stolen_ns: 0,
        iowait_ns: 0,
        uninterruptible_ns: 0,
        sleep_ns: (wall_ms - on_cpu_ms - runq_ms) * MS,
        downstream_ns: 0,
        downstream: vec![],
        downstream_verdict: None,
        between_threads_ns: 0,
        unaccounted_ns: 0,
        syscall_ns: 0,
        top_syscalls: vec![],
        migrations: 0,
        voluntary_switches: 0,
        involuntary_switches: 0,
        verdict,
        throttle: None,
        blame: vec![Holder { pid: 812, comm: "load-gen".into(), cgroup: None, ns: runq_ms * MS }],
        moved_between_threads: false,
        tid_end: 101,
        no_breakdown: None,
        http: None,
    }
}

#[cfg(test)]
mod tests;
