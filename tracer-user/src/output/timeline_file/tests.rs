//! The file format's tests: round trips, abandoned writers, compression,
//! damaged files.
use std::path::{Path, PathBuf};

use tracer_common::{
    OFF_CPU_IOWAIT, OFF_CPU_SLEEP, TIMELINE_HOLDER, TIMELINE_ON_CPU, TIMELINE_SYSCALL, TIMELINE_TRANSITION,
    ThreadTotals, TimelineEvent,
};

use super::*;
use crate::{
    model::timeline::{Point, TimelineHeader, Transition, fixtures::*},
    output::atomic::OutputError,
};

    /// A fresh directory per call: tests run in parallel.
pub fn scratch_dir(name: &str) -> PathBuf {
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tracer-timeline-{}-{name}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}


pub fn write(path: &Path, events: &[TimelineEvent]) {
    let mut writer = TimelineWriter::create(path).unwrap();
    for event in events {
        writer.push(event).unwrap();
    }
    writer.finish(header(), names(), thread_names()).unwrap();
}


#[test]
fn round_trip_keeps_every_event_header_and_name() {
    let dir = scratch_dir("round-trip");
    let path = dir.join("t.timeline");
    let mut events = history();
    events.swap(0, 4);
    let other = TimelineEvent { tid: 102, tgid: PID, ..transition(3.0, OFF_CPU_IOWAIT, ThreadTotals::default()) };
    events.push(other);

    let mut writer = TimelineWriter::create(&path).unwrap();
    for event in &events {
        writer.push(event).unwrap();
    }
    assert!(!path.exists(), "nothing at the destination before finish");
    writer.finish(header(), names(), thread_names()).unwrap();
    let leftovers = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(leftovers, 1, "only the timeline, no temporary file");

    let timeline = super::read(&path).unwrap();
    assert_eq!(timeline.header, TimelineHeader { format_version: FORMAT_VERSION, ..header() });
    assert_eq!((&timeline.names, &timeline.thread_names), (&names(), &thread_names()));
    let thread = timeline.thread(TID).unwrap();
    assert_eq!(thread.tgid, PID);
    let expected = history();
    let transitions: Vec<Transition> = expected
        .iter()
        .filter(|e| e.kind == TIMELINE_TRANSITION)
        .map(|e| Transition { ts_ns: e.ts_ns, state: e.value, cpu: e.cpu, totals: e.totals })
        .collect();
    assert_eq!(thread.transitions, transitions, "sorted back into time order, totals intact");
    let points = |kind| -> Vec<Point> {
        expected
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| Point { ts_ns: e.ts_ns, id: e.value, ns: e.ns, cpu: e.cpu })
            .collect()
    };
    assert_eq!(thread.syscalls, points(TIMELINE_SYSCALL));
    assert_eq!(thread.holders, points(TIMELINE_HOLDER));
    assert_eq!(timeline.thread(102).unwrap().transitions[0].state, OFF_CPU_IOWAIT);
    assert!(timeline.thread(103).is_none());

    // Record by record, the encoding is the event itself.
    for event in &events {
        assert_eq!(decode(&encode(event)), *event);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_writer_that_does_not_finish_leaves_nothing() {
    let dir = scratch_dir("abandoned");
    let path = dir.join("t.timeline");
    let mut writer = TimelineWriter::create(&path).unwrap();
    writer.push(&history()[0]).unwrap();
    drop(writer);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    assert!(matches!(
        TimelineWriter::create(&dir.join("missing/t.timeline")),
        Err(TimelineError::Output(OutputError::NoDirectory(_)))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn long_recordings_compress() {
    let dir = scratch_dir("compress");
    let path = dir.join("t.timeline");
    let mut writer = TimelineWriter::create(&path).unwrap();
    let mut totals = ThreadTotals::default();
    for i in 0..10_000u64 {
        totals.on_cpu_ns += 10_000 + i % 7;
        totals.voluntary_switches += 1;
        let state = if i % 2 == 0 { TIMELINE_ON_CPU } else { OFF_CPU_SLEEP };
        writer.push(&TimelineEvent { ts_ns: T0 + i * 20_000, ..transition(0.0, state, totals) }).unwrap();
    }
    writer.finish(header(), names(), thread_names()).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 10_000 * RECORD_LEN as u64 / 8, "{size} bytes for 10,000 events");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn damaged_files_give_typed_errors() {
    let dir = scratch_dir("damaged");
    let good = dir.join("good.timeline");
    write(&good, &history());
    let bytes = std::fs::read(&good).unwrap();
    let read = |name: &str, content: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        read(&path).unwrap_err()
    };

    let err = read("garbage", b"{\"spans\": []}\n");
    assert!(matches!(err, TimelineError::NotATimeline { .. }), "{err}");
    assert_eq!(err.to_string(), format!("{}: not a tracer timeline file", dir.join("garbage").display()));
    assert!(matches!(read("empty", b""), TimelineError::NotATimeline { .. }));

    // Versions 1 and 2 (before the idle wake-up and throttled totals) and future versions.
    for version in [1, 2, FORMAT_VERSION + 1] {
        let mut other_version = bytes.clone();
        other_version[8..12].copy_from_slice(&version.to_le_bytes());
        let err = read("other-version", &other_version);
        assert!(matches!(err, TimelineError::UnsupportedVersion { found, .. } if found == version), "{err}");
    }

    for cut in [12, 40, bytes.len() / 2, bytes.len() - 1] {
        let err = read("cut", &bytes[..cut]);
        assert!(matches!(err, TimelineError::Truncated { .. }), "cut at {cut}: {err}");
    }

    let mut flipped = bytes.clone();
    flipped[PREFIX_LEN as usize + 20] ^= 0xff;
    let err = read("flipped", &flipped);
    assert!(matches!(err, TimelineError::Corrupt { .. }), "{err}");

    let missing = dir.join("missing.timeline");
    assert!(matches!(super::read(&missing), Err(TimelineError::Read { .. })));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_timeline_follows_a_link_and_goes_into_a_fifo_in_place() {
    let dir = scratch_dir("special");
    let link = dir.join("t.timeline");
    std::os::unix::fs::symlink("kept.timeline", &link).unwrap();
    write(&link, &history());
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays");
    assert_eq!(super::read(&dir.join("kept.timeline")).unwrap().names, names());

    let fifo = dir.join("fifo.timeline");
    let mode = rustix::fs::Mode::from_raw_mode(0o600);
    rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, mode, 0).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reading = fifo.clone();
    std::thread::spawn(move || tx.send(std::fs::read(reading)));
    // Creating the writer opens the FIFO, which waits for the reader.
    write(&fifo, &history());
    let bytes = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the reader got nothing").unwrap();
    let copy = dir.join("copy.timeline");
    std::fs::write(&copy, bytes).unwrap();
    assert_eq!(super::read(&copy).unwrap().names, names(), "a whole timeline came through");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 4, "no temporary file left");
    std::fs::remove_dir_all(&dir).unwrap();
}
