//! A thread's cumulative totals: kept per thread in the kernel, and
//! differenced for spans and intervals.
use core::mem::size_of;

/// Declares [`ThreadTotals`] and every method that goes over all of its
/// fields from the one list below, so a new total is added in one place.
macro_rules! thread_totals {
    (
        $(#[$meta:meta])*
        pub struct ThreadTotals {
            $($(#[$field_meta:meta])* pub $field:ident: u64,)*
        }
    ) => {
        $(#[$meta])*
        pub struct ThreadTotals {
            $($(#[$field_meta])* pub $field: u64,)*
        }

        impl ThreadTotals {
            /// How many totals there are.
            pub const FIELD_COUNT: usize = [$(stringify!($field)),*].len();

            /// All zero: a thread seen for the first time.
            pub const ZERO: ThreadTotals = ThreadTotals { $($field: 0),* };

            /// What accrued between `earlier` and `self` (a span, an interval).
            #[inline(always)]
            pub fn since(&self, earlier: &ThreadTotals) -> ThreadTotals {
                ThreadTotals { $($field: saturating_difference(self.$field, earlier.$field)),* }
            }

            /// `*self = later.since(earlier)`, written field by field in place
            /// (the BPF stack has no room for a temporary in the larger programs).
            #[inline(always)]
            pub fn set_since(&mut self, later: &ThreadTotals, earlier: &ThreadTotals) {
                $(self.$field = saturating_difference(later.$field, earlier.$field);)*
            }

            /// Takes `earlier` totals off these (the difference of two
            /// snapshots, in place).
            pub fn subtract(&mut self, earlier: &ThreadTotals) {
                $(self.$field = saturating_difference(self.$field, earlier.$field);)*
            }

            /// Adds the totals of a following interval (the deltas of two
            /// rounds of one span).
            pub fn add(&mut self, more: &ThreadTotals) {
                $(self.$field = self.$field.saturating_add(more.$field);)*
            }

            /// Each total with its field name, in declaration order.
            pub fn fields(&self) -> [(&'static str, u64); ThreadTotals::FIELD_COUNT] {
                [$((stringify!($field), self.$field)),*]
            }

            /// The totals in declaration order.
            pub const fn values(&self) -> [u64; ThreadTotals::FIELD_COUNT] {
                [$(self.$field),*]
            }

            /// The inverse of [`ThreadTotals::values`].
            pub const fn from_values(values: [u64; ThreadTotals::FIELD_COUNT]) -> ThreadTotals {
                let [$($field),*] = values;
                ThreadTotals { $($field),* }
            }
        }
    };
}

/// `later.saturating_sub(earlier)` without a branch. The kernel programs
/// difference every total of a span at once; a branch per total doubles the
/// paths the BPF verifier walks with each total added (the HTTP syscall exit
/// program reached its million-instruction limit at 15 totals).
#[inline(always)]
pub const fn saturating_difference(later: u64, earlier: u64) -> u64 {
    let difference = later.wrapping_sub(earlier);
    // The borrow out of the top bit: 1 when `earlier > later`.
    let borrow = ((!later & earlier) | (!(later ^ earlier) & difference)) >> 63;
    difference & borrow.wrapping_sub(1)
}

thread_totals! {
    /// Cumulative totals of one thread since tracing started. Request spans are
    /// measured as differences of two snapshots of these.
    #[repr(C)]
    #[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
    pub struct ThreadTotals {
        pub on_cpu_ns: u64,
        /// All time spent runnable but not running (includes `preempted_ns`).
        pub runq_wait_ns: u64,
        pub runq_waits: u64,
        /// Run-queue wait that started with an involuntary switch.
        pub preempted_ns: u64,
        /// Blocked in `TASK_UNINTERRUPTIBLE`, until woken (includes `iowait_ns`).
        pub uninterruptible_ns: u64,
        /// Blocked in any other sleep state, until woken.
        pub sleep_ns: u64,
        pub voluntary_switches: u64,
        pub involuntary_switches: u64,
        /// The part of `uninterruptible_ns` spent waiting for I/O.
        pub iowait_ns: u64,
        /// Time inside traced syscalls (enter to exit), and their number.
        pub syscall_ns: u64,
        pub syscalls: u64,
        /// Times the thread was switched in on a different CPU than last time.
        pub migrations: u64,
        /// Time in an unknown state: the part of a period the sched tracepoints
        /// did not report that the kernel's counters could not place either
        /// (see `Counter::AccountingGaps`).
        pub unaccounted_ns: u64,
        /// The part of `on_cpu_ns` between a wakeup and the switch-in on a
        /// CPU that was idle: the CPU leaving idle (on a VM, the hypervisor
        /// running the virtual CPU again). The kernel charges it to the
        /// thread's own CPU clock, and nobody else held the CPU, so it is
        /// neither a wait for a CPU nor anyone's fault.
        pub wakeup_idle_ns: u64,
        /// Wake-ups that found their CPU idle (not counted in `runq_waits`).
        pub idle_wakeups: u64,
        /// The part of `runq_wait_ns` during which the thread's cgroup (or an
        /// ancestor) was throttled on its CPU by its CPU quota (`cpu.max`,
        /// `cpu.cfs_quota_us`): the thread waited for its quota, not behind
        /// other tasks. The kernel counts it in `run_delay` too.
        pub throttled_ns: u64,
        /// The part of `runq_wait_ns` taken from the thread while it held a
        /// CPU: the hypervisor running something else on the virtual CPU
        /// (steal), and interrupts on kernels that account their time apart.
        /// The kernel counts it neither as the thread's CPU time nor in its
        /// `run_delay`; nobody in the machine held the CPU.
        pub stolen_ns: u64,
    }
}
const _: () = assert!(size_of::<ThreadTotals>() == ThreadTotals::FIELD_COUNT * 8);

impl_pod!(ThreadTotals);

#[cfg(test)]
mod tests {
    use super::ThreadTotals;

    /// Distinct values in every field.
    fn sample() -> ThreadTotals {
        ThreadTotals::from_values(core::array::from_fn(|i| 100 * (i as u64 + 1)))
    }

    #[test]
    fn values_follow_the_declaration_order() {
        let totals = sample();
        assert_eq!(totals.on_cpu_ns, 100);
        assert_eq!(totals.stolen_ns, 100 * ThreadTotals::FIELD_COUNT as u64);
        assert_eq!(ThreadTotals::from_values(totals.values()), totals);
        assert_eq!(totals.fields()[1], ("runq_wait_ns", 200));
        assert_eq!(ThreadTotals::ZERO, ThreadTotals::default());
    }

    #[test]
    fn saturating_difference_is_saturating_sub() {
        let edges = [0, 1, 2, 1 << 62, (1 << 63) - 1, 1 << 63, (1 << 63) + 1, u64::MAX - 1, u64::MAX];
        for &later in &edges {
            for &earlier in &edges {
                assert_eq!(super::saturating_difference(later, earlier), later.saturating_sub(earlier), "{later} - {earlier}");
            }
        }
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (later, earlier) = (x, x.rotate_left(23) >> (x % 64));
            assert_eq!(super::saturating_difference(later, earlier), later.saturating_sub(earlier));
            assert_eq!(super::saturating_difference(earlier, later), earlier.saturating_sub(later));
        }
    }

    #[test]
    fn since_saturates_field_by_field() {
        let later = sample();
        let mut earlier = ThreadTotals { on_cpu_ns: 30, ..ThreadTotals::ZERO };
        earlier.migrations = u64::MAX;
        let delta = later.since(&earlier);
        assert_eq!(delta.on_cpu_ns, 70);
        assert_eq!(delta.migrations, 0);
        assert_eq!(delta.syscalls, later.syscalls);
        let mut in_place = ThreadTotals::ZERO;
        in_place.set_since(&later, &earlier);
        assert_eq!(in_place, delta);
    }
}
