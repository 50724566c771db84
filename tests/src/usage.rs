//! What a process or cgroup used, as the kernel counts it: memory, CPU time.
use crate::TestCgroup;

/// A process's resident memory (VmRSS), in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// A process's peak resident memory (VmHWM), in KiB: what it used at its
/// most, including the kernel's BPF ring buffers mapped into it.
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process's status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} of {pid}"))
}

/// A process's CPU time so far (utime + stime of /proc/PID/stat), in ns.
pub fn process_cpu_ns(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process's stat");
    // Fields after the command, which may hold spaces, start at `state`.
    let after_comm = &stat[stat.rfind(')').expect("(comm)") + 2..];
    let fields: Vec<u64> = after_comm.split_whitespace().skip(11).take(2).map(|f| f.parse().unwrap()).collect();
    // SAFETY: sysconf has no preconditions.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    (fields[0] + fields[1]) * 1_000_000_000 / ticks_per_s
}

impl TestCgroup {
    /// CPU time of every task that ran in it (`usage_usec` of cpu.stat,
    /// exited threads included to their last switch), in ns.
    pub fn cpu_usage_ns(&self) -> u64 {
        let stat = std::fs::read_to_string(self.path.join("cpu.stat")).expect("cpu.stat");
        let usec: u64 = stat
            .lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|v| v.trim().parse().ok())
            .expect("usage_usec in cpu.stat");
        usec * 1_000
    }
}
