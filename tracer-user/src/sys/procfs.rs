//! Reads of /proc: processes, threads, names, cgroups, scheduler state.
use std::fs;

use crate::model::ProcessInfo;

/// TGID (user-visible PID) of a thread, from /proc/<tid>/status.
pub fn tgid_of(tid: u32) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

pub fn comm_of(tid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{tid}/comm"))
        .ok()
        .map(|s| s.trim_end_matches('\n').to_owned())
}

/// Whether `pid` names a live process (a thread-group leader).
pub fn process_exists(pid: u32) -> bool {
    tgid_of(pid) == Some(pid)
}

/// TIDs of a live process's threads.
pub fn threads_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The cgroup v2 path of a process ("/system.slice/nginx.service"), from
/// the `0::` line of /proc/<pid>/cgroup.
pub fn cgroup_of(pid: u32) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    text.lines().find_map(|l| l.strip_prefix("0::")).map(str::to_owned)
}

/// A thread's scheduler state letter (`R`, `S`, `D`, ...) and its time on a
/// CPU (`se.sum_exec_runtime`) from /proc/<pid>/task/<tid>/stat and schedstat.
pub fn sched_state(pid: u32, tid: u32) -> Option<(char, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    // The state follows the comm, which may itself contain ") ".
    let state = stat.rsplit_once(") ")?.1.chars().next()?;
    let schedstat = fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).ok()?;
    let exec_ns = schedstat.split_whitespace().next()?.parse().ok()?;
    Some((state, exec_ns))
}

/// The live system as the model sees it: names and processes from /proc.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcFs;

impl ProcessInfo for ProcFs {
    fn tgid_of(&self, tid: u32) -> Option<u32> {
        tgid_of(tid)
    }

    fn comm_of(&self, tid: u32) -> Option<String> {
        comm_of(tid)
    }

    fn cgroup_of(&self, pid: u32) -> Option<String> {
        cgroup_of(pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(process_exists(pid));
        assert_eq!(tgid_of(pid), Some(pid));
        assert!(threads_of(pid).contains(&pid));
        assert!(!comm_of(pid).unwrap().is_empty());
        assert!(!process_exists(u32::MAX - 1));
        assert!(cgroup_of(pid).is_some_and(|c| c.starts_with('/')), "every process is in a v2 cgroup");
        // SAFETY: gettid has no arguments and cannot fail.
        let tid = unsafe { libc::gettid() } as u32;
        // Run past a scheduler tick, which updates the running thread's counter.
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(30) {
            std::hint::black_box(0u64);
        }
        let (state, exec_ns) = sched_state(pid, tid).unwrap();
        assert_eq!(state, 'R', "the test thread reads its own state while running");
        assert!(exec_ns > 0);
    }
}
