//! The per-CPU pane (`c`): what `mpstat -P ALL` and `sar -q` show, per
//! CPU over the last interval: busy share, and how many tasks waited for
//! it (time-weighted average, longest, share of time with any waiting).
use ratatui::{
    Frame,
    layout::{Constraint, Layout},
    text::{Line, Span},
    widgets::Paragraph,
};

use super::{Theme, pct};
use crate::{
    model::cpus::{CpuWindow, all_cpus},
    output::text::bar,
    tui::app::App,
};

fn row(label: &str, window: &CpuWindow) -> String {
    let busy = window.busy().map_or("-".to_owned(), |b| pct(b * 100.0));
    let avg = window.average_len().map_or("-".to_owned(), |avg| format!("{avg:.2}"));
    let max = window.max_len().map_or("-".to_owned(), |max| max.to_string());
    let occupancy = window.occupancy().map_or("-".to_owned(), |o| pct(o * 100.0));
    let busy_bar = bar((window.busy().unwrap_or(0.0) * 100.0) as u64, 100, 20);
    format!("{label:>5} {busy:>6} {avg:>9} {max:>8} {occupancy:>6}  |{busy_bar}|")
}

pub fn draw(frame: &mut Frame, app: &App, theme: &Theme) {
    let [title, header, list, footer] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1), Constraint::Min(1), Constraint::Length(1)])
            .areas(frame.area());
    let mut heading = vec![Span::raw("tracer  CPUs over the last interval")];
    if app.paused {
        heading.push(Span::styled("  PAUSED", theme.warn()));
    }
    frame.render_widget(Paragraph::new(Line::from(heading)), title);
    frame.render_widget(
        Paragraph::new(format!("{:>5} {:>6} {:>9} {:>8} {:>6}  {}", "CPU", "BUSY%", "RUNQ avg", "RUNQ max", "OCC%", "busy"))
            .style(theme.header()),
        header,
    );
    let lines: Vec<Line> = if app.cpus.is_empty() {
        vec![Line::from("No per-CPU data: run-queue lengths need BTF tracepoints (/sys/kernel/btf/vmlinux).")]
    } else {
        app.cpus
            .iter()
            .map(|w| Line::from(row(&w.cpu.to_string(), w)))
            .chain(std::iter::once(Line::from(row("all", &all_cpus(&app.cpus)))))
            .collect()
    };
    frame.render_widget(Paragraph::new(lines), list);
    frame.render_widget(
        Paragraph::new("RUNQ: tasks waiting for the CPU  OCC%: time with any waiting  Esc back  q quit").style(theme.dim()),
        footer,
    );
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tracer_common::RUNQ_LEN_SLOTS;

    use crate::{
        model::cpus::{CpuTicks, CpuWindow},
        tui::{
            app::{App, View},
            render::tests::render,
        },
    };

    #[test]
    fn a_row_per_cpu_then_all_of_them() {
        let mut app = App::new(View::Cpus, Duration::from_secs(1), false);
        let mut busy = CpuWindow { cpu: 1, time_at_len: [0; RUNQ_LEN_SLOTS], ticks: CpuTicks { busy: 100, total: 100 } };
        busy.time_at_len[3] = 1_000_000_000;
        let mut idle = CpuWindow { cpu: 0, time_at_len: [0; RUNQ_LEN_SLOTS], ticks: CpuTicks { busy: 5, total: 100 } };
        idle.time_at_len[0] = 1_000_000_000;
        app.cpus = vec![idle, busy];
        let lines = render(&app, 80, 8);
        assert!(lines[1].contains("CPU") && lines[1].contains("RUNQ avg"), "{}", lines[1]);
        let cpu1: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(&cpu1[..5], ["1", "100", "3.00", "3", "100"], "{}", lines[3]);
        let all: Vec<&str> = lines[4].split_whitespace().collect();
        assert_eq!(&all[..5], ["all", "52.5", "1.50", "3", "50.0"], "{}", lines[4]);
    }

    #[test]
    fn without_btf_the_pane_says_why() {
        let app = App::new(View::Cpus, Duration::from_secs(1), false);
        assert!(render(&app, 100, 6)[2].starts_with("No per-CPU data"));
    }
}
