//! `--otlp URL` and `--service-name`, shared by `spans` and `spans join`.
use clap::Args;

use crate::app::otlp::Endpoint;

/// Sending spans to an OpenTelemetry collector.
#[derive(Debug, Args, Default, Clone)]
pub struct OtlpArgs {
    /// Also send every span to an OpenTelemetry collector as OTLP/HTTP
    /// protobuf, e.g. http://127.0.0.1:4318 (`/v1/traces` is added when
    /// the URL has no path). Batched from a bounded queue that never holds
    /// up tracing; spans that could not be sent are counted and reported
    /// at the end. See docs/otlp.md.
    #[arg(long, value_name = "URL", value_parser = parse_endpoint)]
    pub otlp: Option<Endpoint>,

    /// With --otlp: the spans' `service.name` (default: the name of the
    /// process each span is from).
    #[arg(long, value_name = "NAME", requires = "otlp")]
    pub service_name: Option<String>,
}

fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    Endpoint::parse(text).map_err(|err| err.to_string())
}
