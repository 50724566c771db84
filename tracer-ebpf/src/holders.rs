//! Who held the CPU while a traced process waited for it, summed per
//! (waiting process, holding process) for the loader to read at each
//! interval. Nothing here runs unless the loader asked for the sums.
//!
//! Two ways, by how the wait began:
//! - **Followed**: each CPU keeps the traced threads waiting on its run
//!   queue (`CPU_WAITERS`). A preempted thread joins its CPU's list at its
//!   switch-out, a woken one at its wakeup where the wakeup programs run.
//!   At every switch on a CPU, the task leaving it ran, since each waiter's
//!   last charge, while that waiter waited: that time is added to (waiter,
//!   task). So a wait is named whole, however long and however many tasks
//!   ran during it, and charged as it goes on.
//! - **Read back**: where no wakeup program runs (the switch-in places the
//!   wakeup, `wakeups`), a woken wait is charged when it ends, at the
//!   switch-in, from the run slices its CPU kept (`slices`): each task that
//!   ran on the CPU during the wait is charged the overlap. Nothing runs at
//!   the wakeup, which is most of what the sums cost in a context-switch
//!   heavy load. Woken waits are short (a woken thread is placed ahead of
//!   the tasks that used their share), so the slices reach back far enough
//!   for nearly all of them; preemptions, after which a thread may wait
//!   behind others for a long time, are followed.
//!
//! Left out either way:
//! - a wake-up on an idle CPU: the idle task's run is no wait of the thread
//!   it switches to;
//! - the time the waiter's cgroup was throttled by its CPU quota on that CPU:
//!   nobody held the CPU from it;
//! - what could not be followed or read back (the list was full when the
//!   wait began, the CPU it was queued on is not known, the thread moved to
//!   another CPU's run queue, the wait is older than the CPU's oldest kept
//!   run slice): charged to `HOLDER_UNFOLLOWED`, so it is counted, never
//!   lost silently.
use aya_ebpf::{cty::c_void, helpers::generated::bpf_loop};
use tracer_common::{
    CPU_SLICE_RING, CPU_UNKNOWN, CPU_WAITER_SLOTS, Counter, CpuWaiters, HOLDER_UNFOLLOWED, QueuedWaiter,
    THREAD_THROTTLE_SAMPLED, ThreadStats, WaitHolderKey,
};

use crate::{
    kernel::{cfs_rq_throttled_ns, holders_enabled},
    maps::{CPU_WAITERS, WAIT_HOLDERS, add_to_counter, atomic_add},
    slices,
};

#[inline(always)]
fn waiters(cpu: u32) -> Option<&'static mut CpuWaiters> {
    // SAFETY: a map value stays valid for the program's run; writers of one
    // CPU's list hold its run-queue lock (see `MAP_CPU_WAITERS`).
    CPU_WAITERS.get_ptr_mut(cpu).map(|list| unsafe { &mut *list })
}

#[inline(always)]
fn charge(waiter: u32, holder: u32, ns: u64) {
    add_to_counter(&WAIT_HOLDERS, &WaitHolderKey { waiter, holder }, ns, Counter::WaitHoldersMapFull);
}

/// A switch on `cpu` at `now`: the task leaving it (`holder`, its TGID; 0
/// for the idle task) ran while every waiter on the list waited. `next_tid`
/// is the thread switched in.
#[inline(always)]
pub fn on_switch(cpu: u32, holder: u32, holder_idle: bool, next_tid: u32, now: u64) {
    if !holders_enabled() {
        return;
    }
    let Some(list) = waiters(cpu) else { return };
    // Most switches happen with no traced thread waiting on their CPU.
    // (Stopping after the last slot in use would not pass the verifier: a
    // count of slots seen makes every iteration's state a new one.)
    if list.queued == 0 {
        return;
    }
    for slot in list.slots.iter_mut() {
        if slot.tid == 0 || now <= slot.since_ns {
            continue;
        }
        let mut ns = now - slot.since_ns;
        slot.since_ns = now;
        if slot.cfs_rq != 0
            && let Some(throttled) = cfs_rq_throttled_ns(slot.cfs_rq)
        {
            ns -= throttled.saturating_sub(slot.throttled_ns).min(ns);
            slot.throttled_ns = throttled;
        }
        if ns != 0 && !(holder_idle && slot.tid == next_tid) {
            charge(slot.tgid, holder, ns);
        }
    }
}

/// The thread's wait for a CPU began at `now` on `cpu`'s run queue (after
/// `throttle` took its reading, when there is one).
#[inline(always)]
pub fn wait_begins(tid: u32, stats: &mut ThreadStats, cpu: u32, now: u64) {
    if !holders_enabled() {
        return;
    }
    leave(tid, stats);
    let Some(list) = waiters(cpu) else { return };
    // The reading is of the run queue it left: only valid if it waits
    // there. A run queue never throttled so far is not read again (a read
    // per waiter and switch was most of this module's cost): a wait that
    // began before its cgroup's first throttle on this CPU charges that
    // throttle to whoever ran meanwhile.
    let cfs_rq = stats.flags & THREAD_THROTTLE_SAMPLED != 0
        && stats.last_cpu == cpu
        && stats.cfs_rq_throttled_at_wait_ns != 0;
    let (cfs_rq, throttled_ns) = if cfs_rq { (stats.cfs_rq, stats.cfs_rq_throttled_at_wait_ns) } else { (0, 0) };
    for index in 0..CPU_WAITER_SLOTS {
        let slot = &mut list.slots[index];
        if slot.tid == 0 {
            *slot = QueuedWaiter { tid, tgid: stats.tgid, since_ns: now, cfs_rq, throttled_ns };
            atomic_add(&raw mut list.queued, 1);
            stats.queued_cpu = cpu;
            stats.queued_slot = index as u32;
            return;
        }
    }
}

/// The thread is on no run queue's list any more (it runs, or its wait is
/// not followed). A slot on another CPU is cleared from here: only its
/// thread clears it, and its CPU reuses it only once cleared.
#[inline(always)]
pub fn leave(tid: u32, stats: &mut ThreadStats) {
    if stats.queued_cpu == CPU_UNKNOWN {
        return;
    }
    if let Some(list) = waiters(stats.queued_cpu)
        && let Some(slot) = list.slots.get_mut(stats.queued_slot as usize)
        && slot.tid == tid
    {
        slot.tid = 0;
        atomic_add(&raw mut list.queued, u64::MAX);
    }
    stats.queued_cpu = CPU_UNKNOWN;
}

/// The thread got `cpu` at `now` after waiting `held_ns` for a CPU held by
/// others (0: no such wait). A wait on a list: the time since its last
/// charge is charged to `HOLDER_UNFOLLOWED` when the list was another
/// CPU's (it moved). A wait on no list is read back from this CPU's run
/// slices, for as long as the kernel says it was queued here
/// (`queued_here`; when unreadable, none of it: all not followed).
#[inline(always)]
pub fn got_cpu(
    tid: u32,
    stats: &mut ThreadStats,
    cpu: u32,
    held_ns: u64,
    queued_here: impl FnOnce() -> Option<u64>,
    now: u64,
) {
    if !holders_enabled() {
        return;
    }
    if stats.queued_cpu == CPU_UNKNOWN {
        if held_ns != 0 {
            read_back(stats.tgid, cpu, held_ns, queued_here().unwrap_or(0), now);
        }
        return;
    }
    if held_ns != 0 && stats.queued_cpu != cpu {
        let unfollowed = waiters(stats.queued_cpu)
            .and_then(|list| list.slots.get(stats.queued_slot as usize).copied())
            .filter(|slot| slot.tid == tid && now > slot.since_ns)
            .map_or(held_ns, |slot| (now - slot.since_ns).min(held_ns));
        charge(stats.tgid, HOLDER_UNFOLLOWED, unfollowed);
    }
    leave(tid, stats);
}

/// Charges the `held_ns` a thread of `tgid` waited for `cpu` until `now`,
/// the last `here_ns` of it queued on `cpu`, from the run slices of `cpu`.
#[inline(always)]
fn read_back(tgid: u32, cpu: u32, held_ns: u64, here_ns: u64, now: u64) {
    let here_ns = if here_ns < held_ns { here_ns } else { held_ns };
    let mut walk = Walk { since: now - here_ns, now, named: 0, held: 0, waiter: tgid, holder: 0, cpu, _pad: 0 };
    // SAFETY: `charge_slice` takes the `Walk` it is given; bpf_loop calls
    // it with that pointer only, for at most `CPU_SLICE_RING` steps.
    unsafe {
        bpf_loop(CPU_SLICE_RING as u32, charge_slice as *mut c_void, (&raw mut walk).cast(), 0);
    }
    if walk.held != 0 {
        charge(tgid, walk.holder, walk.held);
    }
    if held_ns > walk.named {
        charge(tgid, HOLDER_UNFOLLOWED, held_ns - walk.named);
    }
}

/// The walk back over a CPU's run slices (`bpf_loop`'s context).
#[repr(C)]
struct Walk {
    since: u64,
    now: u64,
    /// The overlaps charged so far.
    named: u64,
    /// The overlap of `holder` not charged yet: consecutive slices of one
    /// process (its threads taking turns) are charged at once.
    held: u64,
    waiter: u32,
    holder: u32,
    cpu: u32,
    _pad: u32,
}

/// One step of the walk: the slice that ended `back` switches ago. A
/// `bpf_loop` callback, checked once by the verifier however many steps it
/// takes (the whole ring inlined in the switch program has too many
/// branches for it). Returns 1 to stop: the slice ended before the wait.
extern "C" fn charge_slice(back: u64, walk: *mut c_void) -> i64 {
    // SAFETY: bpf_loop passes back the `Walk` of `read_back`.
    let walk = unsafe { &mut *walk.cast::<Walk>() };
    let Some(slice) = slices::back(walk.cpu, back) else { return 1 };
    if slice.end <= walk.since {
        return 1;
    }
    if let Some(ns) = slices::overlap(&slice, walk.since, walk.now) {
        if walk.held != 0 && slice.tgid != walk.holder {
            charge(walk.waiter, walk.holder, walk.held);
            walk.held = 0;
        }
        walk.holder = slice.tgid;
        walk.held += ns;
        walk.named += ns;
    }
    0
}
