//! A flight-recorder dump (`tracer spans --flight-recorder DIR`): the
//! window around one slow span as a Perfetto trace, `slow-<time>-<span
//! id>.pftrace`, with the span's JSON line beside it in `.json` of the same
//! name. Both are written atomically (`output::atomic`), the line first, so
//! a trace in DIR always has its line.
use std::path::{Path, PathBuf};

use super::{
    atomic::{self, OutputError},
    perfetto::{self, PerfettoError, PerfettoSummary},
    spans_json::write_line,
};
use crate::model::{flight::Window, spans::SpanRecord};

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error(transparent)]
    Line(#[from] OutputError),
    #[error(transparent)]
    Trace(#[from] PerfettoError),
}

/// What a dump wrote.
#[derive(Debug)]
pub struct Dump {
    pub trace: PathBuf,
    pub line: PathBuf,
    pub summary: PerfettoSummary,
    /// Why the trace begins later than asked, if it does.
    pub truncated: Option<String>,
}

/// `YYYYMMDDTHHMMSS.mmmZ` (UTC) of a wall-clock time: file names that sort
/// by time and say it.
pub fn utc_stamp(unix_ns: u64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ns)).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// The name of the dump of `span`, without extension (its stamp has a
/// dot, so extensions are appended, never set).
pub fn dump_stem(span: &SpanRecord) -> String {
    format!("slow-{}-{}", utc_stamp(span.start_unix_ns), span.span_id)
}

/// Writes the dump of `trigger` from `window` into `dir`.
pub fn write_dump(dir: &Path, window: &Window, trigger: &SpanRecord) -> Result<Dump, DumpError> {
    let stem = dump_stem(trigger);
    let (line_path, trace_path) = (dir.join(format!("{stem}.json")), dir.join(format!("{stem}.pftrace")));
    let mut line = Vec::new();
    write_line(&mut line, trigger).expect("writing to memory");
    atomic::write_atomically(&line_path, &line)?;
    let timeline = window.timeline();
    let summary = perfetto::write(&trace_path, &timeline, &window.spans())?;
    Ok(Dump { trace: trace_path, line: line_path, summary, truncated: timeline.header.truncated })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_civil_times() {
        assert_eq!(utc_stamp(0), "19700101T000000.000Z");
        // 2024-02-29 23:59:59.999 UTC, a leap day.
        assert_eq!(utc_stamp(1_709_251_199_999_000_000), "20240229T235959.999Z");
        assert_eq!(utc_stamp(1_764_341_513_250_000_000), "20251128T145153.250Z");
    }
}
