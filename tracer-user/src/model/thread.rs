//! A thread as the model keeps it: who it is and its totals.
use tracer_common::ThreadTotals;

/// One thread's totals as last read (or final, once `exited`).
#[derive(Clone, Debug, PartialEq)]
pub struct ThreadRecord {
    pub tid: u32,
    pub tgid: u32,
    pub comm: String,
    pub totals: ThreadTotals,
    pub exited: bool,
    /// Exited threads summed into this row (TID 0, see `model::exited`);
    /// 0 for a thread's own row.
    pub folded: u64,
}
