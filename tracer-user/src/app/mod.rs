//! The application layer: the event loop (ticks, intervals, input and the
//! end of a run), a recording session (probes plus aggregation, drained
//! one into the other at each tick), what to trace, the timeline recorder,
//! the flight recorder,
//! the report of a session, the OTLP span exporter, and the Prometheus
//! endpoint that serves it. Commands and the live view are built on it.
pub mod events;
pub mod flight;
pub mod markers;
pub mod metrics;
pub mod otlp;
pub mod recorder;
pub mod report;
pub mod session;
pub mod targets;

pub use events::{Event, EventLoop, StopReason};
pub use session::{Plan, Session, Stop};
pub use targets::Targets;
