//! Nothing lost at the last step: a report its destination refuses at the
//! end (a full disk, a directory removed meanwhile) is saved elsewhere and
//! the run says where; a timeline stops before it fills its disk, finished
//! as it is; a killed recording leaves its last checkpoint.
use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    thread::sleep,
    time::Duration,
};

use tracer_tests::*;

/// A 64 KiB tmpfs (`mount -t tmpfs -o size=64k`), unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(name: &str) -> Tmpfs {
        let dir = temp_dir(name);
        let status = Command::new("mount").args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"]).arg(&dir).status();
        assert!(status.expect("mount").success(), "mounting a tmpfs on {}", dir.display());
        Tmpfs { dir }
    }

    /// Fills what space is left, as another program writing there would.
    fn fill(&self) {
        let mut filler = std::fs::File::create(self.dir.join("filler")).unwrap();
        while filler.write_all(&[0; 4096]).is_ok() {}
    }

    /// What it holds, but the filler.
    fn files(&self) -> Vec<String> {
        let names = std::fs::read_dir(&self.dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned());
        names.filter(|n| n != "filler").collect()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The report saved elsewhere, as the one line on stderr says, read and
/// removed.
fn saved_report(stderr: &[String], out: &Path) -> Report {
    let lines: Vec<&String> = stderr.iter().filter(|l| l.contains("the report could not be written")).collect();
    assert_eq!(lines.len(), 1, "one line says where the report went: {stderr:?}");
    let line = lines[0];
    assert!(line.contains(&out.display().to_string()), "{line}");
    let saved = line.split("it was saved to ").nth(1).and_then(|rest| rest.strip_suffix(" instead")).expect(line);
    let report = read_report(Path::new(saved));
    std::fs::remove_file(saved).unwrap();
    report
}

#[test]
fn a_report_its_full_disk_refuses_is_saved_elsewhere() {
    if !bpf_available("a_report_its_full_disk_refuses_is_saved_elsewhere") {
        return;
    }
    let disk = Tmpfs::mount("full-disk");
    let load = Load::start(&["sleepers", "2", "5"]);
    let out = disk.dir.join("r.json");
    let tracer = Tracer::start(&["record", "--pid", &load.pid().to_string(), "--out", out.to_str().unwrap()]);
    sleep(Duration::from_secs(1));
    disk.fill();
    let (status, _, stderr) = tracer.stop_with(libc::SIGINT);
    assert!(!status.success(), "the run fails, though the report is saved: {stderr:?}");
    let report = saved_report(&stderr, &out);
    assert!(process(&report, load.pid()).totals.on_cpu_ns > 0);
    assert!(disk.files().is_empty(), "nothing half-written left: {:?}", disk.files());
}

#[test]
fn a_report_whose_directory_was_removed_is_saved_elsewhere() {
    if !bpf_available("a_report_whose_directory_was_removed_is_saved_elsewhere") {
        return;
    }
    let dir = temp_dir("removed");
    let out = dir.join("r.json");
    let load = Load::start(&["sleepers", "2", "5"]);
    let tracer = Tracer::start(&["record", "--pid", &load.pid().to_string(), "--out", out.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    sleep(Duration::from_secs(1));
    let (status, _, stderr) = tracer.stop_with(libc::SIGINT);
    assert!(!status.success());
    assert!(process(&saved_report(&stderr, &out), load.pid()).totals.on_cpu_ns > 0);
}

#[test]
fn a_timeline_stops_before_its_disk_is_full_and_the_report_is_saved() {
    if !bpf_available("a_timeline_stops_before_its_disk_is_full_and_the_report_is_saved") {
        return;
    }
    let disk = Tmpfs::mount("timeline-disk");
    let load = Load::start(&["sleepers", "2", "5"]);
    let out = disk.dir.join("r.json");
    let pid = load.pid().to_string();
    let mut tracer = Tracer::start(&["record", "--pid", &pid, "--timeline", "--out", out.to_str().unwrap()]);
    // 64 KiB free is under the 1 MiB a timeline leaves free: it stops at
    // once, and says so while recording.
    let stopped = tracer.wait_for_stderr("that the timeline stopped", |l| l.contains("the timeline stopped"));
    assert!(stopped.contains("under the 1.0 MiB it leaves free") && stopped.contains("the recording goes on"), "{stopped}");
    disk.fill();
    sleep(Duration::from_secs(1));
    let (status, _, stderr) = tracer.stop_with(libc::SIGINT);
    assert!(!status.success(), "{stderr:?}");
    assert!(process(&saved_report(&stderr, &out), load.pid()).totals.on_cpu_ns > 0);
    assert!(stderr.iter().any(|l| l.starts_with("Timeline written to") && l.contains("stopped early")), "{stderr:?}");
    let timeline = tracer_user::output::timeline_file::read(&disk.dir.join("r.timeline")).expect("a valid timeline");
    let reason = timeline.header.truncated.expect("marked truncated");
    assert!(reason.contains("free on"), "{reason}");
    assert_eq!(disk.files(), ["r.timeline"], "no temporary file left");
}

#[test]
fn a_killed_recording_leaves_its_last_checkpoint() {
    if !bpf_available("a_killed_recording_leaves_its_last_checkpoint") {
        return;
    }
    let dir = temp_dir("checkpoint");
    let out = dir.join("r.json");
    let load = Load::start(&["sleepers", "2", "5"]);
    let tracer = Tracer::start(&["record", "--pid", &load.pid().to_string(), "--checkpoint", "1", "--out", out.to_str().unwrap()]);
    sleep(Duration::from_millis(2_500));
    let (status, _, _) = tracer.stop_with(libc::SIGKILL);
    assert!(!status.success());
    let report = read_report(&out);
    assert!(report.meta.checkpoint, "marked as a checkpoint");
    assert!(report.meta.end_unix_ns - report.meta.start_unix_ns >= 1_000_000_000);
    assert!(process(&report, load.pid()).totals.on_cpu_ns > 0);
    assert_eq!(read_report_json(&out)["checkpoint"], true);
    let _ = std::fs::remove_dir_all(dir);
}
