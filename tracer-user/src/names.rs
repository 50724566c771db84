//! Names for numbers the kernel reports: syscalls, errnos, block devices.
//! Syscall tables come from the `syscalls` crate, generated from the kernel's
//! own syscall tables for each architecture (complete, not hand-typed).
use std::collections::HashMap;

#[cfg(target_arch = "aarch64")]
use syscalls::aarch64::Sysno;
#[cfg(not(target_arch = "aarch64"))]
use syscalls::x86_64::Sysno;

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
    pub comm: String,
    pub cgroup: Option<String>,
}

pub fn syscall_name(nr: u32) -> String {
    Sysno::new(nr as usize).map_or_else(|| format!("syscall_{nr}"), |s| s.name().to_owned())
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

/// Up to three candidates within a small edit distance, best first.
pub fn close_matches<'a>(wanted: &str, candidates: impl Iterator<Item = &'a str>) -> Vec<String> {
    let limit = (wanted.len() / 3).max(2);
    let common_prefix = |c: &str| wanted.chars().zip(c.chars()).take_while(|(a, b)| a == b).count();
    // Closest first; among equals, the one sharing the longer prefix.
    let mut scored: Vec<(usize, std::cmp::Reverse<usize>, &str)> = candidates
        .map(|c| (edit_distance(wanted, c), std::cmp::Reverse(common_prefix(c)), c))
        .filter(|(d, _, c)| *d <= limit || (c.contains(wanted) && wanted.len() >= 3))
        .collect();
    scored.sort();
    scored.dedup();
    scored.into_iter().take(3).map(|(_, _, c)| c.to_owned()).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Block devices by kernel `dev_t` (major << 20 | minor), from /sys/block.
#[derive(Debug, Default, Clone)]
pub struct Disks {
    by_dev: HashMap<u32, String>,
}

pub fn kernel_dev(major: u32, minor: u32) -> u32 {
    (major << 20) | minor
}

impl Disks {
    pub fn read() -> Disks {
        let mut by_dev = HashMap::new();
        if let Ok(entries) = std::fs::read_dir("/sys/block") {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Ok(dev) = std::fs::read_to_string(entry.path().join("dev")) else { continue };
                if let Some((major, minor)) = dev.trim().split_once(':')
                    && let (Ok(major), Ok(minor)) = (major.parse(), minor.parse())
                {
                    by_dev.insert(kernel_dev(major, minor), name);
                }
            }
        }
        Disks { by_dev }
    }

    pub fn name(&self, dev: u32) -> String {
        self.by_dev
            .get(&dev)
            .cloned()
            .unwrap_or_else(|| format!("{}:{}", dev >> 20, dev & 0xf_ffff))
    }

    /// The disk named `name`; a partition (`vda1`) resolves to its disk.
    pub fn resolve(&self, name: &str) -> Result<u32, NameError> {
        let name = name.trim_start_matches("/dev/");
        if let Some((&dev, _)) = self.by_dev.iter().find(|(_, n)| *n == name) {
            return Ok(dev);
        }
        let partition = std::path::Path::new("/sys/class/block").join(name).join("partition");
        if partition.exists()
            && let Ok(link) = std::fs::canonicalize(std::path::Path::new("/sys/class/block").join(name))
            && let Some(disk) = link.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str())
            && let Some((&dev, _)) = self.by_dev.iter().find(|(_, n)| *n == disk)
        {
            return Ok(dev);
        }
        Err(NameError::UnknownDevice {
            name: name.to_owned(),
            close: close_matches(name, self.by_dev.values().map(String::as_str)),
        })
    }
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

    #[test]
    fn devices_resolve_and_unknown_ones_suggest() {
        let disks = Disks {
            by_dev: [(kernel_dev(254, 0), "vda".to_owned()), (kernel_dev(7, 0), "loop0".to_owned())]
                .into_iter()
                .collect(),
        };
        assert_eq!(disks.resolve("vda").unwrap(), kernel_dev(254, 0));
        assert_eq!(disks.resolve("/dev/vda").unwrap(), kernel_dev(254, 0));
        assert_eq!(disks.name(kernel_dev(254, 0)), "vda");
        assert_eq!(disks.name(kernel_dev(8, 1)), "8:1");
        let err = disks.resolve("vdb").unwrap_err().to_string();
        assert_eq!(err, "unknown block device `vdb` (did you mean: vda?)");
    }
}
