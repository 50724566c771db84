//! The CPU quota a process runs under: that of the nearest cgroup on its
//! path, its own or an ancestor's, in the hierarchy with the `cpu`
//! controller (cgroup v1's `cpu.cfs_quota_us` and `cpu.cfs_period_us`, or
//! cgroup v2's `cpu.max`). The kernel throttles a cgroup by the same
//! mechanism in both.
use std::path::{Path, PathBuf};

use crate::model::names::CpuLimit;

/// `pid`'s CPU quota, if any cgroup on its path has one.
pub fn cpu_limit_of(pid: u32) -> Option<CpuLimit> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    cpu_hierarchies(&cgroups, &mountinfo)
        .iter()
        .find_map(nearest_limit)
}

/// A process's cgroup in a hierarchy that may have the `cpu` controller.
#[derive(Debug, PartialEq, Eq)]
struct CpuHierarchy {
    /// Where the hierarchy's root, as this mount shows it, is mounted.
    mount: PathBuf,
    /// The process's cgroup, relative to that root ("/" for the root).
    path: String,
    v1: bool,
}

/// Where a cgroup hierarchy is mounted, from a `/proc/self/mountinfo` line.
pub struct CgroupMount<'a> {
    /// The cgroup the mount shows as its root ("/" for the whole hierarchy).
    pub root: &'a str,
    pub mount: &'a str,
}

/// The mount of cgroup v1's hierarchy with the `cpu` controller (`v1`), or
/// of cgroup v2's, from the text of `/proc/self/mountinfo`.
pub fn cpu_controller_mount(mountinfo: &str, v1: bool) -> Option<CgroupMount<'_>> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut right = right.split(' ');
        let (fs_type, _source, options) = (right.next()?, right.next()?, right.next()?);
        let is_ours = if v1 {
            fs_type == "cgroup" && options.split(',').any(|o| o == "cpu")
        } else {
            fs_type == "cgroup2"
        };
        let mut left = left.split(' ').skip(3);
        let (root, mount) = (left.next()?, left.next()?);
        is_ours.then_some(CgroupMount { root, mount })
    })
}

/// The `cpu` controller's v1 hierarchy first (where it is mounted, v2 has
/// no `cpu.max`), then the v2 hierarchy, from `/proc/<pid>/cgroup` and
/// `/proc/self/mountinfo`.
fn cpu_hierarchies(cgroups: &str, mountinfo: &str) -> Vec<CpuHierarchy> {
    let mut found = Vec::new();
    for v1 in [true, false] {
        let path = cgroups.lines().find_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let wanted = if v1 {
                controllers.split(',').any(|c| c == "cpu")
            } else {
                controllers.is_empty()
            };
            wanted.then_some(path)
        });
        let Some(path) = path else { continue };
        let mount = cpu_controller_mount(mountinfo, v1).and_then(|CgroupMount { root, mount }| {
            let relative = path.strip_prefix(root.trim_end_matches('/'))?;
            Some((
                PathBuf::from(mount),
                if relative.is_empty() {
                    "/".to_owned()
                } else {
                    relative.to_owned()
                },
            ))
        });
        if let Some((mount, relative)) = mount {
            found.push(CpuHierarchy {
                mount,
                path: relative,
                v1,
            });
        }
    }
    found
}

/// The quota of the cgroup or of its nearest ancestor that has one.
fn nearest_limit(hierarchy: &CpuHierarchy) -> Option<CpuLimit> {
    let mut cgroup = Path::new(&hierarchy.path);
    loop {
        let dir = hierarchy
            .mount
            .join(cgroup.strip_prefix("/").unwrap_or(cgroup));
        let cpu_max = if hierarchy.v1 {
            v1_quota(&dir)
        } else {
            v2_quota(&dir)
        };
        if let Some(cpu_max) = cpu_max {
            return Some(CpuLimit {
                cgroup: cgroup.display().to_string(),
                cpu_max,
            });
        }
        cgroup = cgroup.parent()?;
    }
}

/// "quota period" from v1's files, when the quota is set (not -1).
fn v1_quota(dir: &Path) -> Option<String> {
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .ok()?
            .trim()
            .parse::<i64>()
            .ok()
    };
    let quota = read("cpu.cfs_quota_us").filter(|&quota| quota > 0)?;
    Some(format!("{quota} {}", read("cpu.cfs_period_us")?))
}

/// `cpu.max` itself, when it is not `max`.
fn v2_quota(dir: &Path) -> Option<String> {
    let cpu_max = std::fs::read_to_string(dir.join("cpu.max")).ok()?;
    let cpu_max = cpu_max.trim();
    (!cpu_max.starts_with("max")).then(|| cpu_max.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
30 23 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
32 23 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
33 23 0:29 / /sys/fs/cgroup/cpuset rw,nosuid - cgroup cgroup rw,cpuset
";

    #[test]
    fn finds_the_cpu_controllers_hierarchy_first() {
        let cgroups = "3:cpuset:/\n2:cpu,cpuacct:/app/web\n0::/system.slice/web.service\n";
        let found = cpu_hierarchies(cgroups, MOUNTINFO);
        assert_eq!(
            found,
            [
                CpuHierarchy {
                    mount: "/sys/fs/cgroup/cpu,cpuacct".into(),
                    path: "/app/web".into(),
                    v1: true
                },
                CpuHierarchy {
                    mount: "/sys/fs/cgroup/unified".into(),
                    path: "/system.slice/web.service".into(),
                    v1: false
                },
            ]
        );
        let v2_only = cpu_hierarchies(
            "0::/a\n",
            "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
        );
        assert_eq!(
            v2_only,
            [CpuHierarchy {
                mount: "/sys/fs/cgroup".into(),
                path: "/a".into(),
                v1: false
            }]
        );
    }

    #[test]
    fn a_quota_is_found_on_the_cgroup_or_an_ancestor() {
        let root = tempfile::tempdir().unwrap();
        let web = root.path().join("app/web");
        std::fs::create_dir_all(&web).unwrap();
        std::fs::write(web.join("cpu.cfs_quota_us"), "-1\n").unwrap();
        std::fs::write(web.join("cpu.cfs_period_us"), "100000\n").unwrap();
        std::fs::write(root.path().join("app/cpu.cfs_quota_us"), "20000\n").unwrap();
        std::fs::write(root.path().join("app/cpu.cfs_period_us"), "100000\n").unwrap();
        let v1 = CpuHierarchy {
            mount: root.path().into(),
            path: "/app/web".into(),
            v1: true,
        };
        assert_eq!(
            nearest_limit(&v1),
            Some(CpuLimit {
                cgroup: "/app".into(),
                cpu_max: "20000 100000".into()
            })
        );
        std::fs::write(web.join("cpu.max"), "50000 100000\n").unwrap();
        let v2 = CpuHierarchy { v1: false, ..v1 };
        assert_eq!(
            nearest_limit(&v2),
            Some(CpuLimit {
                cgroup: "/app/web".into(),
                cpu_max: "50000 100000".into()
            })
        );
        std::fs::write(web.join("cpu.max"), "max 100000\n").unwrap();
        assert_eq!(nearest_limit(&v2), None, "no quota anywhere on the path");
    }
}
