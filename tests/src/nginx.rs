//! nginx (the Debian package) for the HTTP span tests.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::{free_port, num_cpus, signal};

/// nginx (the Debian package) with one worker on 127.0.0.1, serving a 2 KiB
/// `/index.html` and adding `X-Request-Id: $request_id` to responses;
/// pinned to `cpu` if given; stopped on drop.
pub struct Nginx {
    master: Child,
    pub worker: u32,
    pub port: u16,
}

impl Nginx {
    pub fn start(dir: &Path, cpu: Option<u32>) -> Nginx {
        Nginx::start_serving(dir, cpu, "", "", "location / { add_header X-Request-Id $request_id always; }")
    }

    /// nginx speaking HTTP/2 on its plaintext listener (with prior
    /// knowledge, as h2load does), logging each request's `$request_id`,
    /// method, target and status to `access.log` in `dir`.
    pub fn start_h2c(dir: &Path, cpu: Option<u32>) -> Nginx {
        let log = "log_format ids '$request_id $request_method $request_uri $status';\n";
        let location = format!(
            "location / {{ add_header X-Request-Id $request_id always; access_log {}/access.log ids; }}",
            dir.display()
        );
        Nginx::start_serving(dir, cpu, log, " http2", &location)
    }

    /// nginx as the reverse proxy the tracing talks recommend, in front of
    /// the server on `upstream_port`: `proxy_pass` over kept-alive upstream
    /// connections, with `X-Request-ID: $request_id` on the proxied request
    /// and on the response.
    pub fn start_proxy(dir: &Path, cpu: Option<u32>, upstream_port: u16) -> Nginx {
        let upstream = format!("upstream app {{ server 127.0.0.1:{upstream_port}; keepalive 16; }}\n");
        let location = "location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; \
                        proxy_set_header X-Request-ID $request_id; add_header X-Request-Id $request_id always; }";
        Nginx::start_serving(dir, cpu, &upstream, "", location)
    }

    /// nginx with `http_extra` in its `http` block, `listen_extra` after
    /// its listener's address and `location` in its server.
    fn start_serving(dir: &Path, cpu: Option<u32>, http_extra: &str, listen_extra: &str, location: &str) -> Nginx {
        let port = free_port();
        let www = dir.join("www");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), "x".repeat(2048)).unwrap();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "daemon off;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n  access_log off;\n  sendfile on;\n  keepalive_requests 10000000;\n  client_body_temp_path {dir}/body;\n\
                 proxy_temp_path {dir}/proxy;\n  fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n\
                 scgi_temp_path {dir}/scgi;\n{http_extra}\
                 server {{\n    listen 127.0.0.1:{port}{listen_extra};\n    root {www};\n    {location}\n  }}\n}}\n",
                dir = dir.display(),
                www = www.display(),
            ),
        )
        .unwrap();
        let nginx = which_nginx();
        let cpus = cpu.map_or_else(|| format!("0-{}", num_cpus() - 1), |cpu| cpu.to_string());
        let master = Command::new("taskset")
            .args(["-c", &cpus])
            .arg(&nginx)
            .args(["-p", &dir.display().to_string(), "-e", &dir.join("error.log").display().to_string(), "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", nginx.display()));
        let master_pid = master.id();
        let mut nginx = Nginx { master, worker: 0, port };
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(50));
            // taskset execs nginx, so the master is our child's pid.
            let children = std::fs::read_to_string(format!("/proc/{master_pid}/task/{master_pid}/children")).unwrap_or_default();
            if let Some(worker) = children.split_whitespace().next().and_then(|w| w.parse().ok())
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                nginx.worker = worker;
                return nginx;
            }
        }
        panic!("nginx did not start: {}", std::fs::read_to_string(dir.join("error.log")).unwrap_or_default());
    }

    /// Runs wrk (`connections` at once) against the static file for `secs`
    /// seconds, pinned to `cpu`.
    pub fn load(&self, secs: u32, cpu: u32, connections: u32) {
        let status = Command::new("taskset")
            .args(["-c", &cpu.to_string(), "wrk", "-t1", &format!("-c{connections}"), &format!("-d{secs}s")])
            .arg(format!("http://127.0.0.1:{}/index.html", self.port))
            .stdout(Stdio::null())
            .status()
            .expect("wrk (installed by `cargo xtask test`)");
        assert!(status.success());
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        signal(self.master.id(), libc::SIGQUIT);
        let _ = self.master.wait();
    }
}

fn which_nginx() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("nginx (the Debian package; `cargo xtask test` installs it)")
}
