//! The per-CPU view against the kernel: 4 busy threads pinned to one CPU
//! keep 3 tasks waiting in its run queue and the CPU fully busy; the other
//! CPU's busy share matches /proc/stat over the same seconds.
use std::{thread::sleep, time::Duration};

use tracer_tests::*;

/// CPU the busy threads are pinned to.
const BUSY_CPU: u32 = 1;

/// Busy and total ticks of each CPU (/proc/stat), as mpstat counts them.
fn cpu_ticks() -> Vec<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let f: Vec<u64> = l.split_whitespace().skip(1).map(|v| v.parse().unwrap()).collect();
            let idle = f[3] + f[4];
            let busy = f[0] + f[1] + f[2] + f[5] + f[6] + f[7];
            (busy, busy + idle)
        })
        .collect()
}

fn busy_pct(before: &[(u64, u64)], after: &[(u64, u64)], cpu: usize) -> f64 {
    let busy = after[cpu].0 - before[cpu].0;
    let total = after[cpu].1 - before[cpu].1;
    busy as f64 * 100.0 / total as f64
}

/// One `cpu = N` section of `tracer runqlen -C -O`: the time at each
/// length, and the `avg A, max M, busy B%` line.
struct Section {
    usecs_at_len: Vec<(u32, u64)>,
    avg: f64,
    max: u32,
    busy: f64,
    occupancy: f64,
}

fn parse_sections(text: &str) -> Vec<(u32, Section)> {
    let mut sections = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(cpu) = line.strip_prefix("cpu = ") else { continue };
        let cpu: u32 = cpu.trim().parse().expect("cpu number");
        let header = lines.next().expect("table header");
        assert!(header.contains("runqlen") && header.contains("distribution"), "{header}");
        let mut usecs_at_len = Vec::new();
        while let Some(row) = lines.next_if(|l| l.contains(" : ") && l.contains('|')) {
            let (len, rest) = row.split_once(" : ").unwrap();
            let len: u32 = len.trim().trim_end_matches('+').parse().expect("length");
            let usecs: u64 = rest.split_whitespace().next().unwrap().parse().expect("usecs");
            usecs_at_len.push((len, usecs));
        }
        let figures = lines.next().expect("figures line");
        let parts: Vec<&str> = figures.split(", ").collect();
        let avg = parts[0].strip_prefix("avg ").unwrap().parse().unwrap();
        let max = parts[1].strip_prefix("max ").unwrap().parse().unwrap();
        let busy = parts[2].strip_prefix("busy ").unwrap().trim_end_matches('%').parse().unwrap();
        let occupancy = lines.next().unwrap().strip_prefix("runqocc: ").unwrap().trim_end_matches('%').parse().unwrap();
        sections.push((cpu, Section { usecs_at_len, avg, max, busy, occupancy }));
    }
    sections
}

#[test]
fn run_queue_lengths_and_busy_cpus_match_the_load() {
    if !bpf_available("run_queue_lengths_and_busy_cpus_match_the_load") {
        return;
    }
    let dir = temp_dir("cpus");
    let out = dir.join("report.json");
    let record = Tracer::start(&["record", "--out", out.to_str().unwrap()]);
    let load = Load::start(&["spin", "4", &BUSY_CPU.to_string()]);
    sleep(Duration::from_millis(300));

    let runqlen = Tracer::start(&["runqlen", "-C", "-O", "2", "1"]);
    let before = cpu_ticks();
    let text = runqlen.output(None);
    let after = cpu_ticks();
    let sections = parse_sections(&text);
    assert_eq!(sections.len(), before.len(), "one section per CPU: {text}");
    for (cpu, section) in &sections {
        // The figures line agrees with its own table.
        let total: u64 = section.usecs_at_len.iter().map(|&(_, us)| us).sum();
        let weighted: u64 = section.usecs_at_len.iter().map(|&(len, us)| u64::from(len) * us).sum();
        assert!((weighted as f64 / total as f64 - section.avg).abs() < 0.01, "cpu {cpu}: {text}");
        assert_eq!(section.usecs_at_len.last().unwrap().0, section.max, "cpu {cpu}: {text}");
        let expected_busy = busy_pct(&before, &after, *cpu as usize);
        assert!((section.busy - expected_busy).abs() <= 10.0, "cpu {cpu}: busy {} vs /proc/stat {expected_busy:.1}: {text}", section.busy);
    }
    let busy = &sections.iter().find(|(cpu, _)| *cpu == BUSY_CPU).expect("the busy CPU").1;
    assert!((busy.avg - 3.0).abs() <= 0.5, "4 busy threads on one CPU keep 3 waiting: {text}");
    assert!(busy.busy >= 98.0 && busy.occupancy >= 98.0, "{text}");

    sleep(Duration::from_millis(500));
    let report = record.report(Some(libc::SIGINT), &out);
    drop(load);
    let cpu = report.cpus.iter().find(|c| c.cpu == BUSY_CPU).expect("the busy CPU in the report");
    assert_eq!(cpu.runqlen_ns.iter().map(|&(_, ns)| ns).sum::<u64>(), cpu.measured_ns);
    // The recording began before the threads: its average is lower, by
    // the 0.3 s before they started out of about 3 s.
    assert!(cpu.runqlen_avg > 2.0 && cpu.runqlen_avg <= 3.5, "{cpu:?}");
    assert!(cpu.busy_pct.is_some_and(|busy| busy >= 85.0), "{cpu:?}");
    assert!(cpu.runqlen_max >= 3, "{cpu:?}");
    let _ = std::fs::remove_dir_all(dir);
}
