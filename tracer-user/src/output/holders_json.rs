//! A process's CPU holders in the JSON report (`cpu_holders`, documented
//! in docs/report-format.md).
use serde::{Deserialize, Serialize};

use crate::model::holders::{Held, HolderKind, by_kind};

/// Holders listed one by one per process; the rest are summed.
pub const LISTED_HOLDERS: usize = 20;

#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct HolderJson {
    pub pid: u32,
    pub comm: String,
    pub cgroup: Option<String>,
    pub kind: HolderKind,
    pub ns: u64,
}

/// Who held the CPU while the process waited for one, over the recording.
#[derive(Debug, Serialize, Deserialize, Default, Clone, PartialEq, Eq)]
pub struct CpuHoldersJson {
    pub own_threads_ns: u64,
    pub same_cgroup_ns: u64,
    pub other_cgroups_ns: u64,
    pub kernel_threads_ns: u64,
    pub idle_ns: u64,
    pub unknown_ns: u64,
    /// The largest holders, largest first.
    pub holders: Vec<HolderJson>,
    /// The time of holders beyond the list.
    pub other_holders_ns: u64,
}

impl CpuHoldersJson {
    /// From a process's holders, largest first.
    pub fn new(held: &[Held]) -> CpuHoldersJson {
        let kinds = by_kind(held);
        let of = |kind| kinds.get(&kind).copied().unwrap_or(0);
        CpuHoldersJson {
            own_threads_ns: of(HolderKind::OwnThreads),
            same_cgroup_ns: of(HolderKind::SameCgroup),
            other_cgroups_ns: of(HolderKind::OtherCgroups),
            kernel_threads_ns: of(HolderKind::KernelThreads),
            idle_ns: of(HolderKind::Idle),
            unknown_ns: of(HolderKind::Unknown),
            holders: held
                .iter()
                .take(LISTED_HOLDERS)
                .map(|h| HolderJson {
                    pid: h.pid,
                    comm: h.comm.clone(),
                    cgroup: h.cgroup.clone(),
                    kind: h.kind,
                    ns: h.ns,
                })
                .collect(),
            other_holders_ns: held.iter().skip(LISTED_HOLDERS).map(|h| h.ns).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_sum_every_holder_and_the_list_is_bounded() {
        let held: Vec<Held> = (0..25)
            .map(|i| Held {
                pid: 100 + i,
                comm: format!("p{i}"),
                cgroup: None,
                kind: HolderKind::OtherCgroups,
                ns: 1_000,
            })
            .chain([Held {
                pid: 7,
                comm: "me".into(),
                cgroup: Some("/app".into()),
                kind: HolderKind::OwnThreads,
                ns: 500,
            }])
            .collect();
        let json = CpuHoldersJson::new(&held);
        assert_eq!(json.other_cgroups_ns, 25_000);
        assert_eq!(json.own_threads_ns, 500);
        assert_eq!(json.holders.len(), LISTED_HOLDERS);
        assert_eq!(json.other_holders_ns, 5 * 1_000 + 500);
        let text = serde_json::to_string(&json.holders[0]).unwrap();
        assert_eq!(text, r#"{"pid":100,"comm":"p0","cgroup":null,"kind":"other_cgroups","ns":1000}"#);
    }
}
