//! The key help, drawn over the current view.
use ratatui::{
    Frame,
    layout::Constraint,
    widgets::{Block, Borders, Clear, Paragraph},
};

use super::Theme;

const KEYS: &[(&str, &str)] = &[
    ("q, Ctrl-C", "quit"),
    ("Up/Down, j/k", "select a process"),
    ("Enter", "open its detail view"),
    ("Esc", "back to the process list"),
    ("Tab, Left/Right", "detail: next/previous metric"),
    ("/", "filter by name or PID"),
    ("< >", "sort by the column left/right"),
    ("r", "reverse the sort order"),
    ("space", "pause the display (recording goes on)"),
    ("+ -", "longer/shorter interval"),
    ("w", "write the JSON report (as tracer record)"),
    ("s", "slowest recent request spans (with -p PID)"),
    ("Enter (spans)", "the selected span's timeline; Esc back"),
    ("d (spans)", "the selected span's window as a Perfetto trace in ."),
    ("c", "CPUs: busy share and run-queue length of each"),
    ("?", "this help"),
];

pub fn draw(frame: &mut Frame, theme: &Theme) {
    let area = frame.area().centered(Constraint::Length(60), Constraint::Length(KEYS.len() as u16 + 2));
    let text: Vec<String> = KEYS.iter().map(|(k, v)| format!("{k:>16}  {v}")).collect();
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(text.join("\n")).block(Block::default().borders(Borders::ALL).title(" keys ").style(theme.dim())),
        area,
    );
}
