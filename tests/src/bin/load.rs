//! Workloads with known scheduling behaviour, for the integration tests and
//! benchmarks. Each prints `ready <tid>...` once its threads exist.
//!
//!   tracer-load spin THREADS CPU      busy threads pinned to CPU (-1: any), forever
//!   tracer-load burn MILLIS           burn MILLIS ms of CPU time, then exit
//!   tracer-load sleepers THREADS MS   threads that each wake every MS ms, forever
//!
//! These wait for a line on stdin after `ready`, do their work, print
//! `done [N]`, then wait for another line (or EOF) before exiting, so a test
//! can attach the tracer between `ready` and the work:
//!
//!   tracer-load getppid N             N getppid syscalls; prints the ns they took
//!   tracer-load spans N [EVERY MS]    N span begin/end marker pairs, resting MS ms
//!                                     after every EVERY of them; prints the ns
//!   tracer-load http PORT RATE SECS [PATH]
//!                                     GET PATH (default /plain) at RATE requests/s
//!                                     for SECS over keep-alive connections; prints
//!                                     the achieved rate (no cue: starts at once)
//!   tracer-load nginx                 nginx with one worker (see `tracer_tests::Nginx`);
//!                                     prints `ready PORT WORKER_PID`, stops it at
//!                                     SIGINT or SIGTERM
//!   tracer-load nginx-proxy PORT      the same as a reverse proxy in front of
//!                                     127.0.0.1:PORT (`Nginx::start_proxy`)
//!   tracer-load nginx-h2c             the same speaking HTTP/2 on its plaintext
//!                                     port (`Nginx::start_h2c`)
//!   tracer-load exchanges N           N HTTP/1.1 exchanges over loopback TCP in one
//!                                     thread, as a server's syscalls see them (read
//!                                     the request, writev the response, epoll_wait);
//!                                     the client side uses sendmmsg and recvmmsg,
//!                                     which HTTP tracing does not follow; prints the
//!                                     ns they took
//!   tracer-load nanosleep N MS        N nanosleep syscalls of MS ms each
//!   tracer-load enoent N              N openat calls failing with ENOENT
//!   tracer-load sleepwork N SLEEP_US WORK_US [CPU]
//!                                     N rounds of sleeping SLEEP_US then computing
//!                                     WORK_US (its own CPU clock), on CPU if
//!                                     given; prints its CPU clock's advance
//!                                     over the rounds
//!   tracer-load churn RATE SECS       starts and joins RATE short-lived threads a
//!                                     second for SECS; prints `cpu NS threads N`:
//!                                     its own CPU clock, and how many it started
//!   tracer-load forker N MS           forks N child processes, each burning MS ms
//!                                     of CPU (its own clock); prints their PIDs
//!   tracer-load write PATH COUNT KIB  COUNT O_DIRECT writes of KIB KiB, then
//!                                     fsync; prints the write_bytes delta
//!                                     of /proc/self/io
use std::{
    io::Write,
    sync::mpsc,
    thread,
    time::Duration,
};

fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

fn pin_to(cpu: i64) {
    if cpu < 0 {
        return;
    }
    // SAFETY: a zeroed cpu_set_t with one bit set, for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) != 0 {
            panic!("cannot pin to CPU {cpu}: {}", std::io::Error::last_os_error());
        }
    }
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid clock id and out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Forks a child process that burns `ms` ms of its own CPU time and exits;
/// returns its PID. Called while this process has one thread, so the child
/// may run Rust code after fork.
fn fork_burner(ms: u64) -> i32 {
    // SAFETY: fork in a single-threaded process; the child only computes and
    // leaves with _exit, without running destructors or atexit handlers.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let start = thread_cpu_ns();
        while thread_cpu_ns() - start < ms * 1_000_000 {
            std::hint::black_box(0u64);
        }
        // SAFETY: ends the child at once, as after any fork.
        unsafe { libc::_exit(0) };
    }
    pid
}

fn process_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid clock id and out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Starts `count` threads running `body`, then prints their TIDs.
fn start_threads(count: usize, body: impl Fn() + Send + Clone + 'static) {
    let (tx, rx) = mpsc::channel();
    for _ in 0..count {
        let tx = tx.clone();
        let body = body.clone();
        thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                tx.send(gettid()).expect("main thread is waiting");
                body();
            })
            .expect("spawning a thread");
    }
    let mut tids: Vec<u32> = (0..count).map(|_| rx.recv().expect("thread started")).collect();
    tids.sort_unstable();
    let line: Vec<String> = tids.iter().map(u32::to_string).collect();
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {}", line.join(" ")).expect("stdout");
    out.flush().expect("stdout");
}

/// `write_bytes` of /proc/self/io: bytes this process sent to storage.
fn io_write_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .expect("/proc/self/io")
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("write_bytes")
}

/// O_DIRECT writes of `kib` KiB from an aligned buffer, then fsync.
fn direct_writes(path: &str, count: usize, kib: usize) {
    use std::os::unix::fs::OpenOptionsExt;
    let len = kib * 1024;
    let layout = std::alloc::Layout::from_size_align(len, 4096).expect("layout");
    // SAFETY: non-zero size, freed below with the same layout.
    let buf = unsafe { std::alloc::alloc_zeroed(layout) };
    assert!(!buf.is_null());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .unwrap_or_else(|e| panic!("open {path} with O_DIRECT: {e}"));
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    for i in 0..count {
        // SAFETY: buf holds len bytes, aligned for O_DIRECT.
        let n = unsafe { libc::pwrite(fd, buf.cast(), len, (i * len) as libc::off_t) };
        assert_eq!(n, len as isize, "short O_DIRECT write: {}", std::io::Error::last_os_error());
    }
    file.sync_all().expect("fsync");
    // SAFETY: allocated above with this layout.
    unsafe { std::alloc::dealloc(buf, layout) };
}

/// Runs the nginx that `start` starts in a directory of its own until
/// SIGINT or SIGTERM.
fn nginx(start: impl FnOnce(&std::path::Path) -> tracer_tests::Nginx) {
    let dir = std::env::temp_dir().join(format!("tracer-load-nginx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    // Blocked before nginx starts, so the signal waits for sigwait below.
    // SAFETY: plain signal-set manipulation on a zeroed set.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let nginx = start(&dir);
    println!("ready {} {}", nginx.port, nginx.worker);
    std::io::stdout().flush().expect("stdout");
    let mut signal = 0;
    // SAFETY: waits on the set built above.
    unsafe { libc::sigwait(&set, &mut signal) };
    drop(nginx);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Offered load at a fixed rate: 4 connections, each paced to RATE/4,
/// sending the next request when its slot comes (or at once when late).
fn http_at_rate(port: u16, rate: u64, secs: u64, path: &'static str) -> f64 {
    use std::io::{BufRead, BufReader, Read};
    const CONNECTIONS: u64 = 4;
    let started = std::time::Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            thread::spawn(move || {
                let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                let mut writer = stream.try_clone().expect("clone");
                let mut reader = BufReader::new(stream);
                let every = Duration::from_nanos(1_000_000_000 * CONNECTIONS / rate);
                let mut next = std::time::Instant::now();
                let mut done = 0u64;
                while std::time::Instant::now() < deadline {
                    let now = std::time::Instant::now();
                    if next > now {
                        thread::sleep(next - now);
                    }
                    next += every;
                    writer.write_all(format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").as_bytes()).expect("send");
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        let read = reader.read_line(&mut line).expect("response");
                        assert!(read > 0, "the server closed the connection");
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length: ") {
                            length = v.trim().parse().expect("length");
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).expect("body");
                    done += 1;
                }
                done
            })
        })
        .collect();
    let total: u64 = workers.into_iter().map(|w| w.join().expect("client")).sum();
    total as f64 / started.elapsed().as_secs_f64()
}

/// One thread's loopback HTTP/1.1 exchanges (`tracer-load exchanges`): the
/// server's syscalls are those an event-loop server makes per request; the
/// client's are ones HTTP tracing leaves alone, so only the server side
/// costs tracing anything.
struct Exchanges {
    client: std::net::TcpStream,
    server: std::net::TcpStream,
    epoll: i32,
    buf: Vec<u8>,
}

const EXCHANGE_REQUEST: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: localhost\r\nUser-Agent: tracer-load\r\n\r\n";
const EXCHANGE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nServer: tracer-load\r\nContent-Length: 2048\r\n\r\n";
const EXCHANGE_BODY: [u8; 2048] = [b'x'; 2048];

impl Exchanges {
    fn new() -> Self {
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        client.set_nodelay(true).expect("nodelay");
        server.set_nodelay(true).expect("nodelay");
        // SAFETY: plain syscalls on descriptors this struct owns.
        let epoll = unsafe { libc::epoll_create1(0) };
        assert!(epoll >= 0, "epoll_create1");
        let mut event = libc::epoll_event { events: libc::EPOLLIN as u32, u64: 0 };
        // SAFETY: as above, with a valid event.
        let rc = unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, server.as_raw_fd(), &mut event) };
        assert_eq!(rc, 0, "epoll_ctl");
        Self { client, server, epoll, buf: vec![0; 4096] }
    }

    fn one(&mut self) {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let response_len = EXCHANGE_HEAD.len() + EXCHANGE_BODY.len();
        message(libc::SYS_sendmmsg, self.client.as_raw_fd(), EXCHANGE_REQUEST.as_ptr().cast_mut(), EXCHANGE_REQUEST.len());
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 4];
        // SAFETY: waits on this struct's epoll descriptor into a local array.
        let ready = unsafe { libc::epoll_wait(self.epoll, events.as_mut_ptr(), 4, -1) };
        assert_eq!(ready, 1, "epoll_wait");
        let read = self.server.read(&mut self.buf).expect("server read");
        assert_eq!(read, EXCHANGE_REQUEST.len(), "one request per read");
        let parts = [
            libc::iovec { iov_base: EXCHANGE_HEAD.as_ptr().cast_mut().cast(), iov_len: EXCHANGE_HEAD.len() },
            libc::iovec { iov_base: EXCHANGE_BODY.as_ptr().cast_mut().cast(), iov_len: EXCHANGE_BODY.len() },
        ];
        // SAFETY: both iovecs point at constants that outlive the call.
        let written = unsafe { libc::writev(self.server.as_raw_fd(), parts.as_ptr(), 2) };
        assert_eq!(written as usize, response_len, "writev");
        let mut got = 0;
        while got < response_len {
            got += message(libc::SYS_recvmmsg, self.client.as_raw_fd(), self.buf.as_mut_ptr(), self.buf.len());
        }
    }
}

/// One message through `sendmmsg` or `recvmmsg` (`nr`): the bytes it moved.
fn message(nr: libc::c_long, fd: i32, data: *mut u8, len: usize) -> usize {
    let mut iov = libc::iovec { iov_base: data.cast(), iov_len: len };
    // SAFETY: a zeroed mmsghdr is valid; it points at `iov` for the call.
    let mut header: libc::mmsghdr = unsafe { std::mem::zeroed() };
    header.msg_hdr.msg_iov = &mut iov;
    header.msg_hdr.msg_iovlen = 1;
    // SAFETY: one header, on the caller's valid buffer; no timeout.
    let sent = unsafe { libc::syscall(nr, fd, &mut header, 1, 0, std::ptr::null_mut::<libc::timespec>()) };
    assert_eq!(sent, 1, "sendmmsg/recvmmsg");
    header.msg_len as usize
}

/// Prints `ready`, waits for a line, runs `work`, prints `done ...`, waits
/// for another line or EOF.
fn on_cue(work: impl FnOnce() -> String) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {}", gettid()).expect("stdout");
    out.flush().expect("stdout");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("stdin");
    let result = work();
    writeln!(out, "done {result}").expect("stdout");
    out.flush().expect("stdout");
    line.clear();
    let _ = std::io::stdin().read_line(&mut line);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> i64 {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("usage: see the header of tests/src/bin/load.rs"))
    };
    match args.first().map(String::as_str) {
        Some("spin") => {
            let cpu = arg(2);
            start_threads(arg(1) as usize, move || {
                pin_to(cpu);
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            });
            loop {
                thread::park();
            }
        }
        Some("burn") => {
            let budget = arg(1) as u64 * 1_000_000;
            let mut out = std::io::stdout().lock();
            writeln!(out, "ready {}", gettid()).expect("stdout");
            out.flush().expect("stdout");
            let start = thread_cpu_ns();
            while thread_cpu_ns() - start < budget {
                std::hint::black_box(0u64);
            }
        }
        Some("sleepers") => {
            let period = Duration::from_millis(arg(2) as u64);
            start_threads(arg(1) as usize, move || loop {
                thread::sleep(period);
            });
            loop {
                thread::park();
            }
        }
        Some("getppid") => {
            let n = arg(1);
            on_cue(|| {
                let started = std::time::Instant::now();
                for _ in 0..n {
                    // SAFETY: getppid has no arguments and cannot fail.
                    unsafe { libc::syscall(libc::SYS_getppid) };
                }
                started.elapsed().as_nanos().to_string()
            });
        }
        Some("http") => {
            let path: &'static str = args.get(4).cloned().unwrap_or_else(|| "/plain".into()).leak();
            let rate = http_at_rate(arg(1) as u16, arg(2) as u64, arg(3) as u64, path);
            println!("rate {rate:.0}");
        }
        Some("nginx") => nginx(|dir| tracer_tests::Nginx::start(dir, None)),
        Some("nginx-proxy") => nginx(|dir| tracer_tests::Nginx::start_proxy(dir, None, arg(1) as u16)),
        Some("nginx-h2c") => nginx(|dir| tracer_tests::Nginx::start_h2c(dir, None)),
        Some("spans") => {
            let n = arg(1) as u64;
            let rest = (args.len() > 2).then(|| (arg(2) as u64, std::time::Duration::from_millis(arg(3) as u64)));
            on_cue(|| {
                let started = std::time::Instant::now();
                for id in 0..n {
                    drop(tracer_span::Span::begin(id, c"bench"));
                    if let Some((_, pause)) = rest.filter(|&(every, _)| (id + 1) % every == 0) {
                        std::thread::sleep(pause);
                    }
                }
                started.elapsed().as_nanos().to_string()
            });
        }
        Some("sleepwork") => {
            let (n, sleep_us, work_us) = (arg(1), arg(2), arg(3) as u64);
            let cpu = args.get(4).map(|_| arg(4));
            on_cue(|| {
                if let Some(cpu) = cpu {
                    pin_to(cpu);
                }
                let ts = libc::timespec { tv_sec: 0, tv_nsec: sleep_us * 1_000 };
                let start = thread_cpu_ns();
                for _ in 0..n {
                    // SAFETY: valid timespec; no remainder wanted.
                    unsafe { libc::syscall(libc::SYS_nanosleep, &ts, std::ptr::null_mut::<libc::timespec>()) };
                    let woke = thread_cpu_ns();
                    while thread_cpu_ns() - woke < work_us * 1_000 {
                        std::hint::black_box(0u64);
                    }
                }
                (thread_cpu_ns() - start).to_string()
            });
        }
        Some("nanosleep") => {
            let (n, ms) = (arg(1), arg(2));
            on_cue(|| {
                let ts = libc::timespec { tv_sec: 0, tv_nsec: ms * 1_000_000 };
                for _ in 0..n {
                    // SAFETY: valid timespec; no remainder wanted.
                    unsafe { libc::syscall(libc::SYS_nanosleep, &ts, std::ptr::null_mut::<libc::timespec>()) };
                }
                n.to_string()
            });
        }
        Some("churn") => {
            let (rate, secs) = (arg(1) as u64, arg(2) as u64);
            on_cue(|| {
                let started = std::time::Instant::now();
                let mut started_threads = 0u64;
                while started.elapsed() < Duration::from_secs(secs) {
                    // Catch up to the rate in batches, so a slow start does
                    // not lower it for good; at most 100 alive at once, or a
                    // busy machine's backlog would exhaust its PIDs.
                    let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
                    let batch: Vec<_> = (started_threads..due.clamp(started_threads + 1, started_threads + 100))
                        .map(|_| thread::spawn(|| std::hint::black_box(0u64)))
                        .collect();
                    started_threads += batch.len() as u64;
                    for thread in batch {
                        thread.join().expect("a churn thread");
                    }
                    thread::sleep(Duration::from_millis(1));
                }
                format!("cpu {} threads {started_threads}", process_cpu_ns())
            });
        }
        Some("forker") => {
            let (n, ms) = (arg(1), arg(2) as u64);
            on_cue(|| {
                let children: Vec<String> = (0..n).map(|_| fork_burner(ms).to_string()).collect();
                for _ in &children {
                    // SAFETY: waits for any child; the status is not needed.
                    unsafe { libc::wait(std::ptr::null_mut()) };
                }
                children.join(",")
            });
        }
        Some("enoent") => {
            let n = arg(1);
            on_cue(|| {
                let path = c"/nonexistent-tracer-test/missing";
                for _ in 0..n {
                    // SAFETY: valid NUL-terminated path.
                    let rc = unsafe { libc::syscall(libc::SYS_openat, libc::AT_FDCWD, path.as_ptr(), libc::O_RDONLY) };
                    assert_eq!(rc, -1);
                }
                n.to_string()
            });
        }
        Some("exchanges") => {
            let n = arg(1) as u64;
            let mut exchange = Exchanges::new();
            on_cue(|| {
                let started = std::time::Instant::now();
                for _ in 0..n {
                    exchange.one();
                }
                started.elapsed().as_nanos().to_string()
            });
        }
        Some("write") => {
            let path = args.get(1).cloned().expect("PATH");
            let (count, kib) = (arg(2) as usize, arg(3) as usize);
            on_cue(|| {
                let before = io_write_bytes();
                direct_writes(&path, count, kib);
                (io_write_bytes() - before).to_string()
            });
        }
        _ => panic!("usage: see the header of tests/src/bin/load.rs"),
    }
}
