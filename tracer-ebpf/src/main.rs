//! Kernel programs of `tracer`.
//!
//! Two attach mechanisms carry the same accounting: BTF tracepoints
//! (`tp_btf`, which hand us `task_struct` pointers read at offsets taken from
//! the running kernel's BTF) and classic tracepoints (record fields at offsets
//! from tracefs format files) for kernels without BTF. The loader attaches one
//! set. Entry points stay thin; the accounting is in `sched`.
//!
//! Modules use only modules of lower layers, so their imports form no cycle:
//! 1. `kernel` (helpers, kernel memory, load-time globals) and `maps`;
//! 2. `filter`, `slices` (the per-CPU run slices) and `clock` (a run's
//!    on-CPU time by the thread's own CPU clock);
//! 3. `timeline`, `holders` (the CPU-holder sums) and `throttle` (CPU-quota
//!    waits), then `sched` (per-thread accounting), then `spans`, then `http`;
//! 4. the remaining entry points: `probes` (scheduler), `syscalls`, `block`,
//!    `cpus` (run-queue lengths), `marker_exits` (the marker rings of
//!    exiting processes).
#![cfg_attr(target_arch = "bpf", no_std)]
// `atomic_xadd`: shared statistics are added to atomically (maps.rs).
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(target_arch = "bpf", allow(internal_features))]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod block;
#[cfg(target_arch = "bpf")]
mod clock;
#[cfg(target_arch = "bpf")]
mod cpus;
#[cfg(target_arch = "bpf")]
mod exits;
#[cfg(target_arch = "bpf")]
mod filter;
#[cfg(target_arch = "bpf")]
mod holders;
#[cfg(target_arch = "bpf")]
mod h2;
#[cfg(target_arch = "bpf")]
mod http;
#[cfg(target_arch = "bpf")]
mod http_records;
#[cfg(target_arch = "bpf")]
mod http_send;
#[cfg(target_arch = "bpf")]
mod kernel;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod marker_exits;
#[cfg(target_arch = "bpf")]
mod probes;
#[cfg(target_arch = "bpf")]
mod sched;
#[cfg(target_arch = "bpf")]
mod slices;
#[cfg(target_arch = "bpf")]
mod spans;
#[cfg(target_arch = "bpf")]
mod syscalls;
#[cfg(target_arch = "bpf")]
mod throttle;
#[cfg(target_arch = "bpf")]
mod timeline;
#[cfg(target_arch = "bpf")]
mod wakeups;

#[cfg(not(target_arch = "bpf"))]
fn main() {}

#[cfg(all(target_arch = "bpf", not(test)))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
