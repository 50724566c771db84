//! State of the live view and how keys change it. Nothing here touches the
//! terminal or the kernel, so every key's effect is unit-tested.
use std::{
    collections::{HashMap, HashSet, VecDeque},
    time::Duration,
};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::model::{Detail, GanttView, Metric, Model, ProcessRow};
use crate::{
    app::flight::FlightRecorder,
    model::{aggregate::Aggregator, cpus::CpuWindow, goodput::Tally, spans::SpanRecord},
};

/// Intervals the view can refresh at (`+` / `-` step through them).
pub const INTERVALS_MS: [u64; 6] = [250, 500, 1_000, 2_000, 5_000, 10_000];
/// Intervals of p99 history kept per chart.
pub const HISTORY_LEN: usize = 60;
/// Recent spans kept for the spans view (the slowest of them are shown).
pub const RECENT_SPANS: usize = 500;

/// One second of one span name in the spans view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoodputRow {
    pub name: String,
    /// The second, as the local time it began (HH:MM:SS).
    pub at: String,
    pub tally: Tally,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Processes,
    Detail(u32),
    Spans,
    Cpus,
}

/// Columns of the process table, in display order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Pid,
    Command,
    Threads,
    Cpu,
    Runq,
    RunqP50,
    RunqP99,
    RunqMax,
    IoWait,
    Syscall,
    TopSyscall,
}

impl Column {
    pub const ALL: [Column; 11] = [
        Column::Pid,
        Column::Command,
        Column::Threads,
        Column::Cpu,
        Column::Runq,
        Column::RunqP50,
        Column::RunqP99,
        Column::RunqMax,
        Column::IoWait,
        Column::Syscall,
        Column::TopSyscall,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Column::Pid => "PID",
            Column::Command => "COMMAND",
            Column::Threads => "THR",
            Column::Cpu => "CPU%",
            Column::Runq => "RUNQ%",
            Column::RunqP50 => "RQ p50",
            Column::RunqP99 => "RQ p99",
            Column::RunqMax => "RQ max",
            Column::IoWait => "IOW%",
            Column::Syscall => "SYS%",
            Column::TopSyscall => "TOP SYSCALL",
        }
    }

    fn compare(self, a: &ProcessRow, b: &ProcessRow) -> std::cmp::Ordering {
        let f = |x: f64, y: f64| x.total_cmp(&y);
        match self {
            Column::Pid => a.pid.cmp(&b.pid),
            Column::Command => a.comm.cmp(&b.comm),
            Column::Threads => a.threads.cmp(&b.threads),
            Column::Cpu => f(a.cpu_pct, b.cpu_pct),
            Column::Runq => f(a.runq_pct, b.runq_pct),
            Column::RunqP50 => a.runq_p50.cmp(&b.runq_p50),
            Column::RunqP99 => a.runq_p99.cmp(&b.runq_p99),
            Column::RunqMax => a.runq_max.cmp(&b.runq_max),
            Column::IoWait => f(a.iowait_pct, b.iowait_pct),
            Column::Syscall => f(a.syscall_pct.unwrap_or(0.0), b.syscall_pct.unwrap_or(0.0)),
            Column::TopSyscall => a.top_syscall.cmp(&b.top_syscall),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Quit,
    Up,
    Down,
    Open,
    Back,
    TogglePause,
    Faster,
    Slower,
    ToggleHelp,
    StartFilter,
    FilterChar(char),
    FilterBackspace,
    FilterDone,
    FilterCancel,
    SortLeft,
    SortRight,
    ReverseSort,
    NextMetric,
    PrevMetric,
    WriteReport,
    /// The selected span's window as a Perfetto trace (spans view).
    DumpSpan,
    ShowSpans,
    ShowCpus,
}

/// What the event loop must do after an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    None,
    Quit,
    WriteReport,
    IntervalChanged,
}

pub struct App {
    pub view: View,
    pub sort: Column,
    pub descending: bool,
    pub filter: String,
    pub editing_filter: bool,
    pub paused: bool,
    pub interval: Duration,
    pub show_help: bool,
    pub selected: usize,
    pub metric: Metric,
    pub status: Option<String>,
    pub model: Model,
    /// The detail last shown with data, kept when its process exits.
    pub detail: Option<Detail>,
    /// p99 per interval, per (process, metric), newest last.
    pub history: HashMap<(u32, Metric), VecDeque<u64>>,
    pub color: bool,
    /// Spans finished recently, newest last.
    pub spans: VecDeque<SpanRecord>,
    /// Span markers are attached (`tracer -p PID` of an instrumented process).
    pub spans_traced: bool,
    /// `--slo`: the objective, and goodput per span name over the last
    /// seconds (the spans view's table).
    pub slo_ns: Option<u64>,
    pub goodput: Vec<GoodputRow>,
    /// Each CPU over the last interval (the `c` pane); empty without BTF.
    pub cpus: Vec<CpuWindow>,
    /// The selected line of the spans view (slowest first).
    pub span_selected: usize,
    /// The traced threads' recent timeline and spans (with -p, when the
    /// kernel streams them), from which Enter on a span cuts its gantt
    /// chart and `d` writes its Perfetto trace.
    pub flight: Option<FlightRecorder>,
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC: spans are dated in the one,
    /// state changes in the other.
    pub monotonic_to_unix_ns: i128,
    /// The chart open over the spans view (Enter; Esc or Enter closes it).
    pub gantt: Option<GanttView>,
    /// Where Esc goes from the spans or CPUs view.
    overlay_return: View,
}

impl App {
    pub fn new(view: View, interval: Duration, color: bool) -> App {
        App {
            view,
            sort: Column::Cpu,
            descending: true,
            filter: String::new(),
            editing_filter: false,
            paused: false,
            interval,
            show_help: false,
            selected: 0,
            metric: Metric::Runq,
            status: None,
            model: Model::default(),
            detail: None,
            history: HashMap::new(),
            color,
            spans: VecDeque::new(),
            spans_traced: false,
            slo_ns: None,
            goodput: Vec::new(),
            cpus: Vec::new(),
            span_selected: 0,
            flight: None,
            monotonic_to_unix_ns: 0,
            gantt: None,
            overlay_return: View::Processes,
        }
    }

    /// The chart of the selected span.
    fn open_gantt(&mut self) {
        let Some(span) = self.slowest_spans().get(self.span_selected).map(|s| (*s).clone()) else { return };
        self.gantt = Some(GanttView::of(span, self.flight.as_ref().map(|f| f.ring()), self.monotonic_to_unix_ns));
    }

    /// `d`: the selected span's window as a Perfetto trace in the current
    /// directory, once the window has been drained (`--after` later).
    fn dump_selected_span(&mut self) {
        let Some(span) = self.slowest_spans().get(self.span_selected).map(|s| (*s).clone()) else { return };
        self.status = Some(match &mut self.flight {
            Some(flight) => {
                flight.dump(&span);
                format!("writing span {} ({}) as a Perfetto trace…", span.span_id, span.name)
            }
            None => "no timeline to write: the live view keeps one with -p PID".into(),
        });
    }

    /// Spans that finished during the last interval.
    pub fn add_spans(&mut self, spans: Vec<SpanRecord>) {
        if self.paused {
            return;
        }
        self.spans.extend(spans);
        while self.spans.len() > RECENT_SPANS {
            self.spans.pop_front();
        }
    }

    /// The recent spans, slowest first.
    pub fn slowest_spans(&self) -> Vec<&SpanRecord> {
        let mut spans: Vec<&SpanRecord> = self.spans.iter().collect();
        spans.sort_by_key(|s| std::cmp::Reverse(s.wall_ns));
        spans
    }

    /// The pid whose detail the model should carry, if any.
    pub fn detail_pid(&self) -> Option<u32> {
        match self.view {
            View::Detail(pid) => Some(pid),
            View::Processes | View::Spans | View::Cpus => None,
        }
    }

    /// Rows after the filter, in the chosen order.
    pub fn visible_rows(&self) -> Vec<&ProcessRow> {
        let needle = self.filter.to_lowercase();
        let mut rows: Vec<&ProcessRow> = self
            .model
            .rows
            .iter()
            .filter(|r| {
                needle.is_empty()
                    || r.comm.to_lowercase().contains(&needle)
                    || r.pid.to_string().starts_with(&needle)
            })
            .collect();
        rows.sort_by(|a, b| {
            let order = self.sort.compare(a, b).then(a.pid.cmp(&b.pid));
            if self.descending { order.reverse() } else { order }
        });
        rows
    }

    /// New data for an interval (ignored while paused, except to keep the
    /// last data of a process that exited).
    pub fn update(&mut self, model: Model) {
        if self.paused {
            return;
        }
        for row in &model.rows {
            push_history(&mut self.history, (row.pid, Metric::Runq), row.runq_p99);
        }
        if let Some(detail) = &model.detail {
            let runq_done = model.rows.iter().any(|r| r.pid == detail.pid);
            for (metric, hist) in &detail.hists {
                if *metric != Metric::Runq || !runq_done {
                    push_history(&mut self.history, (detail.pid, *metric), hist.percentile(0.99));
                }
            }
            match (&mut self.detail, detail.has_data() || !detail.exited) {
                // The process is gone: keep its last data, marked exited.
                (Some(kept), false) if kept.pid == detail.pid => kept.exited = true,
                _ => self.detail = Some(detail.clone()),
            }
        }
        self.model = model;
        let shown = self.visible_rows().len();
        self.selected = self.selected.min(shown.saturating_sub(1));
    }

    /// Drops what the view no longer shows, so that churn cannot grow it:
    /// exited processes that have left the table are folded into the
    /// "other exited processes" entry (a `w` report still counts them), and
    /// their p99 histories go.
    pub fn forget_unshown(&mut self, agg: &mut Aggregator) {
        let shown: HashSet<u32> = (self.model.rows.iter().map(|r| r.pid))
            .chain(self.detail_pid())
            .chain(self.detail.as_ref().map(|d| d.pid))
            .collect();
        agg.fold_exited_processes(0, |pid| shown.contains(&pid));
        let live = agg.live_processes();
        self.history.retain(|(pid, _), _| shown.contains(pid) || live.contains(pid));
    }

    /// Maps a key to an action for the current mode.
    pub fn action_for(&self, key: KeyEvent) -> Option<Action> {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Some(Action::Quit);
        }
        if self.editing_filter {
            return match key.code {
                KeyCode::Enter => Some(Action::FilterDone),
                KeyCode::Esc => Some(Action::FilterCancel),
                KeyCode::Backspace => Some(Action::FilterBackspace),
                KeyCode::Char(c) => Some(Action::FilterChar(c)),
                _ => None,
            };
        }
        Some(match key.code {
            KeyCode::Char('q') => Action::Quit,
            KeyCode::Up | KeyCode::Char('k') => Action::Up,
            KeyCode::Down | KeyCode::Char('j') => Action::Down,
            KeyCode::Enter => Action::Open,
            KeyCode::Esc | KeyCode::Backspace => Action::Back,
            KeyCode::Char(' ') => Action::TogglePause,
            KeyCode::Char('+') | KeyCode::Char('=') => Action::Slower,
            KeyCode::Char('-') => Action::Faster,
            KeyCode::Char('?') | KeyCode::Char('h') => Action::ToggleHelp,
            KeyCode::Char('/') => Action::StartFilter,
            KeyCode::Char('<') | KeyCode::Char(',') => Action::SortLeft,
            KeyCode::Char('>') | KeyCode::Char('.') => Action::SortRight,
            KeyCode::Char('r') => Action::ReverseSort,
            KeyCode::Tab | KeyCode::Right => Action::NextMetric,
            KeyCode::BackTab | KeyCode::Left => Action::PrevMetric,
            KeyCode::Char('w') => Action::WriteReport,
            KeyCode::Char('s') => Action::ShowSpans,
            KeyCode::Char('c') => Action::ShowCpus,
            KeyCode::Char('d') if self.view == View::Spans => Action::DumpSpan,
            _ => return None,
        })
    }

    /// Opens the spans or CPUs view; Esc returns to the view it was opened from.
    fn show_overlay(&mut self, overlay: View) {
        if !matches!(self.view, View::Spans | View::Cpus) {
            self.overlay_return = self.view;
        }
        self.view = overlay;
    }

    pub fn handle_action(&mut self, action: Action) -> Effect {
        // A message stays until the next key, which has been read with it
        // in view; the key help it covers comes back.
        self.status = None;
        match action {
            Action::Quit => return Effect::Quit,
            Action::Up if self.view == View::Spans => self.span_selected = self.span_selected.saturating_sub(1),
            Action::Down if self.view == View::Spans => {
                self.span_selected = (self.span_selected + 1).min(self.spans.len().saturating_sub(1))
            }
            Action::Up => self.selected = self.selected.saturating_sub(1),
            Action::Down => {
                let last = self.visible_rows().len().saturating_sub(1);
                self.selected = (self.selected + 1).min(last);
            }
            Action::Open if self.view == View::Spans => {
                if self.gantt.take().is_none() {
                    self.open_gantt();
                }
            }
            Action::Open => {
                if let Some(pid) = self.visible_rows().get(self.selected).map(|r| r.pid) {
                    self.view = View::Detail(pid);
                    self.detail = None;
                    self.metric = Metric::Runq;
                }
            }
            Action::Back => {
                if self.show_help {
                    self.show_help = false;
                } else if self.gantt.is_some() {
                    self.gantt = None;
                } else if matches!(self.view, View::Spans | View::Cpus) {
                    self.view = self.overlay_return;
                } else {
                    self.view = View::Processes;
                }
            }
            Action::ShowSpans => self.show_overlay(View::Spans),
            Action::ShowCpus => {
                self.gantt = None;
                self.show_overlay(View::Cpus)
            }
            Action::TogglePause => self.paused = !self.paused,
            Action::Faster | Action::Slower => {
                let now = self.interval.as_millis() as u64;
                let at = INTERVALS_MS.iter().position(|&ms| ms >= now).unwrap_or(INTERVALS_MS.len() - 1);
                let next = if action == Action::Faster {
                    at.saturating_sub(1)
                } else {
                    (at + 1).min(INTERVALS_MS.len() - 1)
                };
                let interval = Duration::from_millis(INTERVALS_MS[next]);
                if interval != self.interval {
                    self.interval = interval;
                    return Effect::IntervalChanged;
                }
            }
            Action::ToggleHelp => self.show_help = !self.show_help,
            Action::StartFilter => {
                self.editing_filter = true;
                self.filter.clear();
            }
            Action::FilterChar(c) => {
                self.filter.push(c);
                self.selected = 0;
            }
            Action::FilterBackspace => {
                self.filter.pop();
            }
            Action::FilterDone => self.editing_filter = false,
            Action::FilterCancel => {
                self.editing_filter = false;
                self.filter.clear();
            }
            Action::SortLeft | Action::SortRight => {
                let at = Column::ALL.iter().position(|&c| c == self.sort).unwrap_or(0);
                let next = if action == Action::SortLeft {
                    (at + Column::ALL.len() - 1) % Column::ALL.len()
                } else {
                    (at + 1) % Column::ALL.len()
                };
                self.sort = Column::ALL[next];
                // Text columns read best ascending, numbers largest first.
                self.descending = !matches!(self.sort, Column::Pid | Column::Command | Column::TopSyscall);
            }
            Action::ReverseSort => self.descending = !self.descending,
            Action::NextMetric | Action::PrevMetric => {
                let at = Metric::ALL.iter().position(|&m| m == self.metric).unwrap_or(0);
                let n = Metric::ALL.len();
                let next = if action == Action::NextMetric { (at + 1) % n } else { (at + n - 1) % n };
                self.metric = Metric::ALL[next];
            }
            Action::WriteReport => return Effect::WriteReport,
            Action::DumpSpan => self.dump_selected_span(),
        }
        Effect::None
    }
}

fn push_history(history: &mut HashMap<(u32, Metric), VecDeque<u64>>, key: (u32, Metric), value: u64) {
    let series = history.entry(key).or_default();
    series.push_back(value);
    while series.len() > HISTORY_LEN {
        series.pop_front();
    }
}

#[cfg(test)]
mod tests;
