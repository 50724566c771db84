//! Cgroup v2 directories: where the hierarchy is mounted, and a path
//! resolved to the id and level the kernel filter compares with.
use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CgroupError {
    /// An empty path would resolve to the cgroup mount, the whole machine:
    /// not what an empty (unset) variable in a script meant.
    #[error("--cgroup is empty: give a cgroup v2 directory (the whole machine is traced without --cgroup)")]
    Empty,
    #[error("{0}: no such cgroup directory")]
    NoSuchCgroup(String),
    #[error("{0}: not a cgroup v2 directory (cgroup v2 is mounted at {1})")]
    NotCgroupV2(String, String),
    #[error("{0}: not a cgroup v2 directory, and no cgroup v2 hierarchy is mounted")]
    NoCgroupV2(String),
}

/// A resolved cgroup v2 directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    pub path: PathBuf,
    pub id: u64,
    pub level: u32,
}

/// Where cgroup v2 is mounted, from /proc/self/mountinfo.
pub fn cgroup2_mount() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split(' ').next()? != "cgroup2" {
            return None;
        }
        left.split(' ').nth(4).map(PathBuf::from)
    })
}

fn is_cgroup2(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|fs| fs.f_type == CGROUP2_SUPER_MAGIC)
}

/// Resolves an absolute cgroup v2 path, or one relative to the cgroup v2
/// mount (`system.slice/nginx.service`).
pub fn resolve_cgroup(arg: &str) -> Result<Cgroup, CgroupError> {
    if arg.trim().is_empty() {
        return Err(CgroupError::Empty);
    }
    let mount = cgroup2_mount();
    let given = Path::new(arg);
    let path = if given.is_absolute() || given.exists() {
        given.to_path_buf()
    } else if let Some(mount) = &mount {
        mount.join(given)
    } else {
        given.to_path_buf()
    };
    let path = path
        .canonicalize()
        .map_err(|_| CgroupError::NoSuchCgroup(arg.to_owned()))?;
    if !path.is_dir() {
        return Err(CgroupError::NoSuchCgroup(arg.to_owned()));
    }
    let Some(mount) = mount else {
        return Err(CgroupError::NoCgroupV2(arg.to_owned()));
    };
    if !is_cgroup2(&path) || !path.starts_with(&mount) {
        return Err(CgroupError::NotCgroupV2(arg.to_owned(), mount.display().to_string()));
    }
    let level = path.strip_prefix(&mount).map_or(0, |rel| rel.components().count()) as u32;
    let id = std::fs::metadata(&path)
        .map_err(|_| CgroupError::NoSuchCgroup(arg.to_owned()))?
        .ino();
    Ok(Cgroup { path, id, level })
}

/// The processes in a cgroup directory and the cgroups below it (their
/// `cgroup.procs`), each once, in the order found; unreadable parts skipped.
pub fn processes(path: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            pids.extend(text.lines().filter_map(|line| line.trim().parse::<u32>().ok()));
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            dirs.extend(entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()));
        }
    }
    let mut seen = std::collections::HashSet::new();
    pids.retain(|pid| seen.insert(*pid));
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_cgroup_paths_are_rejected() {
        assert_eq!(
            resolve_cgroup("/definitely/not/here").unwrap_err(),
            CgroupError::NoSuchCgroup("/definitely/not/here".into())
        );
        let err = resolve_cgroup("/tmp").unwrap_err().to_string();
        assert!(err.starts_with("/tmp: not a cgroup v2 directory"), "{err}");
        for empty in ["", "  "] {
            assert_eq!(resolve_cgroup(empty).unwrap_err(), CgroupError::Empty, "not the root cgroup");
        }
    }

    #[test]
    fn cgroup_v2_root_resolves_to_level_zero() {
        let Some(mount) = cgroup2_mount() else { return };
        let cg = resolve_cgroup(mount.to_str().unwrap()).unwrap();
        assert_eq!(cg.level, 0);
        assert_eq!(cg.id, std::fs::metadata(&mount).unwrap().ino());
    }
}
