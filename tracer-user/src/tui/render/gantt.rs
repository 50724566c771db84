//! A span's timeline as a text gantt chart (Enter in the spans view): a row
//! per thread it touched, its states along the span's wall time, and the
//! processes that held the CPU while it waited.
use ratatui::{
    Frame,
    style::{Color, Style},
    text::{Line, Span},
    widgets::Paragraph,
};

use super::Theme;
use crate::{
    model::gantt::{GanttRow, GanttState},
    output::text::duration,
    tui::model::GanttView,
};

/// Cells before a row's chart: TID and thread name.
const LABEL_WIDTH: usize = 24;

fn glyph(state: GanttState) -> (char, Color) {
    match state {
        GanttState::Running => ('#', Color::Green),
        GanttState::Runnable => ('R', Color::Red),
        GanttState::Throttled => ('T', Color::LightRed),
        GanttState::IdleWakeup => ('w', Color::Cyan),
        GanttState::Sleeping => ('.', Color::Blue),
        GanttState::IoWait => ('I', Color::Yellow),
        GanttState::Uninterruptible => ('D', Color::Magenta),
        GanttState::Unknown => ('?', Color::DarkGray),
    }
}

/// `width` cells over `[start, end)`: each stretch gets the cells between
/// its edges' positions, so that counts are proportional to durations and
/// every cell is drawn once.
fn chart<'a>(row: &GanttRow, start: u64, end: u64, width: usize, theme: &Theme) -> Vec<Span<'a>> {
    let span_ns = u128::from(end - start).max(1);
    let cell = |t: u64| ((u128::from(t - start) * width as u128 + span_ns / 2) / span_ns) as usize;
    row.stretches
        .iter()
        .filter_map(|s| {
            let n = cell(s.end).saturating_sub(cell(s.start));
            let (glyph, color) = glyph(s.state);
            let style = if theme.color { Style::new().fg(color) } else { Style::new() };
            (n > 0).then(|| Span::styled(glyph.to_string().repeat(n), style))
        })
        .collect()
}

/// The time axis under the rows: 0 at the chart's left, the span's wall
/// time at its right, its half in the middle.
fn axis(wall_ns: u64, width: usize) -> String {
    let (left, middle, right) = ("0".to_owned(), duration(wall_ns / 2), duration(wall_ns));
    let mut line = vec![' '; width + 2];
    line[0] = '|';
    line[width + 1] = '|';
    let mut put = |at: usize, text: &str| {
        for (i, c) in text.chars().enumerate() {
            if let Some(cell) = line.get_mut(at + i) {
                *cell = c;
            }
        }
    };
    put(1, &left);
    put((width + 2).saturating_sub(middle.len()) / 2, &middle);
    put((width + 1).saturating_sub(right.len()), &right);
    line.into_iter().collect()
}

pub fn lines<'a>(view: &GanttView, width: usize, theme: &Theme) -> Vec<Line<'a>> {
    let span = &view.span;
    let name = |id: u32| view.names.get(&id).cloned().unwrap_or_else(|| id.to_string());
    let mut lines = vec![Line::from(format!(
        "tracer  {}  tid {}  {}  {}",
        span.name,
        span.tid,
        duration(span.wall_ns),
        span.verdict
    ))];
    let legend: Vec<String> = GanttState::ALL
        .iter()
        .map(|&s| {
            let (glyph, _) = glyph(s);
            format!("{glyph} {}", s.label())
        })
        .collect();
    lines.push(Line::from(legend.join("  ")).style(theme.dim()));
    let Some(gantt) = &view.gantt else {
        lines.push(Line::from(
            "Its states are no longer kept (the live view keeps the last seconds of state changes), \
             or the kernel did not stream them.",
        ));
        lines.push(Line::from(format!(
            "What the span says: on CPU {}, runnable {}, I/O {}, sleeping {}.",
            duration(span.on_cpu_ns),
            duration(span.runq_wait_ns),
            duration(span.iowait_ns),
            duration(span.sleep_ns)
        )));
        return lines;
    };
    let chart_width = width.saturating_sub(LABEL_WIDTH + 2).max(10);
    for row in &gantt.rows {
        let label: String = format!("{:>7} {}", row.tid, name(row.tid)).chars().take(LABEL_WIDTH - 1).collect();
        let mut cells = vec![Span::raw(format!("{label:<LABEL_WIDTH$}|"))];
        cells.extend(chart(row, gantt.start_ns, gantt.end_ns, chart_width, theme));
        cells.push(Span::raw("|"));
        lines.push(Line::from(cells));
    }
    lines.push(Line::from(format!("{:LABEL_WIDTH$}{}", "", axis(span.wall_ns, chart_width))).style(theme.dim()));
    lines.push(Line::from(""));
    if gantt.holders.is_empty() {
        lines.push(Line::from("Nobody else held its CPU while it waited."));
    } else {
        lines.push(Line::from("held the CPU while it waited          time   of the span").style(theme.dim()));
    }
    let wall = gantt.end_ns - gantt.start_ns;
    for &(pid, ns) in &gantt.holders {
        let who: String = format!("{} ({pid})", name(pid)).chars().take(30).collect();
        lines.push(Line::from(format!("  {who:<30} {:>9} {:>8.1}%", duration(ns), 100.0 * ns as f64 / wall as f64)));
    }
    lines
}

pub fn draw(frame: &mut Frame, view: &GanttView, theme: &Theme) {
    let area = frame.area();
    let mut text = lines(view, usize::from(area.width), theme);
    text.truncate(usize::from(area.height.saturating_sub(1)));
    while text.len() < usize::from(area.height.saturating_sub(1)) {
        text.push(Line::from(""));
    }
    text.push(Line::from("Esc/Enter back to the spans  q quit").style(theme.dim()));
    frame.render_widget(Paragraph::new(text), area);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tracer_common::{OFF_CPU_PREEMPTED, OFF_CPU_SLEEP, TIMELINE_ON_CPU, TIMELINE_TRANSITION, TimelineEvent};

    use crate::{
        model::{
            flight::{FlightRing, RingLimits},
            spans::{SpanRecord, Verdict, test_span},
        },
        tui::{
            app::{Action, App, View},
            model::GanttView,
            render::tests::render,
        },
    };

    const MS: u64 = 1_000_000;

    fn change(tid: u32, ms: u64, state: u32) -> TimelineEvent {
        TimelineEvent { kind: TIMELINE_TRANSITION, tid, tgid: 100, ts_ns: ms * MS, value: state, ..Default::default() }
    }

    fn held(tid: u32, end_ms: u64, pid: u32, ms: u64) -> TimelineEvent {
        let kind = tracer_common::TIMELINE_HOLDER;
        TimelineEvent { kind, tid, tgid: 100, ts_ns: end_ms * MS, value: pid, ns: ms * MS, ..Default::default() }
    }

    /// A span of 80 ms on thread 101 that moved to thread 102: 101 ran
    /// 20 ms, waited 40 (load-gen 30, cron 10), ran 20; 102 slept 60 and
    /// ran 20.
    fn ring() -> FlightRing {
        let mut ring = FlightRing::new(RingLimits { keep_ns: 10_000 * MS, max_bytes: 1 << 20 });
        for e in [
            change(101, 100, TIMELINE_ON_CPU),
            change(101, 120, OFF_CPU_PREEMPTED),
            change(101, 160, TIMELINE_ON_CPU),
            held(101, 160, 812, 30),
            held(101, 160, 901, 10),
            change(102, 90, OFF_CPU_SLEEP),
            change(102, 160, TIMELINE_ON_CPU),
        ] {
            ring.push_event(&e);
        }
        ring
    }

    /// A span before anything the ring keeps (it begins at 10 ms).
    fn early_span() -> SpanRecord {
        let mut span = test_span(5, 5, 0, Verdict::OnCpu);
        span.start_unix_ns = 10 * MS + 1_000;
        span
    }

    fn app_with_gantt() -> App {
        let mut app = App::new(View::Spans, Duration::from_secs(1), false);
        app.spans_traced = true;
        let ring = ring();
        let mut span = test_span(80, 40, 40, Verdict::CpuContention);
        span.start_unix_ns = 100 * MS + 1_000;
        span.tid_end = 102;
        span.blame[0].pid = 812;
        app.add_spans(vec![early_span(), span.clone()]);
        // What Enter opens on the slowest, cut from the live view's ring.
        app.gantt = Some(GanttView::of(span, Some(&ring), 1_000));
        let view = app.gantt.as_mut().unwrap();
        view.names.extend([(101, "worker-1".to_owned()), (102, "worker-2".into()), (901, "cron".into())]);
        app
    }

    fn count(line: &str, glyph: char) -> usize {
        line.chars().filter(|&c| c == glyph).count()
    }

    #[test]
    fn enter_on_a_span_draws_a_row_per_thread_in_proportion_and_its_holders() {
        let app = app_with_gantt();
        // 80 ms over 80 cells: a cell per ms.
        let lines = render(&app, 80 + 24 + 2, 14);
        assert!(lines[0].starts_with("tracer  GET /cpu  tid 101  80.0 ms  cpu-contention"), "{}", lines[0]);
        let first = &lines[2];
        assert!(first.trim_start().starts_with("101 worker-1"), "{first}");
        assert_eq!((count(first, '#'), count(first, 'R')), (40, 40), "{first}");
        let running_then_waiting = first.split('|').nth(1).unwrap();
        assert!(running_then_waiting.starts_with(&"#".repeat(20)) && running_then_waiting.ends_with(&"#".repeat(20)));
        let second = &lines[3];
        assert!(second.trim_start().starts_with("102 worker-2"), "{second}");
        assert_eq!((count(second, '.'), count(second, '#')), (60, 20), "{second}");
        assert!(lines[4].contains("|0") && lines[4].contains("40.0 ms") && lines[4].contains("80.0 ms|"), "{}", lines[4]);
        let holders: Vec<Vec<&str>> = lines[7..9].iter().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(holders[0], ["load-gen", "(812)", "30.0", "ms", "37.5%"], "{lines:?}");
        assert_eq!(holders[1], ["cron", "(901)", "10.0", "ms", "12.5%"], "{lines:?}");
    }

    #[test]
    fn esc_or_enter_returns_to_the_spans_and_a_span_out_of_the_window_says_so() {
        let mut app = app_with_gantt();
        app.handle_action(Action::Back);
        assert!(app.gantt.is_none() && app.view == View::Spans);
        app.handle_action(Action::Open);
        app.handle_action(Action::Open);
        assert!(app.gantt.is_none(), "Enter closes it too");
        // The second slowest ran before anything the ring keeps; Enter
        // without a ring (no -p) says the same.
        assert!(GanttView::of(early_span(), Some(&ring()), 1_000).gantt.is_none());
        app.handle_action(Action::Down);
        app.handle_action(Action::Open);
        let lines = render(&app, 120, 10);
        assert!(lines[2].starts_with("Its states are no longer kept"), "{lines:?}");
        assert!(lines[3].starts_with("What the span says: on CPU 5.0 ms"), "{lines:?}");
    }
}
