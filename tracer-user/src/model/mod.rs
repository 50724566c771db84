//! The pure model: what the kernel reported, aggregated. Histograms,
//! per-thread and per-process totals, kernel statistics, spans and their
//! verdicts, HTTP exchanges, timeline queries. No file, `/proc` or clock
//! access here: callers pass what the model needs (a [`ProcessInfo`] for
//! names, clock offsets as numbers), so every piece is testable on its own.
pub mod aggregate;
pub mod cpus;
pub mod downstream;
pub mod exited;
pub mod flight;
pub mod flows;
pub mod gantt;
pub mod h2;
pub mod goodput;
pub mod hist;
pub mod holders;
pub mod http;
pub mod intervals;
pub mod join;
pub mod kstats;
pub mod losses;
pub mod markers;
pub mod names;
pub mod recent;
pub mod rounds;
pub mod runq;
pub mod spans;
pub mod thread;
pub mod timeline;

pub use names::{Offline, ProcessInfo};
