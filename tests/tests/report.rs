//! The JSON report: required fields, a decodable HdrHistogram, atomic writes
//! (and in-place writes to devices and FIFOs) and clean stops on SIGTERM
//! and SIGHUP.
use std::{
    os::unix::fs::FileTypeExt,
    path::Path,
    process::Command,
    sync::mpsc,
    thread::sleep,
    time::Duration,
};

use base64::Engine;
use hdrhistogram::serialization::Deserializer;
use serde_json::Value;
use tracer_tests::*;

fn decode(hist: &HistJson) -> hdrhistogram::Histogram<u64> {
    let raw = base64::engine::general_purpose::STANDARD.decode(&hist.hdr).expect("hdr is base64");
    Deserializer::new()
        .deserialize(&mut raw.as_slice())
        .expect("hdr is a compressed V2 HdrHistogram")
}

/// Decodes `hdr` with the reference Python HdrHistogram library (installed
/// by `cargo xtask test`): every recorded (value, count) pair, in order.
/// (Percentiles are not compared: the libraries round ranks differently.)
fn decode_in_python(hist: &HistJson) -> Option<Vec<(u64, u64)>> {
    let python = match std::env::var("TRACER_PYTHON_HDR") {
        Ok(p) => p,
        Err(_) if std::env::var("TRACER_REQUIRE_BPF").as_deref() == Ok("1") => {
            panic!("TRACER_PYTHON_HDR is not set: run the tests with `cargo xtask test`")
        }
        Err(_) => {
            eprintln!("SKIPPED the Python decode check: TRACER_PYTHON_HDR not set");
            return None;
        }
    };
    let script = "import sys\nfrom hdrh.histogram import HdrHistogram\n\
h = HdrHistogram.decode(sys.argv[1])\n\
for i in h.get_recorded_iterator():\n    print(i.value_iterated_to, i.count_at_value_iterated_to)";
    let out = std::process::Command::new(python)
        .args(["-c", script, &hist.hdr])
        .output()
        .expect("running python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    Some(
        text.lines()
            .map(|l| {
                let mut f = l.split_whitespace().map(|v| v.parse::<u64>().expect("integer"));
                (f.next().unwrap(), f.next().unwrap())
            })
            .collect(),
    )
}

/// `json` is `hist` as it is in the report: the format is checked there,
/// where a renamed field would show.
fn check_hist(json: &Value, hist: &HistJson) {
    assert_eq!(json["unit"], "ns");
    for field in ["count", "min", "max", "p50", "p90", "p99", "p999", "p9999"] {
        assert!(json[field].is_u64(), "{field} in {json}");
    }
    assert!(json["mean"].is_number());
    assert!(json["hdr"].is_string() && json["buckets"].is_array(), "{json}");
    let hdr = decode(hist);
    assert_eq!(hdr.len(), hist.count);
    // The one percentile definition: HdrHistogram's, capped to the exact extremes.
    assert_eq!(hdr.value_at_quantile(0.99).clamp(hist.min, hist.max), hist.p99);
    if let Some(python) = decode_in_python(hist) {
        let rust: Vec<(u64, u64)> =
            hdr.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect();
        assert!(!rust.is_empty());
        assert_eq!(python, rust, "Python's HdrHistogram decodes the same histogram");
    }
    let bucket_total: u64 = hist.buckets.iter().map(|b| b[2]).sum();
    assert_eq!(bucket_total, hist.count);
}

#[test]
fn report_has_required_fields_and_decodable_histograms() {
    if !bpf_available("report_has_required_fields_and_decodable_histograms") {
        return;
    }
    let dir = temp_dir("report");
    let out = dir.join("report.json");
    let tracer = Tracer::start(&["record", "--out", out.to_str().unwrap()]);
    let load = Load::start(&["spin", "3", "1"]);
    sleep(Duration::from_millis(1500));
    // SIGTERM, as a load-test harness would send, still writes the report.
    let report = tracer.report(Some(libc::SIGTERM), &out);
    // The same report as plain JSON, for the checks of its format.
    let json = read_report_json(&out);

    assert_eq!(report.schema, "tracer.report/1");
    for field in ["schema", "start_unix_ns", "end_unix_ns", "histograms", "processes"] {
        assert!(!json[field].is_null(), "report field {field}");
    }
    let (start, end) = (report.meta.start_unix_ns, report.meta.end_unix_ns);
    assert!(end > start + 1_000_000_000, "start {start} end {end}");
    check_hist(&json["histograms"]["runq_latency"], &report.histograms.runq_latency);
    assert!(report.histograms.runq_latency.count > 100);
    // Without a filter or --syscalls, no program runs on every syscall of
    // the machine (they once did, and filled a table sized for nothing).
    assert!(!report.meta.traced.syscalls);
    assert_eq!(report.meta.lost.stats_samples, 0, "statistics samples lost");

    let p = process(&report, load.pid());
    let p_json = json["processes"]
        .as_array()
        .expect("processes is a list")
        .iter()
        .find(|p| p["pid"] == load.pid())
        .expect("the process in the JSON");
    for field in ["pid", "comm", "exited", "on_cpu_ns", "runq_wait_ns", "runq_waits", "threads"] {
        assert!(!p_json[field].is_null(), "process field {field}");
    }
    for field in ["preempted_ns", "uninterruptible_ns", "sleep_ns"] {
        assert!(p_json["off_cpu"][field].is_u64(), "off_cpu.{field}");
    }
    check_hist(&p_json["histograms"]["runq_latency"], &p.histograms.runq_latency);
    // Process totals are the sum of its threads'.
    let sum: u64 = p.threads.iter().map(|t| t.totals.runq_wait_ns).sum();
    assert_eq!(sum, p.totals.runq_wait_ns);
    for t in p_json["threads"].as_array().expect("threads is a list") {
        for field in ["tid", "comm", "on_cpu_ns", "runq_wait_ns", "runq_waits"] {
            assert!(!t[field].is_null(), "thread field {field}");
        }
        assert!(t["off_cpu"]["sleep_ns"].is_u64());
    }
    // One histogram entry per wait the tracepoints reported; waits of
    // switches the kernel did not report are filled from its counters
    // without latencies of their own (docs/report-format.md, TOTALS).
    let (measured, counted) = (p.histograms.runq_latency.count, p.totals.runq_waits);
    if report.meta.lost.accounting_gaps == 0 {
        assert_eq!(measured, counted, "one histogram entry per counted wait");
    } else {
        assert!(measured <= counted, "{measured} histogram entries for {counted} waits");
    }
    // Nothing but the report is left in the directory (atomic write).
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    let _ = std::fs::remove_dir_all(dir);
}

fn run_tracer(args: &[&str]) {
    let out = Command::new(tracer_bin()).args(args).output().expect("running tracer");
    assert!(out.status.success(), "tracer {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn make_node(program: &str, args: &[&str], path: &Path) {
    let status = Command::new(program).arg(path).args(args).status().expect(program);
    assert!(status.success(), "{program} {}", path.display());
}

#[test]
fn reports_to_a_device_or_a_fifo_are_written_into_it() {
    if !bpf_available("reports_to_a_device_or_a_fifo_are_written_into_it") {
        return;
    }
    let dir = temp_dir("special-out");
    // A device node of its own, so a failure cannot harm the real /dev/null.
    let null = dir.join("null");
    make_node("mknod", &["c", "1", "3"], &null);
    run_tracer(&["record", "-d", "1", "--out", null.to_str().unwrap()]);
    run_tracer(&["runqlat", "--json", null.to_str().unwrap(), "1", "1"]);
    let kind = std::fs::symlink_metadata(&null).unwrap().file_type();
    assert!(kind.is_char_device(), "the device was replaced: {kind:?}");

    let fifo = dir.join("fifo");
    make_node("mkfifo", &[], &fifo);
    let (tx, rx) = mpsc::channel();
    let reading = fifo.clone();
    // Opening a FIFO to read blocks until the writer opens it.
    std::thread::spawn(move || tx.send(std::fs::read(reading)));
    run_tracer(&["record", "-d", "1", "--out", fifo.to_str().unwrap()]);
    let bytes = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("nothing was written into the FIFO")
        .expect("reading the FIFO");
    let report: Report = serde_json::from_slice(&bytes).expect("a report came through the FIFO");
    assert_eq!(report.schema, "tracer.report/1");
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2, "no temporary file left beside them");
    let _ = std::fs::remove_dir_all(dir);
}

/// A closed terminal, an ssh drop or `tmux kill-session` sends SIGHUP: it
/// ends a recording as SIGTERM does, with the report and the timeline
/// written and no temporary file left.
#[test]
fn sigterm_and_sighup_end_a_recording_with_its_report_and_timeline() {
    if !bpf_available("sigterm_and_sighup_end_a_recording_with_its_report_and_timeline") {
        return;
    }
    let load = Load::start(&["sleepers", "2", "5"]);
    let pid = load.pid().to_string();
    for (sig, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGHUP, "SIGHUP")] {
        for timeline in [false, true] {
            let dir = temp_dir(&format!("stop-{name}-{timeline}"));
            let out = dir.join("r.json");
            let mut args = vec!["record", "--pid", &pid, "--out", out.to_str().unwrap()];
            if timeline {
                args.push("--timeline");
            }
            let tracer = Tracer::start(&args);
            sleep(Duration::from_millis(500));
            let (status, _, stderr) = tracer.stop_with(sig);
            assert!(status.success(), "{name}, timeline {timeline}: {status}, {stderr:?}");
            let report = read_report(&out);
            assert_eq!(report.schema, "tracer.report/1");
            assert!(process(&report, load.pid()).totals.on_cpu_ns > 0, "{name}");

            let mut files: Vec<String> =
                std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
            files.sort();
            if timeline {
                assert_eq!(files, ["r.json", "r.timeline"], "{name}: no temporary file left");
                // Complete: `spans join` reads it to its trailer.
                let no_spans = dir.join("none.jsonl");
                std::fs::write(&no_spans, "").unwrap();
                let joined = std::process::Command::new(tracer_bin())
                    .args(["spans", "join", "--timeline", dir.join("r.timeline").to_str().unwrap()])
                    .args(["--spans", no_spans.to_str().unwrap()])
                    .output()
                    .expect("tracer spans join");
                let joined_stderr = String::from_utf8_lossy(&joined.stderr);
                assert!(joined.status.success(), "{name}: {joined_stderr}");
                assert!(joined_stderr.contains(&format!("timeline of pid [{pid}]")), "{joined_stderr}");
            } else {
                assert_eq!(files, ["r.json"], "{name}: no temporary file left");
            }
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The stderr warnings and the report give the same loss counts: read once,
/// after the probes are detached, not while they still count. More threads
/// than the table holds, waking often, keep a loss counter moving.
#[test]
fn stderr_and_report_agree_on_losses() {
    if !bpf_available("stderr_and_report_agree_on_losses") {
        return;
    }
    let _sleepers = Load::start(&["sleepers", "1100", "20"]);
    let dir = temp_dir("losses-agree");
    let out = dir.join("r.json");
    let tracer = Tracer::start(&["record", "--max-threads", "1024", "--duration", "1", "--out", out.to_str().unwrap()]);
    let (status, _, stderr) = tracer.wait();
    assert!(status.success(), "{stderr:?}");
    let report = read_report(&out);
    let untracked = report.meta.lost.threads_untracked;
    assert!(untracked > 0, "more threads than the table holds: {stderr:?}");
    let warned = stderr
        .iter()
        .find_map(|line| line.strip_prefix("tracer: warning: ")?.strip_suffix(" threads were not tracked (table full; raise --max-threads)"))
        .unwrap_or_else(|| panic!("no warning: {stderr:?}"));
    assert_eq!(warned, untracked.to_string(), "the warning and the report count the same losses");
    let _ = std::fs::remove_dir_all(dir);
}

/// A signal sent while tracer is still starting (loading its probes) or
/// the moment it says it is recording ends the run cleanly, with a report:
/// the handlers are in place from the start, not only once it records.
#[test]
fn a_signal_during_start_up_still_ends_with_a_report() {
    if !bpf_available("a_signal_during_start_up_still_ends_with_a_report") {
        return;
    }
    let dir = temp_dir("early-signal");
    let out = dir.join("r.json");
    for delay_ms in [50, 100, 150] {
        let child = Command::new(tracer_bin())
            .args(["record", "--out", out.to_str().unwrap()])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting tracer");
        sleep(Duration::from_millis(delay_ms));
        signal(child.id(), libc::SIGINT);
        let output = child.wait_with_output().expect("waiting for tracer");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "SIGINT after {delay_ms} ms: {} {stderr}", output.status);
        assert_eq!(read_report(&out).schema, "tracer.report/1", "after {delay_ms} ms");
        std::fs::remove_file(&out).unwrap();
    }
    let _ = std::fs::remove_dir_all(dir);
}
