//! The slowest recent request spans: wall time, a bar of where it went,
//! the verdict, and who held the CPU while it waited; Enter on the
//! selected one shows its timeline (`gantt`).
use ratatui::{
    Frame,
    layout::{Constraint, Layout},
    style::{Color, Style},
    text::{Line, Span},
    widgets::Paragraph,
};

use super::Theme;
use crate::{
    model::spans::{SpanRecord, Verdict},
    output::text::duration,
    tui::app::App,
};

/// (part, glyph, colour) in the order the bar draws them.
const PARTS: [(&str, char, Color); 7] = [
    ("on-cpu", '#', Color::Green),
    ("runq", 'R', Color::Red),
    ("iowait", 'I', Color::Yellow),
    ("other D", 'D', Color::Magenta),
    ("downstream", '>', Color::Cyan),
    ("between threads", '~', Color::Gray),
    ("sleep", '.', Color::Blue),
];

fn part_values(span: &SpanRecord) -> [u64; 7] {
    [
        span.on_cpu_ns,
        span.runq_wait_ns,
        span.iowait_ns,
        span.uninterruptible_ns,
        span.downstream_ns,
        span.between_threads_ns,
        span.sleep_ns,
    ]
}

/// A bar of `width` cells split in proportion to the span's parts.
fn bar<'a>(span: &SpanRecord, width: usize, theme: &Theme) -> Vec<Span<'a>> {
    let values = part_values(span);
    let total: u64 = values.iter().sum::<u64>().max(1);
    let mut cells = Vec::new();
    let mut used = 0;
    for (i, ((_, glyph, color), value)) in PARTS.iter().zip(values).enumerate() {
        let n = if i == PARTS.len() - 1 {
            width - used
        } else {
            ((value as f64 / total as f64) * width as f64).round() as usize
        }
        .min(width - used);
        used += n;
        if n > 0 {
            let style = if theme.color { Style::new().fg(*color) } else { Style::new() };
            cells.push(Span::styled(glyph.to_string().repeat(n), style));
        }
    }
    cells
}

/// Per span name and second (newest last): requests, those within the
/// objective, and the verdicts of the misses.
fn goodput_lines<'a>(app: &App, slo_ns: u64, theme: &Theme) -> Vec<Line<'a>> {
    let heading = format!("goodput within {}, per second", duration(slo_ns));
    let mut lines =
        vec![Line::from(format!("{heading:<27}{:>17} {:>9} {:>6}   missed, by verdict", "requests", "within", "%")).style(theme.dim())];
    if app.goodput.is_empty() {
        lines.push(Line::from("no request has finished yet"));
    }
    for row in &app.goodput {
        let ratio = 100.0 * row.tally.goodput_ratio();
        let style = if row.tally.missed.is_empty() { Style::new() } else { theme.warn() };
        lines.push(Line::from(vec![
            Span::raw(format!(
                "{:<16} {}  {:>17} {:>9} {:>6.1}   ",
                row.name.chars().take(16).collect::<String>(),
                row.at,
                row.tally.requests,
                row.tally.within_slo,
                ratio
            )),
            Span::styled(row.tally.missed_mix(), style),
        ]));
    }
    lines.push(Line::from(""));
    lines
}

pub fn draw(frame: &mut Frame, app: &App, theme: &Theme) {
    let goodput_height = app.slo_ns.map_or(0, |_| app.goodput.len().max(1) as u16 + 2);
    let [title, goodput, legend, list, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(goodput_height),
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    if let Some(slo_ns) = app.slo_ns {
        frame.render_widget(Paragraph::new(goodput_lines(app, slo_ns, theme)), goodput);
    }
    let mut heading = vec![Span::raw(format!("tracer  slowest of the last {} spans", app.spans.len()))];
    if app.paused {
        heading.push(Span::styled("  PAUSED", theme.warn()));
    }
    frame.render_widget(Paragraph::new(Line::from(heading)), title);
    let key: Vec<String> = PARTS.iter().map(|(name, glyph, _)| format!("{glyph} {name}")).collect();
    frame.render_widget(Paragraph::new(format!("bar: {}", key.join("  "))).style(theme.dim()), legend);

    let mut lines = Vec::new();
    if !app.spans_traced {
        lines.push(Line::from(
            "No spans: open the live view on an instrumented process (tracer -p PID); see docs/spans.md.",
        ));
    }
    let width = usize::from(list.width);
    let bar_width = width.saturating_sub(62).clamp(10, 40);
    let height = usize::from(list.height).saturating_sub(lines.len()).max(1);
    let first = app.span_selected.saturating_sub(height - 1);
    for (i, span) in app.slowest_spans().into_iter().enumerate().skip(first).take(height) {
        let mut cells = vec![Span::raw(format!(
            "{:<16} {:>7} {:>9} ",
            span.name.chars().take(16).collect::<String>(),
            span.tid,
            duration(span.wall_ns)
        ))];
        cells.push(Span::raw("|"));
        cells.extend(bar(span, bar_width, theme));
        cells.push(Span::raw("| "));
        let verdict_style = if matches!(span.verdict, Verdict::CpuContention | Verdict::CpuStolen | Verdict::CpuThrottled) {
            theme.warn()
        } else {
            Style::new()
        };
        cells.push(Span::styled(format!("{:<14}", span.verdict), verdict_style));
        if let Some(limit) = span.throttle.as_ref().filter(|_| span.verdict == Verdict::CpuThrottled) {
            cells.push(Span::raw(format!(" {} cpu.max {}", limit.cgroup, limit.cpu_max)));
        } else if let Some(top) = span.blame.iter().find(|h| h.pid != span.pid) {
            cells.push(Span::raw(format!(" {} {}", top.comm, duration(top.ns))));
        }
        let line = Line::from(cells);
        lines.push(if i == app.span_selected { line.style(theme.selected()) } else { line });
    }
    frame.render_widget(Paragraph::new(lines), list);
    let keys = app.status.clone().unwrap_or_else(|| {
        "Up/Down select  Enter its timeline  d its Perfetto trace  Esc back  space pause  w write  q quit".into()
    });
    frame.render_widget(Paragraph::new(keys).style(theme.dim()), footer);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{
        model::{
            goodput::Goodput,
            spans::{Verdict, test_span as span},
        },
        tui::{
            app::{App, GoodputRow, View},
            render::tests::render,
        },
    };

    #[test]
    fn slowest_spans_with_breakdown_bar_verdict_and_blame() {
        let mut app = App::new(View::Spans, Duration::from_secs(1), false);
        app.spans_traced = true;
        app.add_spans(vec![span(20, 20, 0, Verdict::OnCpu), span(80, 20, 60, Verdict::CpuContention)]);
        let lines = render(&app, 120, 12);
        assert!(lines[0].starts_with("tracer  slowest of the last 2 spans"), "{}", lines[0]);
        let slowest = &lines[2];
        assert!(slowest.starts_with("GET /cpu"), "{slowest}");
        assert!(slowest.contains("80.0 ms") && slowest.contains("cpu-contention"), "{slowest}");
        assert!(slowest.contains("load-gen 60.0 ms"), "{slowest}");
        // 40 cells: a quarter on CPU, three quarters waiting for it.
        let bar: String = slowest.split('|').nth(1).unwrap().to_owned();
        assert_eq!(bar.chars().filter(|c| *c == '#').count(), 10, "{bar}");
        assert_eq!(bar.chars().filter(|c| *c == 'R').count(), 30, "{bar}");
        assert!(lines[3].contains("20.0 ms") && lines[3].contains("on-cpu"), "{}", lines[3]);
    }

    #[test]
    fn with_an_slo_a_goodput_table_per_name_and_second_comes_first() {
        let mut app = App::new(View::Spans, Duration::from_secs(1), false);
        app.spans_traced = true;
        app.slo_ns = Some(15_000_000);
        let mut goodput = Goodput::new(15_000_000);
        for (wall_ms, verdict) in [(5, Verdict::OnCpu), (30, Verdict::CpuContention), (20, Verdict::OnCpu)] {
            goodput.add(&span(wall_ms, 0, 0, verdict));
        }
        app.goodput = goodput
            .recent(5)
            .into_iter()
            .map(|(name, second)| GoodputRow { name, at: "12:00:01".into(), tally: second.tally })
            .collect();
        app.add_spans(vec![span(30, 10, 20, Verdict::CpuContention)]);
        let lines = render(&app, 120, 12);
        assert!(lines[1].starts_with("goodput within 15.0 ms, per second"), "{}", lines[1]);
        let row: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(
            row,
            ["GET", "/cpu", "12:00:01", "3", "1", "33.3", "1", "cpu-contention,", "1", "on-cpu"],
            "{}",
            lines[2]
        );
        assert!(lines[5].starts_with("GET /cpu") && lines[5].contains("30.0 ms"), "the slowest spans follow: {lines:?}");
    }

    #[test]
    fn without_markers_the_view_says_how_to_get_spans() {
        let app = App::new(View::Spans, Duration::from_secs(1), false);
        let lines = render(&app, 100, 12);
        assert!(lines[2].starts_with("No spans: open the live view on an instrumented process"), "{}", lines[2]);
    }
}
