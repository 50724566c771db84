//! A cgroup with a CPU quota, in the hierarchy that has the `cpu` controller
//! (cgroup v1's, or cgroup v2 with `cpu` available), and the kernel's count
//! of the time it was throttled (`cpu.stat`).
use std::path::PathBuf;

use tracer_user::sys::cpu_limit::cpu_controller_mount;

/// Removed, after moving its processes back to its parent, when dropped.
pub struct QuotaCgroup {
    pub path: PathBuf,
    v1: bool,
}

impl QuotaCgroup {
    /// `name-<test pid>` limited to `quota_us` of CPU per `period_us`;
    /// `None` where no hierarchy offers the `cpu` controller.
    pub fn create(name: &str, quota_us: u64, period_us: u64) -> Option<QuotaCgroup> {
        let (mount, v1) = cpu_hierarchy()?;
        let path = mount.join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir(&path);
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        let cgroup = QuotaCgroup { path, v1 };
        if v1 {
            cgroup.write("cpu.cfs_period_us", &period_us.to_string());
            cgroup.write("cpu.cfs_quota_us", &quota_us.to_string());
        } else {
            cgroup.write("cpu.max", &format!("{quota_us} {period_us}"));
        }
        Some(cgroup)
    }

    fn write(&self, file: &str, value: &str) {
        std::fs::write(self.path.join(file), value)
            .unwrap_or_else(|e| panic!("writing {value} to {}/{file}: {e}", self.path.display()));
    }

    /// Moves process `pid` (all its threads) in.
    pub fn add(&self, pid: u32) {
        self.write("cgroup.procs", &pid.to_string());
    }

    /// How long the kernel says the cgroup was throttled: `throttled_time`
    /// (ns) in v1's `cpu.stat`, `throttled_usec` in v2's.
    pub fn throttled_ns(&self) -> u64 {
        let stat = std::fs::read_to_string(self.path.join("cpu.stat")).expect("cpu.stat");
        let field = |name: &str| {
            stat.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
                .expect(name)
        };
        if self.v1 {
            field("throttled_time ")
        } else {
            field("throttled_usec ") * 1_000
        }
    }
}

impl Drop for QuotaCgroup {
    fn drop(&mut self) {
        if let (Ok(procs), Some(parent)) = (
            std::fs::read_to_string(self.path.join("cgroup.procs")),
            self.path.parent(),
        ) {
            for pid in procs.split_whitespace() {
                let _ = std::fs::write(parent.join("cgroup.procs"), pid);
            }
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Where the `cpu` controller can be used: the v1 hierarchy that has it,
/// else the v2 hierarchy when `cpu` is available there (enabled for the
/// children of its root here). Whether it is v1.
fn cpu_hierarchy() -> Option<(PathBuf, bool)> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount_of = |v1: bool| cpu_controller_mount(&mountinfo, v1).map(|found| PathBuf::from(found.mount));
    if let Some(mount) = mount_of(true) {
        return Some((mount, true));
    }
    let mount = mount_of(false)?;
    let controllers = std::fs::read_to_string(mount.join("cgroup.controllers")).ok()?;
    if !controllers.split_whitespace().any(|c| c == "cpu") {
        return None;
    }
    std::fs::write(mount.join("cgroup.subtree_control"), "+cpu").ok()?;
    Some((mount, false))
}
