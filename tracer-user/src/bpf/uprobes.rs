//! The span marker uprobes: found in the target's executable and libraries.
use aya::{
    Ebpf,
    programs::{UProbe, uprobe::UProbeScope},
};
use tracer_common::programs;

use super::{LoadError, attach::{attach_failed, program}};

/// Files mapped executable by `pid` (its executable and libraries).
pub(super) fn mapped_objects(pid: u32) -> Vec<std::path::PathBuf> {
    let mut paths = Vec::new();
    if let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) {
        paths.push(exe);
    }
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let perms = fields.nth(1).unwrap_or("");
        if let Some(path) = fields.nth(3).filter(|p| p.starts_with('/')) {
            let path = std::path::PathBuf::from(path);
            if perms.contains('x') && !paths.contains(&path) {
                paths.push(path);
            }
        }
    }
    paths
}

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
