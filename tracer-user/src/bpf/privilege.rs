//! Whether this process may load tracing programs, and the memory-lock
//! limit older kernels charge BPF maps to.
use rustix::process::{Resource, Rlimit};

/// Capability numbers from linux/capability.h.
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Whether this process may load tracing programs: root, or CAP_BPF with
/// CAP_PERFMON, or CAP_SYS_ADMIN.
pub fn is_privileged() -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    let caps = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0);
    let has = |bit: u32| caps & (1u64 << bit) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}

pub(super) fn raise_memlock_limit() {
    // No limit (None) for both. Kernels before 5.11 charge BPF maps to
    // RLIMIT_MEMLOCK; newer ones ignore it, so failure is harmless.
    let unlimited = Rlimit { current: None, maximum: None };
    let _ = rustix::process::setrlimit(Resource::Memlock, unlimited);
}
