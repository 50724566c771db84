//! The span marker uprobes: found in the target's executable and libraries.
use aya::{
    Ebpf,
    programs::{UProbe, uprobe::UProbeScope},
};
use tracer_common::programs;

use super::{LoadError, attach::{attach_failed, program}};
use crate::sys::markers::mapped_objects;

/// Attaches the span uprobes to every object of `pid` that exports the
/// markers; none is an error that says how to add them.
pub(super) fn attach_span_markers(ebpf: &mut Ebpf, pid: u32) -> Result<(), LoadError> {
    let scope = std::num::NonZeroU32::new(pid).map_or(UProbeScope::AllProcesses, UProbeScope::OneProcess);
    let markers = [(programs::UPROBE_SPAN_BEGIN, "tracer_span_begin"), (programs::UPROBE_SPAN_END, "tracer_span_end")];
    for (name, _) in markers {
        let program: &mut UProbe = program(ebpf, name)?;
        // Loaded once, attached to each target process in turn.
        if program.fd().is_err() {
            program.load().map_err(attach_failed(name))?;
        }
    }
    let mut attached = 0;
    for object in mapped_objects(pid) {
        let mut complete = true;
        for (name, symbol) in markers {
            let program: &mut UProbe = program(ebpf, name)?;
            complete &= program.attach(symbol, &object, scope).is_ok();
        }
        attached += usize::from(complete);
    }
    if attached == 0 {
        return Err(LoadError::NoMarkers(pid));
    }
    Ok(())
}
