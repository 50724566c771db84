//! A Go net/http server (tests/go/server.go, built here with Debian's
//! `golang-go` and `golang-golang-x-net-dev`) and the clients of Debian's
//! `nghttp2-client` to drive it: h2load, and nghttp for `Upgrade: h2c`.
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
        let binary = dir.join("go-server");
        // golang.org/x/net (h2c) as Debian packages it, with no module
        // download: GOPATH mode over /usr/share/gocode.
        let built = Command::new("go")
            .args(["build", "-o"])
            .arg(&binary)
            .arg("server.go")
            .env("GO111MODULE", "off")
            .env("GOPATH", "/usr/share/gocode")
            .current_dir(dir)
            .output()
            .expect("go (Debian's golang-go and golang-golang-x-net-dev; `cargo xtask test` installs them)");
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

/// One request as nghttp's `--stat` timed it.
#[derive(Debug, Clone, PartialEq)]
pub struct NghttpRequest {
    /// Its HTTP/2 stream: 1 for the request that asked for the upgrade.
    pub stream: u32,
    pub path: String,
    pub status: u16,
    /// From just before its first byte was sent to its response's last
    /// byte received, in nanoseconds.
    pub process_ns: u64,
}

impl GoServer {
    /// `nghttp -u`: one connection that asks to switch to HTTP/2 with an
    /// HTTP/1.1 `Upgrade: h2c` on its first request (`paths[0]`, stream 1),
    /// then sends the others as HTTP/2 streams; every request carries
    /// `x-request-id: request_id`. Started inside `cgroup` (cgroup.procs).
    /// Returns nghttp's own timings of each request.
    pub fn nghttp_upgrade(&self, cgroup: &Path, request_id: &str, paths: &[&str]) -> Vec<NghttpRequest> {
        let uris: Vec<String> = paths.iter().map(|p| format!("'http://127.0.0.1:{}{p}'", self.port)).collect();
        let script = format!(
            "echo $$ > {}/cgroup.procs && exec nghttp -u --stat -H 'x-request-id: {request_id}' {}",
            cgroup.display(),
            uris.join(" ")
        );
        let out = Command::new("sh")
            .args(["-c", &script])
            .output()
            .expect("nghttp (Debian's nghttp2-client; `cargo xtask test` installs it)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "nghttp: {text} {}", String::from_utf8_lossy(&out.stderr));
        // "id  responseEnd requestStart  process code size request path", then
        // "  1    +20.83ms        +19us  20.81ms  200    6 /sleep?ms=20".
        let requests: Vec<NghttpRequest> = text
            .lines()
            .skip_while(|line| !line.starts_with("id "))
            .skip(1)
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                Some(NghttpRequest {
                    stream: f.first()?.parse().ok()?,
                    process_ns: duration_ns(f.get(3)?)?,
                    status: f.get(4)?.parse().ok()?,
                    path: f.get(6)?.to_string(),
                })
            })
            .collect();
        assert_eq!(requests.len(), paths.len(), "one timing per request: {text}");
        requests
    }
}

/// nghttp's durations: "20.81ms", "563us", "1.02s".
fn duration_ns(text: &str) -> Option<u64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e3)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e6)
    } else {
        (text.strip_suffix('s')?, 1e9)
    };
    Some((number.parse::<f64>().ok()? * scale) as u64)
}

impl Drop for GoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
