//! Turns what the user asked to trace (PIDs, a TID, a cgroup path) into the
//! kernel-side `Filter`, checking each before anything is loaded.
use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use tracer_common::{FILTER_CGROUP, FILTER_TGID, FILTER_TID, Filter, MAX_FILTER_TGIDS};

use crate::procfs;

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("no process with PID {0}")]
    NoSuchProcess(u32),
    #[error("no thread with TID {0}")]
    NoSuchThread(u32),
    #[error("at most {MAX_FILTER_TGIDS} PIDs can be traced at once ({0} given)")]
    TooManyPids(usize),
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
    let Ok(cpath) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs fills a zeroed struct from a valid C string path.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(cpath.as_ptr(), &mut fs) };
    rc == 0 && fs.f_type as i64 == CGROUP2_SUPER_MAGIC
}

/// Resolves an absolute cgroup v2 path, or one relative to the cgroup v2
/// mount (`system.slice/nginx.service`).
pub fn resolve_cgroup(arg: &str) -> Result<Cgroup, TargetError> {
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
        .map_err(|_| TargetError::NoSuchCgroup(arg.to_owned()))?;
    if !path.is_dir() {
        return Err(TargetError::NoSuchCgroup(arg.to_owned()));
    }
    let Some(mount) = mount else {
        return Err(TargetError::NoCgroupV2(arg.to_owned()));
    };
    if !is_cgroup2(&path) || !path.starts_with(&mount) {
        return Err(TargetError::NotCgroupV2(arg.to_owned(), mount.display().to_string()));
    }
    let level = path.strip_prefix(&mount).map_or(0, |rel| rel.components().count()) as u32;
    let id = std::fs::metadata(&path)
        .map_err(|_| TargetError::NoSuchCgroup(arg.to_owned()))?
        .ino();
    Ok(Cgroup { path, id, level })
}

/// The filter for the kernel programs; every target is checked to exist.
pub fn build_filter(
    pids: &[u32],
    tid: Option<u32>,
    cgroup: Option<&Cgroup>,
) -> Result<Filter, TargetError> {
    let mut filter = Filter {
        self_tgid: std::process::id(),
        ..Filter::default()
    };
    if pids.len() > MAX_FILTER_TGIDS {
        return Err(TargetError::TooManyPids(pids.len()));
    }
    for (slot, &pid) in pids.iter().enumerate() {
        if !procfs::process_exists(pid) {
            return Err(TargetError::NoSuchProcess(pid));
        }
        filter.tgids[slot] = pid;
    }
    if !pids.is_empty() {
        filter.flags |= FILTER_TGID;
        filter.tgid_count = pids.len() as u32;
    }
    if let Some(tid) = tid {
        if procfs::tgid_of(tid).is_none() {
            return Err(TargetError::NoSuchThread(tid));
        }
        filter.flags |= FILTER_TID;
        filter.tid = tid;
    }
    if let Some(cgroup) = cgroup {
        filter.flags |= FILTER_CGROUP;
        filter.cgroup_id = cgroup.id;
        filter.cgroup_level = cgroup.level;
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_pid_becomes_a_tgid_filter() {
        let me = std::process::id();
        let f = build_filter(&[me], None, None).unwrap();
        assert_eq!(f.flags, FILTER_TGID);
        assert_eq!((f.tgid_count, f.tgids[0]), (1, me));
        assert_eq!(build_filter(&[], None, None).unwrap().flags, 0);
    }

    #[test]
    fn bad_targets_have_one_line_errors() {
        let err = build_filter(&[u32::MAX - 3], None, None).unwrap_err();
        assert_eq!(err.to_string(), format!("no process with PID {}", u32::MAX - 3));
        let err = build_filter(&[], Some(u32::MAX - 3), None).unwrap_err();
        assert_eq!(err, TargetError::NoSuchThread(u32::MAX - 3));
        let many: Vec<u32> = vec![std::process::id(); MAX_FILTER_TGIDS + 1];
        assert_eq!(build_filter(&many, None, None).unwrap_err(), TargetError::TooManyPids(17));
    }

    #[test]
    fn non_cgroup_paths_are_rejected() {
        assert_eq!(
            resolve_cgroup("/definitely/not/here").unwrap_err(),
            TargetError::NoSuchCgroup("/definitely/not/here".into())
        );
        let err = resolve_cgroup("/tmp").unwrap_err().to_string();
        assert!(err.starts_with("/tmp: not a cgroup v2 directory"), "{err}");
    }

    #[test]
    fn cgroup_v2_root_resolves_to_level_zero() {
        let Some(mount) = cgroup2_mount() else { return };
        let cg = resolve_cgroup(mount.to_str().unwrap()).unwrap();
        assert_eq!(cg.level, 0);
        assert_eq!(cg.id, std::fs::metadata(&mount).unwrap().ino());
    }
}
