//! Syscall latency, block I/O and off-CPU causes against workloads whose
//! syscalls and I/O are known exactly, and against /proc/<pid>/io.
use std::path::Path;

use tracer_tests::*;
use tracer_user::output::report::SyscallJson;

/// Records `load` (attached before its work starts), runs the work, and
/// returns the report and what the work printed.
fn record_work(name: &str, load: &mut Load, extra: &[&str]) -> (Report, String) {
    let dir = temp_dir(name);
    let out = dir.join("report.json");
    let pid = load.pid().to_string();
    let mut args = vec!["record", "--pid", &pid, "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let tracer = Tracer::start(&args);
    let printed = load.run_work();
    let report = tracer.report(Some(libc::SIGINT), &out);
    let _ = std::fs::remove_dir_all(dir);
    (report, printed)
}

fn syscall<'a>(process: &'a ProcessJson, name: &str) -> &'a SyscallJson {
    process
        .syscalls
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", process.syscalls))
}

fn block_bytes(process: &ProcessJson, op: &str) -> u64 {
    process.block_io.iter().filter(|b| b.op == op).map(|b| b.bytes).sum()
}

/// Every process the report charged block writes to, and what the kernel
/// programs lost: where a writer's missing bytes went, when a check fails.
fn block_writers(report: &Report) -> String {
    let writers: Vec<String> = report
        .processes
        .iter()
        .filter(|p| block_bytes(p, "write") > 0)
        .map(|p| format!("{} {} {} bytes", p.pid, p.comm, block_bytes(p, "write")))
        .collect();
    format!("block writes by process: {}; lost: {:?}", writers.join(", "), report.meta.lost)
}

#[test]
fn exactly_n_getppid_calls_are_counted() {
    if !bpf_available("exactly_n_getppid_calls_are_counted") {
        return;
    }
    const N: u64 = 200_000;
    let mut load = Load::start(&["getppid", &N.to_string()]);
    let (report, _) = record_work("getppid", &mut load, &[]);
    let pid = load.pid();
    load.finish();
    assert!(report.meta.traced.syscalls, "a --pid filter turns syscall tracing on");
    let p = process(&report, pid);
    let getppid = syscall(p, "getppid");
    assert_eq!(getppid.count, N);
    assert_eq!(getppid.errors, 0);
    assert_eq!(getppid.hist.count, N);
    assert!(getppid.total_ns > 0);
    let t = &thread(p, pid).totals;
    assert!(t.syscalls >= N, "thread totals include the syscalls: {}", t.syscalls);
    assert!(t.syscall_ns >= getppid.total_ns);
    assert_eq!(report.meta.lost.stats_samples, 0);
}

#[test]
fn nanosleep_latency_and_sleep_time() {
    if !bpf_available("nanosleep_latency_and_sleep_time") {
        return;
    }
    const N: u64 = 30;
    let mut load = Load::start(&["nanosleep", &N.to_string(), "10"]);
    let (report, _) = record_work("nanosleep", &mut load, &[]);
    let pid = load.pid();
    load.finish();
    let p = process(&report, pid);
    let sleep = syscall(p, "nanosleep");
    assert_eq!(sleep.count, N);
    let p50 = sleep.hist.p50 as f64;
    assert!((p50 - 10e6).abs() / 10e6 <= 0.10, "nanosleep(10 ms) p50 = {p50} ns");
    let t = thread(p, pid);
    let slept = t.totals.off_cpu.sleep_ns;
    assert!(slept as f64 >= 0.9 * N as f64 * 10e6, "voluntary sleep {slept} ns for {N} x 10 ms");
    // Each nanosleep blocks once, unless it was preempted between arming its
    // timer and blocking and only got the CPU back after the timer fired:
    // then its episode is a preemption instead.
    // And an episode whose wake-up and switch-in the kernel's tracepoints
    // did not report is counted as an accounting gap instead.
    let histograms = p.totals.off_cpu.histograms.as_ref().expect("a process's off_cpu.histograms");
    let episodes = &histograms.sleep;
    let preempted = histograms.preempted.count;
    let gaps = report.meta.lost.accounting_gaps;
    assert!(episodes.count + preempted + gaps >= N, "{histograms:?} gaps {gaps}");
    assert!(episodes.count >= N * 9 / 10);
    let episode_p50 = episodes.p50 as f64;
    assert!((episode_p50 - 10e6).abs() / 10e6 <= 0.10, "sleep episode p50 = {episode_p50}");
}

#[test]
fn failing_syscalls_are_counted_by_errno() {
    if !bpf_available("failing_syscalls_are_counted_by_errno") {
        return;
    }
    let mut load = Load::start(&["enoent", "25"]);
    let (report, _) = record_work("enoent", &mut load, &[]);
    let pid = load.pid();
    load.finish();
    let openat = syscall(process(&report, pid), "openat");
    assert_eq!(openat.errors, 25);
    assert_eq!(openat.errors_by_errno.get("ENOENT"), Some(&25), "{:?}", openat.errors_by_errno);
}

fn direct_write_dir(test: &str) -> std::path::PathBuf {
    // /var/tmp is disk-backed (tmpfs would bypass the block layer).
    let dir = Path::new("/var/tmp").join(format!("tracer-it-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a directory on disk");
    dir
}

/// The disk holding `path` (a partition resolves to its disk), by name.
fn disk_of(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).expect("stat").dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let sys = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).expect("sysfs entry");
    let disk = if sys.join("partition").exists() { sys.parent().unwrap().to_path_buf() } else { sys };
    disk.file_name().unwrap().to_string_lossy().into_owned()
}

fn disk_stat(disk: &str) -> Vec<u64> {
    let stat = std::fs::read_to_string(format!("/sys/block/{disk}/stat")).expect("disk stat");
    stat.split_whitespace().map(|v| v.parse().unwrap()).collect()
}

/// Completed write requests and bytes of a disk, from /sys/block/<disk>/stat,
/// read once nothing is in flight, so that the kernel's window and the
/// tracer's hold the same requests.
fn disk_writes_when_idle(disk: &str) -> (u64, u64) {
    for _ in 0..500 {
        let f = disk_stat(disk);
        if f[8] == 0 {
            return (f[4], f[6] * 512);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{disk} never went idle");
}

/// Writes back all dirty data first, so no unrelated writeback is in flight
/// when the comparison window opens.
fn flush_dirty_data() {
    // SAFETY: sync has no arguments.
    unsafe { libc::sync() };
}

/// Requests of a process whose size lies in [lower, upper] bytes.
fn write_requests_sized(process: &ProcessJson, lower: u64, upper: u64) -> u64 {
    process
        .block_io
        .iter()
        .filter(|b| b.op == "write")
        .flat_map(|b| &b.size.buckets)
        .filter(|[low, high, _]| *low >= lower && *high <= upper)
        .map(|[_, _, count]| count)
        .sum()
}

/// O_DIRECT data plus what fsync adds (inode, journal): at most 64 KiB here.
const FSYNC_METADATA_SLACK: u64 = 64 * 1024;

#[test]
fn direct_writes_match_proc_io_disk_stats_and_show_iowait() {
    if !bpf_available("direct_writes_match_proc_io_disk_stats_and_show_iowait") {
        return;
    }
    let dir = direct_write_dir("direct");
    let disk = disk_of(&dir);
    let out = dir.join("report.json");
    let file = dir.join("data");
    let mut load = Load::start(&["write", file.to_str().unwrap(), "64", "64"]);
    let pid_arg = load.pid().to_string();
    flush_dirty_data();
    // System-wide, so the device total can be checked against the kernel's.
    let tracer = Tracer::start(&["record", "--syscalls", "--out", out.to_str().unwrap()]);
    let before = disk_writes_when_idle(&disk);
    let printed = load.run_work();
    let after = disk_writes_when_idle(&disk);
    let report = tracer.report(Some(libc::SIGINT), &out);
    let pid = load.pid();
    load.finish();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(pid_arg, pid.to_string());

    let data = 64 * 64 * 1024;
    let p = process(&report, pid);
    // One request per write, or more where the file's blocks are not
    // contiguous on disk; never fewer (synchronous writes do not merge).
    let writes = p.block_io.iter().find(|b| b.op == "write").unwrap();
    assert!(writes.count >= 64, "{writes:?}");
    let written = block_bytes(p, "write");
    assert!(
        (data..=data + FSYNC_METADATA_SLACK).contains(&written),
        "block writes charged to the writer: {written} for {data} bytes of data; {}",
        block_writers(&report)
    );
    let proc_io: u64 = printed.parse().expect("write_bytes delta");
    assert!(proc_io >= data);
    assert_close("writer's bytes vs /proc/<pid>/io write_bytes", written, proc_io, 0.0, FSYNC_METADATA_SLACK);

    let disk_total: (u64, u64) = report
        .block_io
        .iter()
        .filter(|b| b.device == disk && b.op == "write")
        .fold((0, 0), |(n, bytes), b| (n + b.count, bytes + b.bytes));
    let kernel = (after.0 - before.0, after.1 - before.1);
    assert_close(&format!("{disk} write bytes vs /sys/block/{disk}/stat"), disk_total.1, kernel.1, 0.01, FSYNC_METADATA_SLACK);
    assert!(disk_total.0.abs_diff(kernel.0) <= 4, "{disk} write requests: tracer {}, kernel {}", disk_total.0, kernel.0);

    assert!(thread(p, pid).totals.off_cpu.iowait_ns > 0, "O_DIRECT waits are I/O waits");
    assert!(p.totals.off_cpu.histograms.as_ref().expect("a process's off_cpu.histograms").iowait.count > 0);
}

#[test]
fn block_io_is_charged_to_its_submitter() {
    if !bpf_available("block_io_is_charged_to_its_submitter") {
        return;
    }
    let dir = direct_write_dir("attribution");
    let out = dir.join("report.json");
    let (file_a, file_b) = (dir.join("a"), dir.join("b"));
    // Different request sizes tell the two writers' requests apart.
    let mut a = Load::start(&["write", file_a.to_str().unwrap(), "48", "64"]);
    let mut b = Load::start(&["write", file_b.to_str().unwrap(), "16", "128"]);
    let tracer = Tracer::start(&["record", "--out", out.to_str().unwrap()]);
    let worker_b = std::thread::spawn(move || {
        b.run_work();
        b
    });
    a.run_work();
    let b = worker_b.join().expect("writer B");
    let report = tracer.report(Some(libc::SIGINT), &out);
    let (pid_a, pid_b) = (a.pid(), b.pid());
    a.finish();
    b.finish();
    let _ = std::fs::remove_dir_all(&dir);
    // Each writer is charged its own data, no less (none went to a kworker
    // or to the other writer) and no more than its fsync's metadata (it
    // was not charged the other's 2-3 MiB).
    let (pa, pb) = (process(&report, pid_a), process(&report, pid_b));
    for (p, data) in [(pa, 48 * 64 * 1024), (pb, 16 * 128 * 1024)] {
        let written = block_bytes(p, "write");
        assert!(
            (data..=data + FSYNC_METADATA_SLACK).contains(&written),
            "{written} for {data}: {:?}; {}",
            p.block_io,
            block_writers(&report)
        );
    }
    // The request sizes say whose requests these are: A wrote 64 KiB at a
    // time, B 128 KiB (split only where a file is fragmented on disk).
    assert!(write_requests_sized(pa, 65_536, 131_071) > 0);
    assert_eq!(write_requests_sized(pa, 131_072, 262_143), 0, "none of B's 128 KiB requests");
    assert!(write_requests_sized(pb, 131_072, 262_143) > 0);
}
