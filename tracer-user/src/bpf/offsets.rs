//! Load-time configuration from the running kernel: struct member offsets
//! from its BTF, tracepoint record offsets from tracefs format files, never
//! from the build machine.
use tracer_common::{
    BlockOffsets, CgroupAncestry, HttpSyscalls, SYSCALL_BITMAP_BITS, SyscallConfig, TaskOffsets, TracepointOffsets,
};

use super::{LoadError, SyscallOptions};
use crate::{
    model::names::Sysno,
    sys::{
        btf::{Btf, BtfError},
        tracefs::Format,
    },
};

/// Size of `pid_t`: `task_struct.tgid` is read together with `.pid`.
const PID_BYTES: u32 = 4;

pub(super) fn task_offsets(btf: &Btf) -> Result<TaskOffsets, BtfError> {
    let (cgroup_ancestry, cgroup_ancestors) = if btf.has_member("cgroup", "ancestors") {
        (CgroupAncestry::Pointers as u32, btf.member_offset("cgroup", "ancestors")?)
    } else if btf.has_member("cgroup", "ancestor_ids") {
        (CgroupAncestry::Ids as u32, btf.member_offset("cgroup", "ancestor_ids")?)
    } else {
        (CgroupAncestry::Unavailable as u32, 0)
    };
    // A missing in_iowait only loses the I/O-wait split, not the probes.
    let (task_in_iowait_byte, task_in_iowait_mask) = btf
        .member_bit_offset("task_struct", "in_iowait")
        .map_or((0, 0), |bit| (bit / 8, 1 << (bit % 8)));
    // Without them the HTTP probes cannot see syscall arguments (x86-64 names).
    let (regs_arg0, regs_arg1) = syscall_arg_registers(btf);
    let [task_sum_exec_runtime, task_pcount, task_last_arrival] = sched_counter_offsets(btf);
    let (task_contributes_byte, task_contributes_mask) = btf
        .member_bit_offset("task_struct", "sched_contributes_to_load")
        .map_or((0, 0), |bit| (bit / 8, 1 << (bit % 8)));
    // Without them a connection is its descriptor number, and one read and
    // written through dup'ed descriptors is not matched.
    let fd_offsets = [
        btf.member_offset("task_struct", "files"),
        btf.member_offset("files_struct", "fdt"),
        btf.member_offset("fdtable", "fd"),
        btf.member_offset("fdtable", "max_fds"),
    ];
    let [task_files, files_fdt, fdtable_fd, fdtable_max_fds] = match fd_offsets {
        [Ok(files), Ok(fdt), Ok(fd), Ok(max)] if files != 0 => [files, fdt, fd, max],
        _ => [0; 4],
    };
    let [task_cfs_rq, cfs_rq_throttled_clock_self, cfs_rq_rq, rq_clock] = throttle_offsets(btf);
    let (task_pid, task_tgid) = (btf.member_offset("task_struct", "pid")?, btf.member_offset("task_struct", "tgid")?);
    if task_tgid != task_pid + PID_BYTES {
        return Err(BtfError::Layout("task_struct.tgid does not follow .pid"));
    }
    // `task_struct.cpu`, moved into `thread_info` on kernels (x86 since
    // 5.16) that keep `thread_info` inside `task_struct`.
    let task_cpu = btf.member_offset("task_struct", "cpu").ok().or_else(|| nested_member(btf, "thread_info", "thread_info", "cpu")).unwrap_or(0);
    // Read against `rq.clock`, reached through `se.cfs_rq`.
    let task_last_queued = match task_cfs_rq {
        0 => 0,
        _ => nested_member(btf, "sched_info", "sched_info", "last_queued").unwrap_or(0),
    };
    Ok(TaskOffsets {
        task_cpu,
        task_last_queued,
        wakeups_at_switch_in: u32::from(wakeups_at_switch_in(btf, task_last_queued, task_pcount)),
        task_cfs_rq,
        cfs_rq_throttled_clock_self,
        cfs_rq_rq,
        rq_clock,
        task_files,
        files_fdt,
        fdtable_fd,
        fdtable_max_fds,
        regs_arg0,
        regs_arg1,
        task_on_cpu: btf.member_offset("task_struct", "on_cpu").unwrap_or(0),
        task_contributes_byte,
        task_contributes_mask,
        task_sum_exec_runtime,
        task_pcount,
        task_last_arrival,
        task_in_iowait_byte,
        task_in_iowait_mask,
        task_pid,
        task_tgid,
        task_comm: btf.member_offset("task_struct", "comm")?,
        task_cgroups: btf.member_offset("task_struct", "cgroups")?,
        css_set_dfl_cgrp: btf.member_offset("css_set", "dfl_cgrp")?,
        cgroup_kn: btf.member_offset("cgroup", "kn")?,
        cgroup_level: btf.member_offset("cgroup", "level")?,
        cgroup_ancestors,
        kernfs_node_id: btf.member_offset("kernfs_node", "id")?,
        cgroup_ancestry,
    })
}

/// For classic tracepoints, which read no kernel struct but the task being
/// switched out (`current`): the throttling offsets and its scheduler
/// counters' when the kernel has BTF, none otherwise (then no wait is told
/// apart as throttled, and on-CPU time is the tracepoints' own).
pub(super) fn throttle_only_offsets() -> TaskOffsets {
    let Some(btf) = Btf::from_sys_fs().ok().and_then(|raw| Btf::parse(&raw).ok()) else {
        return TaskOffsets::default();
    };
    let [task_cfs_rq, cfs_rq_throttled_clock_self, cfs_rq_rq, rq_clock] = throttle_offsets(&btf);
    let [task_sum_exec_runtime, task_pcount, task_last_arrival] = sched_counter_offsets(&btf);
    TaskOffsets {
        task_cfs_rq,
        cfs_rq_throttled_clock_self,
        cfs_rq_rq,
        rq_clock,
        task_sum_exec_runtime,
        task_pcount,
        task_last_arrival,
        ..TaskOffsets::default()
    }
}

/// Whether the switch-in can place a thread's wakeup, so that the wakeup
/// programs (a third of the scheduler programs' cost per context switch)
/// need not run: the kernel's record of the wait (`last_queued`, and
/// `run_delay` for a wait begun on another CPU) says when it began. Only
/// where a wait after a wakeup is never throttled: since Linux 6.18
/// (`task_struct.sched_throttle_work`) a thread is throttled on its way back
/// to user space, taken off its run queue, and put back without a wakeup;
/// before, a thread woken into a throttled cgroup waited on its run queue,
/// and only the wakeup could read the throttled time its wait began with.
fn wakeups_at_switch_in(btf: &Btf, task_last_queued: u32, task_pcount: u32) -> bool {
    task_last_queued != 0 && task_pcount != 0 && btf.has_member("task_struct", "sched_throttle_work")
}

/// `task_struct.OUTER.INNER`, where OUTER is a struct of type `inner_struct`.
fn nested_member(btf: &Btf, outer: &str, inner_struct: &str, inner: &str) -> Option<u32> {
    Some(btf.member_offset("task_struct", outer).ok()? + btf.member_offset(inner_struct, inner).ok()?)
}

/// `task_struct.se.sum_exec_runtime`, `.sched_info.run_delay`, `.pcount` and
/// `.last_arrival`, as [`sum_exec_runtime`, `pcount`, `last_arrival`], or all
/// 0. Missing (or with `run_delay` not right after `pcount`: the programs
/// read the two in one go), they only lose the filling of unreported
/// switches and on-CPU time by the task's own clock.
fn sched_counter_offsets(btf: &Btf) -> [u32; 3] {
    const PCOUNT_BYTES: u32 = 8;
    let nested = |outer, inner_struct, inner| nested_member(btf, outer, inner_struct, inner);
    let offsets = [
        nested("se", "sched_entity", "sum_exec_runtime"),
        nested("sched_info", "sched_info", "run_delay"),
        nested("sched_info", "sched_info", "pcount"),
        nested("sched_info", "sched_info", "last_arrival"),
    ];
    match offsets {
        [Some(exec), Some(delay), Some(pcount), Some(arrival)] if delay == pcount + PCOUNT_BYTES => {
            [exec, pcount, arrival]
        }
        _ => [0; 3],
    }
}

/// `task_struct.se.cfs_rq`, `cfs_rq.throttled_clock_self`, `cfs_rq.rq` and
/// `rq.clock`, or all 0 (the time a cgroup was throttled per CPU is only
/// kept since Linux 6.6, with `CONFIG_CFS_BANDWIDTH` and
/// `CONFIG_FAIR_GROUP_SCHED`). The programs read `throttled_clock_self` and
/// `throttled_clock_self_time` in one go, so they must be neighbours.
fn throttle_offsets(btf: &Btf) -> [u32; 4] {
    const U64_BYTES: u32 = 8;
    let offsets = (
        btf.member_offset("task_struct", "se"),
        btf.member_offset("sched_entity", "cfs_rq"),
        btf.member_offset("cfs_rq", "throttled_clock_self"),
        btf.member_offset("cfs_rq", "throttled_clock_self_time"),
        btf.member_offset("cfs_rq", "rq"),
        btf.member_offset("rq", "clock"),
    );
    match offsets {
        (Ok(se), Ok(se_cfs_rq), Ok(since), Ok(total), Ok(rq), Ok(clock)) if total == since + U64_BYTES => {
            [se + se_cfs_rq, since, rq, clock]
        }
        _ => [0; 4],
    }
}

/// Where `struct pt_regs` holds a syscall's first two arguments on this
/// architecture (0: unknown, and the HTTP probes cannot see arguments).
#[cfg(target_arch = "x86_64")]
fn syscall_arg_registers(btf: &Btf) -> (u32, u32) {
    (btf.member_offset("pt_regs", "di").unwrap_or(0), btf.member_offset("pt_regs", "si").unwrap_or(0))
}

/// On arm64 the arguments are x0 and x1, the first two of `regs[31]`.
#[cfg(target_arch = "aarch64")]
fn syscall_arg_registers(btf: &Btf) -> (u32, u32) {
    const REGISTER_BYTES: u32 = 8;
    btf.member_offset("pt_regs", "regs").map_or((0, 0), |regs| (regs, regs + REGISTER_BYTES))
}

/// The syscalls HTTP detection watches, numbered for this architecture
/// (the `syscalls` crate's tables, generated from the kernel's own).
pub(super) fn http_syscalls() -> HttpSyscalls {
    let nr = |sysno: Sysno| sysno.id() as u32;
    HttpSyscalls {
        read: nr(Sysno::read),
        write: nr(Sysno::write),
        close: nr(Sysno::close),
        readv: nr(Sysno::readv),
        writev: nr(Sysno::writev),
        sendfile: nr(Sysno::sendfile),
        sendto: nr(Sysno::sendto),
        recvfrom: nr(Sysno::recvfrom),
        sendmsg: nr(Sysno::sendmsg),
        recvmsg: nr(Sysno::recvmsg),
        connect: nr(Sysno::connect),
    }
}

/// The tracepoints of the syscalls in [`http_syscalls`] (`sys_enter_NAME`
/// and `sys_exit_NAME` under `syscalls`), for the lean `--http` path;
/// `sendfile`'s event keeps the name of its 64-bit entry point.
pub(super) const HTTP_SYSCALL_EVENTS: [&str; 11] =
    ["read", "write", "close", "readv", "writev", "sendfile64", "sendto", "recvfrom", "sendmsg", "recvmsg", "connect"];

/// The waits of a server between requests, also traced on the lean path:
/// a thread that wrote a response and then waits for more work has moved
/// on, which completes its exchange (the lean path sees no other syscall
/// that would). Those an architecture lacks (`epoll_wait` on arm64) are
/// skipped.
pub(super) const WAIT_SYSCALL_EVENTS: [&str; 12] = [
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "poll",
    "ppoll",
    "select",
    "pselect6",
    "accept",
    "accept4",
    "futex",
    "nanosleep",
    "clock_nanosleep",
];

/// Sets the record offsets of the `syscalls:sys_enter_*`/`sys_exit_*`
/// events, which share one layout (the kernel's `syscall_trace_enter` and
/// `syscall_trace_exit`): read from `read`'s format files.
pub(super) fn http_syscall_record_offsets(offsets: &mut TracepointOffsets) -> Result<(), LoadError> {
    let enter = Format::read("syscalls", "sys_enter_read")?;
    offsets.syscall_enter_nr = enter.offset("__syscall_nr")?;
    offsets.syscall_enter_args = enter.offset("fd")?;
    offsets.syscall_exit_ret = Format::read("syscalls", "sys_exit_read")?.offset("ret")?;
    Ok(())
}

pub(super) fn tracepoint_offsets(syscalls: bool) -> Result<TracepointOffsets, LoadError> {
    let switch = Format::read("sched", "sched_switch")?;
    let wakeup = Format::read("sched", "sched_wakeup")?;
    Format::read("sched", "sched_wakeup_new")?;
    let (sys_enter_id, sys_enter_args, sys_exit_ret) = if syscalls {
        let enter = Format::read("raw_syscalls", "sys_enter")?;
        (enter.offset("id")?, enter.offset("args")?, Format::read("raw_syscalls", "sys_exit")?.offset("ret")?)
    } else {
        (0, 0, 0)
    };
    Ok(TracepointOffsets {
        switch_prev_pid: switch.offset("prev_pid")?,
        switch_prev_state: switch.offset("prev_state")?,
        switch_next_pid: switch.offset("next_pid")?,
        switch_next_comm: switch.offset("next_comm")?,
        wakeup_pid: wakeup.offset("pid")?,
        wakeup_comm: wakeup.offset("comm")?,
        wakeup_target_cpu: wakeup.offset("target_cpu")?,
        sys_enter_id,
        sys_exit_ret,
        sys_enter_args,
        ..TracepointOffsets::default()
    })
}

pub(super) fn block_offsets() -> Result<BlockOffsets, LoadError> {
    let issue = Format::read("block", "block_rq_issue")?;
    let complete = Format::read("block", "block_rq_complete")?;
    Ok(BlockOffsets {
        rq_dev: issue.offset("dev")?,
        rq_sector: issue.offset("sector")?,
        rq_bytes: issue.offset("bytes")?,
        rq_rwbs: issue.offset("rwbs")?,
        done_dev: complete.offset("dev")?,
        done_sector: complete.offset("sector")?,
    })
}

pub(super) fn syscall_config(options: Option<&SyscallOptions>) -> SyscallConfig {
    let mut config = SyscallConfig::default();
    if let Some(options) = options {
        config.by_thread = u32::from(options.by_thread);
        // No histograms: an empty list of the only syscalls to keep.
        config.only_listed = u32::from(!options.only.is_empty() || !options.histograms);
        for &nr in options.only.iter().filter(|&&nr| nr < SYSCALL_BITMAP_BITS) {
            config.numbers[(nr / 64) as usize] |= 1 << (nr % 64);
        }
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_histograms_can_be_left_out() {
        let all = SyscallOptions { by_thread: false, only: vec![], histograms: true, http_only: false };
        assert_eq!(syscall_config(Some(&all)).only_listed, 0);
        let listed = syscall_config(Some(&SyscallOptions { only: vec![0, 65], ..all.clone() }));
        assert_eq!((listed.only_listed, listed.numbers[0], listed.numbers[1]), (1, 1, 2));
        let none = syscall_config(Some(&SyscallOptions { histograms: false, ..all }));
        assert_eq!((none.only_listed, none.numbers), (1, [0; tracer_common::SYSCALL_BITMAP_WORDS]), "nothing kept");
    }

    /// On the running kernel: the switch-in places wakeups exactly where a
    /// thread is throttled on its way to user space (Linux 6.18 on), from
    /// `sched_info.last_queued`, which follows `last_arrival`.
    #[test]
    fn wakeups_are_placed_at_the_switch_in_where_waits_after_them_are_never_throttled() {
        let Some(btf) = Btf::from_sys_fs().ok().and_then(|raw| Btf::parse(&raw).ok()) else { return };
        let offsets = task_offsets(&btf).unwrap();
        let task_based_throttle = btf.has_member("task_struct", "sched_throttle_work");
        let readable = offsets.task_last_queued != 0 && offsets.task_pcount != 0;
        assert_eq!(offsets.wakeups_at_switch_in != 0, task_based_throttle && readable, "{offsets:?}");
        if offsets.task_last_queued != 0 {
            assert_eq!(offsets.task_last_queued, offsets.task_last_arrival + 8, "{offsets:?}");
            let clock = [offsets.task_cfs_rq, offsets.cfs_rq_rq, offsets.rq_clock];
            assert!(clock.iter().all(|&offset| offset != 0), "the run queue's clock: {offsets:?}");
        }
    }

    /// The numbers the HTTP probes compiled in before they came from the
    /// loader: x86-64's table must give the same.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn http_syscall_numbers_are_the_architectures() {
        let s = http_syscalls();
        let numbers =
            [s.read, s.write, s.close, s.readv, s.writev, s.sendfile, s.sendto, s.recvfrom, s.sendmsg, s.recvmsg, s.connect];
        assert_eq!(numbers, [0, 1, 3, 19, 20, 40, 44, 45, 46, 47, 42]);
    }
}
