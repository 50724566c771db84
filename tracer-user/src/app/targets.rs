//! Turns what the user asked to trace (PIDs, a TID, a cgroup path) into the
//! kernel-side `Filter` and load options, checking each before anything is
//! loaded.
use tracer_common::{
    DEFAULT_RUNQ_RING_BYTES, FILTER_CGROUP, FILTER_FOLLOW_CHILDREN, FILTER_TGID, FILTER_TID, Filter, MAX_FILTER_TGIDS,
    TIMELINE_RING_BYTES,
};

use crate::{
    bpf::{LoadOptions, ProbeChoice, SyscallOptions},
    output::report::Filters,
    sys::{
        cgroup::{self, Cgroup, CgroupError},
        procfs,
    },
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("no process with PID {0}")]
    NoSuchProcess(u32),
    #[error("no thread with TID {0}")]
    NoSuchThread(u32),
    /// The kernel filters are and-ed: such a thread is never traced.
    #[error("--tid {tid} is a thread of process {tgid}, not of --pid {}: nothing would be traced", pids_text(.pids))]
    TidNotInPids { tid: u32, tgid: u32, pids: Vec<u32> },
    #[error("at most {MAX_FILTER_TGIDS} PIDs can be traced at once ({0} given)")]
    TooManyPids(usize),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
}

fn pids_text(pids: &[u32]) -> String {
    pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

/// What to trace, checked before anything is loaded.
pub struct Targets {
    pub options: LoadOptions,
    pub filters: Filters,
}

impl Targets {
    /// Checks the targets and builds the kernel filter; the probes to load
    /// besides the scheduler's are added by each command.
    pub fn resolve(
        probes: ProbeChoice,
        max_threads: u32,
        pids: &[u32],
        tid: Option<u32>,
        cgroup: Option<&str>,
        children: bool,
    ) -> Result<Targets, TargetError> {
        let cgroup = cgroup.map(cgroup::resolve_cgroup).transpose()?;
        let mut filter = build_filter(pids, tid, cgroup.as_ref())?;
        if children && !pids.is_empty() {
            filter.flags |= FILTER_FOLLOW_CHILDREN;
        }
        Ok(Targets {
            options: LoadOptions {
                filter,
                probes,
                max_threads,
                syscalls: None,
                block_io: false,
                spans: None,
                timeline: false,
                runq_waits: true,
                runq_ring_bytes: DEFAULT_RUNQ_RING_BYTES,
                timeline_ring_bytes: TIMELINE_RING_BYTES,
                cpu_queues: false,
                holders: false,
            },
            filters: Filters {
                pids: pids.to_vec(),
                tid,
                cgroup: cgroup.map(|c| c.path.display().to_string()),
                children: filter.flags & FILTER_FOLLOW_CHILDREN != 0,
            },
        })
    }

    /// Whether a PID, TID or cgroup narrows tracing (syscall probes are
    /// only attached system-wide when asked for explicitly).
    pub fn narrowed(&self) -> bool {
        self.options.filter.flags != 0
    }

    /// Syscall probes: attached when a filter narrows them or
    /// `system_wide` says so explicitly.
    pub fn syscall_options(&self, system_wide: bool, by_thread: bool, only: Vec<u32>) -> Option<SyscallOptions> {
        (self.narrowed() || system_wide)
            .then_some(SyscallOptions { by_thread, only, histograms: true, http_only: false })
    }
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
        let Some(tgid) = procfs::tgid_of(tid) else {
            return Err(TargetError::NoSuchThread(tid));
        };
        if !pids.is_empty() && !pids.contains(&tgid) {
            return Err(TargetError::TidNotInPids { tid, tgid, pids: pids.to_vec() });
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
    fn a_tid_must_belong_to_one_of_the_pids() {
        let me = std::process::id();
        // PID 1 is always there, and its main thread is not ours.
        let err = build_filter(&[me], Some(1), None).unwrap_err();
        assert_eq!(err, TargetError::TidNotInPids { tid: 1, tgid: 1, pids: vec![me] });
        assert_eq!(err.to_string(), format!("--tid 1 is a thread of process 1, not of --pid {me}: nothing would be traced"));
        let f = build_filter(&[1, me], Some(me), None).unwrap();
        assert_eq!(f.flags, FILTER_TGID | FILTER_TID);
        // A TID no thread has is no thread at all, whatever the PIDs. (Not
        // one of an exited thread of ours: the parallel test harness may
        // reuse it for a thread of this process at once.)
        let none = u32::MAX - 3;
        assert_eq!(build_filter(&[me], Some(none), None).unwrap_err(), TargetError::NoSuchThread(none));
    }

}
