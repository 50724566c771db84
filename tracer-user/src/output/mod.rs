//! Outputs: the JSON report, span JSON lines, Prometheus metrics, text tables like runqlat's,
//! the timeline file format, and the one way files are written (checked
//! before recording, atomic). Each turns the model into bytes; none reaches
//! into the loader or reads the system.
pub mod atomic;
pub mod hist_json;
pub mod metrics;
pub mod report;
pub mod spans_json;
pub mod text;
pub mod timeline_file;
