//! Workloads with known scheduling behaviour, for the integration tests and
//! benchmarks. Each prints `ready <tid>...` once its threads exist.
//!
//!   tracer-load spin THREADS CPU      busy threads pinned to CPU (-1: any), forever
//!   tracer-load burn MILLIS           burn MILLIS ms of CPU time, then exit
//!   tracer-load sleepers THREADS MS   threads that each wake every MS ms, forever
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
        _ => panic!("usage: see the header of tests/src/bin/load.rs"),
    }
}
