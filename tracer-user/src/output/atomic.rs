//! Output files: checked before anything is recorded, written atomically.
use std::{
    fs::Permissions,
    io::Write,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use tempfile::NamedTempFile;

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
/// The temporary file made to find out is removed again.
pub fn check_output_path(path: &Path) -> Result<(), OutputError> {
    OutputFile::create(path).map(drop)
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// An output on its way to `path`: written to a temporary file in the same
/// directory (so the rename is atomic), put in place by [`OutputFile::finish`]
/// and removed if dropped before, so readers never see a partial file.
pub struct OutputFile {
    temp: NamedTempFile,
    path: PathBuf,
}

impl OutputFile {
    pub fn create(path: &Path) -> Result<OutputFile, OutputError> {
        let shown = path.display().to_string();
        if path.is_dir() {
            return Err(OutputError::IsDirectory(shown));
        }
        let dir = parent_dir(path);
        if !dir.is_dir() {
            return Err(OutputError::NoDirectory(shown));
        }
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            // What File::create gives (less the umask), not tempfile's
            // owner-only default: reports are read by other users too.
            .permissions(Permissions::from_mode(0o666))
            .tempfile_in(&dir)
            .map_err(|source| OutputError::NotWritable { path: shown, source })?;
        Ok(OutputFile { temp, path: path.to_path_buf() })
    }

    /// Syncs the file and renames it over the destination.
    pub fn finish(self) -> Result<(), OutputError> {
        let failed = |source| OutputError::NotWritable { path: self.path.display().to_string(), source };
        self.temp.as_file().sync_all().map_err(failed)?;
        self.temp.persist(&self.path).map_err(|err| failed(err.error))?;
        Ok(())
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.temp.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.temp.flush()
    }
}

/// Writes `bytes` to `path` through an [`OutputFile`].
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let mut file = OutputFile::create(path)?;
    file.write_all(bytes)
        .map_err(|source| OutputError::NotWritable { path: path.display().to_string(), source })?;
    file.finish()
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
        let plain = dir.join("plain");
        std::fs::File::create(&plain).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode();
        assert_eq!(mode(&ok), mode(&plain), "the permissions of any new file, not owner-only");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
