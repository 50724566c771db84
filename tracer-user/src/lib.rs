//! `tracer`: where did the time of this process, this thread, this request
//! go? The library behind the `tracer` binary, in layers whose dependencies
//! point down only (docs/architecture.md):
//!
//! - [`model`]: pure data: histograms, per-thread totals, kernel statistics,
//!   spans and verdicts, HTTP exchanges, timeline queries;
//! - [`sys`]: readers of `/proc`, `/sys`, tracefs, BTF, cgroups, clocks;
//! - [`bpf`]: kernel access: loads, configures and attaches the eBPF
//!   programs and reads their maps;
//! - [`output`]: the report and span JSON, text tables, the timeline file,
//!   atomic writes;
//! - [`app`]: the recording session and its event loop, targets, the
//!   timeline recorder;
//! - [`cli`], [`commands`], [`tui`]: the command line and the live view.
/// `eprintln!` that ignores a failed write instead of panicking: after
/// SIGHUP stderr may be a terminal that is gone, and the run must still
/// end cleanly (report written, temporary files removed).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod app;
pub mod bpf;
pub mod cli;
pub mod commands;
pub mod model;
pub mod output;
pub mod sys;
pub mod tui;
