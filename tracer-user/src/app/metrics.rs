//! The Prometheus endpoint (`tracer serve`, `--listen`): an HTTP server on
//! a thread of its own answers `GET /metrics` from the last snapshot of the
//! session's numbers, which the event loop publishes after each refresh.
//! A scrape therefore never runs on the loop that drains the kernel's
//! rings, and the loop never waits for a scrape: it only swaps a pointer.
//!
//! Snapshots are published every second; a scrape that finds the last one
//! older than [`FRESH_ENOUGH`] asks the loop for a new one and waits for it
//! (at most [`WAIT_AT_MOST`], then answers with what it has). So the values
//! are those of the scrape's moment, not of up to a second before, and a
//! `rate()` over them is not skewed by where scrapes fall between snapshots.
use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Condvar, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use tiny_http::{Header, Method, Request, Response, Server};
use tokio::sync::Notify;

use super::session::Session;
use crate::{
    output::metrics::{self, By, Exporter, Inputs, MetricFamily, ProbesInUse},
    sys::{disks::Disks, procfs},
};

/// `--listen` could not be served: said before anything is loaded.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} for the metrics: {reason}")]
pub struct ListenError {
    addr: SocketAddr,
    reason: String,
}

/// A scrape takes a snapshot younger than this as it is.
pub const FRESH_ENOUGH: Duration = Duration::from_millis(200);
/// How long a scrape waits for a fresh snapshot.
pub const WAIT_AT_MOST: Duration = Duration::from_secs(1);

/// The families the server answers with: the last published.
struct Snapshot {
    families: Arc<Vec<MetricFamily>>,
    taken: Instant,
    generation: u64,
}

/// What the event loop and the server's thread share.
struct Shared {
    latest: Mutex<Snapshot>,
    published: Condvar,
    /// A scrape waits for a fresh snapshot.
    wanted: AtomicBool,
    /// Wakes the event loop for one (`Session::refresh`).
    requests: Arc<Notify>,
    stopping: AtomicBool,
}

impl Shared {
    fn latest(&self) -> MutexGuard<'_, Snapshot> {
        self.latest.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The last snapshot, after asking for a fresh one when it is stale.
    fn fresh_families(&self) -> Arc<Vec<MetricFamily>> {
        let mut latest = self.latest();
        if latest.taken.elapsed() >= FRESH_ENOUGH {
            let seen = latest.generation;
            self.wanted.store(true, Ordering::SeqCst);
            self.requests.notify_one();
            let deadline = Instant::now() + WAIT_AT_MOST;
            while latest.generation == seen {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                latest = self.published.wait_timeout(latest, left).unwrap_or_else(PoisonError::into_inner).0;
            }
        }
        latest.families.clone()
    }
}

pub struct MetricsEndpoint {
    addr: SocketAddr,
    server: Arc<Server>,
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
    exporter: Exporter,
    by: By,
    /// Cgroups of the processes known (`--by cgroup`), read while they live.
    cgroups: HashMap<u32, String>,
}

impl MetricsEndpoint {
    /// Listens on `addr` and starts answering (with no metrics until the
    /// first `publish`); metrics labelled `by` process or cgroup, with at
    /// most `max_series` label sets each.
    pub fn listen(addr: SocketAddr, by: By, max_series: usize) -> Result<MetricsEndpoint, ListenError> {
        let server = Server::http(addr).map_err(|err| ListenError { addr, reason: err.to_string() })?;
        let bound = server.server_addr().to_ip().unwrap_or(addr);
        let server = Arc::new(server);
        let shared = Arc::new(Shared {
            latest: Mutex::new(Snapshot { families: Arc::default(), taken: Instant::now(), generation: 0 }),
            published: Condvar::new(),
            wanted: AtomicBool::new(false),
            requests: Arc::new(Notify::new()),
            stopping: AtomicBool::new(false),
        });
        let worker = {
            let (server, shared) = (server.clone(), shared.clone());
            std::thread::Builder::new()
                .name("tracer-metrics".into())
                .spawn(move || answer(&server, &shared))
                .map_err(|err| ListenError { addr, reason: format!("cannot start its thread: {err}") })?
        };
        Ok(MetricsEndpoint {
            addr: bound,
            server,
            shared,
            worker: Some(worker),
            exporter: Exporter::new(max_series),
            by,
            cgroups: HashMap::new(),
        })
    }

    /// Where the metrics are served.
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    /// What wakes the event loop when a scrape wants fresh numbers: give it
    /// to the session (`Session::refresh`).
    pub fn refresh_requests(&self) -> Arc<Notify> {
        self.shared.requests.clone()
    }

    /// Starts serving `session`: it is woken by stale scrapes from now on,
    /// and its numbers so far are the first snapshot.
    pub fn serve(&mut self, session: &mut Session) {
        session.refresh = Some(self.refresh_requests());
        session.sync();
        self.publish(session);
    }

    /// Whether a scrape waits for fresh numbers.
    pub fn wanted(&self) -> bool {
        self.shared.wanted.load(Ordering::SeqCst)
    }

    /// Takes a snapshot of the session's numbers (call after a `sync`) for
    /// the scrapes to come.
    pub fn publish(&mut self, session: &Session) {
        let disks = Disks::read();
        if self.by == By::Cgroup {
            self.refresh_cgroups(session);
        }
        let cgroups = &self.cgroups;
        let attached = session.probes.attached;
        let inputs = Inputs {
            by: self.by,
            probe_mode: session.probes.mode.name().into(),
            probes: ProbesInUse { syscalls: attached.syscalls, block_io: attached.block_io, spans: attached.spans },
            lost: session.probes.losses(),
            syscalls_by_thread: session.probes.syscalls_by_thread,
            start_unix_ns: session.start_unix_ns,
            disk_name: &|dev| disks.name(dev),
            cgroup_of: &|pid| cgroups.get(&pid).cloned(),
        };
        let families = Arc::new(self.exporter.families(&session.agg, &inputs));
        let mut latest = self.shared.latest();
        *latest = Snapshot { families, taken: Instant::now(), generation: latest.generation + 1 };
        self.shared.wanted.store(false, Ordering::SeqCst);
        self.shared.published.notify_all();
    }

    /// Reads the cgroup of each new live process; forgets processes the
    /// model no longer has.
    fn refresh_cgroups(&mut self, session: &Session) {
        let known = session.agg.processes();
        self.cgroups.retain(|pid, _| known.contains_key(pid));
        for pid in session.agg.live_processes() {
            if !self.cgroups.contains_key(&pid)
                && let Some(cgroup) = procfs::cgroup_of(pid)
            {
                self.cgroups.insert(pid, cgroup);
            }
        }
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.server.unblock();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// The server's thread: answers requests one at a time until stopped.
fn answer(server: &Server, shared: &Shared) {
    while !shared.stopping.load(Ordering::SeqCst) {
        match server.recv() {
            Ok(request) => {
                let response = respond(&request, shared);
                // A client that went away is its own problem.
                let _ = request.respond(response);
            }
            // Unblocked to stop, or a failed accept (too many open files):
            // the loop condition decides; no busy loop meanwhile.
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn respond(request: &Request, shared: &Shared) -> Response<std::io::Cursor<Vec<u8>>> {
    let path = request.url().split('?').next().unwrap_or_default();
    if !matches!(request.method(), Method::Get | Method::Head) {
        return text(405, "only GET and HEAD\n");
    }
    match path {
        "/metrics" => {
            match metrics::encode_text(&shared.fresh_families()) {
                Ok(body) => text(200, &body).with_header(header(metrics::CONTENT_TYPE)),
                Err(err) => text(500, &format!("{err}\n")),
            }
        }
        "/" => text(200, "tracer: Prometheus metrics at /metrics\n"),
        _ => text(404, "not found: the metrics are at /metrics\n"),
    }
}

fn text(status: u16, body: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(body).with_status_code(status).with_header(header("text/plain; charset=utf-8"))
}

fn header(content_type: &str) -> Header {
    Header::from_bytes("Content-Type", content_type).expect("a valid static header")
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    #[test]
    fn serves_the_last_published_families_and_refuses_a_taken_port() {
        let endpoint = MetricsEndpoint::listen("127.0.0.1:0".parse().unwrap(), By::Process, 10).unwrap();
        let addr = endpoint.addr;
        assert_ne!(addr.port(), 0, "the port the kernel chose");
        assert_eq!(endpoint.url(), format!("http://127.0.0.1:{}/metrics", addr.port()));
        let empty = get(addr, "/metrics");
        assert!(empty.starts_with("HTTP/1.1 200") && empty.contains("version=0.0.4"), "{empty}");

        let mut family = MetricFamily::default();
        family.set_name("tracer_test_total".into());
        family.set_help("test".into());
        let mut metric = prometheus::proto::Metric::default();
        let mut counter = prometheus::proto::Counter::default();
        counter.set_value(42.0);
        metric.set_counter(counter);
        family.set_metric(vec![metric]);
        // A stale snapshot asks the loop for a fresh one, and is still
        // answered when none comes.
        std::thread::sleep(FRESH_ENOUGH);
        let asked = Instant::now();
        let stale = get(addr, "/metrics");
        assert!(stale.starts_with("HTTP/1.1 200") && asked.elapsed() >= WAIT_AT_MOST, "{stale}");
        assert!(endpoint.wanted());
        let requests = endpoint.refresh_requests();
        let requested = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
            tokio::time::timeout(Duration::from_secs(1), requests.notified()).await.is_ok()
        });
        assert!(requested, "the loop was woken");
        {
            let mut latest = endpoint.shared.latest();
            *latest = Snapshot { families: Arc::new(vec![family]), taken: Instant::now(), generation: latest.generation + 1 };
        }
        let response = get(addr, "/metrics?x=1");
        assert!(response.contains("# TYPE tracer_test_total counter\ntracer_test_total 42\n"), "{response}");
        assert!(get(addr, "/nothing").starts_with("HTTP/1.1 404"));

        let err = MetricsEndpoint::listen(addr, By::Process, 10).err().expect("the port is taken").to_string();
        assert!(err.starts_with(&format!("cannot listen on {addr} for the metrics: ")), "{err}");
        drop(endpoint);
        // The listening socket closes with the server's accept thread, soon after.
        let closed = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            std::net::TcpStream::connect(addr).is_err()
        });
        assert!(closed, "stopped with the endpoint");
    }
}
