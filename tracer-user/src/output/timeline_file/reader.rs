//! Reads a timeline file back into the model.
use std::{
    fs::File,
    io::{BufReader, Read, Seek, SeekFrom},
    path::Path,
};

use flate2::read::ZlibDecoder;

use super::{END_MAGIC, FOOTER_LEN, FORMAT_VERSION, MAGIC, PREFIX_LEN, RECORD_LEN, TimelineError, Trailer, decode, read_up_to};
use crate::model::timeline::Timeline;

/// The largest trailer read. Its length comes from the file itself, so a
/// damaged file could claim any length its size allows. The header holds a
/// clock pair per second of recording (about 60 bytes): a quiet process
/// recorded for a month has a 150 MiB trailer, so the bound is well above.
pub const MAX_TRAILER: u64 = 1 << 30;

/// Reads a timeline file back, checking its framing, version and event count.
pub fn read(path: &Path) -> Result<Timeline, TimelineError> {
    let shown = path.display().to_string();
    let read_error = |source| TimelineError::Read { path: shown.clone(), source };
    let corrupt = |what: String| TimelineError::Corrupt { path: shown.clone(), what };
    let truncated = |what| TimelineError::Truncated { path: shown.clone(), what };

    let mut file = File::open(path).map_err(read_error)?;
    let len = file.metadata().map_err(read_error)?.len();
    let mut prefix = [0u8; PREFIX_LEN as usize];
    let got = read_up_to(&mut file, &mut prefix).map_err(read_error)?;
    if got < MAGIC.len() || &prefix[..MAGIC.len()] != MAGIC {
        return Err(TimelineError::NotATimeline { path: shown.clone() });
    }
    if got < prefix.len() {
        return Err(truncated("it ends inside its first 16 bytes"));
    }
    let version = u32::from_le_bytes(prefix[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(TimelineError::UnsupportedVersion { path: shown.clone(), found: version });
    }
    let record_len = u32::from_le_bytes(prefix[12..16].try_into().expect("4 bytes"));
    if record_len as usize != RECORD_LEN {
        return Err(corrupt(format!("records of {record_len} bytes, version {FORMAT_VERSION} has {RECORD_LEN}")));
    }
    if len < PREFIX_LEN + FOOTER_LEN {
        return Err(truncated("no trailer: the file was cut short"));
    }
    let mut footer = [0u8; FOOTER_LEN as usize];
    file.seek(SeekFrom::End(-(FOOTER_LEN as i64)))
        .and_then(|_| file.read_exact(&mut footer))
        .map_err(read_error)?;
    if &footer[8..] != END_MAGIC {
        return Err(truncated("no trailer: the file was cut short"));
    }
    let trailer_len = u64::from_le_bytes(footer[..8].try_into().expect("8 bytes"));
    let Some(events_len) = (len - PREFIX_LEN - FOOTER_LEN).checked_sub(trailer_len) else {
        return Err(corrupt(format!("a trailer of {trailer_len} bytes in a file of {len}")));
    };
    if trailer_len > MAX_TRAILER {
        return Err(corrupt(format!("a trailer of {trailer_len} bytes, more than the {MAX_TRAILER} a timeline can have")));
    }
    // Parsed as it is read rather than read into a buffer of the length
    // found: a damaged trailer fails at its first wrong byte, before
    // anything of its length is allocated.
    file.seek(SeekFrom::Start(PREFIX_LEN + events_len)).map_err(read_error)?;
    let trailer: Trailer = serde_json::from_reader(BufReader::new((&mut file).take(trailer_len)))
        .map_err(|e| corrupt(format!("header: {e}")))?;
    if trailer.header.clock_pairs.is_empty() {
        return Err(corrupt("the header has no clock pairs".into()));
    }
    let mut timeline = Timeline::new(trailer.header, trailer.names);
    timeline.thread_names = trailer.thread_names;

    file.seek(SeekFrom::Start(PREFIX_LEN)).map_err(read_error)?;
    let mut events = ZlibDecoder::new(BufReader::new(file.take(events_len)));
    let mut record = [0u8; RECORD_LEN];
    loop {
        let count = timeline.event_count;
        match read_up_to(&mut events, &mut record) {
            Ok(0) => break,
            Ok(RECORD_LEN) => {}
            Ok(_) => return Err(corrupt(format!("event {count} is cut short"))),
            Err(e) => return Err(corrupt(format!("event stream: {e}"))),
        }
        timeline.push(&decode(&record)).map_err(|what| corrupt(format!("event {count}: {what}")))?;
    }
    if timeline.event_count != trailer.event_count {
        return Err(corrupt(format!("{} events, the header says {}", timeline.event_count, trailer.event_count)));
    }
    Ok(timeline.finish())
}
