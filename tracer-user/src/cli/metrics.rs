//! Options of the Prometheus endpoint: `tracer serve`, and `--listen` on
//! `record` and `spans`.
use std::{net::SocketAddr, time::Duration};

use clap::Args;

use super::{TargetArgs, millis_to_ns, parse_millis, parse_seconds};
use crate::output::metrics::By;

/// Where `tracer serve` listens unless told.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";
/// `--max-series` unless told.
pub const DEFAULT_MAX_SERIES: u32 = 100;

/// How the metrics are labelled and bounded.
#[derive(Debug, Args, Clone, Copy)]
pub struct SeriesArgs {
    /// Label the per-process metrics by process (`pid`, `comm`) or by
    /// cgroup v2 path (`cgroup`).
    #[arg(long, value_enum, value_name = "LABELS", default_value_t = By::Process)]
    pub by: By,

    /// Most label sets (processes, cgroups, span names) per metric, `other`
    /// included: the first and busiest keep a series while they live, the
    /// rest are summed into `other` and counted (tracer_folded_label_sets),
    /// so that short-lived PIDs cannot swamp a Prometheus server.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_SERIES,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_series: u32,

    /// Latency objective of the request spans: those at most MS
    /// milliseconds long are counted per name and second, with the verdicts
    /// of the misses (the report's spans.goodput, a line per name at the end,
    /// tracer_spans_within_slo_total).
    #[arg(long, value_name = "MS", value_parser = parse_millis)]
    pub slo: Option<f64>,
}

impl Default for SeriesArgs {
    fn default() -> Self {
        SeriesArgs { by: By::Process, max_series: DEFAULT_MAX_SERIES, slo: None }
    }
}

impl SeriesArgs {
    /// `--slo` in nanoseconds.
    pub fn slo_ns(&self) -> Option<u64> {
        self.slo.map(millis_to_ns)
    }
}

/// `--listen` on `record` and `spans`.
#[derive(Debug, Args, Clone, Default)]
pub struct ListenArgs {
    /// Also serve Prometheus metrics of the recording at
    /// http://ADDR/metrics (ADDR is IP:PORT, e.g. 127.0.0.1:9464); see
    /// docs/metrics.md.
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub listen: Option<SocketAddr>,

    #[command(flatten)]
    pub series: SeriesArgs,
}

/// `tracer serve --help`.
pub const SERVE_LONG_ABOUT: &str = "Trace, and serve what is measured as Prometheus metrics at http://ADDR/metrics \
(the text exposition format), until Ctrl-C, SIGTERM, SIGHUP or --duration: run-queue latency, on-CPU \
time, off-CPU time by cause, syscall latency (with a target, or --syscalls) and block I/O latency per \
device and operation, per process or per cgroup; request spans per name and verdict when the (first) \
--pid has span markers; and tracer's own health. Every metric is listed in docs/metrics.md.\n\n\
Scrapes are answered from a copy of the numbers taken every second, on a thread of their own: a \
scrape never holds up tracing.";

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub target: TargetArgs,

    /// Where to serve /metrics: IP:PORT.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN, value_parser = parse_listen)]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub series: SeriesArgs,

    /// Trace syscalls system-wide too. (With --pid, --tid or --cgroup they
    /// are always traced; system-wide they slow every syscall, so ask.)
    #[arg(long)]
    pub syscalls: bool,

    /// Stop after this many seconds (default: at Ctrl-C, SIGTERM or SIGHUP).
    #[arg(short = 'd', long, value_name = "SECS", value_parser = parse_seconds)]
    pub duration: Option<Duration>,
}

fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not an address to listen on: give IP:PORT, e.g. {DEFAULT_LISTEN}"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{Cli, Command};
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tracer").chain(args.iter().copied()))
    }

    #[test]
    fn serve_listens_on_the_default_port_unless_told() {
        let Some(Command::Serve(a)) = parse(&["serve"]).unwrap().command else { panic!("serve expected") };
        assert_eq!(a.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!((a.series.by, a.series.max_series, a.series.slo), (By::Process, 100, None));
        let cli = parse(&["serve", "-p", "7", "--listen", "[::1]:9000", "--by", "cgroup", "--max-series", "5", "--slo", "2.5"]);
        let Some(Command::Serve(a)) = cli.unwrap().command else { panic!("serve expected") };
        assert_eq!((a.target.pids, a.listen.to_string()), (vec![7], "[::1]:9000".to_owned()));
        assert_eq!((a.series.by, a.series.max_series, a.series.slo_ns()), (By::Cgroup, 5, Some(2_500_000)));
    }

    #[test]
    fn record_and_spans_take_listen() {
        let cli = parse(&["record", "--out", "r.json", "--listen", "127.0.0.1:0", "--max-series", "3"]).unwrap();
        let Some(Command::Record(a)) = cli.command else { panic!("record expected") };
        assert_eq!((a.metrics.listen.map(|l| l.port()), a.metrics.series.max_series), (Some(0), 3));
        let Some(Command::Record(a)) = parse(&["record", "--out", "r.json"]).unwrap().command else { panic!() };
        assert!(a.metrics.listen.is_none());
        let Some(Command::Spans(a)) = parse(&["spans", "-p", "1", "--listen", "0.0.0.0:9464", "--slo", "50"]).unwrap().command
        else {
            panic!("spans expected")
        };
        assert_eq!((a.metrics.listen.map(|l| l.port()), a.metrics.series.slo_ns()), (Some(9464), Some(50_000_000)));
    }

    #[test]
    fn bad_addresses_and_bounds_are_refused() {
        for bad in ["9464", "localhost:9464", "127.0.0.1", "127.0.0.1:99999", ""] {
            let err = parse(&["serve", "--listen", bad]).unwrap_err().to_string();
            assert!(err.contains("give IP:PORT"), "{bad}: {err}");
        }
        assert!(parse(&["serve", "--max-series", "0"]).is_err());
        assert!(parse(&["serve", "--slo", "-1"]).is_err());
        assert!(parse(&["serve", "--by", "thread"]).is_err());
    }
}
