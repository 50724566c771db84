//! The live commands' text output, as a user of syscount, biolatency and
//! offcputime would read it, and their bad-input messages.

use tracer_tests::*;

/// Runs `tracer ARGS` (a live command printing at Ctrl-C) around the work
/// of an on-cue load; returns stdout.
fn live_around_work(args: &[&str], load: &mut Load) -> String {
    let tracer = Tracer::start(args);
    load.run_work();
    std::thread::sleep(std::time::Duration::from_millis(200));
    tracer.output(Some(libc::SIGINT))
}

#[test]
fn syscalls_prints_a_syscount_like_table() {
    if !bpf_available("syscalls_prints_a_syscount_like_table") {
        return;
    }
    let mut load = Load::start(&["getppid", "50000"]);
    let pid = load.pid().to_string();
    let out = live_around_work(&["syscalls", "-p", &pid, "-L", "--top", "5"], &mut load);
    load.finish();
    let header = out.lines().find(|l| l.starts_with("SYSCALL")).unwrap_or_else(|| panic!("{out}"));
    for column in ["COUNT", "ERRORS", "TOTAL", "p50", "p99", "MAX"] {
        assert!(header.contains(column), "{header}");
    }
    let row = out.lines().find(|l| l.starts_with("getppid ")).unwrap_or_else(|| panic!("{out}"));
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(fields[1], "50000", "{row}");
    assert_eq!(fields[2], "0", "{row}");
    let rows = out.lines().skip_while(|l| !l.starts_with("SYSCALL")).skip(1).take_while(|l| !l.is_empty() && !l.starts_with("errors"));
    assert!(rows.count() <= 5, "--top 5:\n{out}");
}

#[test]
fn biolat_prints_per_process_and_disk_histograms() {
    if !bpf_available("biolat_prints_per_process_and_disk_histograms") {
        return;
    }
    let dir = std::path::Path::new("/var/tmp").join(format!("tracer-it-biolat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("data");
    let mut load = Load::start(&["write", file.to_str().unwrap(), "32", "64"]);
    let pid = load.pid();
    let out = live_around_work(&["biolat", "-P", "-D", "-F"], &mut load);
    load.finish();
    let _ = std::fs::remove_dir_all(&dir);
    // Its writes have a section of their own (it may also have read a page
    // or two of its binary, under `op = read`).
    let header = out
        .lines()
        .find(|l| l.starts_with(&format!("pid = {pid} tracer-load, disk = ")) && l.ends_with(", op = write"))
        .unwrap_or_else(|| panic!("no write section for {pid}:\n{out}"));
    let section = &out[out.find(header).unwrap()..];
    assert!(section.contains("     usecs               : count    distribution"), "{section}");
    let summary = section.lines().find(|l| l.starts_with("requests = ")).unwrap();
    let requests: u64 = summary["requests = ".len()..].split(',').next().unwrap().parse().unwrap();
    assert!(requests >= 32, "{summary}");
}

#[test]
fn offcpu_splits_time_by_cause() {
    if !bpf_available("offcpu_splits_time_by_cause") {
        return;
    }
    let mut load = Load::start(&["nanosleep", "20", "10"]);
    let pid = load.pid().to_string();
    let out = live_around_work(&["offcpu", "-p", &pid], &mut load);
    load.finish();
    assert!(out.contains(&format!("pid = {pid} tracer-load")), "{out}");
    for state in ["on-cpu", "runq: preempted", "iowait", "other uninterruptible", "sleep"] {
        assert!(out.lines().any(|l| l.trim_start().starts_with(state)), "{state} row:\n{out}");
    }
    // A target's syscalls are traced too: its nanosleeps are time in syscalls.
    assert!(out.contains("(in syscalls: "), "{out}");
    let row = |state: &str| -> Vec<String> {
        let line = out.lines().find(|l| l.trim_start().starts_with(state)).unwrap();
        line.trim_start()[state.len()..].split_whitespace().map(str::to_owned).collect()
    };
    // STATE, TOTAL (value unit), EPISODES, p50, p99, MAX
    let sleep = row("sleep");
    assert_eq!(sleep[1], "ms", "{out}");
    assert!(sleep[0].parse::<f64>().unwrap() >= 180.0, "20 x 10 ms asleep:\n{out}");
    // A nanosleep preempted before it blocked shows as a preemption instead;
    // one whose wake-up the kernel's tracepoints did not report shows as
    // about 10 ms of unaccounted time.
    let preempted: u64 = row("runq: preempted").get(2).map_or(0, |n| n.parse().unwrap());
    let unaccounted_ms: f64 = out
        .lines()
        .find(|l| l.trim_start().starts_with("unaccounted"))
        .map_or(0.0, |l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let scale = match f[2] { "s" => 1000.0, "ms" => 1.0, _ => 0.001 };
            f[1].parse::<f64>().unwrap() * scale
        });
    let missed = (unaccounted_ms / 9.0).ceil() as u64;
    assert!(sleep[2].parse::<u64>().unwrap() + preempted + missed >= 20, "{out}");
}

#[test]
fn unknown_syscall_and_device_names_suggest_close_matches() {
    let err = one_line_error(&["syscalls", "--syscall", "getppd"]);
    assert!(err.contains("unknown syscall `getppd` (did you mean: getppid"), "{err}");
    let disk = std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| !n.starts_with("loop"))
        .expect("a disk");
    let typo = format!("{disk}z");
    let err = one_line_error(&["biolat", "--device", &typo]);
    assert!(err.contains(&format!("unknown block device `{typo}` (did you mean: ")), "{err}");
    assert!(err.contains(&disk), "{err}");
}
