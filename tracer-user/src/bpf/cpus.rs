//! The per-CPU view's user half: where `struct rq` keeps what the kernel
//! program reads, attaching it, and reading each CPU's run-queue state.
use aya::{
    Ebpf,
    maps::{Array, MapData},
};
use tracer_common::{CpuQueue, CpuQueueConfig, MAP_CPU_QUEUES, programs};

use super::{
    Probes,
    attach::{attach_btf, optional, take_map},
};
use crate::sys::btf::Btf;

/// The program's configuration, when asked for and the kernel's BTF
/// describes `struct rq`; otherwise off (and why, once, on stderr).
pub(super) fn cpu_queue_config(wanted: bool, btf: Option<&Btf>) -> CpuQueueConfig {
    if !wanted {
        return CpuQueueConfig::ZERO;
    }
    // Without BTF there is no run-queue tracepoint to attach: the report
    // has no per-CPU section, and `tracer runqlen` says why.
    let Some(btf) = btf else { return CpuQueueConfig::ZERO };
    match (btf.member_offset("rq", "nr_running"), btf.member_offset("rq", "cpu")) {
        (Ok(rq_nr_running), Ok(rq_cpu)) => CpuQueueConfig { enabled: 1, rq_nr_running, rq_cpu, _pad: 0 },
        _ => {
            eprintln!("tracer: warning: this kernel's BTF has no struct rq; continuing without the per-CPU view");
            CpuQueueConfig::ZERO
        }
    }
}

/// Entries of the run-queue map: one per possible CPU, or one when unused.
pub(super) fn cpu_queue_entries(config: &CpuQueueConfig) -> u32 {
    if config.enabled == 0 {
        return 1;
    }
    aya::util::nr_cpus().map_or(1, |cpus| cpus as u32)
}

/// Attaches the run-queue program when configured; the map to read, if so.
pub(super) fn attach_cpu_queues(
    ebpf: &mut Ebpf,
    config: &CpuQueueConfig,
    btf: Option<&aya::Btf>,
) -> Option<Array<MapData, CpuQueue>> {
    let btf = btf.filter(|_| config.enabled != 0)?;
    let attached = attach_btf(ebpf, programs::BTF_SCHED_UPDATE_NR_RUNNING, "sched_update_nr_running_tp", btf)
        .and_then(|()| take_map::<Array<MapData, CpuQueue>>(ebpf, MAP_CPU_QUEUES));
    optional("the per-CPU view", attached)
}

impl Probes {
    /// Each possible CPU's run-queue state (by CPU number), if the per-CPU
    /// view is on.
    pub fn cpu_queues(&self) -> Option<Vec<CpuQueue>> {
        let map = self.cpu_queues.as_ref()?;
        Some((0..map.len()).map(|cpu| map.get(&cpu, 0).unwrap_or_default()).collect())
    }
}
