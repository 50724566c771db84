//! A small HTTP/1.1 server instrumented with the span markers, for the
//! request-span tests and benchmark. One thread per connection; each request
//! is one span, from after its request was read to before its response is
//! written. Each response says its span id (`X-Span-Id`) and the CPU time its
//! thread used inside the span by the kernel's own clock
//! (`X-Thread-Cpu-Ns`, CLOCK_THREAD_CPUTIME_ID). Prints `ready <port>` once
//! listening on 127.0.0.1.
//!
//!   tracer-test-server [--cpu N] [--io-dir DIR] [--no-markers] [--span-log FILE] [--dup-writer]
//!
//! `--no-markers` leaves the request spans to `tracer spans --http`;
//! `--span-log` writes each request's span as a JSON line (`span_id`, `name`,
//! `tid`, `start_unix_ns`, `end_unix_ns`) for `tracer spans join`.
//!
//! GET /cpu?ms=N   burn N ms of CPU time
//! GET /sleep?ms=N sleep N ms
//! GET /io         rewrite 32 MiB of a preallocated file in DIR with O_DIRECT
//!                 (128 writes of 256 KiB), then fsync
//! GET /plain      answer at once
//! GET /call?port=P[&reuse=1]
//!                 GET /sleep?ms=30 from the server on 127.0.0.1:P (on a new
//!                 connection, or with `reuse=1` on one kept open across
//!                 requests) and say how long it took (`X-Call-Ns`)
//! GET /moved      a span begun on this thread and ended on another
//! GET /anomalies  marker misuse: an end without a begin, a begin twice,
//!                 and a begin never ended
//! GET /burst?n=N  N empty spans named "burst" back to back (ids in the
//!                 response's X-Burst-First header, then consecutive)
//! GET /fork?ms=N  fork a child that marks empty spans named "child" every
//!                 millisecond for N ms, then exits; its PID in X-Child-Pid
use std::{
    io::{BufRead, BufReader, Write},
    net::{TcpListener, TcpStream},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

static NEXT_SPAN: AtomicU64 = AtomicU64::new(1);

/// The connection `/call?reuse=1` keeps open to its downstream server.
static KEPT_CALL: std::sync::Mutex<Option<BufReader<TcpStream>>> = std::sync::Mutex::new(None);

/// A job for the worker thread of `/handoff`: the connection to answer on,
/// the ms of CPU to burn first, and where to say it is done.
type Handoff = (TcpStream, u64, std::sync::mpsc::Sender<()>);

/// The worker thread of `/handoff`, started at the first one.
static HANDOFF_WORKER: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Handoff>>> =
    std::sync::OnceLock::new();

/// What `/call` asks its downstream server for.
const CALL_REQUEST: &[u8] = b"GET /sleep?ms=30 HTTP/1.1\r\nHost: downstream\r\n\r\n";

/// `/call`: one exchange with the downstream server; returns its duration
/// as this thread saw it, from before the request's write to after the
/// response's last read.
fn call_downstream(target: &str) -> Duration {
    let port: u16 = query(target, "port").and_then(|p| p.parse().ok()).expect("/call?port=P");
    let mut kept = KEPT_CALL.lock().expect("kept call lock");
    let mut fresh = None;
    let connection = if query(target, "reuse").is_some() {
        kept.get_or_insert_with(|| BufReader::new(TcpStream::connect(("127.0.0.1", port)).expect("connect")))
    } else {
        fresh.insert(BufReader::new(TcpStream::connect(("127.0.0.1", port)).expect("connect")))
    };
    let started = std::time::Instant::now();
    connection.get_mut().write_all(CALL_REQUEST).expect("request write");
    let mut content_length = 0;
    loop {
        let mut line = String::new();
        connection.read_line(&mut line).expect("response read");
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            content_length = value.trim().parse().expect("content length");
        }
    }
    let mut body = vec![0; content_length];
    std::io::Read::read_exact(connection, &mut body).expect("response body");
    started.elapsed()
}

/// A value in the query (`?key=value`).
fn query<'a>(target: &'a str, key: &str) -> Option<&'a str> {
    let query = target.split_once('?').map_or("", |(_, query)| query);
    query.split('&').find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid clock id and out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn burn(ms: u64) {
    let start = thread_cpu_ns();
    while thread_cpu_ns() - start < ms * 1_000_000 {
        std::hint::black_box(0u64);
    }
}

const IO_CHUNK: usize = 256 << 10;
const IO_CHUNKS: usize = 128;

/// The file `/io` rewrites: created and fully allocated at start-up, so a
/// request spends its time waiting for the device, not allocating blocks.
struct IoFile {
    file: std::fs::File,
    buf: *mut u8,
}

// SAFETY: the buffer is only read (as the write source), by any thread.
unsafe impl Send for IoFile {}
unsafe impl Sync for IoFile {}

impl IoFile {
    fn create(dir: &str) -> IoFile {
        use std::os::unix::fs::OpenOptionsExt;
        let layout = std::alloc::Layout::from_size_align(IO_CHUNK, 4096).expect("layout");
        // SAFETY: non-zero size; lives as long as the process.
        let buf = unsafe { std::alloc::alloc_zeroed(layout) };
        let path = format!("{dir}/tracer-test-server-{}", std::process::id());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .expect("O_DIRECT file");
        let _ = std::fs::remove_file(&path);
        let io = IoFile { file, buf };
        io.rewrite();
        io
    }

    fn rewrite(&self) {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.file);
        for chunk in 0..IO_CHUNKS {
            // SAFETY: buf holds IO_CHUNK bytes, aligned for O_DIRECT.
            let n = unsafe { libc::pwrite(fd, self.buf.cast(), IO_CHUNK, (chunk * IO_CHUNK) as libc::off_t) };
            assert_eq!(n, IO_CHUNK as isize);
        }
        self.file.sync_all().expect("fsync");
    }
}

fn query_ms(target: &str) -> u64 {
    query_param(target, "ms")
}

/// A number in the query (`?key=N`), 10 when absent.
fn query_param(target: &str, key: &str) -> u64 {
    query(target, key).and_then(|v| v.parse().ok()).unwrap_or(10)
}

fn handle(stream: TcpStream, io: &IoFile, options: &Options) {
    // One descriptor for both directions, or (`--dup-writer`) a reader and
    // a writer on two descriptors of one connection, as some servers do.
    let duplicate;
    let mut reader = BufReader::new(&stream);
    let mut writer = if options.dup_writer {
        duplicate = stream.try_clone().expect("dup");
        &duplicate
    } else {
        &stream
    };
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut keep_alive = true;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                break;
            }
            if header.to_ascii_lowercase().starts_with("connection: close") {
                keep_alive = false;
            }
        }
        let target = request_line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let path = target.split('?').next().unwrap_or("/").to_owned();
        if path == "/handoff" {
            if handoff(writer, &target).is_err() || !keep_alive {
                return;
            }
            continue;
        }
        if path == "/stream" {
            if stream_response(writer, &target, keep_alive).is_err() || !keep_alive {
                return;
            }
            continue;
        }
        let name = std::ffi::CString::new(format!("GET {path}")).expect("no NUL");
        let id = NEXT_SPAN.fetch_add(1, Ordering::Relaxed);
        // The logged span encloses the marked one, by a clock read each side.
        let start_unix_ns = unix_ns();
        let span = options.markers.then(|| tracer_span::Span::begin(id, &name));
        let cpu_at_begin = thread_cpu_ns();
        let mut extra = String::new();
        let status = match path.as_str() {
            "/call" => {
                let took = call_downstream(&target);
                extra = format!("X-Call-Ns: {}\r\n", took.as_nanos());
                "200 OK"
            }
            "/cpu" => {
                burn(query_ms(&target));
                "200 OK"
            }
            "/sleep" => {
                std::thread::sleep(Duration::from_millis(query_ms(&target)));
                "200 OK"
            }
            "/io" => {
                io.rewrite();
                "200 OK"
            }
            "/plain" => "200 OK",
            "/moved" => {
                let id = NEXT_SPAN.fetch_add(1, Ordering::Relaxed);
                let moved = tracer_span::Span::begin(id, c"moved");
                std::thread::spawn(move || drop(moved)).join().expect("ending thread");
                "200 OK"
            }
            "/anomalies" => {
                tracer_span::tracer_span_end(u64::MAX - NEXT_SPAN.fetch_add(1, Ordering::Relaxed));
                let twice = NEXT_SPAN.fetch_add(1, Ordering::Relaxed);
                // SAFETY: valid NUL-terminated names.
                unsafe {
                    tracer_span::tracer_span_begin(twice, c"twice".as_ptr());
                    tracer_span::tracer_span_begin(twice, c"twice".as_ptr());
                    tracer_span::tracer_span_begin(NEXT_SPAN.fetch_add(1, Ordering::Relaxed), c"never".as_ptr());
                }
                tracer_span::tracer_span_end(twice);
                "200 OK"
            }
            "/burst" => {
                let count = query_param(&target, "n");
                let first = NEXT_SPAN.fetch_add(count, Ordering::Relaxed);
                for id in first..first + count {
                    drop(tracer_span::Span::begin(id, c"burst"));
                }
                extra = format!("X-Burst-First: {first}\r\n");
                "200 OK"
            }
            "/fork" => {
                extra = format!("X-Child-Pid: {}\r\n", fork_marking_child(query_ms(&target)));
                "200 OK"
            }
            _ => "404 Not Found",
        };
        let body = format!("{path}\n");
        let cpu_ns = thread_cpu_ns() - cpu_at_begin;
        drop(span);
        let end_unix_ns = unix_ns();
        if let Some(log) = &options.span_log {
            let line = format!(
                "{{\"span_id\": {id}, \"name\": {:?}, \"tid\": {}, \"start_unix_ns\": {start_unix_ns}, \"end_unix_ns\": {end_unix_ns}}}\n",
                name.to_str().expect("ASCII"),
                // SAFETY: gettid has no arguments and cannot fail.
                unsafe { libc::gettid() },
            );
            let _ = log.lock().expect("log lock").write_all(line.as_bytes());
        }
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nX-Span-Id: {id}\r\nX-Thread-Cpu-Ns: {cpu_ns}\r\n{extra}{}\r\n{body}",
            body.len(),
            if keep_alive { "" } else { "Connection: close\r\n" }
        );
        if writer.write_all(response.as_bytes()).is_err() || !keep_alive {
            return;
        }
    }
}

/// `/handoff?ms=N`: the request is answered by another thread, a worker
/// woken for it (as a thread pool or an M:N runtime does), which burns N ms
/// of CPU first; this thread waits for it. The worker runs `SCHED_FIFO`
/// (as root): nothing preempts its work, whose run is then the one it was
/// woken for.
fn handoff(writer: &TcpStream, target: &str) -> std::io::Result<()> {
    let worker = HANDOFF_WORKER.get_or_init(|| {
        let (jobs, incoming) = std::sync::mpsc::channel::<Handoff>();
        std::thread::spawn(move || {
            let param = libc::sched_param { sched_priority: 1 };
            // SAFETY: sets this thread's own policy; failing (not root) is harmless.
            unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
            for (mut stream, ms, done) in incoming {
                burn(ms);
                let body = "/handoff\n";
                let response = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                let _ = stream.write_all(response.as_bytes());
                let _ = done.send(());
            }
        });
        std::sync::Mutex::new(jobs)
    });
    let (done, answered) = std::sync::mpsc::channel();
    let job = (writer.try_clone()?, query_ms(target), done);
    worker.lock().expect("worker lock").send(job).map_err(|_| std::io::Error::other("worker gone"))?;
    answered.recv().map_err(|_| std::io::Error::other("worker gone"))
}

/// `/stream?kib=N&chunks=K&ms=M[&chunked=1]`: a body of N KiB written in
/// K rounds M ms apart, after the head, with a `Content-Length` or chunked
/// (the last chunk goes with the last round).
fn stream_response(mut writer: &TcpStream, target: &str, keep_alive: bool) -> std::io::Result<()> {
    let (bytes, rounds) = (query_param(target, "kib") as usize * 1024, query_param(target, "chunks").max(1) as usize);
    let chunked = query(target, "chunked").is_some();
    let framing = if chunked { "Transfer-Encoding: chunked".to_owned() } else { format!("Content-Length: {bytes}") };
    let close = if keep_alive { "" } else { "Connection: close\r\n" };
    // The head in one write, as servers write it.
    writer.write_all(format!("HTTP/1.1 200 OK\r\n{framing}\r\n{close}\r\n").as_bytes())?;
    let piece = vec![b'x'; bytes / rounds];
    for round in 0..rounds {
        if round > 0 {
            std::thread::sleep(Duration::from_millis(query_ms(target)));
        }
        let last = round + 1 == rounds;
        let piece = if last { vec![b'x'; bytes - piece.len() * (rounds - 1)] } else { piece.clone() };
        let mut out = Vec::with_capacity(piece.len() + 16);
        if chunked {
            write!(out, "{:x}\r\n", piece.len())?;
        }
        out.extend_from_slice(&piece);
        if chunked {
            out.extend_from_slice(if last { b"\r\n0\r\n\r\n" } else { b"\r\n" });
        }
        writer.write_all(&out)?;
    }
    Ok(())
}

/// Forks a child that marks a span every millisecond for `ms` ms (ids from
/// 1,000,000,000, so they never meet the parent's), reaped by a thread.
fn fork_marking_child(ms: u64) -> i32 {
    // SAFETY: the child only calls the markers, clock_gettime and nanosleep,
    // then _exit: nothing that takes a lock another thread may have held.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let until = std::time::Instant::now() + Duration::from_millis(ms);
        let mut id = 1_000_000_000;
        while std::time::Instant::now() < until {
            // SAFETY: a valid NUL-terminated name.
            unsafe { tracer_span::tracer_span_begin(id, c"child".as_ptr()) };
            let pause = libc::timespec { tv_sec: 0, tv_nsec: 1_000_000 };
            // SAFETY: a valid request; no remainder wanted.
            unsafe { libc::nanosleep(&pause, std::ptr::null_mut()) };
            tracer_span::tracer_span_end(id);
            id += 1;
        }
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    std::thread::spawn(move || {
        // SAFETY: reaps our own child.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    });
    pid
}

fn unix_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_nanos() as u64
}

struct Options {
    /// Call the span markers around each request (`--no-markers`: do not).
    markers: bool,
    /// Where each request's span is logged as a JSON line (`--span-log FILE`).
    span_log: Option<std::sync::Mutex<std::fs::File>>,
    /// Write responses through a dup'ed descriptor (`--dup-writer`).
    dup_writer: bool,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    if let Some(cpu) = flag("--cpu").and_then(|c| c.parse::<usize>().ok()) {
        // SAFETY: a zeroed cpu_set_t with one bit set, for this process.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            assert_eq!(libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set), 0);
        }
    }
    let io_dir = flag("--io-dir").unwrap_or_else(|| "/var/tmp".into());
    let io: &'static IoFile = Box::leak(Box::new(IoFile::create(&io_dir)));
    let options: &'static Options = Box::leak(Box::new(Options {
        markers: !args.iter().any(|a| a == "--no-markers"),
        dup_writer: args.iter().any(|a| a == "--dup-writer"),
        span_log: flag("--span-log").map(|path| std::sync::Mutex::new(std::fs::File::create(path).expect("span log"))),
    }));
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    println!("ready {}", listener.local_addr().expect("addr").port());
    let _ = std::io::stdout().flush();
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || handle(stream, io, options));
    }
}
