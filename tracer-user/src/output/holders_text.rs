//! CPU holders as text: the sentence `record` ends with, and the table
//! `runqlat --holders` prints per interval.
use std::fmt::Write as _;

use super::text::duration;
use crate::model::holders::{CpuHolders, HOLDER_UNFOLLOWED, Held, HolderKind, HolderSums};

/// Holders named in a summary at most, and the least share (of the wait)
/// one needs to be named.
const SUMMARY_HOLDERS: usize = 3;
const SUMMARY_MIN_PCT: f64 = 1.0;

/// How long a process waited for a CPU, and the part of that the
/// hypervisor took from it while it held one (which nobody held).
#[derive(Debug, Clone, Copy, Default)]
pub struct Waited {
    pub ns: u64,
    pub stolen_ns: u64,
}

/// One plain sentence: how long `comm` waited for a CPU, as a share of
/// `time_ns` (its threads' observed time), and behind whom, as shares of
/// the wait. Its own threads are named together, other processes one by one.
pub fn summary(comm: &str, waited: Waited, time_ns: u64, held: &[Held]) -> String {
    let waited_ns = waited.ns;
    if waited_ns == 0 {
        return format!("{comm} did not wait for a CPU");
    }
    let mut sentence = format!(
        "{comm} waited {} for a CPU, {:.0}% of its time",
        duration(waited_ns),
        waited_ns as f64 * 100.0 / time_ns.max(waited_ns) as f64
    );
    let own: u64 = held.iter().filter(|h| h.kind == HolderKind::OwnThreads).map(|h| h.ns).sum();
    let idle: u64 = held.iter().filter(|h| h.kind == HolderKind::Idle).map(|h| h.ns).sum();
    let mut parts: Vec<(u64, String)> = held
        .iter()
        .filter(|h| !matches!(h.kind, HolderKind::OwnThreads | HolderKind::Idle))
        .map(|h| {
            if h.pid == HOLDER_UNFOLLOWED {
                return (h.ns, "not followed".to_owned());
            }
            let name = if h.comm.is_empty() { "a process" } else { &h.comm };
            (h.ns, format!("behind {name} (pid {}, {})", h.pid, h.kind.phrase()))
        })
        .collect();
    parts.push((own, "behind its own threads".into()));
    parts.push((idle, "on a CPU leaving idle after a migration".into()));
    parts.push((waited.stolen_ns, "stolen by the hypervisor".into()));
    parts.sort_by(|a, b| b.0.cmp(&a.0));
    // The holders are charged the wait as it goes on, and as the
    // tracepoints saw it. The wait's total is added when it ends, and
    // follows the kernel's clock, which gives the run after it the
    // microseconds its switch took (`clock::settle_run` in the kernel
    // programs). So they can add up to more than the total (a wait going on
    // at the end, many short ones): then their shares are of their sum,
    // and never add up to more than all of it.
    let whole = parts.iter().map(|(ns, _)| ns).sum::<u64>().max(waited_ns);
    let pct = |ns: u64| ns as f64 * 100.0 / whole as f64;
    let named: Vec<String> = parts
        .into_iter()
        .filter(|(ns, _)| pct(*ns) >= SUMMARY_MIN_PCT)
        .take(SUMMARY_HOLDERS)
        .map(|(ns, what)| format!("{:.0}% {what}", pct(ns)))
        .collect();
    if named.is_empty() {
        sentence.push_str(" (who held the CPU was not recorded)");
    } else {
        sentence.push_str(": ");
        sentence.push_str(&named.join(", "));
    }
    sentence
}

/// Waiting processes `runqlat --holders` lists per interval at most (those
/// whose waits had the most holder time), and holders per process.
const TABLE_WAITERS: usize = 10;
const TABLE_HOLDERS: usize = 5;

/// Per waiting process (largest first), its largest holders in `sums`;
/// `comm_of` names a waiter.
pub fn holders_table(holders: &CpuHolders, sums: &HolderSums, comm_of: impl Fn(u32) -> String) -> String {
    let mut waiters: Vec<(u64, u32, Vec<Held>)> = holders
        .by_waiter(sums)
        .into_iter()
        .map(|(waiter, held)| (held.iter().map(|h| h.ns).sum(), waiter, held))
        .collect();
    waiters.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut out = String::new();
    for (total, waiter, held) in waiters.into_iter().take(TABLE_WAITERS) {
        let _ = writeln!(
            out,
            "cpu holders of pid = {waiter} {} ({} held while it waited)",
            comm_of(waiter),
            duration(total)
        );
        let _ = writeln!(out, "     {:>7} {:<16} {:<15} {:>10}  {}", "PID", "COMM", "KIND", "TIME", "CGROUP");
        for h in held.iter().take(TABLE_HOLDERS) {
            let comm = match (h.kind, h.pid) {
                (HolderKind::Idle, _) => "(idle)",
                (_, HOLDER_UNFOLLOWED) => "(not followed)",
                _ => &h.comm,
            };
            let kind = h.kind.name();
            let cgroup = h.cgroup.as_deref().unwrap_or("-");
            let _ = writeln!(out, "     {:>7} {comm:<16} {kind:<15} {:>10}  {cgroup}", h.pid, duration(h.ns));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::holders::tests;

    #[test]
    fn summary_names_the_largest_holders_as_shares_of_the_wait() {
        let holders = tests::holders();
        let held = &holders.by_waiter(holders.sums())[&10];
        let line = summary("goserver", Waited { ns: 1_000, stolen_ns: 0 }, 2_000, held);
        assert_eq!(
            line,
            "goserver waited 1.00 us for a CPU, 50% of its time: 70% behind h2load (pid 20, another cgroup), \
             20% behind its own threads, 5% behind sidecar (pid 30, same cgroup)"
        );
        let held = [Held {
            pid: 19491,
            comm: "h2load".into(),
            cgroup: None,
            kind: HolderKind::OtherCgroups,
            ns: 1_242_500_000,
        }];
        assert_eq!(
            summary("goserver", Waited { ns: 1_750_000_000, stolen_ns: 0 }, 3_240_000_000, &held),
            "goserver waited 1.75 s for a CPU, 54% of its time: 71% behind h2load (pid 19491, another cgroup)"
        );
        assert_eq!(
            summary("goserver", Waited { ns: 1_750_000_000, stolen_ns: 350_000_000 }, 3_240_000_000, &held),
            "goserver waited 1.75 s for a CPU, 54% of its time: 71% behind h2load (pid 19491, another cgroup), \
             20% stolen by the hypervisor"
        );
        let unfollowed = Held { pid: HOLDER_UNFOLLOWED, comm: String::new(), cgroup: None, kind: HolderKind::Unknown, ns: 250 };
        assert_eq!(
            summary("goserver", Waited { ns: 1_000, stolen_ns: 0 }, 2_000, &[unfollowed]),
            "goserver waited 1.00 us for a CPU, 50% of its time: 25% not followed"
        );
        // Charged a little more than the wait's total (the switches' own
        // time, which the total gives to the runs): shares of the holders.
        let sh = Held { pid: 25469, comm: "sh".into(), cgroup: None, kind: HolderKind::SameCgroup, ns: 8_350_778 };
        assert_eq!(
            summary("tracer", Waited { ns: 8_181_488, stolen_ns: 0 }, 4_000_000_000, &[sh]),
            "tracer waited 8.2 ms for a CPU, 0% of its time: 100% behind sh (pid 25469, same cgroup)"
        );
        assert_eq!(summary("idle", Waited::default(), 1_000, &[]), "idle did not wait for a CPU");
        assert_eq!(
            summary("x", Waited { ns: 5_000_000, stolen_ns: 0 }, 10_000_000, &[]),
            "x waited 5.0 ms for a CPU, 50% of its time (who held the CPU was not recorded)"
        );
    }

    #[test]
    fn the_table_lists_each_waiters_holders_with_their_kind() {
        let holders = tests::holders();
        let table = holders_table(&holders, holders.sums(), |_| "goserver".into());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "cpu holders of pid = 10 goserver (1.00 us held while it waited)");
        assert!(lines[1].contains("PID") && lines[1].contains("KIND"), "{table}");
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            ["20", "h2load", "other_cgroups", "700", "ns", "/load"]
        );
        assert_eq!(lines.len(), 2 + TABLE_HOLDERS, "{table}");
    }
}
