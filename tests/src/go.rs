//! A Go net/http server (tests/go/server.go, built here with Debian's
//! `golang-go`) and h2load (Debian's `nghttp2-client`) to drive it.
use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
};

/// The Go server, not pinned to a CPU; killed when dropped.
pub struct GoServer {
    child: Child,
    pub port: u16,
}

impl GoServer {
    /// Builds tests/go/server.go in `dir` and starts it.
    pub fn start(dir: &Path) -> GoServer {
        std::fs::write(dir.join("server.go"), include_str!("../go/server.go")).unwrap();
        std::fs::write(dir.join("go.mod"), "module tracer-test-go-server\n\ngo 1.19\n").unwrap();
        let binary = dir.join("go-server");
        let built = Command::new("go")
            .args(["build", "-o"])
            .arg(&binary)
            .arg(".")
            .current_dir(dir)
            .output()
            .expect("go (Debian's golang-go; `cargo xtask test` installs it)");
        assert!(built.status.success(), "go build: {}", String::from_utf8_lossy(&built.stderr));
        let mut child = Command::new(&binary).stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().strip_prefix("ready ").unwrap_or_else(|| panic!("go server said {line:?}")).parse().unwrap();
        GoServer { child, port }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `h2load --h1`: `requests` GETs of /plain over `connections`
    /// keep-alive connections, one request at a time on each. Returns the
    /// requests that succeeded, by h2load's own count.
    pub fn h2load_h1(&self, requests: u32, connections: u32) -> u64 {
        let out = Command::new("h2load")
            .args(["--h1", "-n", &requests.to_string(), "-c", &connections.to_string(), "-t", "1"])
            .arg(format!("http://127.0.0.1:{}/plain", self.port))
            .output()
            .expect("h2load (Debian's nghttp2-client; `cargo xtask test` installs it)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "h2load: {text}");
        // "requests: 60000 total, 60000 started, 60000 done, 60000 succeeded, 0 failed, ..."
        text.lines()
            .find_map(|line| line.strip_prefix("requests: "))
            .and_then(|counts| counts.split(", ").find_map(|c| c.strip_suffix(" succeeded")))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no succeeded count in h2load's output: {text}"))
    }
}

impl Drop for GoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
