//! Who held the CPU while a traced process waited for one: `record`'s
//! `cpu_holders` and closing summary, and `runqlat --holders`.
use std::time::{Duration, Instant};

use tracer_tests::*;
use tracer_user::model::holders::HolderKind;

/// While it lives, the test's session (its autogroup, which the scheduler
/// weighs against other sessions before it looks at any task's nice value)
/// gets the CPUs first: on a machine shared with builds in other sessions,
/// each of those would otherwise take as large a share of a CPU as the load
/// generator, and be a holder just as large. Restored when dropped.
struct SessionFirst {
    nice_before: Option<String>,
}

impl SessionFirst {
    const AUTOGROUP: &str = "/proc/self/autogroup";

    fn new() -> SessionFirst {
        // "/autogroup-452 nice 0"; absent without CONFIG_SCHED_AUTOGROUP.
        let nice_before = std::fs::read_to_string(Self::AUTOGROUP)
            .ok()
            .and_then(|line| line.split_whitespace().last().map(str::to_owned));
        if nice_before.is_some() {
            std::fs::write(Self::AUTOGROUP, "-20").expect("raising the session's CPU share (root)");
        }
        SessionFirst { nice_before }
    }
}

impl Drop for SessionFirst {
    fn drop(&mut self) {
        if let Some(nice) = &self.nice_before {
            let _ = std::fs::write(Self::AUTOGROUP, nice);
        }
    }
}

/// One recording of two targets, with `runqlat --holders` alongside:
/// - the test server on CPU 1, answering CPU-bound requests, with a busy
///   load generator in a cgroup of its own on the same CPU: the server waits
///   behind the load generator, another cgroup;
/// - three busy threads of one process on CPU 0: each waits behind its
///   siblings, its own threads.
#[test]
fn record_names_who_held_the_cpu_and_says_so() {
    if !bpf_available("record_names_who_held_the_cpu_and_says_so") {
        return;
    }
    let _first = SessionFirst::new();
    let server = Server::start(Some(1));
    let cgroup = TestCgroup::create("tracer-holders-load");
    let load = Load::start(&["spin", "3", "1"]);
    cgroup.add(load.pid());
    let siblings = Load::start(&["spin", "3", "0"]);
    let dir = temp_dir("holders");
    let out = dir.join("report.json");
    let (server_pid, siblings_pid) = (server.pid().to_string(), siblings.pid().to_string());
    let record =
        Tracer::start(&["record", "--pid", &server_pid, "--pid", &siblings_pid, "--out", out.to_str().unwrap()]);
    let runqlat = Tracer::start(&["runqlat", "--holders", "-p", &siblings_pid, "2", "1"]);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        server.get("/cpu?ms=20");
    }
    let runqlat = runqlat.output(None);
    let (status, _, stderr) = record.stop_with(libc::SIGINT);
    assert!(status.success(), "{stderr:?}");
    let report = read_report(&out);
    stderr.iter().filter(|l| l.contains(" waited ")).for_each(|l| eprintln!("{l}"));

    let served = process(&report, server.pid());
    let waited = served.totals.runq_wait_ns;
    let holders = served.cpu_holders.as_ref().expect("the server's cpu_holders");
    let summed: u64 = holders.holders.iter().map(|h| h.ns).sum::<u64>() + holders.other_holders_ns;
    // Both end at the recording's end (a wait still going on, the holders
    // at its last switch): what the sums can have more of is the few
    // microseconds of each switch, which the wait's total gives to the run
    // after it (a few ms over the thousands of waits here).
    const SWITCH_LAGS_NS: u64 = 50_000_000;
    assert!(summed <= waited + SWITCH_LAGS_NS, "holders {summed} ns of a {waited} ns wait: {holders:?}");
    let top = &holders.holders[0];
    assert_eq!(
        (top.pid, top.comm.as_str(), top.kind),
        (load.pid(), "tracer-load", HolderKind::OtherCgroups),
        "{holders:?}"
    );
    let cgroup_name = cgroup.path.file_name().unwrap().to_str().unwrap();
    assert!(top.cgroup.as_deref().is_some_and(|c| c.ends_with(cgroup_name)), "{top:?}");
    // Every switch on the server's CPU charges the task leaving it to each
    // traced thread queued there, so the wait is named whole: all but the
    // CPU leaving idle, the kernel's clock reads around the switch, and
    // waits the kernel side could not follow (counted as unknown).
    // What the hypervisor took while the server held its CPU is in the wait
    // too, and nobody in the machine held the CPU then.
    let held = waited - served.totals.stolen_ns;
    let named = summed - holders.idle_ns - holders.unknown_ns;
    assert!(named * 10 >= held * 8, "holders named for {named} of {held} ns: {holders:?}");
    assert!(top.ns * 10 >= held * 8, "the load generator held {} of {held} ns: {holders:?}", top.ns);
    assert!(holders.other_cgroups_ns >= top.ns, "{holders:?}");

    let line = stderr
        .iter()
        .find(|l| l.starts_with(&format!("tracer-test-ser (pid {server_pid}) waited ")))
        .unwrap_or_else(|| panic!("no summary of the server: {stderr:?}"));
    let behind = format!("% behind tracer-load (pid {}, another cgroup)", load.pid());
    let (before, _) = line.split_once(&behind).unwrap_or_else(|| panic!("{line}"));
    let pct: u32 = before.rsplit([' ', ':']).next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{line}"));
    // Of the wait, or of all that was charged where that is more (each
    // switch's few microseconds).
    let share = (top.ns * 100) as f64 / waited.max(summed + served.totals.stolen_ns) as f64;
    assert!((f64::from(pct) - share).abs() <= 1.0, "the summary says the report's share, {share:.0}%: {line}");

    // CPU 0 also runs the tracers and this test's client: the siblings
    // hold most of the wait, not all of it.
    let spinning = process(&report, siblings.pid());
    let holders = spinning.cpu_holders.as_ref().expect("the spinners' cpu_holders");
    let waited = spinning.totals.runq_wait_ns;
    let top = &holders.holders[0];
    assert_eq!((top.pid, top.kind), (siblings.pid(), HolderKind::OwnThreads), "{holders:?}");
    assert_eq!(holders.own_threads_ns, top.ns);
    assert!(top.ns * 2 >= waited, "own threads held {} of {waited} ns: {holders:?}", top.ns);
    let line = format!("tracer-load (pid {siblings_pid}) waited ");
    assert!(
        stderr.iter().any(|l| l.starts_with(&line)
            && l.split_once(": ").is_some_and(|(_, who)| who
                .split(", ")
                .next()
                .is_some_and(|first| first.ends_with("% behind its own threads")))),
        "{stderr:?}"
    );

    let header = format!("cpu holders of pid = {siblings_pid} tracer-load (");
    let lines: Vec<&str> = runqlat.lines().skip_while(|l| !l.starts_with(&header)).collect();
    assert!(lines.len() >= 3, "{runqlat}");
    let first: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(first[..3], [siblings_pid.as_str(), "tracer-load", "own_threads"], "{runqlat}");
    drop((load, siblings, cgroup));
    let _ = std::fs::remove_dir_all(dir);
}

/// A wait still going on when the recording stops is charged to its holders
/// up to the recording's end, not beyond. The end is taken once the
/// context-switch program is detached: taken before the whole detach (the
/// kernel's grace periods, some 300 ms here), the switch program went on
/// charging such a wait meanwhile, and its holders added up to more than
/// the wait. A thread at nice 19 next to a busy one on its CPU waits nearly
/// all the time, so it is waiting when the recording stops.
#[test]
fn a_wait_going_on_at_the_end_is_charged_up_to_the_end() {
    if !bpf_available("a_wait_going_on_at_the_end_is_charged_up_to_the_end") {
        return;
    }
    let busy = Load::start(&["spin", "1", "1"]);
    let starved = Load::start(&["spin", "1", "1"]);
    for &tid in &starved.tids {
        // SAFETY: a plain syscall on a thread of our own child.
        let set = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, 19) };
        assert_eq!(set, 0, "nice 19 for thread {tid}");
    }
    let dir = temp_dir("holders-end");
    let out = dir.join("report.json");
    let record = Tracer::start(&["record", "--pid", &starved.pid().to_string(), "--out", out.to_str().unwrap()]);
    std::thread::sleep(Duration::from_millis(1500));
    let (status, _, stderr) = record.stop_with(libc::SIGINT);
    assert!(status.success(), "{stderr:?}");
    let report = read_report(&out);
    let waiting = process(&report, starved.pid());
    let waited = waiting.totals.runq_wait_ns;
    assert!(waited > 1_000_000_000, "at nice 19 behind a busy thread, it waits: {waited} ns");
    let holders = waiting.cpu_holders.as_ref().expect("the starved thread's cpu_holders");
    let summed: u64 = holders.holders.iter().map(|h| h.ns).sum::<u64>() + holders.other_holders_ns;
    eprintln!("holders {summed} ns, wait {waited} ns");
    // The holders stop at the last switch before the end, the wait at the
    // end; beyond that only each switch's few microseconds, which the
    // wait's total gives to the run after it, can tell them apart.
    assert!(summed <= waited + 2_000_000, "holders {summed} ns of a {waited} ns wait: {holders:?}");
    let top = &holders.holders[0];
    assert_eq!(top.pid, busy.pid(), "{holders:?}");
    // Its first wait began before the recording, older than the run slices
    // the read-back can name (not followed); the others are followed from
    // their start, behind the busy thread.
    assert!(top.ns * 10 >= (summed - holders.unknown_ns) * 9, "{holders:?}");
    drop((busy, starved));
    let _ = std::fs::remove_dir_all(dir);
}
