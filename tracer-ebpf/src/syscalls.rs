//! Syscall latency of the traced tasks. These programs run on every syscall
//! of every task once attached, so the filter test comes first and the
//! loader attaches them only when asked (a PID or cgroup filter, or an
//! explicit system-wide request). The lean `--http` path attaches the same
//! work to the HTTP syscalls' own tracepoints only.
use aya_ebpf::{
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use tracer_common::{SyscallErrorKey, SyscallKey, bucket_index};

use crate::{
    filter,
    http,
    kernel::{
        current_comm, current_ids, http_enabled, now_ns, read_field, syscall_args_from_record, syscall_args_from_regs,
        syscall_selected, syscalls_by_thread, tracepoint_offsets,
    },
    maps::{SYSCALL_ERRORS, SYSCALL_LATENCY, add_to_bucket, increment},
    sched, spans, timeline,
};

/// The kernel reports failures as -errno in this range.
const MAX_ERRNO: i64 = 4095;

/// `sys_enter(struct pt_regs *regs, long id)`.
#[btf_tracepoint(function = "sys_enter")]
pub fn btf_sys_enter(ctx: BtfTracePointContext) -> u32 {
    on_enter(ctx.arg::<i64>(1), || syscall_args_from_regs(ctx.arg::<*const u8>(0)));
    0
}

/// `sys_exit(struct pt_regs *regs, long ret)`.
#[btf_tracepoint(function = "sys_exit")]
pub fn btf_sys_exit(ctx: BtfTracePointContext) -> u32 {
    on_exit(ctx.arg::<i64>(1));
    0
}

#[tracepoint]
pub fn tp_sys_enter(ctx: TracePointContext) -> u32 {
    let offsets = tracepoint_offsets();
    if let Some(id) = read_field::<i64>(&ctx, offsets.sys_enter_id) {
        on_enter(id, || syscall_args_from_record(&ctx, offsets.sys_enter_args));
    }
    0
}

#[tracepoint]
pub fn tp_sys_exit(ctx: TracePointContext) -> u32 {
    if let Some(ret) = read_field::<i64>(&ctx, tracepoint_offsets().sys_exit_ret) {
        on_exit(ret);
    }
    0
}

/// `syscalls:sys_enter_*` of the HTTP syscalls and the waits (the lean
/// `--http` path, `SyscallOptions::http_only` in the loader), whose records
/// hold the number as an int.
#[tracepoint]
pub fn tp_http_syscall_enter(ctx: TracePointContext) -> u32 {
    let offsets = tracepoint_offsets();
    if let Some(nr) = read_field::<i32>(&ctx, offsets.syscall_enter_nr) {
        on_enter(i64::from(nr), || syscall_args_from_record(&ctx, offsets.syscall_enter_args));
    }
    0
}

/// `syscalls:sys_exit_*` of the same syscalls.
#[tracepoint]
pub fn tp_http_syscall_exit(ctx: TracePointContext) -> u32 {
    if let Some(ret) = read_field::<i64>(&ctx, tracepoint_offsets().syscall_exit_ret) {
        on_exit(ret);
    }
    0
}

/// `args` reads the syscall's first two arguments, for the HTTP probes.
#[inline(always)]
fn on_enter(nr: i64, args: impl FnOnce() -> [u64; 2]) {
    let (tid, tgid) = current_ids();
    if !filter::current_measured(tid, tgid) || nr < 0 {
        return;
    }
    if let Some(stats) = sched::lookup_or_track(tid, tgid, current_comm) {
        stats.syscall_nr = nr as u32;
        stats.syscall_since_ns = now_ns();
        if http_enabled() {
            http::on_enter(tgid, stats, nr as u32, args);
        }
    }
}

#[inline(always)]
fn on_exit(ret: i64) {
    let (tid, tgid) = current_ids();
    if !filter::current_measured(tid, tgid) {
        return;
    }
    let Some(stats) = sched::lookup(tid) else { return };
    let since = stats.syscall_since_ns;
    if since == 0 {
        return;
    }
    let now = now_ns();
    stats.syscall_since_ns = 0;
    let took = now.saturating_sub(since);
    stats.totals.syscall_ns += took;
    stats.totals.syscalls += 1;
    let nr = stats.syscall_nr;
    spans::charge_syscall(tgid, stats, nr, took);
    timeline::syscall(tid, tgid, nr, now, took);
    if http_enabled() {
        http::on_exit(tid, tgid, stats, nr, ret, since);
    }
    if !syscall_selected(u64::from(nr)) {
        return;
    }
    let id = if syscalls_by_thread() { tid } else { tgid };
    let key = SyscallKey { id, nr: nr as u16, bucket: bucket_index(took) };
    add_to_bucket(&SYSCALL_LATENCY, &key, took);
    if (-MAX_ERRNO..0).contains(&ret) {
        let key = SyscallErrorKey { id, nr: nr as u16, errno: (-ret) as u16 };
        increment(&SYSCALL_ERRORS, &key);
    }
}

/// Benchmark floor (`tracer floor`): what any program on the syscall
/// tracepoints costs, before doing any work.
#[btf_tracepoint(function = "sys_enter")]
pub fn btf_sys_enter_empty(_ctx: BtfTracePointContext) -> u32 {
    0
}

#[btf_tracepoint(function = "sys_exit")]
pub fn btf_sys_exit_empty(_ctx: BtfTracePointContext) -> u32 {
    0
}
