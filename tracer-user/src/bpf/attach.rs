//! Attaching programs and taking maps out of the loaded object, with errors
//! that name what failed.
use aya::{
    Ebpf,
    programs::{BtfTracePoint, Program, TracePoint},
};

use tracer_common::programs;

use super::{LoadError, Probes};

impl Probes {
    /// Detaches and unloads every program, keeping the maps: from here on
    /// nothing more is produced or counted, so what is drained and read
    /// afterwards is final. (The program types are those tracer-ebpf
    /// defines; a program running at this instant still completes.)
    pub fn detach(&mut self) {
        for (_, program) in self.ebpf.programs_mut() {
            unload(program);
        }
    }

    /// Detaches the context-switch program alone, first: the end of the
    /// recording is taken right after it. Each program's detach waits for
    /// the kernel's grace periods (a whole shutdown, detach included, took
    /// about 300 ms here), and until the switch program is gone it goes on
    /// charging the holders of waits still in progress, which the totals end
    /// at the recording's end: taken before the whole detach, the holders of
    /// such a wait added up to more than the wait.
    pub fn detach_switch(&mut self) {
        for name in [programs::BTF_SCHED_SWITCH, programs::TP_SCHED_SWITCH] {
            if let Some(program) = self.ebpf.program_mut(name) {
                unload(program);
            }
        }
    }
}

fn unload(program: &mut Program) {
    // An error is a program that was never loaded (not needed by this run)
    // or already unloaded: nothing to detach.
    let _ = match program {
        Program::BtfTracePoint(p) => p.unload(),
        Program::TracePoint(p) => p.unload(),
        Program::UProbe(p) => p.unload(),
        _ => Ok(()),
    };
}

pub(super) fn attach_failed(what: impl Into<String>) -> impl FnOnce(aya::programs::ProgramError) -> LoadError {
    let what = what.into();
    move |err| LoadError::Attach {
        what,
        reason: error_chain(&err),
    }
}

/// An error and its sources on one line.
pub(super) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub(super) fn program<'a, P>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut P, LoadError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let program = ebpf
        .program_mut(name)
        .ok_or_else(|| LoadError::Load(format!("program {name} missing from the eBPF object")))?;
    program.try_into().map_err(attach_failed(name))
}

pub(super) fn take_map<M>(ebpf: &mut Ebpf, name: &str) -> Result<M, LoadError>
where
    M: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or_else(|| LoadError::Load(format!("map {name} missing from the eBPF object")))?;
    M::try_from(map).map_err(|e| LoadError::Load(format!("map {name}: {}", error_chain(&e))))
}

/// The result of an optional step (syscall or block I/O probes); on
/// failure, says on stderr what the run goes on without.
pub(super) fn optional<T>(what: &str, result: Result<T, LoadError>) -> Option<T> {
    result
        .map_err(|err| eprintln!("tracer: warning: {err}; continuing without {what}"))
        .ok()
}

pub(super) fn attach_btf(ebpf: &mut Ebpf, name: &str, event: &str, btf: &aya::Btf) -> Result<(), LoadError> {
    let what = format!("tp_btf/{event}");
    let program: &mut BtfTracePoint = program(ebpf, name)?;
    program.load(event, btf).map_err(attach_failed(&what))?;
    program.attach().map_err(attach_failed(&what))?;
    Ok(())
}

pub(super) fn attach_tracepoint(ebpf: &mut Ebpf, name: &str, category: &str, event: &str) -> Result<(), LoadError> {
    attach_tracepoints(ebpf, name, category, [event])
}

/// Loads program `name` once and attaches it to each of `events`.
pub(super) fn attach_tracepoints<'e>(
    ebpf: &mut Ebpf,
    name: &str,
    category: &str,
    events: impl IntoIterator<Item = &'e str>,
) -> Result<(), LoadError> {
    let program: &mut TracePoint = program(ebpf, name)?;
    for event in events {
        let what = format!("tracepoint {category}:{event}");
        if program.fd().is_err() {
            program.load().map_err(attach_failed(&what))?;
        }
        program.attach(category, event).map_err(attach_failed(&what))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_probes_degrade_instead_of_failing_the_run() {
        assert_eq!(optional("x", Ok::<u32, LoadError>(7)), Some(7));
        let refused = Err::<(), _>(LoadError::Load("tracepoint block:block_rq_issue refused".into()));
        assert_eq!(optional("block I/O tracing", refused), None);
    }
}
