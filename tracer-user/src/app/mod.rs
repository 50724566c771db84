//! The application layer: a recording session (probes plus aggregation,
//! and the loop that drains one into the other), what to trace, the
//! timeline recorder, and the report of a session. Commands and the live
//! view are built on it.
pub mod recorder;
pub mod report;
pub mod session;
pub mod targets;

pub use session::{Plan, Session, Stop};
pub use targets::Targets;
