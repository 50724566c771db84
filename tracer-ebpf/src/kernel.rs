//! Reads of kernel memory and of the load-time globals. All `unsafe` of the
//! programs is here, in small helpers named after what they read.
use aya_ebpf::helpers::{bpf_probe_read_kernel, bpf_probe_read_kernel_buf};
use tracer_common::{
    CGROUP_ANCESTRY_IDS, CGROUP_ANCESTRY_POINTERS, Filter, TASK_COMM_LEN, TaskOffsets,
    TracepointOffsets,
};

/// Set by the loader from the command line (see `tracer_common::Filter`).
#[unsafe(no_mangle)]
static FILTER: Filter = Filter {
    flags: 0,
    tid: 0,
    tgid_count: 0,
    tgids: [0; tracer_common::MAX_FILTER_TGIDS],
    cgroup_level: 0,
    cgroup_id: 0,
};

/// Set by the loader from the running kernel's BTF.
#[unsafe(no_mangle)]
static TASK_OFFSETS: TaskOffsets = TaskOffsets {
    task_pid: 0,
    task_tgid: 0,
    task_comm: 0,
    task_cgroups: 0,
    css_set_dfl_cgrp: 0,
    cgroup_kn: 0,
    cgroup_level: 0,
    cgroup_ancestors: 0,
    kernfs_node_id: 0,
    cgroup_ancestry: 0,
};

/// Set by the loader from tracefs format files.
#[unsafe(no_mangle)]
static TRACEPOINT_OFFSETS: TracepointOffsets = TracepointOffsets {
    switch_prev_pid: 0,
    switch_prev_state: 0,
    switch_next_pid: 0,
    switch_next_comm: 0,
    wakeup_pid: 0,
    wakeup_comm: 0,
};

/// Reads one field of a load-time global. `read_volatile` keeps the compiler
/// from folding the zero initialiser into the code.
macro_rules! global {
    ($global:ident . $field:ident) => {
        // SAFETY: a plain read of an initialised static.
        unsafe { core::ptr::read_volatile(&raw const $global.$field) }
    };
}

pub fn filter_flags() -> u32 {
    global!(FILTER.flags)
}
pub fn filter_tid() -> u32 {
    global!(FILTER.tid)
}
pub fn filter_tgid_count() -> u32 {
    global!(FILTER.tgid_count)
}
pub fn filter_tgid(index: usize) -> u32 {
    // SAFETY: callers iterate below MAX_FILTER_TGIDS.
    unsafe { core::ptr::read_volatile((&raw const FILTER.tgids).cast::<u32>().add(index)) }
}
pub fn filter_cgroup_level() -> u32 {
    global!(FILTER.cgroup_level)
}
pub fn filter_cgroup_id() -> u64 {
    global!(FILTER.cgroup_id)
}
pub fn tracepoint_offsets() -> TracepointOffsets {
    // SAFETY: a plain read of an initialised static.
    unsafe { core::ptr::read_volatile(&raw const TRACEPOINT_OFFSETS) }
}

/// A `struct task_struct *` handed to a BTF tracepoint.
#[derive(Clone, Copy)]
pub struct TaskPtr(pub *const u8);

fn read_at<T>(base: *const u8, offset: u32) -> Option<T> {
    // SAFETY: bpf_probe_read_kernel checks the address; a fault is an Err.
    unsafe { bpf_probe_read_kernel(base.add(offset as usize).cast::<T>()).ok() }
}

impl TaskPtr {
    /// Kernel TID (`task_struct.pid`); 0 for the idle tasks.
    pub fn tid(self) -> u32 {
        read_at(self.0, global!(TASK_OFFSETS.task_pid)).unwrap_or(0)
    }

    /// Kernel TGID (`task_struct.tgid`), the user-visible PID.
    pub fn tgid(self) -> u32 {
        read_at(self.0, global!(TASK_OFFSETS.task_tgid)).unwrap_or(0)
    }

    pub fn comm(self) -> [u8; TASK_COMM_LEN] {
        let mut comm = [0u8; TASK_COMM_LEN];
        let offset = global!(TASK_OFFSETS.task_comm) as usize;
        // SAFETY: as in read_at; on a fault the name stays empty.
        let _ = unsafe { bpf_probe_read_kernel_buf(self.0.add(offset), &mut comm) };
        comm
    }

    /// Whether the task's cgroup v2 cgroup is the target or one of its
    /// descendants: task->cgroups->dfl_cgrp, then its ancestor at the
    /// target's level, then that cgroup's kernfs id.
    pub fn in_cgroup(self, level: u32, id: u64) -> bool {
        let Some(css_set) = read_at::<*const u8>(self.0, global!(TASK_OFFSETS.task_cgroups)) else {
            return false;
        };
        let Some(cgroup) = read_at::<*const u8>(css_set, global!(TASK_OFFSETS.css_set_dfl_cgrp))
        else {
            return false;
        };
        let Some(task_level) = read_at::<i32>(cgroup, global!(TASK_OFFSETS.cgroup_level)) else {
            return false;
        };
        if task_level < level as i32 {
            return false;
        }
        let slot = global!(TASK_OFFSETS.cgroup_ancestors) + level * 8;
        match global!(TASK_OFFSETS.cgroup_ancestry) {
            CGROUP_ANCESTRY_POINTERS => read_at::<*const u8>(cgroup, slot)
                .is_some_and(|ancestor| cgroup_id(ancestor) == Some(id)),
            CGROUP_ANCESTRY_IDS => read_at::<u64>(cgroup, slot) == Some(id),
            _ => cgroup_id(cgroup) == Some(id),
        }
    }
}

fn cgroup_id(cgroup: *const u8) -> Option<u64> {
    let kn = read_at::<*const u8>(cgroup, global!(TASK_OFFSETS.cgroup_kn))?;
    read_at::<u64>(kn, global!(TASK_OFFSETS.kernfs_node_id))
}
