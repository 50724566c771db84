//! Reads of /proc: processes, threads, names, cgroups, scheduler state, the
//! host name; and a random seed from the kernel.
//!
//! The `procfs` crate parses the files whose layout has pitfalls (the stat
//! line, whose comm may contain ") "; schedstat; the cgroup list). It is
//! read through `FromRead::from_file` on the path rather than through
//! `procfs::process::Process`, which opens a directory descriptor for the
//! process and another for the task first: `sched_state` runs for every
//! on-CPU thread every second, and that way costs what the hand-written
//! reads did (about 16 µs per thread, measured on a loop over this process).
use std::fs;

use procfs::{
    FromRead, ProcessCGroups,
    process::{Process, Schedstat, Stat},
};

use crate::model::{ProcessInfo, cpus::CpuTicks};

/// CPUs online, at least 1. Not `available_parallelism`, which is this
/// process's affinity, not the machine's.
pub fn online_cpus() -> u32 {
    // SAFETY: sysconf has no preconditions; it returns -1 on error.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    u32::try_from(n).unwrap_or(1).max(1)
}

/// Each CPU's busy and total ticks so far (/proc/stat, in CPU order), as
/// mpstat counts them: busy is everything but idle and I/O-wait idle.
/// Empty when /proc/stat cannot be read.
pub fn cpu_ticks() -> Vec<CpuTicks> {
    use procfs::CurrentSI;
    let Ok(stats) = procfs::KernelStats::current() else { return Vec::new() };
    stats
        .cpu_time
        .iter()
        .map(|t| {
            let idle = t.idle + t.iowait.unwrap_or(0);
            let busy = t.user + t.nice + t.system + t.irq.unwrap_or(0) + t.softirq.unwrap_or(0) + t.steal.unwrap_or(0);
            CpuTicks { busy, total: busy + idle }
        })
        .collect()
}

/// TGID (user-visible PID) of a thread, from /proc/<tid>/status.
///
/// Hand-written: `procfs::process::Status` parses every line of the file
/// into an owned string in a map, which measured twice the cost of finding
/// the one line (28 µs against 15 µs), and the TUI asks this on each
/// refresh for processes that show no threads.
pub fn tgid_of(tid: u32) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// A thread's command name, from /proc/<tid>/comm.
///
/// Hand-written: `procfs` has no reader for the comm file, and taking the
/// name from `Stat` parses the whole stat line (11 µs against 5 µs); names
/// are asked for each CPU holder shown.
pub fn comm_of(tid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{tid}/comm"))
        .ok()
        .map(|s| s.trim_end_matches('\n').to_owned())
}

/// The file name of a process's executable (`process.executable.name`),
/// from the /proc/<pid>/exe link; without ` (deleted)` when it was replaced.
pub fn executable_name(pid: u32) -> Option<String> {
    let target = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let name = target.file_name()?.to_string_lossy().into_owned();
    Some(name.strip_suffix(" (deleted)").map(str::to_owned).unwrap_or(name))
}

/// This machine's host name (`host.name`), from /proc/sys/kernel/hostname.
pub fn host_name() -> Option<String> {
    let name = fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// 64 random bits from the kernel (getrandom), to seed ids with.
pub fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    // SAFETY: the buffer is valid for its length; flags 0 is a blocking read
    // of the urandom pool, which never blocks once it was initialised.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        // Without getrandom: the clock and the process id, still distinct
        // between runs.
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        return (now.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32);
    }
    u64::from_ne_bytes(bytes)
}

/// Whether `pid` names a live process (a thread-group leader).
pub fn process_exists(pid: u32) -> bool {
    tgid_of(pid) == Some(pid)
}

/// TIDs of a live process's threads (asked once per target process, when
/// the probes attach, so the crate's descriptor per task costs nothing that
/// matters).
pub fn threads_of(pid: u32) -> Vec<u32> {
    let Some(tasks) = Process::new(pid as i32).and_then(|p| p.tasks()).ok() else {
        return Vec::new();
    };
    tasks.filter_map(|task| u32::try_from(task.ok()?.tid).ok()).collect()
}

/// The cgroup v2 path of a process ("/system.slice/nginx.service"), from
/// the `0::` line of /proc/<pid>/cgroup.
pub fn cgroup_of(pid: u32) -> Option<String> {
    ProcessCGroups::from_file(format!("/proc/{pid}/cgroup"))
        .ok()?
        .into_iter()
        .find(|cg| cg.hierarchy == 0 && cg.controllers.is_empty())
        .map(|cg| cg.pathname)
}

/// Whether a live process is a kernel thread: `PF_KTHREAD` in the flags
/// of /proc/<pid>/stat.
pub fn is_kernel_thread(pid: u32) -> bool {
    const PF_KTHREAD: u32 = 0x0020_0000;
    Stat::from_file(format!("/proc/{pid}/stat")).is_ok_and(|stat| stat.flags & PF_KTHREAD != 0)
}

/// A thread's scheduler state letter (`R`, `S`, `D`, ...) and its time on a
/// CPU (`se.sum_exec_runtime`) from /proc/<pid>/task/<tid>/stat and schedstat.
pub fn sched_state(pid: u32, tid: u32) -> Option<(char, u64)> {
    let task = format!("/proc/{pid}/task/{tid}");
    let state = Stat::from_file(format!("{task}/stat")).ok()?.state;
    let exec_ns = Schedstat::from_file(format!("{task}/schedstat")).ok()?.sum_exec_runtime;
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

    fn is_kernel_thread(&self, pid: u32) -> bool {
        is_kernel_thread(pid)
    }

    fn cpu_limit_of(&self, pid: u32) -> Option<crate::model::names::CpuLimit> {
        super::cpu_limit::cpu_limit_of(pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_threads_are_told_apart() {
        assert!(is_kernel_thread(2), "kthreadd");
        assert!(!is_kernel_thread(std::process::id()));
    }

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(process_exists(pid));
        assert_eq!(tgid_of(pid), Some(pid));
        assert!(threads_of(pid).contains(&pid));
        assert!(!comm_of(pid).unwrap().is_empty());
        assert!(!process_exists(u32::MAX - 1));
        assert!(cgroup_of(pid).is_some_and(|c| c.starts_with('/')), "every process is in a v2 cgroup");
        // "<pid>/task/<tid>" names the calling thread.
        let link = fs::read_link("/proc/thread-self").unwrap();
        let tid: u32 = link.file_name().unwrap().to_str().unwrap().parse().unwrap();
        // Run past a scheduler tick, which updates the running thread's counter.
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(30) {
            std::hint::black_box(0u64);
        }
        let (state, exec_ns) = sched_state(pid, tid).unwrap();
        assert_eq!(state, 'R', "the test thread reads its own state while running");
        assert!(exec_ns > 0);
    }

    #[test]
    fn a_name_with_a_closing_parenthesis_does_not_hide_the_state() {
        let pid = std::process::id();
        let reader = std::thread::Builder::new().name("a) S (b".into());
        let (state, _) = reader
            .spawn(move || {
                let link = fs::read_link("/proc/thread-self").unwrap();
                let tid: u32 = link.file_name().unwrap().to_str().unwrap().parse().unwrap();
                assert_eq!(comm_of(tid).as_deref(), Some("a) S (b"));
                sched_state(pid, tid).unwrap()
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(state, 'R');
    }
}
