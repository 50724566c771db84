//! The process table (the default view).
use ratatui::{
    Frame,
    layout::{Constraint, Layout},
    text::{Line, Span},
    widgets::{Cell, Paragraph, Row, Table, TableState},
};

use super::{Theme, latency, pct};
use crate::tui::app::{App, Column};

/// Columns shown at `width`: the essential ones first, dropped from the end
/// of this list when the terminal is narrow.
fn columns_for(width: u16) -> Vec<Column> {
    let mut columns = Column::ALL.to_vec();
    for drop in [Column::TopSyscall, Column::RunqP50, Column::RunqMax, Column::Threads, Column::Syscall, Column::IoWait] {
        let needed: u16 = columns.iter().map(|c| width_of(*c) + 1).sum();
        if needed <= width {
            break;
        }
        columns.retain(|c| *c != drop);
    }
    columns
}

fn width_of(column: Column) -> u16 {
    match column {
        Column::Pid => 7,
        Column::Command => 15,
        Column::Threads => 4,
        Column::Cpu | Column::Runq => 6,
        Column::RunqP50 | Column::RunqP99 | Column::RunqMax => 9,
        Column::IoWait | Column::Syscall => 5,
        Column::TopSyscall => 12,
    }
}

pub fn draw(frame: &mut Frame, app: &App, theme: &Theme) {
    let [title, table_area, footer] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(1), Constraint::Length(1)]).areas(frame.area());
    let rows = app.visible_rows();
    let mut spans = vec![Span::raw(format!(
        "tracer  {} processes  every {}",
        rows.len(),
        crate::output::text::duration(app.interval.as_nanos() as u64)
    ))];
    if app.paused {
        spans.push(Span::styled("  PAUSED", theme.warn()));
    }
    if !app.model.syscalls_traced {
        spans.push(Span::styled("  syscalls: off (--syscalls or -p)", theme.dim()));
    }
    if app.model.lost_events > 0 {
        spans.push(Span::styled(format!("  lost events: {}", app.model.lost_events), theme.warn()));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), title);

    let columns = columns_for(table_area.width);
    let header = Row::new(columns.iter().map(|c| {
        let marker = if *c == app.sort { if app.descending { "v" } else { "^" } } else { "" };
        Cell::from(format!("{}{marker}", c.title()))
    }))
    .style(theme.header());
    // Only the rows that fit are built, scrolled to keep the selection shown.
    let fits = usize::from(table_area.height.saturating_sub(1)).max(1);
    let offset = app.selected.saturating_sub(fits - 1);
    let body = rows.iter().skip(offset).take(fits).map(|r| {
        Row::new(columns.iter().map(|c| {
            Cell::from(match c {
                Column::Pid => r.pid.to_string(),
                Column::Command => {
                    if r.exited { format!("{} (exited)", r.comm) } else { r.comm.clone() }
                }
                Column::Threads => r.threads.to_string(),
                Column::Cpu => pct(r.cpu_pct),
                Column::Runq => pct(r.runq_pct),
                Column::RunqP50 => latency(r.runq_p50),
                Column::RunqP99 => latency(r.runq_p99),
                Column::RunqMax => latency(r.runq_max),
                Column::IoWait => pct(r.iowait_pct),
                Column::Syscall => r.syscall_pct.map_or_else(|| "-".into(), pct),
                Column::TopSyscall => r.top_syscall.clone().unwrap_or_else(|| "-".into()),
            })
        }))
    });
    let widths = columns.iter().map(|c| match c {
        Column::Command => Constraint::Min(8),
        Column::TopSyscall => Constraint::Fill(1),
        other => Constraint::Length(width_of(*other)),
    });
    let table = Table::new(body, widths).header(header).row_highlight_style(theme.selected());
    let mut state = TableState::default().with_selected((!rows.is_empty()).then_some(app.selected - offset));
    frame.render_stateful_widget(table, table_area, &mut state);

    let footer_text = if app.editing_filter {
        format!("filter: {}_   (Enter: keep, Esc: clear)", app.filter)
    } else if let Some(status) = &app.status {
        status.clone()
    } else {
        let filter = if app.filter.is_empty() { String::new() } else { format!("[/{}] ", app.filter) };
        format!("{filter}q quit  / filter  space pause  +/- interval  </> sort  Enter detail  s spans  w write  ? help")
    };
    frame.render_widget(Paragraph::new(footer_text).style(theme.dim()), footer);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::tui::{
        app::{App, View},
        model::{Model, ProcessRow},
        render::tests::render,
    };

    fn app() -> App {
        let mut app = App::new(View::Processes, Duration::from_secs(1), false);
        app.update(Model {
            syscalls_traced: true,
            rows: vec![
                ProcessRow {
                    pid: 4242,
                    comm: "nginx".into(),
                    threads: 4,
                    cpu_pct: 87.5,
                    runq_pct: 12.25,
                    runq_p50: 1_500_000,
                    runq_p99: 9_800_000,
                    runq_max: 12_000_000,
                    iowait_pct: 3.0,
                    syscall_pct: Some(40.0),
                    top_syscall: Some("epoll_wait".into()),
                    exited: false,
                },
                ProcessRow { pid: 7, comm: "gone".into(), threads: 0, cpu_pct: 1.0, exited: true, ..Default::default() },
            ],
            ..Model::default()
        });
        app
    }

    #[test]
    fn table_has_headers_and_a_known_row_at_80x24() {
        let lines = render(&app(), 80, 24);
        assert!(lines[0].starts_with("tracer  2 processes  every 1.00 s"), "{}", lines[0]);
        let header = &lines[1];
        for title in ["PID", "COMMAND", "CPU%v", "RUNQ%", "RQ p99", "IOW%", "SYS%"] {
            assert!(header.contains(title), "{title} in {header}");
        }
        let row = lines.iter().find(|l| l.trim_start().starts_with("4242")).expect("nginx row");
        for value in ["nginx", "87.5", "12.2", "9.8 ms", "3.0", "40.0"] {
            assert!(row.contains(value), "{value} in {row}");
        }
        assert!(lines.iter().any(|l| l.contains("gone (exited)")));
        assert!(lines[23].starts_with("q quit"), "{}", lines[23]);
    }

    #[test]
    fn narrow_terminals_drop_secondary_columns() {
        let lines = render(&app(), 50, 10);
        assert!(lines[1].contains("PID") && lines[1].contains("CPU%") && lines[1].contains("RQ p99"), "{}", lines[1]);
        assert!(!lines[1].contains("TOP SYSCALL"));
        assert!(lines.iter().any(|l| l.contains("4242")));
        // Smaller than anything sensible still renders without panicking.
        render(&app(), 10, 3);
    }

    #[test]
    fn selection_scrolls_long_lists() {
        let mut app = App::new(View::Processes, Duration::from_secs(1), false);
        let rows = (1..=100).map(|pid| ProcessRow { pid, comm: format!("p{pid}"), cpu_pct: pid as f64, ..Default::default() });
        app.update(Model { rows: rows.collect(), ..Model::default() });
        app.selected = 60;
        let lines = render(&app, 80, 24);
        let selected_pid = app.visible_rows()[60].pid.to_string();
        assert!(lines.iter().any(|l| l.split_whitespace().next() == Some(selected_pid.as_str())), "{lines:?}");
        assert!(!lines.iter().any(|l| l.split_whitespace().next() == Some("100")), "top rows scrolled away");
    }

    #[test]
    fn pause_filter_and_syscalls_off_are_shown() {
        let mut app = app();
        app.paused = true;
        app.model.syscalls_traced = false;
        app.editing_filter = true;
        app.filter = "ngi".into();
        let lines = render(&app, 80, 24);
        assert!(lines[0].contains("PAUSED"), "{}", lines[0]);
        assert!(lines[0].contains("syscalls: off"), "{}", lines[0]);
        assert!(lines[23].starts_with("filter: ngi_"), "{}", lines[23]);
        assert!(!lines.iter().any(|l| l.contains("gone")), "filtered out");
    }
}
