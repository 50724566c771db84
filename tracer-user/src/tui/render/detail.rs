//! One process: its threads, the chosen metric's histogram and p99 history,
//! and who held the CPU when its waits ended.
use ratatui::{
    Frame,
    layout::{Constraint, Layout},
    text::{Line, Span},
    widgets::{Block, Borders, Cell, Paragraph, Row, Sparkline, Table, Tabs},
};

use super::{Theme, latency, pct};
use crate::{
    model::holders::HolderKind,
    output::text::{Unit, bar, compact_percentiles},
    tui::{
        app::App,
        model::{Detail, Metric},
    },
};

pub fn draw(frame: &mut Frame, app: &App, pid: u32, theme: &Theme) {
    let [title, threads, tabs, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(6),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let detail = app.detail.as_ref().filter(|d| d.pid == pid);
    let name = detail.map_or(String::new(), |d| d.comm.clone());
    let mut spans = vec![Span::raw(format!("pid {pid} {name}"))];
    match detail {
        Some(d) if d.exited => spans.push(Span::styled("  EXITED: showing its last data", theme.warn())),
        None => spans.push(Span::styled("  waiting for data...", theme.dim())),
        _ => {}
    }
    if app.paused {
        spans.push(Span::styled("  PAUSED", theme.warn()));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), title);

    let header = Row::new(["TID", "THREAD", "CPU%", "RUNQ%", "THROT%", "IOW%", "SLEEP%"]).style(theme.header());
    let rows = detail.map(|d| d.threads.clone()).unwrap_or_default();
    let rows = rows.into_iter().map(|t| {
        let comm = if t.exited { format!("{} (exited)", t.comm) } else { t.comm };
        Row::new([
            Cell::from(t.tid.to_string()),
            Cell::from(comm),
            Cell::from(pct(t.cpu_pct)),
            Cell::from(pct(t.runq_pct)),
            Cell::from(pct(t.throttled_pct)),
            Cell::from(pct(t.iowait_pct)),
            Cell::from(pct(t.sleep_pct)),
        ])
    });
    let widths = [
        Constraint::Length(8),
        Constraint::Min(10),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(7),
    ];
    frame.render_widget(Table::new(rows, widths).header(header), threads);

    let selected = Metric::ALL.iter().position(|m| *m == app.metric).unwrap_or(0);
    frame.render_widget(
        Tabs::new(Metric::ALL.iter().map(|m| m.label())).select(selected).highlight_style(theme.selected()),
        tabs,
    );

    if let Some(d) = detail {
        draw_metric(frame, app, d, body, theme);
    }
    let footer_text = app.status.clone().unwrap_or_else(|| "Esc back  Tab metric  space pause  w write  q quit".into());
    frame.render_widget(Paragraph::new(footer_text).style(theme.dim()), footer);
}

fn draw_metric(frame: &mut Frame, app: &App, d: &Detail, area: ratatui::layout::Rect, theme: &Theme) {
    let side_width = if area.width >= 120 { 38 } else { 0 };
    let [left, side] = Layout::horizontal([Constraint::Min(20), Constraint::Length(side_width)]).areas(area);
    let [hist_area, chart_area] = Layout::vertical([Constraint::Min(2), Constraint::Length(3)]).areas(left);
    let empty = crate::model::hist::Buckets::default();
    let hist = d.hists.get(&app.metric).unwrap_or(&empty);

    // runqlat-style log2 histogram, trimmed to its non-empty range.
    let unit = if hist.max() >= 100_000_000 { Unit::Millis } else { Unit::Micros };
    let mut lines = vec![compact_percentiles(hist)];
    let rows = hist.log2_rows(unit.divisor());
    let first = rows.iter().position(|r| r.2 > 0).unwrap_or(0);
    let max = rows.iter().map(|r| r.2).max().unwrap_or(0);
    // "      2048 -> 4095       : 249      |" is 37 columns, then the bar.
    let bar_width = u64::from(hist_area.width.saturating_sub(39).clamp(5, 40));
    lines.push(format!("{:>10}    {:<10} : count    distribution", unit.label(), ""));
    for (low, high, count) in rows.into_iter().skip(first) {
        lines.push(format!("{low:>10} -> {high:<10} : {count:<8} |{}|", bar(count, max, bar_width)));
    }
    frame.render_widget(Paragraph::new(lines.join("\n")), hist_area);

    let series: Vec<u64> =
        app.history.get(&(d.pid, app.metric)).map(|h| h.iter().copied().collect()).unwrap_or_default();
    let latest = series.last().copied().unwrap_or(0);
    let chart = Sparkline::default()
        .block(Block::default().borders(Borders::TOP).title(format!(
            " p99 over the last {} intervals (now {}) ",
            series.len(),
            latency(latest)
        )))
        .data(series)
        .style(theme.dim());
    frame.render_widget(chart, chart_area);

    if side_width > 0 {
        let mut text = Vec::new();
        if app.metric == Metric::Syscalls {
            text.push("top syscalls (time)".to_owned());
            for (name, count, total) in d.top_syscalls.iter().take(8) {
                text.push(format!("{name:<16} {count:>7} {}", latency(*total)));
            }
        } else {
            text.push("CPU held while it waited, by:".to_owned());
            for held in d.holders.iter().take(8) {
                let comm: String = match held.kind {
                    HolderKind::OwnThreads => "(own threads)".into(),
                    HolderKind::Idle => "(idle)".into(),
                    _ => held.comm.chars().take(15).collect(),
                };
                text.push(format!("{:>6} {comm:<15} {:<5} {}", held.pid, kind_tag(held.kind), latency(held.ns)));
            }
        }
        frame.render_widget(Paragraph::new(text.join("\n")), side);
    }
}

/// A holder's kind in five columns.
fn kind_tag(kind: HolderKind) -> &'static str {
    match kind {
        HolderKind::OwnThreads => "own",
        HolderKind::SameCgroup => "cgrp",
        HolderKind::OtherCgroups => "other",
        HolderKind::KernelThreads => "kern",
        HolderKind::Idle => "idle",
        HolderKind::Unknown => "gone",
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, time::Duration};

    use crate::{
        model::{
            hist::Buckets,
            holders::{Held, HolderKind},
        },
        tui::{
            app::{App, View},
            model::{Detail, Metric, Model, ThreadRow},
            render::tests::render,
        },
    };

    fn detail(exited: bool, waits_ns: &[u64]) -> Detail {
        let mut runq = Buckets::default();
        waits_ns.iter().for_each(|&v| runq.record(v));
        let mut hists = BTreeMap::new();
        hists.insert(Metric::Runq, runq);
        Detail {
            pid: 4242,
            comm: "nginx".into(),
            exited,
            threads: vec![ThreadRow { tid: 4243, comm: "worker".into(), cpu_pct: 55.0, runq_pct: 20.0, ..Default::default() }],
            hists,
            top_syscalls: vec![("epoll_wait".into(), 10, 5_000_000)],
            holders: vec![held(812, "load-gen", HolderKind::OtherCgroups, 3_100_000), held(31, "kworker/1:2", HolderKind::KernelThreads, 900_000)],
        }
    }

    fn held(pid: u32, comm: &str, kind: HolderKind, ns: u64) -> Held {
        Held { pid, comm: comm.into(), cgroup: None, kind, ns }
    }

    fn app(detail: Detail) -> App {
        let mut app = App::new(View::Detail(4242), Duration::from_secs(1), false);
        app.update(Model { detail: Some(detail), ..Model::default() });
        app
    }

    #[test]
    fn detail_shows_threads_histogram_percentiles_and_cpu_holders() {
        let mut d = detail(false, &[1_000_000, 1_500_000, 3_000_000, 3_000_000]);
        d.holders.push(held(4242, "nginx", HolderKind::OwnThreads, 100_000));
        let lines = render(&app(d), 120, 30);
        let text = lines.join("\n");
        assert!(lines[0].starts_with("pid 4242 nginx"), "{}", lines[0]);
        assert!(text.contains("4243") && text.contains("worker") && text.contains("55.0"), "{text}");
        assert!(text.contains("count 4  p50 1.5 ms  p90 3.0 ms  p99 3.0 ms"), "{text}");
        let row = |low: &str| lines.iter().find(|l| l.trim_start().starts_with(low)).unwrap_or_else(|| panic!("{low}:\n{text}")).clone();
        assert!(row("512 -> 1023").contains(": 1        |"), "{text}");
        assert!(row("1024 -> 2047").contains(": 1        |"), "{text}");
        let top = row("2048 -> 4095");
        assert!(top.contains(": 2        |****"), "the fullest bucket has the longest bar: {top}");
        assert!(text.contains("812 load-gen        other 3.1 ms"), "{text}");
        assert!(text.contains("31 kworker/1:2     kern  900.00 us"), "{text}");
        assert!(text.contains("4242 (own threads)   own"), "{text}");
        assert!(text.contains("p99 over the last 1 intervals"), "{text}");
    }

    #[test]
    fn histogram_bars_fit_80_columns() {
        let lines = render(&app(detail(false, &[3_000_000])), 80, 24);
        let row = lines.iter().find(|l| l.contains("2048 -> 4095")).expect("histogram row");
        assert!(row.trim_end().ends_with("*|"), "the bar closes inside the screen: {row}");
    }

    #[test]
    fn exited_process_keeps_its_last_data() {
        let mut app = app(detail(false, &[2_000_000]));
        // The process exits: an interval with no data for it.
        let mut gone = detail(true, &[]);
        gone.hists.clear();
        app.update(Model { detail: Some(gone), ..Model::default() });
        let lines = render(&app, 80, 24);
        assert!(lines[0].contains("EXITED: showing its last data"), "{}", lines[0]);
        assert!(lines.join("\n").contains("count 1  p50 2.0 ms"), "last data kept");
    }
}
