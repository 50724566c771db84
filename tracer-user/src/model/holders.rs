//! Who held the CPU while a process waited for one. The kernel sums, per
//! (waiting process, holding process), the time the holder ran on the CPU
//! a thread of the waiter was queued on (`WAIT_HOLDERS`); this model keeps
//! those cumulative sums, who each process was, and classifies each holder
//! as the waiter's own threads, its cgroup, other cgroups or kernel threads.
use std::collections::{BTreeMap, HashMap, HashSet};

pub use tracer_common::HOLDER_UNFOLLOWED;

use super::names::ProcessName;

/// What kind of task held the CPU, seen from the waiting process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HolderKind {
    /// Another thread of the waiting process.
    OwnThreads,
    /// Another process in the waiter's cgroup (v2 path).
    SameCgroup,
    /// A process in another cgroup.
    OtherCgroups,
    /// A kernel thread (kworker, ksoftirqd, ...).
    KernelThreads,
    /// Nobody: the CPU was idle (the wait began on another CPU, before a
    /// migration) or its holder is unknown.
    Idle,
    /// A process that exited before it could be named, or wait time the
    /// kernel side could not follow (pid `HOLDER_UNFOLLOWED`).
    Unknown,
}

impl HolderKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [HolderKind; 6] = [
        HolderKind::OwnThreads,
        HolderKind::SameCgroup,
        HolderKind::OtherCgroups,
        HolderKind::KernelThreads,
        HolderKind::Idle,
        HolderKind::Unknown,
    ];

    /// The kind's name in the JSON report and in tables.
    pub fn name(self) -> &'static str {
        match self {
            HolderKind::OwnThreads => "own_threads",
            HolderKind::SameCgroup => "same_cgroup",
            HolderKind::OtherCgroups => "other_cgroups",
            HolderKind::KernelThreads => "kernel_threads",
            HolderKind::Idle => "idle",
            HolderKind::Unknown => "unknown",
        }
    }

    /// How a summary names a holder of this kind, after its pid.
    pub fn phrase(self) -> &'static str {
        match self {
            HolderKind::OwnThreads => "its own threads",
            HolderKind::SameCgroup => "same cgroup",
            HolderKind::OtherCgroups => "another cgroup",
            HolderKind::KernelThreads => "kernel thread",
            HolderKind::Idle => "idle CPU",
            HolderKind::Unknown => "exited",
        }
    }
}

/// Who a process was, as far as classifying it as a holder needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub name: ProcessName,
    pub kernel_thread: bool,
}

/// The kind of `holder` for a waiter whose cgroup is `waiter_cgroup`.
pub fn classify(waiter: u32, waiter_cgroup: Option<&str>, holder: u32, identity: Option<&Identity>) -> HolderKind {
    if holder == waiter {
        return HolderKind::OwnThreads;
    }
    if holder == 0 {
        return HolderKind::Idle;
    }
    if holder == HOLDER_UNFOLLOWED {
        return HolderKind::Unknown;
    }
    let Some(identity) = identity else { return HolderKind::Unknown };
    if identity.kernel_thread {
        return HolderKind::KernelThreads;
    }
    match (waiter_cgroup, identity.name.cgroup.as_deref()) {
        (Some(mine), Some(theirs)) if mine == theirs => HolderKind::SameCgroup,
        _ => HolderKind::OtherCgroups,
    }
}

/// One holder of a process's waits, and its time holding the CPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub pid: u32,
    pub comm: String,
    pub cgroup: Option<String>,
    pub kind: HolderKind,
    pub ns: u64,
}

/// Sums keyed by (waiting process, holding process).
pub type HolderSums = HashMap<(u32, u32), u64>;

/// The kernel's cumulative sums as last read, and who the processes in
/// them were.
#[derive(Default)]
pub struct CpuHolders {
    sums: HolderSums,
    identities: HashMap<u32, Identity>,
    /// Processes gone before they could be named: not asked for again.
    unnamed: HashSet<u32>,
}

impl CpuHolders {
    /// Takes the kernel's cumulative sums; returns the processes in them
    /// not identified yet (waiters and holders), to be named while alive.
    pub fn update(&mut self, sums: impl IntoIterator<Item = ((u32, u32), u64)>) -> Vec<u32> {
        self.sums = sums.into_iter().collect();
        let mut new: Vec<u32> = self
            .sums
            .keys()
            .flat_map(|&(waiter, holder)| [waiter, holder])
            .filter(|pid| {
                *pid != 0 && *pid != HOLDER_UNFOLLOWED && !self.identities.contains_key(pid) && !self.unnamed.contains(pid)
            })
            .collect();
        new.sort_unstable();
        new.dedup();
        new
    }

    /// Records who `pid` is (`None`: it exited before it could be named).
    pub fn identify(&mut self, pid: u32, identity: Option<Identity>) {
        match identity {
            Some(identity) => {
                self.identities.insert(pid, identity);
            }
            None => {
                self.unnamed.insert(pid);
            }
        }
    }

    /// The cumulative sums.
    pub fn sums(&self) -> &HolderSums {
        &self.sums
    }

    /// What accrued since `before` (an earlier `sums()`).
    pub fn since(&self, before: &HolderSums) -> HolderSums {
        self.sums
            .iter()
            .map(|(key, ns)| (*key, ns.saturating_sub(before.get(key).copied().unwrap_or(0))))
            .filter(|(_, ns)| *ns > 0)
            .collect()
    }

    /// Per waiting process, its holders in `sums` (the whole run's or an
    /// interval's), classified, largest first.
    pub fn by_waiter(&self, sums: &HolderSums) -> BTreeMap<u32, Vec<Held>> {
        let mut out: BTreeMap<u32, Vec<Held>> = BTreeMap::new();
        for (&(waiter, holder), &ns) in sums {
            let waiter_cgroup = self.identities.get(&waiter).and_then(|i| i.name.cgroup.as_deref());
            let identity = self.identities.get(&holder);
            out.entry(waiter).or_default().push(Held {
                pid: holder,
                comm: identity.map(|i| i.name.comm.to_string()).unwrap_or_default(),
                cgroup: identity.and_then(|i| i.name.cgroup.as_deref().map(str::to_owned)),
                kind: classify(waiter, waiter_cgroup, holder, identity),
                ns,
            });
        }
        for held in out.values_mut() {
            held.sort_by(|a, b| b.ns.cmp(&a.ns).then(a.pid.cmp(&b.pid)));
        }
        out
    }
}

/// Time per kind of holder.
pub fn by_kind(held: &[Held]) -> BTreeMap<HolderKind, u64> {
    let mut kinds = BTreeMap::new();
    for h in held {
        *kinds.entry(h.kind).or_default() += h.ns;
    }
    kinds
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn identity(comm: &str, cgroup: &str, kernel_thread: bool) -> Option<Identity> {
        Some(Identity { name: ProcessName { comm: comm.into(), cgroup: Some(cgroup.into()) }, kernel_thread })
    }

    pub(crate) fn holders() -> CpuHolders {
        let mut holders = CpuHolders::default();
        let new = holders.update([
            ((10, 10), 200),
            ((10, 20), 700),
            ((10, 30), 50),
            ((10, 40), 40),
            ((10, 0), 10),
            ((10, 50), 5),
        ]);
        assert_eq!(new, vec![10, 20, 30, 40, 50], "idle (0) needs no name");
        holders.identify(10, identity("goserver", "/app", false));
        holders.identify(20, identity("h2load", "/load", false));
        holders.identify(30, identity("sidecar", "/app", false));
        holders.identify(40, identity("kworker/0:1", "/", true));
        holders.identify(50, None);
        holders
    }

    #[test]
    fn holders_are_classified_from_the_waiters_point_of_view() {
        let holders = holders();
        let held = &holders.by_waiter(holders.sums())[&10];
        let kinds: Vec<(u32, HolderKind)> = held.iter().map(|h| (h.pid, h.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (20, HolderKind::OtherCgroups),
                (10, HolderKind::OwnThreads),
                (30, HolderKind::SameCgroup),
                (40, HolderKind::KernelThreads),
                (0, HolderKind::Idle),
                (50, HolderKind::Unknown),
            ],
            "largest first"
        );
        assert_eq!(held[0].comm, "h2load");
        assert_eq!(by_kind(held)[&HolderKind::OtherCgroups], 700);
        for kind in HolderKind::ALL {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.name(), "the JSON and the tables agree");
        }
        let mut holders = holders;
        let sums = holders.sums().clone();
        assert!(holders.update(sums).is_empty(), "named, or gone, once");
    }

    #[test]
    fn time_not_followed_is_unknown_and_needs_no_name() {
        let mut holders = CpuHolders::default();
        assert_eq!(holders.update([((10, HOLDER_UNFOLLOWED), 3)]), vec![10]);
        let held = &holders.by_waiter(holders.sums())[&10];
        assert_eq!((held[0].pid, held[0].kind), (HOLDER_UNFOLLOWED, HolderKind::Unknown));
    }

    #[test]
    fn intervals_see_what_accrued_since() {
        let mut holders = holders();
        let before = holders.sums().clone();
        holders.update([((10, 10), 250), ((10, 20), 700)]);
        let delta = holders.since(&before);
        assert_eq!(delta, HolderSums::from([((10, 10), 50)]));
    }
}
