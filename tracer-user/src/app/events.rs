//! The one event loop of every command and of the live view: a tick to
//! drain the ring buffers, the end of each interval, terminal input when
//! the live view plugs it in, and the end of the run: SIGINT, SIGTERM or
//! SIGHUP (a closed terminal, an ssh drop, `tmux kill-session`), the
//! deadline, or the planned number of intervals; and requests for fresh
//! numbers from another thread (a metrics scrape). Callers only react to
//! events, so every way a run can end goes through their one clean exit.
use std::{
    future::{pending, poll_fn},
    io,
    os::fd::OwnedFd,
    pin::Pin,
    task::Poll,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, Result};
use futures_core::Stream;
use ratatui::crossterm::event::Event as Input;
use tokio::{
    signal::unix::{Signal, SignalKind, signal},
    sync::Notify,
    io::{Interest, unix::AsyncFd},
    time::{Instant, Interval, interval, sleep_until},
};

/// How often the ring buffers are drained. The run-queue ring holds
/// several seconds of events at a million context switches per second, so
/// this only bounds the latency of the data, not its completeness.
pub const DRAIN_EVERY: Duration = Duration::from_millis(100);

/// Terminal events, as crossterm's `EventStream` yields them.
pub type InputStream = Pin<Box<dyn Stream<Item = io::Result<Input>>>>;

#[derive(Debug)]
pub enum Event {
    /// Time to move the streamed events out of the ring buffers.
    Drain,
    /// An interval ended.
    Interval,
    /// A terminal event (only with [`EventLoop::input`]).
    Input(Input),
    /// Fresh numbers were asked for (only with [`EventLoop::refresh_on`]).
    Refresh,
    /// The run is over; every later call returns the same.
    Stop(StopReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// SIGINT, SIGTERM or SIGHUP.
    Signal,
    /// The planned duration elapsed.
    Deadline,
    /// The planned number of intervals ended.
    Count,
    /// The terminal input ended or failed (the terminal is gone).
    InputEnded,
}

/// The planned intervals: their period, the end of the current one, and
/// how many may still come.
struct Intervals {
    every: Duration,
    next: Instant,
    left: Option<u64>,
}

/// Listeners for the signals that end a run. Once one exists for a signal,
/// that signal no longer kills the process, and a signal that arrives
/// before anyone polls is kept for the first poll.
struct StopSignals {
    sigint: Signal,
    sigterm: Signal,
    sighup: Signal,
}

impl StopSignals {
    fn listen() -> Result<StopSignals> {
        Ok(StopSignals {
            sigint: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            sigterm: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            sighup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        })
    }
}

/// Listeners installed at start-up, waiting for the first loop.
static EARLY: std::sync::Mutex<Option<StopSignals>> = std::sync::Mutex::new(None);

/// Listens for SIGINT, SIGTERM and SIGHUP now, before the probes load and
/// a command says it is recording: a signal sent as soon as it says so
/// (a test harness, a load-test script) then ends the run with its report
/// instead of killing the process. The first [`EventLoop`] takes them over.
pub fn listen_early() -> Result<()> {
    let signals = StopSignals::listen()?;
    *EARLY.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(signals);
    Ok(())
}

pub struct EventLoop {
    sigint: Signal,
    sigterm: Signal,
    sighup: Signal,
    started: Instant,
    drain: Option<Interval>,
    early_drains: Vec<AsyncFd<OwnedFd>>,
    intervals: Option<Intervals>,
    deadline: Option<Instant>,
    input: Option<InputStream>,
    refresh: Option<Arc<Notify>>,
    stopped: Option<StopReason>,
}

impl EventLoop {
    /// A loop that only stops, on SIGINT, SIGTERM or SIGHUP. From here on
    /// these signals no longer kill the process: they end the run.
    pub fn new() -> Result<EventLoop> {
        let early = EARLY.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let StopSignals { sigint, sigterm, sighup } = match early {
            Some(signals) => signals,
            None => StopSignals::listen()?,
        };
        Ok(EventLoop {
            sigint,
            sigterm,
            sighup,
            started: Instant::now(),
            drain: None,
            early_drains: Vec::new(),
            intervals: None,
            deadline: None,
            input: None,
            refresh: None,
            stopped: None,
        })
    }

    /// Yields [`Event::Drain`] every `period`, the first one at once.
    pub fn drain_every(mut self, period: Duration) -> Self {
        self.drain = Some(interval(period));
        self
    }

    /// Also drains as soon as one of `fds` is readable: ring buffers whose
    /// kernel side asks for an early drain when they fill faster than the
    /// tick empties them.
    pub fn drain_early_on(mut self, fds: Vec<OwnedFd>) -> Result<Self> {
        for fd in fds {
            // SAFETY: the descriptor is owned here and neither replaced nor
            // closed while registered (the `AsyncFd` owns it until dropped).
            let ring = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(io::Error::from);
            self.early_drains.push(ring.context("watching a ring buffer for early drains")?);
        }
        Ok(self)
    }

    /// Yields [`Event::Interval`] every `every` from the start, and stops
    /// after `count` of them if given. A late interval does not delay the
    /// next ones.
    pub fn intervals(mut self, every: Duration, count: Option<u64>) -> Self {
        self.intervals = Some(Intervals { every, next: self.started + every, left: count });
        self
    }

    /// Stops `after` the start.
    pub fn deadline(mut self, after: Duration) -> Self {
        self.deadline = Some(self.started + after);
        self
    }

    /// Yields the events of `input` too, and stops when it ends.
    pub fn input(mut self, input: InputStream) -> Self {
        self.input = Some(input);
        self
    }

    /// Yields [`Event::Refresh`] each time `requests` is notified (from any
    /// thread; a request made while the loop is busy is kept).
    pub fn refresh_on(mut self, requests: Arc<Notify>) -> Self {
        self.refresh = Some(requests);
        self
    }

    /// Changes the period of the intervals; the next one ends `every` from
    /// now.
    pub fn set_interval(&mut self, every: Duration) {
        let left = self.intervals.as_ref().and_then(|i| i.left);
        self.intervals = Some(Intervals { every, next: Instant::now() + every, left });
    }

    pub async fn next(&mut self) -> Event {
        if let Some(reason) = self.stopped {
            return Event::Stop(reason);
        }
        let event = self.wait().await;
        if let Event::Stop(reason) = event {
            self.stopped = Some(reason);
        }
        event
    }

    async fn wait(&mut self) -> Event {
        if self.intervals.as_ref().is_some_and(|i| i.left == Some(0)) {
            return Event::Stop(StopReason::Count);
        }
        let next_interval = self.intervals.as_ref().map(|i| i.next);
        // Biased: a stop is never held up by data, an interval that ends
        // with the deadline is still delivered (as `--duration` always did),
        // and a burst of input (a paste) cannot hold up the data.
        let event = tokio::select! {
            biased;
            _ = self.sigint.recv() => Event::Stop(StopReason::Signal),
            _ = self.sigterm.recv() => Event::Stop(StopReason::Signal),
            _ = self.sighup.recv() => Event::Stop(StopReason::Signal),
            () = at(next_interval) => Event::Interval,
            () = at(self.deadline) => Event::Stop(StopReason::Deadline),
            () = tick(&mut self.drain) => Event::Drain,
            () = asked_to_drain(&self.early_drains) => Event::Drain,
            () = requested(&self.refresh) => Event::Refresh,
            input = next_input(&mut self.input) => match input {
                Some(Ok(input)) => Event::Input(input),
                None | Some(Err(_)) => Event::Stop(StopReason::InputEnded),
            },
        };
        if let (Event::Interval, Some(intervals)) = (&event, &mut self.intervals) {
            intervals.next += intervals.every;
            intervals.left = intervals.left.map(|n| n.saturating_sub(1));
        }
        event
    }
}

/// Completes at `when`; never without one.
async fn at(when: Option<Instant>) {
    match when {
        Some(when) => sleep_until(when).await,
        None => pending().await,
    }
}

/// Completes when a ring buffer asks to be drained; never without one.
async fn asked_to_drain(rings: &[AsyncFd<OwnedFd>]) {
    poll_fn(|cx| {
        for ring in rings {
            if let Poll::Ready(Ok(mut ready)) = ring.poll_read_ready(cx) {
                // The drain that follows empties it; the next wakeup the
                // kernel sends makes it ready again.
                ready.clear_ready();
                return Poll::Ready(());
            }
        }
        Poll::Pending
    })
    .await;
}

async fn tick(drain: &mut Option<Interval>) {
    match drain {
        Some(drain) => {
            drain.tick().await;
        }
        None => pending().await,
    }
}

async fn requested(refresh: &Option<Arc<Notify>>) {
    match refresh {
        Some(requests) => requests.notified().await,
        None => pending().await,
    }
}

async fn next_input(input: &mut Option<InputStream>) -> Option<io::Result<Input>> {
    match input {
        Some(input) => poll_fn(|cx| input.as_mut().poll_next(cx)).await,
        None => pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::VecDeque,
        task::{Context, Poll},
    };

    use ratatui::crossterm::event::{KeyCode, KeyEvent};
    use rustix::process::{Signal as Sig, getpid, kill_process};
    use tokio::sync::{Mutex, MutexGuard};

    use super::*;

    /// A signal raised by one test reaches the loops of all: one at a time
    /// (each test has a runtime of its own, so the lock is async).
    async fn one_at_a_time() -> MutexGuard<'static, ()> {
        static LOCK: Mutex<()> = Mutex::const_new(());
        LOCK.lock().await
    }

    /// Runs `events` until it stops: the events but drains, each with its
    /// time from the start in ms, and the number of drains.
    async fn run(mut events: EventLoop) -> (Vec<(u128, String)>, usize) {
        let start = Instant::now();
        let (mut seen, mut drains) = (Vec::new(), 0);
        loop {
            let event = events.next().await;
            let ms = start.elapsed().as_millis();
            match event {
                Event::Drain => drains += 1,
                Event::Stop(reason) => {
                    seen.push((ms, format!("{reason:?}")));
                    assert!(matches!(events.next().await, Event::Stop(again) if again == reason));
                    return (seen, drains);
                }
                other => seen.push((ms, format!("{other:?}"))),
            }
        }
    }

    fn at(ms: u128, what: &str) -> (u128, String) {
        (ms, what.to_owned())
    }

    #[tokio::test(start_paused = true)]
    async fn a_ring_that_asks_for_a_drain_gets_one_per_wakeup() {
        use std::io::Write;
        let _serial = one_at_a_time().await;
        // A socket stands in for a ring buffer: readable once the peer writes.
        let (ring, mut kernel) = std::os::unix::net::UnixStream::pair().unwrap();
        kernel.write_all(b"x").unwrap();
        let events =
            EventLoop::new().unwrap().drain_early_on(vec![OwnedFd::from(ring)]).unwrap().deadline(Duration::from_secs(1));
        let (seen, drains) = run(events).await;
        assert_eq!(seen, [at(1000, "Deadline")]);
        assert_eq!(drains, 1, "one drain for one wakeup, and no tick");
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_stops_with_the_drains_before_it() {
        let _serial = one_at_a_time().await;
        let events = EventLoop::new().unwrap().drain_every(DRAIN_EVERY).deadline(Duration::from_secs(1));
        let (seen, drains) = run(events).await;
        assert_eq!(seen, [at(1000, "Deadline")]);
        assert_eq!(drains, 10, "at 0, 100, .. 900 ms");
    }

    #[tokio::test(start_paused = true)]
    async fn a_count_of_intervals_stops_after_the_last() {
        let _serial = one_at_a_time().await;
        let events = EventLoop::new().unwrap().drain_every(DRAIN_EVERY).intervals(Duration::from_millis(250), Some(3));
        let (seen, _) = run(events).await;
        assert_eq!(seen, [at(250, "Interval"), at(500, "Interval"), at(750, "Interval"), at(750, "Count")]);
    }

    #[tokio::test(start_paused = true)]
    async fn intervals_arrive_at_their_period_and_the_last_before_the_deadline() {
        let _serial = one_at_a_time().await;
        let events = EventLoop::new().unwrap().intervals(Duration::from_millis(300), None).deadline(Duration::from_secs(1));
        let (seen, drains) = run(events).await;
        assert_eq!(seen, [at(300, "Interval"), at(600, "Interval"), at(900, "Interval"), at(1000, "Deadline")]);
        assert_eq!(drains, 0, "no drains unless asked for");

        // `record --duration 2` gets the callback of its second interval.
        let events = EventLoop::new().unwrap().intervals(Duration::from_secs(1), None).deadline(Duration::from_secs(2));
        let (seen, _) = run(events).await;
        assert_eq!(seen, [at(1000, "Interval"), at(2000, "Interval"), at(2000, "Deadline")]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_interval_runs_from_when_it_was_set() {
        let _serial = one_at_a_time().await;
        let start = Instant::now();
        let mut events = EventLoop::new().unwrap().drain_every(DRAIN_EVERY).intervals(Duration::from_secs(1), None);
        let mut times = Vec::new();
        while times.len() < 3 {
            if let Event::Interval = events.next().await {
                times.push(start.elapsed().as_millis());
                events.set_interval(Duration::from_millis(300));
            }
        }
        assert_eq!(times, [1000, 1300, 1600]);
    }

    /// A scripted terminal: its events, then its end.
    struct Scripted(VecDeque<io::Result<Input>>);

    impl Stream for Scripted {
        type Item = io::Result<Input>;

        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Poll::Ready(self.0.pop_front())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn input_comes_through_and_its_end_or_failure_stops() {
        let _serial = one_at_a_time().await;
        let key = Input::Key(KeyEvent::from(KeyCode::Char('q')));
        let script = Scripted(VecDeque::from([Ok(key.clone()), Ok(Input::Resize(80, 24))]));
        let events = EventLoop::new().unwrap().drain_every(DRAIN_EVERY).input(Box::pin(script));
        let (seen, _) = run(events).await;
        assert_eq!(seen, [at(0, &format!("Input({key:?})")), at(0, "Input(Resize(80, 24))"), at(0, "InputEnded")]);

        let script = Scripted(VecDeque::from([Err(io::Error::other("terminal gone"))]));
        let events = EventLoop::new().unwrap().input(Box::pin(script));
        assert_eq!(run(events).await.0, [at(0, "InputEnded")]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refresh_asked_from_another_thread_comes_through_once() {
        let _serial = one_at_a_time().await;
        let requests = Arc::new(Notify::new());
        let mut events = EventLoop::new().unwrap().refresh_on(requests.clone()).deadline(Duration::from_secs(1));
        let asker = requests.clone();
        std::thread::spawn(move || asker.notify_one()).join().unwrap();
        assert!(matches!(events.next().await, Event::Refresh), "asked before the loop waited: kept");
        assert!(matches!(events.next().await, Event::Stop(StopReason::Deadline)), "once");
    }

    #[tokio::test]
    async fn sigint_sigterm_and_sighup_stop() {
        let _serial = one_at_a_time().await;
        for signal in [Sig::INT, Sig::TERM, Sig::HUP] {
            let mut events = EventLoop::new().unwrap().drain_every(DRAIN_EVERY).intervals(Duration::from_secs(3600), None);
            kill_process(getpid(), signal).unwrap();
            let stop = tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    match events.next().await {
                        Event::Drain => {}
                        Event::Stop(reason) => return reason,
                        other => panic!("{other:?} before the stop"),
                    }
                }
            });
            assert_eq!(stop.await.expect("stopped"), StopReason::Signal, "{signal:?}");
        }
    }
}
