//! Output files: checked before anything is recorded, written atomically.
use std::{
    io::Write,
    path::{Path, PathBuf},
};

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{0}: directory does not exist")]
    NoDirectory(String),
    #[error("{0}: is a directory, expected a file name")]
    IsDirectory(String),
    #[error("{path}: cannot write here ({source})")]
    NotWritable { path: String, source: std::io::Error },
}

/// Checks, before anything is recorded, that `path` can be written: its
/// directory exists and accepts a new file, and it is not a directory.
pub fn check_output_path(path: &Path) -> Result<(), OutputError> {
    let shown = path.display().to_string();
    if path.is_dir() {
        return Err(OutputError::IsDirectory(shown));
    }
    let dir = parent_dir(path);
    if !dir.is_dir() {
        return Err(OutputError::NoDirectory(shown));
    }
    let probe = temp_path(path);
    std::fs::File::create(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|source| OutputError::NotWritable { path: shown, source })
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Where a file bound for `path` is written before it is renamed over it:
/// the same directory, so the rename is atomic.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    parent_dir(path).join(format!(".{name}.tmp.{}", std::process::id()))
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it
/// over `path`, so readers never see a partial report.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let tmp = temp_path(path);
    let shown = path.display().to_string();
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        OutputError::NotWritable { path: shown, source }
    })
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_path_checks() {
        let dir = std::env::temp_dir().join(format!("tracer-report-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = dir.join("r.json");
        check_output_path(&ok).unwrap();
        assert!(!ok.exists(), "the check leaves nothing behind");
        let missing = dir.join("nope/r.json");
        assert_eq!(
            check_output_path(&missing).unwrap_err().to_string(),
            format!("{}: directory does not exist", missing.display())
        );
        assert!(matches!(check_output_path(&dir), Err(OutputError::IsDirectory(_))));
        write_atomically(&ok, b"{}").unwrap();
        assert_eq!(std::fs::read(&ok).unwrap(), b"{}");
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
