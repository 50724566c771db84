//! The live view in a real terminal (tmux): it shows a known busy process
//! with its CPU, quits on `q` with status 0, and leaves the terminal as it
//! found it.
use std::{
    process::Command,
    thread::sleep,
    time::{Duration, Instant},
};

use tracer_tests::*;

struct Tmux {
    session: String,
}

impl Tmux {
    fn start(width: u16, height: u16) -> Tmux {
        let session = format!("tracer-it-{}", std::process::id());
        let status = Command::new("tmux")
            .args(["new-session", "-d", "-s", &session, "-x", &width.to_string(), "-y", &height.to_string()])
            .args(["env", "-i", "PATH=/usr/bin:/bin", "TERM=xterm-256color", "HOME=/root", "bash", "--norc", "--noprofile"])
            .status()
            .expect("tmux is installed (cargo xtask test installs it)");
        assert!(status.success(), "tmux new-session failed");
        Tmux { session }
    }

    fn send(&self, keys: &[&str]) {
        let status = Command::new("tmux").args(["send-keys", "-t", &self.session]).args(keys).status().unwrap();
        assert!(status.success());
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux").args(["capture-pane", "-p", "-t", &self.session]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `found` accepts the screen; returns that screen.
    fn wait_for(&self, what: &str, found: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if found(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}; screen:\n{screen}");
            sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.session]).status();
    }
}

/// The shell printed tracer's exit status (not just the echoed command).
fn exit_line_shown(screen: &str) -> bool {
    screen.lines().any(|l| l.starts_with("EXIT="))
}

/// CPU% of `pid`'s row on a process-table screen, if the row is there.
fn cpu_of(screen: &str, pid: u32) -> Option<f64> {
    let header = screen.lines().find(|l| l.starts_with("PID"))?;
    let cpu_column = header.split_whitespace().position(|c| c.starts_with("CPU%"))?;
    let row = screen.lines().find(|l| l.split_whitespace().next() == Some(&pid.to_string()))?;
    row.split_whitespace().nth(cpu_column)?.parse().ok()
}

#[test]
fn live_view_shows_a_busy_process_and_restores_the_terminal() {
    if !bpf_available("live_view_shows_a_busy_process_and_restores_the_terminal") {
        return;
    }
    let busy = Load::start(&["spin", "1", "-1"]);
    let dir = temp_dir("tui");
    let tmux = Tmux::start(120, 40);
    tmux.send(&[&format!("cd {} && {}; echo EXIT=$?", dir.display(), tracer_bin().display()), "Enter"]);
    let screen = tmux.wait_for("the busy process's row with CPU", |s| cpu_of(s, busy.pid()).is_some_and(|c| c > 0.0));
    let cpu = cpu_of(&screen, busy.pid()).unwrap();
    assert!(cpu > 50.0, "a spinning thread uses most of a CPU, shown {cpu}:\n{screen}");
    assert!(screen.lines().next().unwrap().starts_with("tracer  "), "{screen}");
    assert!(screen.contains("tracer-load"), "{screen}");

    // `w` writes the same report as `tracer record`, and says where.
    tmux.send(&["w"]);
    let screen = tmux.wait_for("the report notice", |s| s.contains("report written to "));
    let notice = screen.lines().find(|l| l.contains("report written to ")).unwrap();
    let path = notice.split("report written to ").nth(1).unwrap().trim();
    assert!(path.starts_with(dir.to_str().unwrap()), "{notice}");
    let report = read_report(std::path::Path::new(path));
    assert_eq!(report.schema, "tracer.report/1");
    assert!(process(&report, busy.pid()).totals.on_cpu_ns > 0);

    tmux.send(&["q"]);
    let screen = tmux.wait_for("tracer to exit", exit_line_shown);
    assert!(screen.lines().any(|l| l == "EXIT=0"), "{screen}");
    assert!(!screen.contains("RUNQ%"), "the alternate screen is gone:\n{screen}");
    // Raw mode is off again: the line discipline echoes and edits lines.
    tmux.send(&["stty -a | tr ' ;' '\\n\\n' | grep -x -e '-*icanon' -e '-*echo' | tr '\\n' ' '; echo :STTY", "Enter"]);
    let screen = tmux.wait_for("stty", |s| s.lines().any(|l| l.ends_with(":STTY") && l.contains("icanon")));
    let modes = screen.lines().find(|l| l.ends_with(":STTY") && l.contains("icanon")).unwrap();
    assert!(modes.contains("icanon") && !modes.contains("-icanon"), "{modes}");
    assert!(modes.split_whitespace().any(|m| m == "echo"), "{modes}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn live_view_opens_a_process_detail_with_p() {
    if !bpf_available("live_view_opens_a_process_detail_with_p") {
        return;
    }
    let busy = Load::start(&["spin", "2", "1"]);
    let tmux = Tmux::start(100, 30);
    tmux.send(&[&format!("{} -p {}; echo EXIT=$?", tracer_bin().display(), busy.pid()), "Enter"]);
    let header = format!("pid {} tracer-load", busy.pid());
    let screen = tmux.wait_for("the detail view with a histogram", |s| s.contains(&header) && s.contains(" -> "));
    assert!(screen.contains("TID") && screen.contains(&busy.tids[0].to_string()), "{screen}");
    assert!(screen.contains("runq │ preempted"), "{screen}");
    tmux.send(&["q"]);
    let screen = tmux.wait_for("tracer to exit", exit_line_shown);
    assert!(screen.lines().any(|l| l == "EXIT=0"), "{screen}");
}
