//! The clocks: CLOCK_MONOTONIC (the kernel's event clock) and
//! CLOCK_REALTIME, read with rustix; only the local time of day needs libc.
use rustix::time::{ClockId, clock_gettime};

use crate::model::timeline::ClockPair;

/// CLOCK_MONOTONIC in ns: the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    clock_ns(ClockId::Monotonic)
}

pub fn unix_ns() -> u64 {
    clock_ns(ClockId::Realtime)
}

fn clock_ns(clock: ClockId) -> u64 {
    let ts = clock_gettime(clock);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Add to a CLOCK_MONOTONIC time to get Unix time (as of now; a step of
/// the wall clock changes it).
pub fn monotonic_to_unix_offset_ns() -> i128 {
    i128::from(unix_ns()) - i128::from(monotonic_ns())
}

/// Reads the wall clock between two reads of the monotonic clock and
/// pairs it with their midpoint, so the pair is off by at most half the
/// time between those reads (well under a microsecond).
pub fn clock_pair() -> ClockPair {
    let before = monotonic_ns();
    let unix_ns = unix_ns();
    let after = monotonic_ns();
    ClockPair { monotonic_ns: before + (after - before) / 2, unix_ns }
}

/// The local wall-clock time as HH:MM:SS, for interval headers (`-T`).
pub fn wall_clock_hms() -> String {
    local_hms(unix_ns() / 1_000_000_000)
}

/// A Unix time in seconds as local HH:MM:SS.
pub fn local_hms(unix_s: u64) -> String {
    let secs = unix_s as libc::time_t;
    // SAFETY: localtime_r fills the zeroed tm from a valid time_t; rustix
    // has no time zone support, and the local zone is what users expect.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    unsafe { libc::localtime_r(&secs, &mut tm) };
    format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_pair_matches_the_clocks_offset() {
        let pair = clock_pair();
        let sampled = i128::from(pair.unix_ns) - i128::from(pair.monotonic_ns);
        let offset = monotonic_to_unix_offset_ns();
        assert!((offset - sampled).abs() < 1_000_000, "{offset} vs {sampled}");
    }
}
