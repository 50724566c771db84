//! tracefs: mounting it when needed and reading tracepoint format files.
use std::{collections::HashMap, path::Path};

use rustix::mount::MountFlags;

#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error("cannot mount tracefs at {path}: {source}")]
    Mount { path: &'static str, source: std::io::Error },
    #[error("tracepoint {0} does not exist on this kernel")]
    NoTracepoint(String),
    #[error("tracepoint {tracepoint} has no field `{field}`")]
    NoField { tracepoint: String, field: String },
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
}

const TRACEFS: &str = "/sys/kernel/tracing";
const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";

/// The tracefs directory, mounting tracefs at /sys/kernel/tracing if no
/// mount is found. Idempotent.
pub fn tracefs_root() -> Result<&'static str, TracefsError> {
    for root in [TRACEFS, DEBUGFS_TRACING] {
        if Path::new(root).join("events").is_dir() {
            return Ok(root);
        }
    }
    rustix::mount::mount("nodev", TRACEFS, "tracefs", MountFlags::empty(), None)
        .map_err(|errno| TracefsError::Mount { path: TRACEFS, source: errno.into() })?;
    Ok(TRACEFS)
}

/// Field name -> (offset, size) of one tracepoint's record.
#[derive(Debug)]
pub struct Format {
    name: String,
    fields: HashMap<String, (u32, u32)>,
}

impl Format {
    pub fn read(category: &str, event: &str) -> Result<Self, TracefsError> {
        let root = tracefs_root()?;
        let name = format!("{category}:{event}");
        let path = format!("{root}/events/{category}/{event}/format");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(TracefsError::NoTracepoint(name));
            }
            Err(source) => return Err(TracefsError::Read { path, source }),
        };
        Ok(Self::parse(name, &text))
    }

    pub fn parse(name: String, text: &str) -> Self {
        let mut fields = HashMap::new();
        for line in text.lines() {
            let Some(rest) = line.trim().strip_prefix("field:") else {
                continue;
            };
            let mut parts = rest.split(';').map(str::trim);
            let Some(decl) = parts.next() else { continue };
            let mut offset = None;
            let mut size = None;
            for part in parts {
                if let Some(v) = part.strip_prefix("offset:") {
                    offset = v.parse().ok();
                } else if let Some(v) = part.strip_prefix("size:") {
                    size = v.parse().ok();
                }
            }
            // "char prev_comm[16]" -> "prev_comm"; "pid_t pid" -> "pid".
            let ident = decl.rsplit(' ').next().unwrap_or(decl);
            let ident = ident.split('[').next().unwrap_or(ident);
            if let (Some(offset), Some(size)) = (offset, size) {
                fields.insert(ident.to_owned(), (offset, size));
            }
        }
        Self { name, fields }
    }

    pub fn offset(&self, field: &str) -> Result<u32, TracefsError> {
        self.fields
            .get(field)
            .map(|(offset, _)| *offset)
            .ok_or_else(|| TracefsError::NoField {
                tracepoint: self.name.clone(),
                field: field.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHED_SWITCH: &str = "name: sched_switch\nID: 1\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\
\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;\n\
\tfield:long prev_state;\toffset:32;\tsize:8;\tsigned:1;\n\
\tfield:pid_t next_pid;\toffset:56;\tsize:4;\tsigned:1;\n";

    #[test]
    fn parses_offsets_of_scalars_and_arrays() {
        let f = Format::parse("sched:sched_switch".into(), SCHED_SWITCH);
        assert_eq!(f.offset("prev_comm").unwrap(), 8);
        assert_eq!(f.offset("prev_pid").unwrap(), 24);
        assert_eq!(f.offset("prev_state").unwrap(), 32);
        assert_eq!(f.offset("next_pid").unwrap(), 56);
        let err = f.offset("next_comm").unwrap_err().to_string();
        assert_eq!(err, "tracepoint sched:sched_switch has no field `next_comm`");
    }
}
