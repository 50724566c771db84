//! Bad input: one clear line on stderr, a non-zero exit, nothing recorded lost.
use std::process::{Command, Output};

use tracer_tests::*;

fn tracer(args: &[&str]) -> Output {
    Command::new(tracer_bin()).args(args).output().expect("running tracer")
}

fn assert_one_line_error(out: &Output, expected: &str) {
    assert!(!out.status.success(), "expected failure, got {:?}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line on stderr: {stderr:?}");
    assert!(lines[0].starts_with("tracer: "), "{stderr}");
    assert!(lines[0].contains(expected), "expected {expected:?} in {stderr:?}");
}

#[test]
fn unknown_pid_is_rejected() {
    let out = tracer(&["record", "--pid", "999999999", "--out", "/tmp/tracer-never.json"]);
    assert_one_line_error(&out, "no process with PID 999999999");
    let out = tracer(&["runqlat", "-p", "999999999"]);
    assert_one_line_error(&out, "no process with PID 999999999");
}

#[test]
fn output_in_missing_directory_is_rejected_before_recording() {
    let out = tracer(&["record", "--duration", "1", "--out", "/nonexistent-dir/r.json"]);
    assert_one_line_error(&out, "/nonexistent-dir/r.json: directory does not exist");
    let out = tracer(&["runqlat", "--json", "/nonexistent-dir/r.json"]);
    assert_one_line_error(&out, "directory does not exist");
}

#[test]
fn output_in_unwritable_directory_is_rejected() {
    if !bpf_available("output_in_unwritable_directory_is_rejected") {
        return;
    }
    let dir = temp_dir("unwritable");
    let file = dir.join("r.json");
    // As an unprivileged user, a root-owned 0755 directory is not writable.
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(tracer_bin())
        .args(["record", "--out", file.to_str().unwrap()])
        .output()
        .expect("setpriv");
    assert_one_line_error(&out, "cannot write here");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn non_cgroup_path_is_rejected() {
    let out = tracer(&["record", "--cgroup", "/tmp", "--out", "/tmp/tracer-never.json"]);
    assert_one_line_error(&out, "/tmp: not a cgroup v2 directory");
    let out = tracer(&["runqlat", "-c", "/no/such/cgroup"]);
    assert_one_line_error(&out, "/no/such/cgroup: no such cgroup directory");
}

#[test]
fn conflicting_or_empty_targets_are_rejected() {
    // This test's main thread belongs to this process, not to PID 1: the
    // filters together would match nothing.
    let me = std::process::id().to_string();
    let out = tracer(&["record", "-p", "1", "--tid", &me, "--out", "/tmp/tracer-never.json"]);
    assert_one_line_error(&out, &format!("--tid {me} is a thread of process {me}, not of --pid 1"));
    let out = tracer(&["runqlat", "-p", "1", "--tid", &me]);
    assert_one_line_error(&out, "nothing would be traced");
    let out = tracer(&["record", "--cgroup", "", "--out", "/tmp/tracer-never.json"]);
    assert_one_line_error(&out, "--cgroup is empty");
    assert!(!std::path::Path::new("/tmp/tracer-never.json").exists());
}

#[test]
fn unprivileged_user_is_told_to_use_root() {
    if !bpf_available("unprivileged_user_is_told_to_use_root") {
        return;
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"])
        .arg(tracer_bin())
        .args(["record", "--duration", "1", "--out", "/tmp/tracer-never.json"])
        .output()
        .expect("setpriv");
    assert_one_line_error(&out, "needs root (or CAP_BPF and CAP_PERFMON)");
    assert!(!std::path::Path::new("/tmp/tracer-never.json").exists());
}

#[test]
fn bad_arguments_exit_non_zero() {
    let out = tracer(&["record", "--duration", "0", "--out", "x.json"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("positive number of seconds"));
    let out = tracer(&["runqlat", "-P", "-L"]);
    assert!(!out.status.success());
    // Out of range for a Duration and for an Instant: refused, not a panic (status 101).
    for duration in ["1e30", "1e19"] {
        let out = tracer(&["record", "--duration", duration, "--out", "/tmp/tracer-never.json"]);
        assert_eq!(out.status.code(), Some(2), "{duration}: {out:?}");
        assert_one_line_error(&out, "to 31536000 (one year)");
    }
}
