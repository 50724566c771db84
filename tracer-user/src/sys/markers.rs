//! The span marker ring of a traced process (`tracer_common::markers`):
//! found by its symbols in the process's executable or libraries, turned
//! on and read through `process_vm_writev`/`process_vm_readv`. The process
//! is never stopped and nothing traps: the library writes records, this
//! reads them a few times a second.
use std::path::{Path, PathBuf};

use object::{Object, ObjectSegment, ObjectSymbol};
use tracer_common::{
    MARKER_HEAD_OFFSET, MARKER_OVERFLOW_OFFSET, MARKER_RECORDS_OFFSET, MARKER_RING_BYTES, MARKER_RING_RECORDS,
    MARKER_TAIL_OFFSET, MarkerRecord, SYMBOL_MARKER_ENABLED, SYMBOL_MARKER_RING,
};

#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    #[error("reading the span marker ring of process {pid}: {source}")]
    Memory { pid: u32, source: std::io::Error },
}

/// Files mapped executable by `pid` (its executable and libraries).
pub fn mapped_objects(pid: u32) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) {
        paths.push(exe);
    }
    for mapping in mappings(pid) {
        if mapping.executable && !paths.contains(&mapping.path) {
            paths.push(mapping.path);
        }
    }
    paths
}

struct Mapping {
    start: u64,
    offset: u64,
    executable: bool,
    path: PathBuf,
}

fn mappings(pid: u32) -> Vec<Mapping> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let start = u64::from_str_radix(fields.next()?.split('-').next()?, 16).ok()?;
            let perms = fields.next()?;
            let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
            let path = fields.nth(2).filter(|p| p.starts_with('/'))?;
            Some(Mapping { start, offset, executable: perms.contains('x'), path: PathBuf::from(path) })
        })
        .collect()
}

/// Where an object's marker symbols are, relative to its load address.
struct Symbols {
    enabled: u64,
    ring: u64,
    /// The lowest address its loadable segments ask for (0 for a library
    /// or a position-independent executable).
    base: u64,
}

/// The marker symbols of an ELF file, if it has the ring with the layout
/// this tracer reads (an older library has the functions only).
fn marker_symbols(path: &Path) -> Option<Symbols> {
    let data = std::fs::read(path).ok()?;
    let file = object::File::parse(&*data).ok()?;
    let find =
        |name: &str| file.dynamic_symbols().chain(file.symbols()).find(|s| s.name() == Ok(name) && s.address() != 0);
    let ring = find(SYMBOL_MARKER_RING).filter(|s| s.size() == MARKER_RING_BYTES as u64)?;
    let enabled = find(SYMBOL_MARKER_ENABLED)?;
    let base = file.segments().map(|s| s.address()).min()? & !0xfff;
    Some(Symbols { enabled: enabled.address(), ring: ring.address(), base })
}

/// A process's marker ring, on while this lives.
#[derive(Debug)]
pub struct MarkerRing {
    pub pid: u32,
    /// The executable or library the ring is in.
    pub object: PathBuf,
    enabled_at: u64,
    ring_at: u64,
    /// Positions read so far (mirrored to the ring's `tail`).
    tail: u64,
    overflow_at_start: u64,
    on: bool,
    buffer: Vec<MarkerRecord>,
}

/// What one read of a ring found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RingRead {
    pub records: u64,
    /// Records the library could not write since the ring was turned on.
    pub overflow: u64,
}

impl MarkerRing {
    /// The ring of `pid`, in the first of its objects that has one; `None`
    /// when none has (no markers, or markers without a ring).
    pub fn find(pid: u32) -> Option<MarkerRing> {
        let maps = mappings(pid);
        mapped_objects(pid).into_iter().find_map(|object| {
            let symbols = marker_symbols(&object)?;
            // The object's first mapping (file offset 0) is its base.
            let loaded = maps.iter().filter(|m| m.path == object && m.offset == 0).map(|m| m.start).min()?;
            let bias = loaded - symbols.base;
            Some(MarkerRing {
                pid,
                object,
                enabled_at: bias + symbols.enabled,
                ring_at: bias + symbols.ring,
                tail: 0,
                overflow_at_start: 0,
                on: false,
                buffer: Vec::new(),
            })
        })
    }

    /// Turns the markers on, from the records written from now on (a
    /// tracer that was killed may have left older ones).
    pub fn start(&mut self) -> Result<(), MarkerError> {
        self.tail = self.read_u64(MARKER_HEAD_OFFSET)?;
        self.write_u64(self.ring_at + MARKER_TAIL_OFFSET as u64, self.tail)?;
        self.overflow_at_start = self.read_u64(MARKER_OVERFLOW_OFFSET)?;
        self.write_u32(self.enabled_at, 1)?;
        self.on = true;
        Ok(())
    }

    /// Hands over the records written since the last read, in ring order,
    /// up to the first one still being written, and makes their room free.
    pub fn read(&mut self, mut each: impl FnMut(&MarkerRecord)) -> Result<RingRead, MarkerError> {
        let head = self.read_u64(MARKER_HEAD_OFFSET)?;
        let count = head.wrapping_sub(self.tail).min(MARKER_RING_RECORDS as u64) as usize;
        self.buffer.resize(count, MarkerRecord::default());
        let first = (self.tail % MARKER_RING_RECORDS as u64) as usize;
        let before_wrap = count.min(MARKER_RING_RECORDS - first);
        let (front, back) = self.buffer.split_at_mut(before_wrap);
        let slot_at = |slot: usize| self.ring_at + (MARKER_RECORDS_OFFSET + slot * size_of::<MarkerRecord>()) as u64;
        read_records(self.pid, slot_at(first), front)?;
        read_records(self.pid, slot_at(0), back)?;
        let mut records = 0;
        for record in &self.buffer {
            if record.seq != self.tail + 1 {
                break;
            }
            each(record);
            self.tail += 1;
            records += 1;
        }
        self.write_u64(self.ring_at + MARKER_TAIL_OFFSET as u64, self.tail)?;
        let overflow = self.read_u64(MARKER_OVERFLOW_OFFSET)?.wrapping_sub(self.overflow_at_start);
        Ok(RingRead { records, overflow })
    }

    /// Where the ring is in the process's memory.
    pub fn address(&self) -> u64 {
        self.ring_at
    }

    /// Whether `record` (copied out by the kernel as the process exited)
    /// is the next one to read: then it counts as read.
    pub fn follows(&mut self, record: &MarkerRecord) -> bool {
        let next = record.seq == self.tail + 1;
        self.tail += u64::from(next);
        next
    }

    /// Turns the markers off (also when dropped).
    pub fn stop(&mut self) {
        if std::mem::take(&mut self.on) {
            // A process that exited has nothing to turn off.
            let _ = self.write_u32(self.enabled_at, 0);
        }
    }

    fn read_u64(&self, offset: usize) -> Result<u64, MarkerError> {
        let mut value = [0u8; 8];
        process_memory(self.pid, self.ring_at + offset as u64, &mut value, Direction::Read)?;
        Ok(u64::from_ne_bytes(value))
    }

    fn write_u64(&self, at: u64, value: u64) -> Result<(), MarkerError> {
        process_memory(self.pid, at, &mut value.to_ne_bytes(), Direction::Write)
    }

    fn write_u32(&self, at: u64, value: u32) -> Result<(), MarkerError> {
        process_memory(self.pid, at, &mut value.to_ne_bytes(), Direction::Write)
    }
}

impl Drop for MarkerRing {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_records(pid: u32, at: u64, records: &mut [MarkerRecord]) -> Result<(), MarkerError> {
    // SAFETY: MarkerRecord is plain integers; any bytes are a valid value.
    let bytes =
        unsafe { std::slice::from_raw_parts_mut(records.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(records)) };
    process_memory(pid, at, bytes, Direction::Read)
}

enum Direction {
    Read,
    Write,
}

/// Copies `bytes` from or to `pid`'s memory at `at`, all or an error.
fn process_memory(pid: u32, at: u64, bytes: &mut [u8], direction: Direction) -> Result<(), MarkerError> {
    if bytes.is_empty() {
        return Ok(());
    }
    let local = libc::iovec { iov_base: bytes.as_mut_ptr().cast(), iov_len: bytes.len() };
    let remote = libc::iovec { iov_base: at as *mut libc::c_void, iov_len: bytes.len() };
    // SAFETY: `local` covers `bytes`, which we own; the kernel checks the
    // remote range against the target's mappings.
    let done = unsafe {
        match direction {
            Direction::Read => libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0),
            Direction::Write => libc::process_vm_writev(pid as libc::pid_t, &local, 1, &remote, 1, 0),
        }
    };
    if done == bytes.len() as isize {
        return Ok(());
    }
    let source = if done < 0 {
        std::io::Error::last_os_error()
    } else {
        std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("{done} of {} bytes", bytes.len()))
    };
    Err(MarkerError::Memory { pid, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test binary links tracer-span: its own ring is found, and read
    /// as a tracer reads another process's.
    #[test]
    fn the_ring_of_a_process_is_found_turned_on_and_read() {
        let pid = std::process::id();
        let mut ring = MarkerRing::find(pid).expect("this test binary has the marker ring");
        ring.start().unwrap();
        for id in 0..3 {
            drop(tracer_span::Span::begin(id, c"read back"));
        }
        let mut records = Vec::new();
        let read = ring.read(|r| records.push(*r)).unwrap();
        assert_eq!(read, RingRead { records: 6, overflow: 0 });
        let ids: Vec<(u64, u32)> = records.iter().map(|r| (r.span_id, r.kind)).collect();
        assert_eq!(ids, [(0, 1), (0, 2), (1, 1), (1, 2), (2, 1), (2, 2)]);
        assert!(records[0].name.starts_with(b"read back\0"));
        assert_eq!(ring.read(|_| {}).unwrap().records, 0, "read once");
        ring.stop();
        drop(tracer_span::Span::begin(9, c"off"));
        assert_eq!(ring.read(|_| {}).unwrap().records, 0, "off");
    }
}
