//! Reads of kernel memory and of the load-time globals. All `unsafe` of the
//! programs is here, in small helpers named after what they read.
use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_task, bpf_get_current_task_btf,
        bpf_get_smp_processor_id, bpf_ktime_get_ns, bpf_probe_read_kernel, bpf_probe_read_kernel_buf,
    },
    programs::{BtfTracePointContext, TracePointContext},
};
use tracer_common::{BlockOffsets, CgroupAncestry, CpuQueueConfig, Filter, HTTP_CAPTURE_LEN, HttpSyscalls, KernelSchedCounters, OffCpuState, SYSCALL_BITMAP_WORDS,
    SpanConfig, SyscallConfig, TASK_COMM_LEN, TaskOffsets, TracepointOffsets,};

/// Set by the loader from the command line (see `tracer_common::Filter`).
#[unsafe(no_mangle)]
static FILTER: Filter = Filter::ZERO;

/// Set by the loader from the running kernel's BTF.
#[unsafe(no_mangle)]
static TASK_OFFSETS: TaskOffsets = TaskOffsets::ZERO;

/// Set by the loader from tracefs format files.
#[unsafe(no_mangle)]
static TRACEPOINT_OFFSETS: TracepointOffsets = TracepointOffsets::ZERO;

/// Set by the loader from the command line.
#[unsafe(no_mangle)]
static SYSCALL_CONFIG: SyscallConfig = SyscallConfig::ZERO;

/// Set by the loader when spans are traced.
#[unsafe(no_mangle)]
static SPAN_CONFIG: SpanConfig = SpanConfig::ZERO;

/// Set by the loader from tracefs format files.
#[unsafe(no_mangle)]
static BLOCK_OFFSETS: BlockOffsets = BlockOffsets::ZERO;

/// Set by the loader when the per-CPU view is on, from the running kernel's BTF.
#[unsafe(no_mangle)]
static CPU_QUEUE_CONFIG: CpuQueueConfig = CpuQueueConfig::ZERO;

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
pub fn self_tgid() -> u32 {
    global!(FILTER.self_tgid)
}
pub fn filter_cgroup_id() -> u64 {
    global!(FILTER.cgroup_id)
}
pub fn tracepoint_offsets() -> TracepointOffsets {
    // SAFETY: a plain read of an initialised static.
    unsafe { core::ptr::read_volatile(&raw const TRACEPOINT_OFFSETS) }
}
pub fn block_offsets() -> BlockOffsets {
    // SAFETY: a plain read of an initialised static.
    unsafe { core::ptr::read_volatile(&raw const BLOCK_OFFSETS) }
}
/// Spans or the timeline are on (`SpanConfig::enabled`).
pub fn spans_enabled() -> bool {
    global!(SPAN_CONFIG.enabled) != 0
}
/// The per-CPU run slices are kept: for spans, the timeline or the
/// holders' sums.
pub fn slices_kept() -> bool {
    spans_enabled() || holders_enabled()
}
/// The wakeup programs are not attached: a wakeup is placed at the
/// thread's switch-in (`wakeups::woken_before_switch_in`).
pub fn wakeups_at_switch_in() -> bool {
    global!(TASK_OFFSETS.wakeups_at_switch_in) != 0
}
pub fn timeline_enabled() -> bool {
    global!(SPAN_CONFIG.timeline) != 0
}
/// Run-queue waits are streamed (`SpanConfig::runq_waits`).
pub fn runq_waits_enabled() -> bool {
    global!(SPAN_CONFIG.runq_waits) != 0
}
pub fn holders_enabled() -> bool {
    global!(SPAN_CONFIG.holders) != 0
}
pub fn http_enabled() -> bool {
    global!(SPAN_CONFIG.http) != 0
}
/// The HTTP syscalls' numbers on the running kernel's architecture.
pub fn http_syscalls() -> HttpSyscalls {
    global!(SPAN_CONFIG.http_syscalls)
}

/// The first two arguments of a syscall from `raw_syscalls:sys_enter`'s
/// `struct pt_regs *` (BTF tracepoint).
pub fn syscall_args_from_regs(regs: *const u8) -> [u64; 2] {
    [
        read_at(regs, global!(TASK_OFFSETS.regs_arg0)).unwrap_or(0),
        read_at(regs, global!(TASK_OFFSETS.regs_arg1)).unwrap_or(0),
    ]
}

/// The same from a classic tracepoint record, whose arguments start at
/// `offset`.
pub fn syscall_args_from_record(ctx: &TracePointContext, offset: u32) -> [u64; 2] {
    read_field::<[u64; 2]>(ctx, offset).unwrap_or([0; 2])
}

/// All ones above `HTTP_CAPTURE_LEN`: masking a length with it never cuts a
/// valid one, and gives the verifier a bound it can see.
const CAPTURE_LEN_MASK: u32 = (HTTP_CAPTURE_LEN as u32).next_power_of_two() * 2 - 1;

/// Copies up to `dst.len()` bytes of user memory; returns how many.
pub fn read_user_prefix(src: u64, len: u64, dst: &mut [u8; HTTP_CAPTURE_LEN]) -> u32 {
    let want = if len > dst.len() as u64 { dst.len() as u32 } else { len as u32 };
    // Keeps the verifier sure of the bound whatever the compiler does above.
    let want = want & CAPTURE_LEN_MASK;
    if want == 0 || want as usize > dst.len() {
        return 0;
    }
    // SAFETY: dst holds at least `want` bytes; the helper checks `src`.
    let ret = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_user(dst.as_mut_ptr().cast(), want, src as *const core::ffi::c_void)
    };
    if ret == 0 { want } else { 0 }
}

/// The first `len` bytes (1 to 3) of user memory, the first in the lowest
/// byte: a read shorter than a request method.
pub fn read_user_short(src: u64, len: u64) -> Option<u32> {
    let want = (len & 3) as u32;
    if want == 0 {
        return None;
    }
    let mut bytes = [0u8; 4];
    // SAFETY: `bytes` holds 4 >= `want` bytes; the helper checks `src`.
    let ret = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_user(bytes.as_mut_ptr().cast(), want, src as *const core::ffi::c_void)
    };
    if ret == 0 { Some(u32::from_le_bytes(bytes)) } else { None }
}

/// A small fixed-size read of user memory.
pub fn read_user<T>(src: u64) -> Option<T> {
    // SAFETY: the helper checks the address; a fault is an Err.
    unsafe { aya_ebpf::helpers::bpf_probe_read_user(src as *const T).ok() }
}
pub fn syscalls_by_thread() -> bool {
    global!(SYSCALL_CONFIG.by_thread) != 0
}
/// Whether syscall `nr` is aggregated (all are unless a list was given).
pub fn syscall_selected(nr: u64) -> bool {
    if global!(SYSCALL_CONFIG.only_listed) == 0 {
        return true;
    }
    let word = (nr / u64::from(u64::BITS)) as usize;
    if word >= SYSCALL_BITMAP_WORDS {
        return false;
    }
    // SAFETY: word is below SYSCALL_BITMAP_WORDS.
    let bits = unsafe {
        core::ptr::read_volatile((&raw const SYSCALL_CONFIG.numbers).cast::<u64>().add(word))
    };
    bits & (1 << (nr % u64::from(u64::BITS))) != 0
}

/// Size of a kernel pointer (64-bit kernels): `fdtable.fd` is an array of
/// `struct file *`.
const KERNEL_POINTER_SIZE: u32 = 8;
/// Size of one `cgroup.ancestors[]` slot: a pointer, or a `u64` id in
/// `ancestor_ids[]` on older kernels.
const CGROUP_ANCESTOR_SIZE: u32 = 8;

pub fn cpu_queues_enabled() -> bool {
    global!(CPU_QUEUE_CONFIG.enabled) != 0
}

/// A `struct rq *` (a CPU's run queue) handed to a BTF tracepoint.
#[derive(Clone, Copy)]
pub struct RqPtr(pub *const u8);

impl RqPtr {
    /// Tasks on this run queue, the running one included (`rq.nr_running`).
    pub fn nr_running(self) -> Option<u32> {
        read_at(self.0, global!(CPU_QUEUE_CONFIG.rq_nr_running))
    }

    /// The CPU it belongs to (`rq.cpu`).
    pub fn cpu(self) -> Option<u32> {
        read_at::<i32>(self.0, global!(CPU_QUEUE_CONFIG.rq_cpu)).map(|cpu| cpu as u32)
    }
}

/// A `struct task_struct *`. `TYPED` when the verifier knows it as one (a
/// BTF tracepoint's argument): the hot fields are then plain loads instead
/// of a helper call each (a fifth of the `sched_switch` program's time).
#[derive(Clone, Copy)]
pub struct Task<const TYPED: bool>(pub *const u8);

/// A task handed to a BTF tracepoint.
pub type TaskPtr = Task<true>;

impl TaskPtr {
    /// The BTF tracepoint's argument `n`, a task.
    #[inline(always)]
    pub fn arg(ctx: &BtfTracePointContext, n: usize) -> TaskPtr {
        Task(ctx.arg::<*const u8>(n))
    }
}

/// `current` as an address (`bpf_get_current_task`): no BTF needed, which
/// the classic tracepoints are the fallback for, and no typed pointer for
/// the verifier to follow through the large syscall programs (a typed one
/// took the `--http` entry program from 599k to 814k of its 1M verified
/// instructions).
pub type CurrentTask = Task<false>;

fn read_at<T>(base: *const u8, offset: u32) -> Option<T> {
    // SAFETY: bpf_probe_read_kernel checks the address; a fault is an Err.
    unsafe { bpf_probe_read_kernel(base.add(offset as usize).cast::<T>()).ok() }
}

/// A field of a typed task read with one load. The verifier allows it
/// because `offset` is a constant it knows (a load-time global, frozen): it
/// checks the field against the kernel's BTF, so a load must stay within
/// one field. A fault reads as zero: the JIT guards such loads.
fn load_at<T: Copy>(task: *const u8, offset: u32) -> T {
    // SAFETY: see above; the verifier rejects the program otherwise.
    unsafe { core::ptr::read_volatile(task.add(offset as usize).cast::<T>()) }
}

/// A field of a struct: a load when the verifier knows `base`'s type, else
/// a helper call.
#[inline(always)]
fn typed_field<const TYPED: bool, T: Copy>(base: *const u8, offset: u32) -> Option<T> {
    if TYPED { Some(load_at(base, offset)) } else { read_at(base, offset) }
}

/// Two neighbouring fields at `offset` (the loader checks that they are):
/// two loads when typed (a load stays within one field), else one helper
/// call for both.
#[inline(always)]
fn typed_pair<const TYPED: bool, T: Copy>(base: *const u8, offset: u32) -> Option<[T; 2]> {
    if TYPED {
        Some([load_at(base, offset), load_at(base, offset + core::mem::size_of::<T>() as u32)])
    } else {
        read_at(base, offset)
    }
}

impl<const TYPED: bool> Task<TYPED> {
    /// One field: a load when typed, else a helper call.
    #[inline(always)]
    fn field<T: Copy>(self, offset: u32) -> Option<T> {
        typed_field::<TYPED, T>(self.0, offset)
    }

    /// Kernel TID and TGID (`task_struct.pid`, `.tgid`: the user-visible
    /// PID, neighbours), (0, 0) for the idle tasks.
    pub fn ids(self) -> (u32, u32) {
        typed_pair::<TYPED, u32>(self.0, global!(TASK_OFFSETS.task_pid)).map_or((0, 0), |[tid, tgid]| (tid, tgid))
    }

    /// Kernel TGID alone.
    pub fn tgid(self) -> u32 {
        self.field(global!(TASK_OFFSETS.task_tgid)).unwrap_or(0)
    }

    /// `task_struct.in_iowait`: the task sleeps in `io_schedule()`.
    pub fn in_iowait(self) -> bool {
        let mask = global!(TASK_OFFSETS.task_in_iowait_mask);
        mask != 0
            && read_at::<u8>(self.0, global!(TASK_OFFSETS.task_in_iowait_byte))
                .is_some_and(|byte| u32::from(byte) & mask != 0)
    }

    /// The task's own scheduler counters; `None` without their offsets.
    /// `exec_ns` of a task that is running lags by up to a tick.
    pub fn sched_counters(self) -> Option<KernelSchedCounters> {
        let exec = global!(TASK_OFFSETS.task_sum_exec_runtime);
        if exec == 0 {
            return None;
        }
        // `sched_info.pcount`, then `.run_delay`.
        let [runs, run_delay_ns] = typed_pair::<TYPED, u64>(self.0, global!(TASK_OFFSETS.task_pcount))?;
        Some(KernelSchedCounters { exec_ns: self.field(exec)?, run_delay_ns, runs })
    }

    /// The `struct file` behind the task's descriptor `fd`, as an address.
    pub fn file_of(self, fd: u32) -> Option<u64> {
        let files_at = global!(TASK_OFFSETS.task_files);
        if files_at == 0 {
            return None;
        }
        // Typed, `files` and `fdt` are typed too; `fd`, an array of
        // pointers, is not (BTF types only pointers to structs).
        let files = self.field::<*const u8>(files_at)?;
        let fdt = typed_field::<TYPED, *const u8>(files, global!(TASK_OFFSETS.files_fdt))?;
        if fd >= typed_field::<TYPED, u32>(fdt, global!(TASK_OFFSETS.fdtable_max_fds))? {
            return None;
        }
        let table = typed_field::<TYPED, *const u8>(fdt, global!(TASK_OFFSETS.fdtable_fd))?;
        read_at::<u64>(table, fd * KERNEL_POINTER_SIZE).filter(|&file| file != 0)
    }

    /// When the task last got a CPU (`sched_info.last_arrival`), in the
    /// scheduler's clock, not `bpf_ktime_get_ns`'s (see `clock_offset`).
    pub fn last_arrival(self) -> Option<u64> {
        match global!(TASK_OFFSETS.task_last_arrival) {
            0 => None,
            offset => self.field(offset),
        }
    }

    /// The CPU whose run queue the task is on (or is being put on, at a
    /// wakeup); `None` without the offset.
    pub fn cpu(self) -> Option<u32> {
        match global!(TASK_OFFSETS.task_cpu) {
            0 => None,
            offset => self.field(offset),
        }
    }

    /// The CFS run queue the task is on (`se.cfs_rq`: its cgroup's on its
    /// CPU), as an address; `None` without the throttling offsets.
    pub fn cfs_rq(self) -> Option<u64> {
        match global!(TASK_OFFSETS.task_cfs_rq) {
            0 => None,
            offset => self.field::<u64>(offset).filter(|&cfs_rq| cfs_rq != 0),
        }
    }

    /// `cfs_rq_throttled_ns(cfs_rq)`, read with loads when the task is
    /// typed and on that run queue now (nearly always: it is the one it
    /// left, and it did not move since), else with helper calls.
    #[inline(always)]
    pub fn throttled_ns(self, cfs_rq: u64) -> Option<u64> {
        let offset = global!(TASK_OFFSETS.task_cfs_rq);
        if TYPED && offset != 0 {
            let on: *const u8 = load_at(self.0, offset);
            if on as u64 == cfs_rq {
                return run_queue_throttled_ns::<true>(on);
            }
        }
        cfs_rq_throttled_ns(cfs_rq)
    }

    /// How much of the run it is leaving the kernel's task clock left out
    /// (steal; interrupts too where their time is accounted apart): the
    /// advance of its run queue's clock since the run's switch-in
    /// (`sched_info.last_arrival`, read from that clock) less `exec_ns`, the
    /// task clock's. At a switch-out only; `None` without the offsets.
    pub fn stolen_during_run(self, exec_ns: u64) -> Option<u64> {
        Some(self.run_queue_clock()?.saturating_sub(self.last_arrival()?).saturating_sub(exec_ns))
    }

    /// Its run queue's clock (`se.cfs_rq->rq->clock`), which the scheduler
    /// updated before the switch tracepoint; `None` without the offsets.
    #[inline(always)]
    fn run_queue_clock(self) -> Option<u64> {
        let offset = global!(TASK_OFFSETS.task_cfs_rq);
        if offset == 0 {
            return None;
        }
        let cfs_rq = self.field::<*const u8>(offset).filter(|p| !p.is_null())?;
        let rq = typed_field::<TYPED, *const u8>(cfs_rq, global!(TASK_OFFSETS.cfs_rq_rq))?;
        typed_field::<TYPED, u64>(rq, global!(TASK_OFFSETS.rq_clock))
    }

    /// At its switch-in: how long the task has been on the run queue it is
    /// being switched in from, by that queue's clock (`rq.clock -
    /// sched_info.last_queued`), which the kernel adds to `run_delay` right
    /// after the tracepoint. A task moved from another CPU's queue while it
    /// waited restarted this there (the kernel added the part before the
    /// move to `run_delay`). `None` without the offsets.
    #[inline(always)]
    pub fn queued_here_ns(self) -> Option<u64> {
        let offset = global!(TASK_OFFSETS.task_last_queued);
        if offset == 0 {
            return None;
        }
        let queued_at: u64 = self.field(offset).filter(|&at| at != 0)?;
        Some(self.run_queue_clock()?.saturating_sub(queued_at))
    }

    /// Whether the task is off every CPU (`task_struct.on_cpu == 0`);
    /// `None` when unknown.
    pub fn off_cpu(self) -> Option<bool> {
        match global!(TASK_OFFSETS.task_on_cpu) {
            0 => None,
            offset => read_at::<i32>(self.0, offset).map(|on_cpu| on_cpu == 0),
        }
    }

    /// How a task that is being woken had blocked, from what the scheduler
    /// recorded when it went to sleep.
    pub fn blocked_state(self) -> OffCpuState {
        let mask = global!(TASK_OFFSETS.task_contributes_mask);
        let uninterruptible = mask != 0
            && read_at::<u8>(self.0, global!(TASK_OFFSETS.task_contributes_byte))
                .is_some_and(|byte| u32::from(byte) & mask != 0);
        if self.in_iowait() {
            OffCpuState::Iowait
        } else if uninterruptible {
            OffCpuState::Uninterruptible
        } else {
            OffCpuState::Sleep
        }
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
        let slot = global!(TASK_OFFSETS.cgroup_ancestors) + level * CGROUP_ANCESTOR_SIZE;
        match CgroupAncestry::from_u32(global!(TASK_OFFSETS.cgroup_ancestry)) {
            Some(CgroupAncestry::Pointers) => read_at::<*const u8>(cgroup, slot)
                .is_some_and(|ancestor| cgroup_id(ancestor) == Some(id)),
            Some(CgroupAncestry::Ids) => read_at::<u64>(cgroup, slot) == Some(id),
            Some(CgroupAncestry::Unavailable) | None => cgroup_id(cgroup) == Some(id),
        }
    }
}

/// How long the CFS run queue at `cfs_rq` has been throttled by its
/// cgroup's (or an ancestor's) CPU quota while it had tasks, in the rq
/// clock's ns: `throttled_clock_self_time`, which the kernel adds to at each
/// unthrottle, plus the throttle in progress, since `throttled_clock_self`,
/// to the rq clock now (the scheduler updated it before the tracepoint).
pub fn cfs_rq_throttled_ns(cfs_rq: u64) -> Option<u64> {
    run_queue_throttled_ns::<false>(cfs_rq as *const u8)
}

/// `cfs_rq_throttled_ns`, with loads when `cfs_rq` is typed.
#[inline(always)]
fn run_queue_throttled_ns<const TYPED: bool>(cfs_rq: *const u8) -> Option<u64> {
    // `throttled_clock_self`, then `throttled_clock_self_time`.
    let [since, total] = typed_pair::<TYPED, u64>(cfs_rq, global!(TASK_OFFSETS.cfs_rq_throttled_clock_self))?;
    if since == 0 {
        return Some(total);
    }
    let rq = typed_field::<TYPED, *const u8>(cfs_rq, global!(TASK_OFFSETS.cfs_rq_rq))?;
    let clock = typed_field::<TYPED, u64>(rq, global!(TASK_OFFSETS.rq_clock))?;
    Some(total + clock.saturating_sub(since))
}

fn cgroup_id(cgroup: *const u8) -> Option<u64> {
    let kn = read_at::<*const u8>(cgroup, global!(TASK_OFFSETS.cgroup_kn))?;
    read_at::<u64>(kn, global!(TASK_OFFSETS.kernfs_node_id))
}

/// The task running this program.
pub fn current_task() -> CurrentTask {
    // SAFETY: helper call without arguments.
    Task(unsafe { bpf_get_current_task() } as *const u8)
}

/// The `struct file` behind descriptor `fd` of the task running this
/// program, through a typed `current` (`bpf_get_current_task_btf`), whose
/// loads are cheaper than helper calls. Only asked for when BTF gave the
/// offsets (the helper needs it), and only here, where the typed pointer
/// goes no further.
pub fn current_file_of(fd: u32) -> Option<u64> {
    if global!(TASK_OFFSETS.task_files) == 0 {
        return None;
    }
    // SAFETY: helper call without arguments.
    Task::<true>(unsafe { bpf_get_current_task_btf() } as *const u8).file_of(fd)
}

/// The TID and TGID of the task running this program.
#[inline(always)]
pub fn current_ids() -> (u32, u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    (pid_tgid as u32, (pid_tgid >> 32) as u32)
}

pub fn now_ns() -> u64 {
    // SAFETY: helper call without arguments.
    unsafe { bpf_ktime_get_ns() }
}

pub fn this_cpu() -> u32 {
    // SAFETY: helper call without arguments.
    unsafe { bpf_get_smp_processor_id() }
}

pub fn current_comm() -> [u8; TASK_COMM_LEN] {
    bpf_get_current_comm().unwrap_or([0; TASK_COMM_LEN])
}

/// A field of a classic tracepoint record, at an offset from its format file.
pub fn read_field<T>(ctx: &TracePointContext, offset: u32) -> Option<T> {
    // SAFETY: read_at reads within the tracepoint record via probe_read.
    unsafe { ctx.read_at::<T>(offset as usize).ok() }
}
