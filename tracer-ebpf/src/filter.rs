//! Filters from the command line, applied to the task being measured.
use aya_ebpf::helpers::generated::bpf_get_current_ancestor_cgroup_id;
use tracer_common::{FILTER_CGROUP, FILTER_TGID, FILTER_TID, MAX_FILTER_TGIDS};

use crate::kernel::{
    TaskPtr, filter_cgroup_id, filter_cgroup_level, filter_flags, filter_tgid, filter_tgid_count,
    filter_tid, self_tgid,
};

/// Whether any filter is set; when none is, every task is measured.
#[inline(always)]
pub fn active() -> bool {
    filter_flags() != 0
}

fn ids_match(flags: u32, tid: u32, tgid: u32) -> bool {
    if flags & FILTER_TID != 0 && tid != filter_tid() {
        return false;
    }
    if flags & FILTER_TGID != 0 {
        let count = filter_tgid_count() as usize;
        let mut found = false;
        for index in 0..MAX_FILTER_TGIDS {
            if index >= count {
                break;
            }
            if filter_tgid(index) == tgid {
                found = true;
                break;
            }
        }
        if !found {
            return false;
        }
    }
    true
}

/// Filter for a task reached through a `task_struct` pointer (BTF mode).
#[inline(always)]
pub fn task_passes(task: TaskPtr, tid: u32, tgid: u32) -> bool {
    let flags = filter_flags();
    if flags == 0 {
        return true;
    }
    if !ids_match(flags, tid, tgid) {
        return false;
    }
    flags & FILTER_CGROUP == 0 || task.in_cgroup(filter_cgroup_level(), filter_cgroup_id())
}

/// Filter for the current task (classic mode, where only `current` can be
/// inspected beyond the tracepoint record).
#[inline(always)]
pub fn current_passes(tid: u32, tgid: u32) -> bool {
    let flags = filter_flags();
    if flags == 0 {
        return true;
    }
    if !ids_match(flags, tid, tgid) {
        return false;
    }
    if flags & FILTER_CGROUP == 0 {
        return true;
    }
    // SAFETY: a helper call without pointer arguments.
    let ancestor = unsafe { bpf_get_current_ancestor_cgroup_id(filter_cgroup_level() as i32) };
    ancestor == filter_cgroup_id()
}

/// Filter for the syscall and block probes, which measure `current`: the
/// tracer's own activity is never measured.
#[inline(always)]
pub fn current_measured(tid: u32, tgid: u32) -> bool {
    tgid != self_tgid() && current_passes(tid, tgid)
}
