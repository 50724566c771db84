//! The live view's own CPU (in tmux, refreshing every second) next to
//! `tracer record`'s, with many processes alive.
use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};

use super::{Background, BenchArgs, Config, alternate, cpu_seconds};
use crate::{setup, util};

/// `tracer` (the live view) in a detached tmux session; killed on drop.
struct LiveView {
    session: String,
    pid: u32,
}

impl LiveView {
    fn start(tracer: &Path) -> Result<LiveView> {
        let session = format!("tracer-bench-{}", std::process::id());
        util::run_checked(
            Command::new("tmux")
                .args(["new-session", "-d", "-s", &session, "-x", "160", "-y", "50"])
                .arg(tracer),
        )?;
        let out = Command::new("tmux").args(["list-panes", "-t", &session, "-F", "#{pane_pid}"]).output()?;
        let pid = String::from_utf8_lossy(&out.stdout).trim().parse().context("tmux pane pid")?;
        Ok(LiveView { session, pid })
    }
}

impl Drop for LiveView {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.session]).status();
    }
}

pub fn tui_cost(built: &setup::Built, args: &BenchArgs) -> Result<()> {
    if util::which("tmux").is_none() {
        bail!("the live-view benchmark runs tracer in tmux: `apt-get install tmux`");
    }
    let mut crowd = Vec::new();
    for _ in 0..args.processes {
        crowd.push(
            Command::new(&built.load_helper)
                .args(["sleepers", "1", "1000"])
                .stdout(Stdio::null())
                .spawn()
                .context("starting the idle processes")?,
        );
    }
    let report = std::env::temp_dir().join("tracer-bench-tui.json");
    let window = Duration::from_secs(args.tui_seconds);
    let measure = |pid: u32| -> Result<f64> {
        // Let it start and settle before measuring.
        std::thread::sleep(Duration::from_secs(3));
        let before = cpu_seconds(pid)?;
        std::thread::sleep(window);
        Ok((cpu_seconds(pid)? - before) * 100.0 / window.as_secs_f64())
    };
    let configs = [Config { name: "tracer (live view, 1 s)", start: None }, Config { name: "tracer record", start: None }];
    let result = alternate(&configs, 3, "% of a CPU", |config| {
        if config.name.starts_with("tracer record") {
            let mut cmd = Command::new(&built.tracer);
            cmd.args(["record", "--out"]).arg(&report);
            let bg = Background::start(cmd, "Recording")?;
            let cpu = measure(bg.pid())?;
            bg.stop()?;
            Ok(cpu)
        } else {
            let view = LiveView::start(&built.tracer)?;
            measure(view.pid)
        }
    });
    for mut child in crowd {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_file(&report);
    result
}
