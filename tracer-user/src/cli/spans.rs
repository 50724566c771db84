//! `tracer spans`: the options of tracing spans live, and of joining spans
//! recorded elsewhere with a timeline (`tracer spans join`).
use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{ListenArgs, OtlpArgs, parse_fraction, parse_millis, parse_seconds};

#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    override_usage = "tracer spans --pid <PID> [--pid <PID>...] [OPTIONS]\n       \
                      tracer spans --cgroup <CGROUP_PATH> [OPTIONS]\n       \
                      tracer spans join --timeline <FILE> --spans <FILE> [OPTIONS]"
)]
pub struct SpansArgs {
    #[command(subcommand)]
    pub command: Option<SpansCommand>,

    /// An instrumented process (repeat for several, up to 16, in one
    /// recording: a proxy and its application). Required unless joining or
    /// with --cgroup.
    #[arg(short = 'p', long = "pid", value_name = "PID", required_unless_present = "cgroup")]
    pub pids: Vec<u32>,

    /// The processes in this cgroup v2 directory (and below it): markers of
    /// those running when tracing starts, HTTP exchanges (--http) of all.
    #[arg(short = 'c', long = "cgroup", value_name = "CGROUP_PATH")]
    pub cgroup: Option<String>,

    /// Write the JSON lines to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Only spans slower than MS milliseconds.
    #[arg(long, value_name = "MS", value_parser = parse_millis)]
    pub slow: Option<f64>,

    /// Share of a span's wall time waiting for a CPU from which its verdict
    /// is cpu-contention (it also is whenever that wait is its largest part).
    #[arg(long, value_name = "FRACTION", default_value_t = crate::model::aggregate::DEFAULT_CONTENTION_THRESHOLD,
          value_parser = parse_fraction)]
    pub contention_threshold: f64,

    /// Stop after this many seconds (default: at Ctrl-C, SIGTERM or SIGHUP).
    #[arg(short = 'd', long, value_name = "SECS", value_parser = parse_seconds)]
    pub duration: Option<std::time::Duration>,

    /// Spans open longer than this are removed and counted as never ended.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_seconds)]
    pub expire_after: std::time::Duration,

    /// Read the spans from the marker library's ring in the process's memory
    /// (no trap per marker), for the targets whose library has one; their
    /// breakdown is joined from the kernel's timeline (docs/spans.md, "How
    /// the markers reach the tracer"). The default without --http.
    #[arg(long, conflicts_with = "marker_uprobes")]
    pub marker_ring: bool,

    /// Attach uprobes to the markers instead of reading their ring: the
    /// kernel snapshots the thread at each marker, at the cost of a trap per
    /// marker (about a microsecond each). The default with --http, so that the
    /// HTTP calls a marker span makes carry it as their parent and are its
    /// downstream part.
    #[arg(long)]
    pub marker_uprobes: bool,

    /// Also make a span of every HTTP/1.x exchange, and of every stream of
    /// an HTTP/2 connection in cleartext, in the process's socket syscalls,
    /// from the read of a request to the end of its response (no markers
    /// needed; see docs/spans.md).
    #[arg(long)]
    pub http: bool,

    /// With --http, keep the query string in `http_path`.
    #[arg(long, requires = "http")]
    pub http_query: bool,

    /// With --http, trace every syscall of the process, not only the socket
    /// I/O that HTTP detection reads (read, write, close, ...): span lines then
    /// list all their syscalls, at the cost of a probe on each one.
    #[arg(long, requires = "http")]
    pub all_syscalls: bool,

    /// Trace no syscalls: span lines then have no syscall time or list, and
    /// no process on the host runs a probe at each of its syscalls, about
    /// half of what tracing costs a saturated server and its load generator
    /// (docs/performance.md). The breakdown's parts stay whole.
    #[arg(long, conflicts_with_all = ["http", "all_syscalls"])]
    pub no_syscalls: bool,

    /// Keep tracing after the target process exits (by default the run ends,
    /// with its summary, once the process is gone).
    #[arg(long)]
    pub keep_waiting: bool,

    #[command(flatten)]
    pub otlp: OtlpArgs,

    #[command(flatten)]
    pub metrics: ListenArgs,

    #[command(flatten)]
    pub flight: FlightArgs,
}

impl SpansArgs {
    /// Whether the markers are read from their rings: unless uprobes are
    /// asked for, or --http (without --marker-ring) wants them to nest.
    pub fn marker_ring_wanted(&self) -> bool {
        self.marker_ring || (!self.marker_uprobes && !self.http)
    }
}

/// The flight recorder (docs/flight-recorder.md).
#[derive(Debug, Args)]
pub struct FlightArgs {
    /// Keep the target's recent timeline in memory and write each span
    /// slower than --slow, with the window around it, to DIR as a Perfetto
    /// trace (slow-TIME-SPANID.pftrace, its span line in .json beside it).
    #[arg(long, value_name = "DIR", requires = "slow")]
    pub flight_recorder: Option<PathBuf>,

    /// Seconds of timeline the flight recorder keeps.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_seconds, requires = "flight_recorder")]
    pub keep: std::time::Duration,

    /// Memory the flight recorder uses at most, in MiB: the kernel's
    /// timeline buffer that feeds it (an eighth, mapped twice), then half of
    /// the rest for the kept timeline (whichever of --keep and this comes
    /// first), half for the dump being written.
    #[arg(long, value_name = "MIB", default_value_t = crate::app::flight::DEFAULT_MAX_MIB,
          value_parser = clap::value_parser!(u64).range(1..=1 << 20), requires = "flight_recorder")]
    pub max_mib: u64,

    /// Seconds after a slow span ended that its dump is written, and covers
    /// (it begins as long before the span began).
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_seconds, requires = "flight_recorder")]
    pub after: std::time::Duration,

    /// Dumps written at most per minute; slow spans beyond are counted.
    #[arg(long, value_name = "N", default_value_t = crate::app::flight::DEFAULT_MAX_DUMPS_PER_MIN,
          value_parser = clap::value_parser!(u32).range(1..), requires = "flight_recorder")]
    pub max_dumps_per_min: u32,
}

#[derive(Debug, Subcommand)]
pub enum SpansCommand {
    /// Break down spans recorded by something else, after the fact, with a
    /// timeline recorded at the same time.
    #[command(long_about = "Break down spans recorded by something else, after the fact.\n\n\
Reads spans with a thread id and wall-clock start and end (JSON lines, or an OTLP/JSON trace \
export with the `thread.id` attribute) and a timeline that `tracer record --timeline` wrote while \
they ran, and prints the same JSON lines as `tracer spans -p PID`: where each span's time went \
(on a CPU, waiting for one, I/O, other waits), its syscalls, a verdict, and who held the CPU while \
it waited. Spans without a thread id, outside the recording, or unreadable are counted and \
reported on standard error with their line numbers; the others are still joined. Needs neither \
root nor BPF. See docs/spans.md.")]
    Join(JoinArgs),
}

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// Timeline written by `tracer record --timeline`.
    #[arg(long, value_name = "FILE")]
    pub timeline: PathBuf,

    /// Spans: JSON lines (`span_id`, `name`, `tid`, `start_unix_ns`,
    /// `end_unix_ns`, optional `trace_id`) or OTLP/JSON; `-` reads them
    /// from standard input.
    #[arg(long, value_name = "FILE")]
    pub spans: PathBuf,

    /// Write the JSON lines to FILE (atomically) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Share of a span's wall time waiting for a CPU from which its verdict
    /// is cpu-contention (it also is whenever that wait is its largest part).
    #[arg(long, value_name = "FRACTION", default_value_t = crate::model::aggregate::DEFAULT_CONTENTION_THRESHOLD,
          value_parser = parse_fraction)]
    pub contention_threshold: f64,

    #[command(flatten)]
    pub otlp: OtlpArgs,
}

