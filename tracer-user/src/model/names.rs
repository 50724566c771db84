//! Names for numbers the kernel reports: syscalls, errnos, (block devices: `sys::disks`).
//! Syscall tables come from the `syscalls` crate, generated from the kernel's
//! own syscall tables for each architecture (complete, not hand-typed).

use std::{borrow::Cow, sync::Arc};

#[cfg(target_arch = "aarch64")]
pub use syscalls::aarch64::Sysno;
#[cfg(not(target_arch = "aarch64"))]
pub use syscalls::x86_64::Sysno;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("unknown syscall `{name}`{}", suggest(.close))]
    UnknownSyscall { name: String, close: Vec<String> },
    #[error("unknown block device `{name}`{}", suggest(.close))]
    UnknownDevice { name: String, close: Vec<String> },
}

fn suggest(close: &[String]) -> String {
    if close.is_empty() {
        String::new()
    } else {
        format!(" (did you mean: {}?)", close.join(", "))
    }
}

/// Who a process (TGID) was: its command name and cgroup v2 path. Resolved
/// while it runs (from /proc) and carried along, since a process named in
/// a recording may be gone by the time the recording is read.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessName {
    /// Shared, not copied, by the span lines that name the process.
    pub comm: Arc<str>,
    pub cgroup: Option<Arc<str>>,
}

/// The CPU quota of a cgroup, as cgroup v2's `cpu.max` writes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CpuLimit {
    /// The cgroup whose quota it is (the process's own or an ancestor),
    /// as a path in its hierarchy.
    pub cgroup: String,
    /// Quota and period in microseconds (`"20000 100000"`: 20% of a CPU),
    /// from `cpu.max`, or from v1's `cpu.cfs_quota_us` and `cpu.cfs_period_us`.
    pub cpu_max: String,
}

/// What the model needs to know about live processes and threads, asked
/// of the system (`sys::procfs::ProcFs`) while tracing, or of a test fake.
pub trait ProcessInfo {
    /// The process (TGID) of a thread, while it exists.
    fn tgid_of(&self, tid: u32) -> Option<u32>;
    /// A thread's command name, while it exists.
    fn comm_of(&self, tid: u32) -> Option<String>;
    /// A process's cgroup v2 path, while it exists.
    fn cgroup_of(&self, pid: u32) -> Option<String>;
    /// Whether a live process is a kernel thread (kworker, ksoftirqd...).
    fn is_kernel_thread(&self, _pid: u32) -> bool {
        false
    }

    /// The CPU quota a process runs under, if it has one.
    fn cpu_limit_of(&self, _pid: u32) -> Option<CpuLimit> {
        None
    }
}

/// No live processes to ask: for the model's own tests, and for work on a
/// recording after the fact.
#[derive(Debug, Default, Clone, Copy)]
pub struct Offline;

impl ProcessInfo for Offline {
    fn tgid_of(&self, _tid: u32) -> Option<u32> {
        None
    }

    fn comm_of(&self, _tid: u32) -> Option<String> {
        None
    }

    fn cgroup_of(&self, _pid: u32) -> Option<String> {
        None
    }
}

/// A NUL-padded name from the kernel (a task's comm, a span's name) as text.
pub fn comm_string(comm: &[u8]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

/// A syscall's name: borrowed from the syscall table (a span line names
/// its syscalls tens of thousands of times a second), made only for a
/// number the table does not know.
pub fn syscall_name(nr: u32) -> Cow<'static, str> {
    Sysno::new(nr as usize).map_or_else(|| Cow::Owned(format!("syscall_{nr}")), |s| Cow::Borrowed(s.name()))
}

pub fn syscall_number(name: &str) -> Result<u32, NameError> {
    if let Some(sysno) = Sysno::iter().find(|s| s.name() == name) {
        return Ok(sysno.id() as u32);
    }
    Err(NameError::UnknownSyscall {
        name: name.to_owned(),
        close: close_matches(name, Sysno::iter().map(|s| s.name())),
    })
}

/// `ENOENT` for 2; the number itself when the errno has no name.
pub fn errno_name(errno: u16) -> String {
    syscalls::Errno::new(i32::from(errno))
        .name()
        .map_or_else(|| errno.to_string(), str::to_owned)
}

/// Up to three candidates within a small edit (Levenshtein) distance, best
/// first.
pub fn close_matches<'a>(wanted: &str, candidates: impl Iterator<Item = &'a str>) -> Vec<String> {
    let limit = (wanted.len() / 3).max(2);
    let common_prefix = |c: &str| wanted.chars().zip(c.chars()).take_while(|(a, b)| a == b).count();
    // Closest first; among equals, the one sharing the longer prefix.
    let mut scored: Vec<(usize, std::cmp::Reverse<usize>, &str)> = candidates
        .map(|c| (strsim::levenshtein(wanted, c), std::cmp::Reverse(common_prefix(c)), c))
        .filter(|(d, _, c)| *d <= limit || (c.contains(wanted) && wanted.len() >= 3))
        .collect();
    scored.sort();
    scored.dedup();
    scored.into_iter().take(3).map(|(_, _, c)| c.to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_names_round_trip_for_the_whole_table() {
        assert_eq!(syscall_name(syscall_number("getppid").unwrap()), "getppid");
        assert_eq!(syscall_name(syscall_number("io_uring_enter").unwrap()), "io_uring_enter");
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(syscall_number("read").unwrap(), 0);
            assert_eq!(syscall_number("getppid").unwrap(), 110);
            assert!(Sysno::iter().count() > 360, "a complete table");
        }
        assert_eq!(syscall_name(100_000), "syscall_100000");
    }

    #[test]
    fn unknown_syscall_lists_close_matches() {
        let err = syscall_number("getpid2").unwrap_err().to_string();
        assert!(err.starts_with("unknown syscall `getpid2` (did you mean: "), "{err}");
        assert!(err.contains("getpid"), "{err}");
        let err = syscall_number("nanoslep").unwrap_err().to_string();
        assert!(err.contains("nanosleep"), "{err}");
        let err = syscall_number("getppd").unwrap_err().to_string();
        assert!(err.contains("(did you mean: getppid, "), "the longer shared prefix first: {err}");
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(2), "ENOENT");
        assert_eq!(errno_name(13), "EACCES");
        assert_eq!(errno_name(4000), "4000");
    }
}
