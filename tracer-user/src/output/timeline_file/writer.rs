//! Streams a timeline to a temporary file beside its destination (or into
//! it, for a device or FIFO: see `output::atomic`).
use std::{
    collections::BTreeMap,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use flate2::{Compression, write::ZlibEncoder};
use tracer_common::TimelineEvent;

use super::{END_MAGIC, FORMAT_VERSION, MAGIC, RECORD_LEN, TimelineError, Trailer, encode};
use crate::{
    model::{names::ProcessName, timeline::TimelineHeader},
    output::atomic::OutputFile,
};

/// Streams a timeline to a temporary file beside its destination; only
/// [`TimelineWriter::finish`] puts a file at the destination, and a writer
/// dropped unfinished removes its temporary file. A device or FIFO is
/// written as the events come, and opening a FIFO waits for its reader.
pub struct TimelineWriter {
    encoder: ZlibEncoder<BufWriter<OutputFile>>,
    path: PathBuf,
    events: u64,
}

impl TimelineWriter {
    /// Checks that `path` can be written (before anything is recorded) and
    /// starts the temporary file (or opens the device or FIFO).
    pub fn create(path: &Path) -> Result<TimelineWriter, TimelineError> {
        let mut out = BufWriter::new(OutputFile::create(path)?);
        let failed = |source| TimelineError::Write { path: path.display().to_string(), source };
        out.write_all(MAGIC)
            .and_then(|()| out.write_all(&FORMAT_VERSION.to_le_bytes()))
            .and_then(|()| out.write_all(&(RECORD_LEN as u32).to_le_bytes()))
            .map_err(failed)?;
        Ok(TimelineWriter {
            path: path.to_path_buf(),
            // The recorder shares the machine with what it measures: the
            // fastest level still shrinks the records several times.
            encoder: ZlibEncoder::new(out, Compression::fast()),
            events: 0,
        })
    }

    pub fn push(&mut self, event: &TimelineEvent) -> Result<(), TimelineError> {
        self.encoder.write_all(&encode(event)).map_err(|source| self.write_error(source))?;
        self.events += 1;
        Ok(())
    }

    /// Ends the event stream, appends the header and the names of the
    /// processes in it (targets and CPU holders) and of its threads, and
    /// renames the file into place.
    pub fn finish(
        self,
        mut header: TimelineHeader,
        names: BTreeMap<u32, ProcessName>,
        thread_names: BTreeMap<u32, String>,
    ) -> Result<(), TimelineError> {
        header.format_version = FORMAT_VERSION;
        let trailer = Trailer { header, event_count: self.events, names, thread_names };
        let json = serde_json::to_vec(&trailer).expect("the trailer serializes");
        let failed = |source| TimelineError::Write { path: self.path.display().to_string(), source };
        let mut out = self.encoder.finish().map_err(failed)?;
        out.write_all(&json)
            .and_then(|()| out.write_all(&(json.len() as u64).to_le_bytes()))
            .and_then(|()| out.write_all(END_MAGIC))
            .map_err(failed)?;
        let file = out.into_inner().map_err(|e| failed(e.into_error()))?;
        file.finish()?;
        Ok(())
    }

    /// Events written so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Bytes written so far, about: the compressor holds some back.
    pub fn bytes(&self) -> u64 {
        super::PREFIX_LEN + self.encoder.total_out()
    }

    /// Where the finished file goes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_error(&self, source: std::io::Error) -> TimelineError {
        TimelineError::Write { path: self.path.display().to_string(), source }
    }
}
