//! Drawing. Each view is a function of the `App` state only.
mod cpus;
mod detail;
mod gantt;
mod help;
mod processes;
mod spans;

use ratatui::{
    Frame,
    style::{Color, Modifier, Style},
};

use super::app::{App, View};

/// Styles, all plain when NO_COLOR is set.
pub struct Theme {
    pub color: bool,
}

impl Theme {
    pub fn header(&self) -> Style {
        if self.color {
            Style::new().fg(Color::Black).bg(Color::Cyan).add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }
    pub fn selected(&self) -> Style {
        if self.color {
            Style::new().bg(Color::DarkGray).add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }
    pub fn warn(&self) -> Style {
        if self.color { Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD) } else { Style::new() }
    }
    pub fn dim(&self) -> Style {
        if self.color { Style::new().fg(Color::Gray) } else { Style::new() }
    }
}

pub fn draw(frame: &mut Frame, app: &App) {
    let theme = Theme { color: app.color };
    match app.view {
        View::Processes => processes::draw(frame, app, &theme),
        View::Detail(pid) => detail::draw(frame, app, pid, &theme),
        View::Spans => match &app.gantt {
            Some(view) => gantt::draw(frame, view, &theme),
            None => spans::draw(frame, app, &theme),
        },
        View::Cpus => cpus::draw(frame, app, &theme),
    }
    if app.show_help {
        help::draw(frame, &theme);
    }
}

/// A percentage for narrow columns.
fn pct(value: f64) -> String {
    if value >= 99.95 { format!("{value:.0}") } else { format!("{value:.1}") }
}

/// A latency for narrow columns ("-" when nothing was measured).
fn latency(ns: u64) -> String {
    if ns == 0 { "-".into() } else { crate::output::text::duration(ns) }
}

#[cfg(test)]
pub mod tests {
    use ratatui::{Terminal, backend::TestBackend};

    use super::*;

    /// Renders `app` on a `width` x `height` test terminal and returns its
    /// lines as text.
    pub fn render(app: &App, width: u16, height: u16) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|frame| draw(frame, app)).unwrap();
        let buffer = terminal.backend().buffer();
        (0..height)
            .map(|y| (0..width).map(|x| buffer[(x, y)].symbol().to_owned()).collect::<String>())
            .collect()
    }
}
