//! Filters from the command line, applied to the task being measured.
use aya_ebpf::helpers::generated::bpf_get_current_ancestor_cgroup_id;
use tracer_common::{Counter, FILTER_CGROUP, FILTER_FOLLOW_CHILDREN, FILTER_TGID, FILTER_TID, MAX_FILTER_TGIDS};

use crate::{
    kernel::{
        TaskPtr, filter_cgroup_id, filter_cgroup_level, filter_flags, filter_tgid, filter_tgid_count, filter_tid,
        self_tgid,
    },
    maps::{FOLLOWED, count},
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
    flags & FILTER_TGID == 0 || tgid_traced(flags, tgid)
}

/// Whether `tgid` is a target process, or (with `--children`) a process a
/// target forked. The followed table is only looked at when asked for, so
/// without `--children` the filter costs what it did.
#[inline(always)]
fn tgid_traced(flags: u32, tgid: u32) -> bool {
    let count = filter_tgid_count() as usize;
    for index in 0..MAX_FILTER_TGIDS {
        if index >= count {
            break;
        }
        if filter_tgid(index) == tgid {
            return true;
        }
    }
    // SAFETY: the value is only tested for presence.
    flags & FILTER_FOLLOW_CHILDREN != 0 && unsafe { FOLLOWED.get(&tgid) }.is_some()
}

/// `sched_process_fork`: a traced process forked a new process (not a
/// thread: those share its TGID). With `--children` the child is traced
/// from now on; without, it is counted as left out.
#[inline(always)]
pub fn on_fork(parent_tgid: u32, child_tgid: u32) {
    let flags = filter_flags();
    if flags & FILTER_TGID == 0 || child_tgid == parent_tgid || !tgid_traced(flags, parent_tgid) {
        return;
    }
    if flags & FILTER_FOLLOW_CHILDREN == 0 {
        count(Counter::ChildrenLeftOut);
    } else if FOLLOWED.insert(&child_tgid, &parent_tgid, 0).is_err() {
        count(Counter::ChildrenUntracked);
    }
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

/// A followed child's process ended (its leader exited): forget it, so
/// its PID, once reused, is not traced.
#[inline(always)]
pub fn on_process_exit(tgid: u32) {
    if filter_flags() & FILTER_FOLLOW_CHILDREN != 0 {
        let _ = FOLLOWED.remove(&tgid);
    }
}
