//! Program names, one set per attach mechanism; the loader picks one set.
pub const BTF_SCHED_SWITCH: &str = "btf_sched_switch";
pub const BTF_SCHED_WAKEUP: &str = "btf_sched_wakeup";
pub const BTF_SCHED_WAKEUP_NEW: &str = "btf_sched_wakeup_new";
pub const TP_SCHED_SWITCH: &str = "tp_sched_switch";
pub const TP_SCHED_WAKEUP: &str = "tp_sched_wakeup";
pub const TP_SCHED_WAKEUP_NEW: &str = "tp_sched_wakeup_new";
pub const BTF_SCHED_PROCESS_FORK: &str = "btf_sched_process_fork";
pub const BTF_SCHED_PROCESS_EXIT: &str = "btf_sched_process_exit";
pub const BTF_SCHED_UPDATE_NR_RUNNING: &str = "btf_sched_update_nr_running";
pub const BTF_SYS_ENTER: &str = "btf_sys_enter";
pub const BTF_SYS_EXIT: &str = "btf_sys_exit";
pub const TP_SYS_ENTER: &str = "tp_sys_enter";
pub const TP_SYS_EXIT: &str = "tp_sys_exit";
/// The lean `--http` path: attached to each HTTP syscall's own tracepoints.
pub const TP_HTTP_SYSCALL_ENTER: &str = "tp_http_syscall_enter";
pub const TP_HTTP_SYSCALL_EXIT: &str = "tp_http_syscall_exit";
pub const UPROBE_SPAN_BEGIN: &str = "uprobe_span_begin";
pub const UPROBE_SPAN_END: &str = "uprobe_span_end";
pub const BTF_SYS_ENTER_EMPTY: &str = "btf_sys_enter_empty";
pub const BTF_SYS_EXIT_EMPTY: &str = "btf_sys_exit_empty";
pub const TP_BLOCK_IO_START: &str = "tp_block_io_start";
pub const TP_BLOCK_RQ_INSERT: &str = "tp_block_rq_insert";
pub const TP_BLOCK_RQ_ISSUE: &str = "tp_block_rq_issue";
pub const TP_BLOCK_RQ_COMPLETE: &str = "tp_block_rq_complete";
