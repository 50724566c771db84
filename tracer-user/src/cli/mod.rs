//! Command line (clap derive). Option letters follow runqlat's where the
//! meaning is the same, so existing habits carry over.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::bpf::ProbeChoice;

mod limits;
mod metrics;
mod otlp;
mod runqlen;
mod spans;
mod timeline;
pub use limits::{ExitedArgs, SafetyArgs};
pub use metrics::{ListenArgs, SeriesArgs, ServeArgs};
pub use otlp::OtlpArgs;
pub use runqlen::RunqlenArgs;
pub use spans::{JoinArgs, SpansArgs, SpansCommand};
pub use timeline::{ExportArgs, TimelineArgs, TimelineCommand};

#[derive(Debug, Parser)]
#[command(
    name = "tracer",
    version,
    about = "Where did the time go? Run-queue latency and per-thread CPU/off-CPU accounting from eBPF.",
    long_about = "Where did the time go? tracer measures, from the kernel and for any process, \
how long threads wait for a CPU (run-queue latency), how long they run, and how long they are \
off-CPU and why, as exact histograms and per-thread totals.\n\n\
Without a command it opens the live view: every process's CPU, run-queue wait, I/O wait and \
syscall time, refreshed every second; Enter on a process shows its threads and histograms.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub tui: TuiArgs,

    #[command(flatten)]
    pub kernel: KernelArgs,
}

#[derive(Debug, Args, Clone)]
pub struct KernelArgs {
    /// How to attach to the scheduler: BTF tracepoints when available
    /// (cheapest), or classic tracepoints.
    #[arg(long, value_enum, default_value_t = ProbeChoice::Auto, global = true)]
    pub probes: ProbeChoice,

    /// Most threads tracked at once; more are counted as untracked.
    #[arg(long, default_value_t = tracer_common::DEFAULT_MAX_THREADS, global = true,
          value_parser = clap::value_parser!(u32).range(1024..=4_194_304))]
    pub max_threads: u32,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run-queue latency histograms, like runqlat, plus exact percentiles.
    Runqlat(RunqlatArgs),
    /// Run-queue length per CPU, like runqlen, exact (from every change of a
    /// run queue, not sampled), with each CPU's busy share.
    Runqlen(RunqlenArgs),
    /// Syscall counts, errors and latency percentiles, like syscount -L.
    Syscalls(SyscallsArgs),
    /// Block I/O latency histograms, like biolatency, per disk, operation or process.
    Biolat(BiolatArgs),
    /// Where off-CPU time goes: preempted, I/O wait, other uninterruptible, sleep.
    Offcpu(OffcpuArgs),
    /// Record everything measured to a JSON report, until Ctrl-C, SIGTERM, SIGHUP or --duration.
    Record(RecordArgs),
    /// One JSON line per request span of a process using the span markers:
    /// where its time went, a verdict, and who held the CPU while it waited.
    ///
    /// `tracer spans -p PID` traces the span markers of a live process.
    /// `tracer spans join` does the same after the fact for spans recorded
    /// by something else (OpenTelemetry, an application's log), from a
    /// timeline recorded meanwhile; it needs neither root nor BPF.
    Spans(SpansArgs),
    /// Timelines recorded by `tracer record --timeline`: `tracer timeline
    /// export` converts one to a Perfetto trace (no root needed).
    Timeline(TimelineArgs),
    /// Serve Prometheus metrics (http://127.0.0.1:9464/metrics unless
    /// --listen says otherwise) of what is traced, until Ctrl-C, SIGTERM,
    /// SIGHUP or --duration.
    #[command(long_about = metrics::SERVE_LONG_ABOUT)]
    Serve(ServeArgs),
    /// Benchmark floor: attach empty programs to the syscall tracepoints until Ctrl-C.
    #[command(hide = true)]
    Floor,
}

/// The live view (no command).
#[derive(Debug, Args, Clone)]
pub struct TuiArgs {
    /// Open straight in this process's detail view (and trace only it).
    #[arg(short = 'p', long = "pid", value_name = "PID")]
    pub pid: Option<u32>,

    /// Trace syscalls system-wide too (every syscall on the machine pays for it).
    #[arg(long)]
    pub syscalls: bool,

    /// Refresh interval in seconds, from 0.25 to 3600.
    #[arg(short = 'i', long, value_name = "SECS", default_value_t = 1.0,
          value_parser = parse_interval)]
    pub interval: f64,

    /// With -p of a process with span markers: the latency objective of its
    /// request spans. The spans view (`s`) then shows, per span name and
    /// second, the requests, those at most MS milliseconds long (goodput),
    /// and the verdicts of those that missed it.
    #[arg(long, value_name = "MS", value_parser = parse_millis, requires = "pid")]
    pub slo: Option<f64>,
}

/// The live view's refresh interval, in seconds: from its fastest `-`
/// step (tui::app::INTERVALS_MS) to an hour, past which nothing is live.
/// (A millisecond, what any other duration may be, redraws the screen and
/// re-reads every thread a thousand times a second.)
pub const LIVE_INTERVAL_SECS: (f64, f64) = (0.25, 3600.0);

fn parse_interval(text: &str) -> Result<f64, String> {
    let (shortest, longest) = LIVE_INTERVAL_SECS;
    match text.parse::<f64>() {
        Ok(secs) if (shortest..=longest).contains(&secs) => Ok(secs),
        _ => Err(format!("`{text}`: the refresh interval must be from {shortest} to {longest} seconds")),
    }
}

/// Which tasks to trace; filters run in the kernel on the measured task.
#[derive(Debug, Args, Default, Clone)]
pub struct TargetArgs {
    /// Trace this process (repeat for several, up to 16).
    #[arg(short = 'p', long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,

    /// Trace this thread only.
    #[arg(long = "tid", value_name = "TID")]
    pub tid: Option<u32>,

    /// With --pid: also trace the processes the targets fork, and theirs
    /// (as `perf -p` users expect); needs BTF tracepoints. Without it, the
    /// report says how many children were left out.
    #[arg(long, requires = "pids")]
    pub children: bool,

    /// Trace tasks in this cgroup v2 directory (and below it).
    #[arg(short = 'c', long = "cgroup", value_name = "CGROUP_PATH")]
    pub cgroup: Option<String>,
}

/// Output shared by the live commands.
#[derive(Debug, Args, Default, Clone)]
pub struct IntervalArgs {
    /// Milliseconds instead of microseconds.
    #[arg(short = 'm', long = "milliseconds")]
    pub millis: bool,

    /// Print a timestamp before each interval.
    #[arg(short = 'T', long = "timestamp")]
    pub timestamp: bool,

    /// Also write the whole run as a JSON report (see docs/report-format.md).
    #[arg(long, value_name = "FILE", value_parser = parse_report_file)]
    pub json: Option<PathBuf>,

    /// Print every INTERVAL seconds (default: once, at Ctrl-C).
    #[arg(value_name = "INTERVAL", value_parser = clap::value_parser!(u64).range(1..=MAX_SECONDS))]
    pub interval: Option<u64>,

    /// Stop after COUNT intervals.
    #[arg(value_name = "COUNT", requires = "interval", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    #[command(flatten)]
    pub exited: ExitedArgs,
}

#[derive(Debug, Args, Default)]
pub struct SyscallsArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// One table per process.
    #[arg(short = 'P', long = "pids", conflicts_with = "per_thread")]
    pub per_process: bool,

    /// One table per thread.
    #[arg(long = "per-thread")]
    pub per_thread: bool,

    /// Latency columns, as syscount -L (always shown; accepted for habit's sake).
    #[arg(short = 'L', long = "latency")]
    pub latency: bool,

    /// Show the N syscalls with the most total time.
    #[arg(long, value_name = "N", default_value_t = 10,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub top: usize,

    /// Only these syscalls (repeat for several), by name.
    #[arg(short = 's', long = "syscall", value_name = "NAME")]
    pub syscall: Vec<String>,

    #[command(flatten)]
    pub output: IntervalArgs,
}

#[derive(Debug, Args, Default)]
pub struct BiolatArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// One histogram per disk.
    #[arg(short = 'D', long = "disk")]
    pub per_disk: bool,

    /// Include OS queue time (from insert, not issue), as biolatency -Q.
    #[arg(short = 'Q', long = "queued")]
    pub queued: bool,

    /// One histogram per process (the submitter, not the kworker issuing).
    #[arg(short = 'P', long = "pids")]
    pub per_process: bool,

    /// One histogram per operation (read, write, flush, discard).
    #[arg(short = 'F', long = "ops")]
    pub per_op: bool,

    /// Only this disk (e.g. vda; a partition means its disk).
    #[arg(long = "device", value_name = "NAME")]
    pub device: Option<String>,

    #[command(flatten)]
    pub output: IntervalArgs,
}

#[derive(Debug, Args, Default)]
pub struct OffcpuArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// One table per thread.
    #[arg(short = 'L', long = "tids")]
    pub per_thread: bool,

    #[command(flatten)]
    pub output: IntervalArgs,
}

#[derive(Debug, Args, Default)]
pub struct RunqlatArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// One histogram per process.
    #[arg(short = 'P', long = "pids", conflicts_with = "per_thread")]
    pub per_process: bool,

    /// One histogram per thread.
    #[arg(short = 'L', long = "tids")]
    pub per_thread: bool,

    /// Also print, per interval, who held the CPU while each process
    /// waited (its own threads, its cgroup, other cgroups, kernel threads).
    #[arg(long)]
    pub holders: bool,

    #[command(flatten)]
    pub output: IntervalArgs,
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("`{text}`: expected a fraction between 0 and 1")),
    }
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Trace syscalls system-wide too. (With --pid, --tid or --cgroup they
    /// are always traced; system-wide they slow every syscall, so ask.)
    #[arg(long)]
    pub syscalls: bool,

    /// Stop after this many seconds (default: at Ctrl-C, SIGTERM or SIGHUP).
    #[arg(short = 'd', long, value_name = "SECS", value_parser = parse_seconds)]
    pub duration: Option<std::time::Duration>,

    /// Report file (JSON); its directory must exist and be writable. `-`
    /// writes the report to standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub out: PathBuf,

    /// Also store every state change of the traced threads (on a CPU,
    /// waiting for one and who held it, each off-CPU cause, syscalls) in a
    /// compact file next to the report (`REPORT.timeline`), for attributing
    /// spans recorded elsewhere afterwards (`tracer spans join`). Needs
    /// --pid, --tid or --cgroup.
    #[arg(long)]
    pub timeline: bool,

    /// Also write a Perfetto trace to FILE (ui.perfetto.dev opens it): each
    /// traced thread's states, what ran on each CPU while they waited, and
    /// request spans. Needs --pid, --tid or --cgroup.
    #[arg(long, value_name = "FILE")]
    pub perfetto: Option<PathBuf>,

    /// Also make a span of every HTTP exchange (HTTP/1.x, HTTP/2 streams in
    /// cleartext) of the first --pid, as `tracer spans --http` does (no
    /// markers needed).
    #[arg(long, requires = "pids")]
    pub http: bool,

    #[command(flatten)]
    pub exited: ExitedArgs,

    #[command(flatten)]
    pub safety: SafetyArgs,

    #[command(flatten)]
    pub metrics: ListenArgs,
}

/// A command-line error on one line, like every other error of tracer
/// (`tracer: ...`): clap's message with its lines joined, without the
/// usage and the pointer to --help that follow it.
pub fn one_line(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let message = text.split("\n\nUsage:").next().unwrap_or_default();
    let message = message.split("\n\nFor more information").next().unwrap_or_default();
    let words: Vec<&str> = message.split_whitespace().collect();
    let line = words.join(" ");
    format!("tracer: {} (see --help)", line.strip_prefix("error: ").unwrap_or(&line))
}

/// A live command's `--json`: not `-`, since standard output carries its
/// text intervals.
fn parse_report_file(text: &str) -> Result<PathBuf, String> {
    if text == "-" {
        return Err("standard output carries the text intervals: give the report a file name".to_owned());
    }
    Ok(PathBuf::from(text))
}

/// The longest duration, interval or expiry accepted: one year. Bounded
/// when parsed because later conversions (`Instant + Duration`, float
/// seconds to `Duration`, nanoseconds in a `u64`) panic or wrap beyond
/// their range.
pub const MAX_SECONDS: u64 = 365 * 24 * 3600;
/// The shortest: below a millisecond a period rounds to nothing (and a
/// zero period is a panic for the timers).
const MIN_SECONDS: f64 = 0.001;

fn parse_seconds(text: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(MIN_SECONDS..=MAX_SECONDS as f64).contains(&secs) {
        return Err(format!(
            "`{text}`: expected a positive number of seconds from {MIN_SECONDS} to {MAX_SECONDS} (one year)"
        ));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// `--slow`: milliseconds, from 0 to a year.
/// Milliseconds of an option (`--slo`) in nanoseconds.
pub fn millis_to_ns(ms: f64) -> u64 {
    (ms * 1e6) as u64
}

fn parse_millis(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(ms) if (0.0..=(MAX_SECONDS * 1000) as f64).contains(&ms) => Ok(ms),
        _ => Err(format!("`{text}`: expected a number of milliseconds from 0 to {} (one year)", MAX_SECONDS * 1000)),
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tracer").chain(args.iter().copied()))
    }

    #[test]
    fn runqlat_takes_runqlat_options() {
        let cli = parse(&["runqlat", "-p", "42", "-L", "-m", "-T", "--json", "o.json", "5", "3"]).unwrap();
        let Some(Command::Runqlat(a)) = cli.command else { panic!("runqlat expected") };
        assert_eq!(a.target.pids, vec![42]);
        assert!(a.per_thread && a.output.millis && a.output.timestamp && !a.per_process);
        assert_eq!((a.output.interval, a.output.count), (Some(5), Some(3)));
        assert_eq!(a.output.json.unwrap().to_str(), Some("o.json"));
        assert_eq!(cli.kernel.probes, ProbeChoice::Auto);
    }

    #[test]
    fn per_process_and_per_thread_exclude_each_other() {
        assert!(parse(&["runqlat", "-P", "-L"]).is_err());
        assert!(parse(&["runqlat", "0"]).is_err(), "interval must be >= 1");
        let err = parse(&["runqlat", "--json", "-"]).unwrap_err().to_string();
        assert!(err.contains("standard output carries the text intervals"), "{err}");
    }

    #[test]
    fn record_takes_several_pids_and_a_duration() {
        let cli = parse(&["record", "--pid", "1", "-p", "2", "--duration", "1.5", "--out", "r.json"]).unwrap();
        let Some(Command::Record(a)) = cli.command else { panic!("record expected") };
        assert_eq!(a.target.pids, vec![1, 2]);
        assert!(!a.syscalls);
        assert_eq!(a.duration, Some(std::time::Duration::from_millis(1500)));
        assert!(parse(&["record"]).is_err(), "--out is required");
        let err = parse(&["record", "--out", "x", "--duration", "0"]).unwrap_err().to_string();
        assert!(err.contains("positive number of seconds"), "{err}");
    }

    #[test]
    fn syscalls_biolat_offcpu_take_their_peers_options() {
        let cli = parse(&["syscalls", "-p", "7", "-L", "--top", "5", "-s", "read", "-s", "write", "1", "2"]).unwrap();
        let Some(Command::Syscalls(a)) = cli.command else { panic!("syscalls expected") };
        assert_eq!((a.target.pids.as_slice(), a.top, a.latency), (&[7][..], 5, true));
        assert_eq!(a.syscall, vec!["read", "write"]);
        assert_eq!((a.output.interval, a.output.count), (Some(1), Some(2)));
        let cli = parse(&["biolat", "-D", "-Q", "-P", "-m", "--device", "vda"]).unwrap();
        let Some(Command::Biolat(a)) = cli.command else { panic!("biolat expected") };
        assert!(a.per_disk && a.queued && a.per_process && a.output.millis);
        assert_eq!(a.device.as_deref(), Some("vda"));
        let cli = parse(&["offcpu", "-p", "3", "-L", "--json", "x.json"]).unwrap();
        let Some(Command::Offcpu(a)) = cli.command else { panic!("offcpu expected") };
        assert!(a.per_thread);
        assert!(parse(&["syscalls", "-P", "--per-thread"]).is_err());
    }

    #[test]
    fn spans_traces_a_pid_or_joins() {
        let cli = parse(&["spans", "-p", "42", "--slow", "5", "--json", "s.json"]).unwrap();
        let Some(Command::Spans(a)) = cli.command else { panic!("spans expected") };
        assert_eq!((a.pids.as_slice(), a.slow, a.command.is_none()), (&[42][..], Some(5.0), true));
        assert_eq!(a.contention_threshold, crate::model::aggregate::DEFAULT_CONTENTION_THRESHOLD);

        let cli = parse(&["spans", "join", "--timeline", "t.tl", "--spans", "s.jsonl", "--contention-threshold", "0.5"])
            .unwrap();
        let Some(Command::Spans(a)) = cli.command else { panic!("spans expected") };
        let Some(SpansCommand::Join(j)) = a.command else { panic!("join expected") };
        assert_eq!((j.timeline.to_str(), j.spans.to_str(), j.json), (Some("t.tl"), Some("s.jsonl"), None));
        assert_eq!((a.pids.is_empty(), j.contention_threshold), (true, 0.5));

        let cli = parse(&["spans", "-p", "1", "-p", "2"]).unwrap();
        let Some(Command::Spans(a)) = cli.command else { panic!("spans expected") };
        assert_eq!(a.pids, [1, 2], "several processes");
        let cli = parse(&["spans", "--cgroup", "app.slice"]).unwrap();
        let Some(Command::Spans(a)) = cli.command else { panic!("spans expected") };
        assert_eq!((a.pids.is_empty(), a.cgroup.as_deref()), (true, Some("app.slice")), "a cgroup instead of -p");

        let err = parse(&["spans"]).unwrap_err().to_string();
        assert!(err.contains("--pid <PID>") && err.contains("tracer spans join"), "neither -p nor join: {err}");
        assert!(parse(&["spans", "join", "--timeline", "t.tl"]).is_err(), "--spans is required");
        assert!(parse(&["spans", "-p", "1", "join", "--timeline", "t", "--spans", "s"]).is_err());
        assert!(parse(&["spans", "join", "--timeline", "t", "--spans", "s", "--contention-threshold", "2"]).is_err());
    }

    #[test]
    fn markers_come_from_their_ring_unless_uprobes_or_http_ask_otherwise() {
        let ring = |args: &[&str]| {
            let Some(Command::Spans(a)) = parse(args).unwrap().command else { panic!("spans expected") };
            a.marker_ring_wanted()
        };
        assert!(ring(&["spans", "-p", "1"]), "the ring by default");
        assert!(!ring(&["spans", "-p", "1", "--marker-uprobes"]));
        assert!(!ring(&["spans", "-p", "1", "--http"]), "uprobes with --http, so that its calls nest");
        assert!(ring(&["spans", "-p", "1", "--http", "--marker-ring"]));
        assert!(parse(&["spans", "-p", "1", "--marker-ring", "--marker-uprobes"]).is_err());
    }

    #[test]
    fn command_line_errors_are_one_line() {
        let err = parse(&["record", "--out", "x", "--duration", "1e30"]).unwrap_err();
        let line = one_line(&err);
        assert!(line.starts_with("tracer: invalid value '1e30' for '--duration <SECS>'"), "{line}");
        assert!(line.contains("(one year)") && !line.contains('\n'), "{line}");
        let line = one_line(&parse(&["record"]).unwrap_err());
        assert_eq!(line, "tracer: the following required arguments were not provided: --out <FILE> (see --help)");
    }

    #[test]
    fn times_out_of_range_are_refused_when_parsed() {
        for duration in ["1e30", "1e19", "31536001", "-1", "NaN", "inf", "", "0.0000000001"] {
            let err = parse(&["record", "--out", "x", &format!("--duration={duration}")]).unwrap_err().to_string();
            assert!(err.contains("seconds"), "{duration}: {err}");
            assert!(parse(&["spans", "-p", "1", &format!("--expire-after={duration}")]).is_err(), "{duration}");
            assert!(parse(&[&format!("--interval={duration}")]).is_err(), "{duration}");
        }
        assert!(parse(&["record", "--out", "x", "--duration", "31536000"]).is_ok(), "one year is accepted");
        assert!(parse(&["runqlat", "18446744073709551615"]).is_err(), "an interval over a year");
        for slow in ["1e300", "-5", "NaN", "inf"] {
            assert!(parse(&["spans", "-p", "1", &format!("--slow={slow}")]).is_err(), "--slow {slow}");
        }
        assert!(parse(&["spans", "-p", "1", "--slow", "0"]).is_ok());
    }

    #[test]
    fn the_live_view_refreshes_from_a_quarter_second_to_an_hour() {
        for bad in ["0.1", "0.001", "3601", "1e30", "NaN", "0"] {
            let err = parse(&[&format!("--interval={bad}")]).unwrap_err().to_string();
            assert!(err.contains("must be from 0.25 to 3600 seconds"), "{bad}: {err}");
        }
        assert!(parse(&["-i", "0.25"]).is_ok() && parse(&["-i", "3600"]).is_ok());
        let err = parse(&["syscalls", "--top", "0"]).unwrap_err().to_string();
        assert!(err.contains("--top"), "a table of no rows: {err}");
    }

    #[test]
    fn probes_choice_is_global() {
        let cli = parse(&["record", "--out", "x", "--probes", "tracepoint"]).unwrap();
        assert_eq!(cli.kernel.probes, ProbeChoice::Tracepoint);
        let cli = parse(&["record", "--out", "x", "--probes", "btf-wakeups"]).unwrap();
        assert_eq!(cli.kernel.probes, ProbeChoice::BtfWakeups);
        let cli = parse(&[]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!((cli.tui.pid, cli.tui.interval), (None, 1.0));
        let cli = parse(&["-p", "42", "-i", "0.5"]).unwrap();
        assert_eq!((cli.tui.pid, cli.tui.interval), (Some(42), 0.5));
        assert!(parse(&["-p", "42", "runqlat"]).is_err(), "live-view options do not mix with commands");
    }
}
