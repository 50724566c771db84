//! Outputs: the JSON report, span JSON lines, OTLP span exports,
//! Prometheus metrics, text tables like runqlat's and runqlen's, the
//! timeline file format, Perfetto traces, and the one way files are written (checked
//! before recording, atomic). Each turns the model into bytes; none reaches
//! into the loader or reads the system.
pub mod atomic;
pub mod cpus_json;
pub mod cpus_text;
pub mod flight;
pub mod goodput_text;
pub mod hist_json;
pub mod holders_json;
pub mod holders_text;
pub mod metrics;
pub mod otlp;
pub mod perfetto;
pub mod report;
pub mod span_line;
pub mod spans_json;
pub mod text;
pub mod timeline_file;
