//! runqlen-style text for the per-CPU view: a histogram of run-queue
//! lengths (time at each length, not sample counts: every change is seen),
//! with the average, the maximum and the busy share under it.
use std::fmt::Write;

use super::text::bar;
use crate::model::cpus::CpuWindow;

/// runqlen's table: `len : usecs |****|`, one row per length up to the
/// longest seen; then `avg A, max M, busy B%` (and `runqocc: O%` when asked).
pub fn runqlen_section(out: &mut String, header: Option<&str>, window: &CpuWindow, occupancy: bool) {
    let Some(max_len) = window.max_len() else {
        if let Some(header) = header {
            let _ = writeln!(out, "\n{header}\n(no run-queue change seen yet)");
        }
        return;
    };
    if let Some(header) = header {
        let _ = writeln!(out, "\n{header}");
    }
    let usecs: Vec<u64> = window.time_at_len[..=max_len].iter().map(|ns| ns / 1_000).collect();
    let top = usecs.iter().copied().max().unwrap_or(0);
    let _ = writeln!(out, "{:>12}       : usecs      distribution", "runqlen");
    for (len, &us) in usecs.iter().enumerate() {
        let or_more = if len + 1 == tracer_common::RUNQ_LEN_SLOTS { "+" } else { " " };
        let _ = writeln!(out, "{len:>9}{or_more}         : {us:<10} |{}|", bar(us, top, 40));
    }
    let _ = write!(out, "avg {:.2}, max {max_len}", window.average_len().unwrap_or(0.0));
    if let Some(busy) = window.busy() {
        let _ = write!(out, ", busy {:.1}%", busy * 100.0);
    }
    out.push('\n');
    if occupancy {
        let _ = writeln!(out, "runqocc: {:.2}%", window.occupancy().unwrap_or(0.0) * 100.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cpus::CpuTicks;

    #[test]
    fn rows_up_to_the_longest_queue_then_the_figures() {
        let mut window = CpuWindow { cpu: 1, time_at_len: [0; tracer_common::RUNQ_LEN_SLOTS], ticks: CpuTicks { busy: 99, total: 100 } };
        window.time_at_len[0] = 1_000_000;
        window.time_at_len[3] = 3_000_000;
        let mut out = String::new();
        runqlen_section(&mut out, Some("cpu = 1"), &window, true);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[1], "cpu = 1");
        assert!(lines[2].contains("runqlen") && lines[2].contains("distribution"));
        assert!(lines[3].trim_start().starts_with("0 ") && lines[3].contains(": 1000 "));
        assert!(lines[6].trim_start().starts_with("3 ") && lines[6].contains(&"*".repeat(40)));
        assert_eq!(lines[7], "avg 2.25, max 3, busy 99.0%");
        assert_eq!(lines[8], "runqocc: 75.00%");
    }
}
