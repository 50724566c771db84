//! The benchmark floor (`tracer floor`): empty programs on the syscall
//! tracepoints, the cost of merely having programs there.
use aya::{Ebpf, EbpfLoader};
use tracer_common::programs;

use super::{EBPF_OBJECT, LoadError, attach::{attach_btf, error_chain}, privilege::{is_privileged, raise_memlock_limit}};

/// The benchmark floor: empty programs on the syscall tracepoints. Kept
/// attached while the returned object lives.
pub fn load_empty_syscall_programs() -> Result<Ebpf, LoadError> {
    if EBPF_OBJECT.is_empty() {
        return Err(LoadError::NoObject);
    }
    if !is_privileged() {
        return Err(LoadError::NotPrivileged);
    }
    raise_memlock_limit();
    let btf = aya::Btf::from_sys_fs().map_err(|e| LoadError::Btf(error_chain(&e)))?;
    let mut ebpf = EbpfLoader::new()
        .btf(Some(&btf))
        .load(EBPF_OBJECT)
        .map_err(|e| LoadError::Load(error_chain(&e)))?;
    attach_btf(&mut ebpf, programs::BTF_SYS_ENTER_EMPTY, "sys_enter", &btf)?;
    attach_btf(&mut ebpf, programs::BTF_SYS_EXIT_EMPTY, "sys_exit", &btf)?;
    Ok(ebpf)
}
