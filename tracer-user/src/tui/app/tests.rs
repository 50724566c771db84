use super::*;

fn row(pid: u32, comm: &str, cpu: f64) -> ProcessRow {
    ProcessRow { pid, comm: comm.into(), cpu_pct: cpu, threads: 1, ..Default::default() }
}

fn app_with_rows() -> App {
    let mut app = App::new(View::Processes, Duration::from_secs(1), true);
    app.update(Model {
        rows: vec![row(10, "nginx", 50.0), row(20, "postgres", 80.0), row(30, "nginx-worker", 5.0)],
        ..Model::default()
    });
    app
}

fn pids(app: &App) -> Vec<u32> {
    app.visible_rows().iter().map(|r| r.pid).collect()
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

#[test]
fn sorts_by_cpu_then_by_any_column() {
    let mut app = app_with_rows();
    assert_eq!(pids(&app), vec![20, 10, 30], "CPU% descending by default");
    app.handle_action(Action::SortLeft);
    app.handle_action(Action::SortLeft);
    assert_eq!(app.sort, Column::Command);
    assert_eq!(pids(&app), vec![10, 30, 20], "names ascending");
    app.handle_action(Action::ReverseSort);
    assert_eq!(pids(&app), vec![20, 30, 10]);
    app.handle_action(Action::SortRight);
    assert_eq!(app.sort, Column::Threads);
}

#[test]
fn filter_by_name_or_pid() {
    let mut app = app_with_rows();
    assert_eq!(app.action_for(key(KeyCode::Char('/'))), Some(Action::StartFilter));
    app.handle_action(Action::StartFilter);
    for c in "ngi".chars() {
        let action = app.action_for(key(KeyCode::Char(c))).unwrap();
        app.handle_action(action);
    }
    assert_eq!(pids(&app), vec![10, 30]);
    app.handle_action(Action::FilterDone);
    assert!(!app.editing_filter);
    assert_eq!(app.action_for(key(KeyCode::Char('q'))), Some(Action::Quit), "q quits again");
    app.handle_action(Action::StartFilter);
    app.handle_action(Action::FilterChar('2'));
    assert_eq!(pids(&app), vec![20], "pid prefix");
    app.handle_action(Action::FilterCancel);
    assert_eq!(pids(&app).len(), 3);
}

#[test]
fn pause_freezes_the_displayed_data() {
    let mut app = app_with_rows();
    assert_eq!(app.action_for(key(KeyCode::Char(' '))), Some(Action::TogglePause));
    app.handle_action(Action::TogglePause);
    app.update(Model { rows: vec![row(99, "new", 1.0)], ..Model::default() });
    assert_eq!(pids(&app), vec![20, 10, 30]);
    app.handle_action(Action::TogglePause);
    app.update(Model { rows: vec![row(99, "new", 1.0)], ..Model::default() });
    assert_eq!(pids(&app), vec![99]);
}

#[test]
fn enter_opens_the_selected_process_and_escape_returns() {
    let mut app = app_with_rows();
    app.handle_action(Action::Down);
    assert_eq!(app.action_for(key(KeyCode::Enter)), Some(Action::Open));
    app.handle_action(Action::Open);
    assert_eq!(app.view, View::Detail(10));
    assert_eq!(app.detail_pid(), Some(10));
    app.handle_action(Action::NextMetric);
    assert_eq!(app.metric, Metric::Preempted);
    app.handle_action(Action::PrevMetric);
    app.handle_action(Action::PrevMetric);
    assert_eq!(app.metric, Metric::BlockIo);
    assert_eq!(app.action_for(key(KeyCode::Esc)), Some(Action::Back));
    app.handle_action(Action::Back);
    assert_eq!(app.view, View::Processes);
}

#[test]
fn interval_steps_and_reports_the_change() {
    let mut app = app_with_rows();
    assert_eq!(app.action_for(key(KeyCode::Char('+'))), Some(Action::Slower));
    assert_eq!(app.handle_action(Action::Slower), Effect::IntervalChanged);
    assert_eq!(app.interval, Duration::from_secs(2));
    app.handle_action(Action::Faster);
    app.handle_action(Action::Faster);
    app.handle_action(Action::Faster);
    assert_eq!(app.handle_action(Action::Faster), Effect::None, "250 ms is the floor");
    assert_eq!(app.interval, Duration::from_millis(250));
}

#[test]
fn spans_view_opens_with_s_and_returns_where_it_came_from() {
    let mut app = app_with_rows();
    app.handle_action(Action::Down);
    app.handle_action(Action::Open);
    assert_eq!(app.action_for(key(KeyCode::Char('s'))), Some(Action::ShowSpans));
    app.handle_action(Action::ShowSpans);
    assert_eq!(app.view, View::Spans);
    app.handle_action(Action::Back);
    assert_eq!(app.view, View::Detail(10), "back to the detail it came from");
    // c opens the CPUs, also from the spans, and Esc still goes back.
    assert_eq!(app.action_for(key(KeyCode::Char('c'))), Some(Action::ShowCpus));
    app.handle_action(Action::ShowSpans);
    app.handle_action(Action::ShowCpus);
    assert_eq!(app.view, View::Cpus);
    app.handle_action(Action::Back);
    assert_eq!(app.view, View::Detail(10));
}

#[test]
fn recent_spans_are_bounded_and_sorted_slowest_first() {
    let mut app = app_with_rows();
    let span = |wall_ms| crate::model::spans::test_span(wall_ms, wall_ms, 0, crate::model::spans::Verdict::OnCpu);
    app.add_spans((1..=600).map(span).collect());
    assert_eq!(app.spans.len(), RECENT_SPANS);
    assert_eq!(app.slowest_spans()[0].wall_ns, 600_000_000);
    app.handle_action(Action::TogglePause);
    app.add_spans(vec![span(10_000)]);
    assert_eq!(app.slowest_spans()[0].wall_ns, 600_000_000, "paused");
}

#[test]
fn quit_write_and_help_keys() {
    let app = app_with_rows();
    let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
    assert_eq!(app.action_for(ctrl_c), Some(Action::Quit));
    assert_eq!(app.action_for(key(KeyCode::Char('w'))), Some(Action::WriteReport));
    assert_eq!(app.action_for(key(KeyCode::Char('?'))), Some(Action::ToggleHelp));
    let mut app = app;
    assert_eq!(app.handle_action(Action::Quit), Effect::Quit);
    assert_eq!(app.handle_action(Action::WriteReport), Effect::WriteReport);
    app.handle_action(Action::ToggleHelp);
    assert!(app.show_help);
    app.handle_action(Action::Back);
    assert!(!app.show_help, "Esc closes help first");
}

#[test]
fn a_status_message_stays_until_the_next_key() {
    let mut app = app_with_rows();
    app.handle_action(Action::ShowSpans);
    app.handle_action(Action::DumpSpan);
    assert_eq!(app.status, None, "no span selected: nothing to say");
    app.status = Some("report written to run.json".into());
    app.handle_action(Action::Down);
    assert_eq!(app.status, None, "the key help is back after the next key");
    // `d` without a timeline says why in the same key's message.
    app.add_spans(vec![crate::model::spans::test_span(7, 7, 0, crate::model::spans::Verdict::OnCpu)]);
    app.handle_action(Action::DumpSpan);
    assert!(app.status.as_deref().is_some_and(|s| s.contains("no timeline")), "{:?}", app.status);
}
