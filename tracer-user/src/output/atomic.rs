//! Output files: checked before anything is recorded, written atomically.
//!
//! What a path names decides how it is written: a regular file (or nothing
//! yet) is written to a temporary file beside it and renamed over it, so
//! readers never see a partial file; a symbolic link is followed and its
//! final target written that way, so the link stays; anything else that
//! exists (a character device such as /dev/null, a FIFO) is opened and
//! written in place, since a rename would replace it with a regular file;
//! `-` is standard output.
use std::{
    fs::{OpenOptions, Permissions},
    io::{self, Write},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use rustix::fs::Access;
use tempfile::NamedTempFile;

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{0}: directory does not exist")]
    NoDirectory(String),
    #[error("{0}: is a directory, expected a file name")]
    IsDirectory(String),
    #[error("{path}: cannot write here ({source})")]
    NotWritable { path: String, source: io::Error },
}

/// Whether `path` means standard output.
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Where the bytes for a path go.
enum Destination {
    Stdout,
    /// Written beside this regular file (or new file) and renamed over it.
    Replace(PathBuf),
    /// Opened and written as it is (a device or a FIFO).
    InPlace(PathBuf),
}

/// The path in messages: the given one, and the file a link leads to.
fn shown_as(path: &Path, target: &Path) -> String {
    if path == target {
        path.display().to_string()
    } else {
        format!("{} (-> {})", path.display(), target.display())
    }
}

fn destination(path: &Path) -> Result<Destination, OutputError> {
    if is_stdout(path) {
        return Ok(Destination::Stdout);
    }
    let target = follow_links(path)
        .map_err(|source| OutputError::NotWritable { path: path.display().to_string(), source })?;
    match std::fs::metadata(&target) {
        Ok(meta) if meta.is_dir() => Err(OutputError::IsDirectory(shown_as(path, &target))),
        Ok(meta) if meta.is_file() => Ok(Destination::Replace(target)),
        Ok(_) => Ok(Destination::InPlace(target)),
        // Nothing there yet (whether its directory exists is checked when
        // the temporary file is made).
        Err(err) if matches!(err.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {
            Ok(Destination::Replace(target))
        }
        Err(source) => Err(OutputError::NotWritable { path: shown_as(path, &target), source }),
    }
}

/// The file a chain of symbolic links ends at, even a link to a file that
/// does not exist yet (which `canonicalize` refuses); `path` itself if it
/// is no link. Only the last component is followed: the rename resolves the
/// directories on the way itself.
fn follow_links(path: &Path) -> io::Result<PathBuf> {
    let mut path = path.to_path_buf();
    // The kernel's own limit (MAXSYMLINKS) before ELOOP.
    for _ in 0..40 {
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&path)?;
                path = parent_dir(&path).join(target);
            }
            _ => return Ok(path),
        }
    }
    Err(rustix::io::Errno::LOOP.into())
}

/// Checks, before anything is recorded, that `path` can be written: a new
/// file's directory exists and accepts a file (the temporary file made to
/// find out is removed again), and it is not a directory. A device or FIFO
/// is checked for write permission only, without opening it (opening a
/// FIFO waits for a reader) or creating files beside it (/dev is no place
/// for them).
pub fn check_output_path(path: &Path) -> Result<(), OutputError> {
    match destination(path)? {
        Destination::Stdout => Ok(()),
        Destination::InPlace(target) => rustix::fs::access(&target, Access::WRITE_OK)
            .map_err(|errno| OutputError::NotWritable { path: shown_as(path, &target), source: errno.into() }),
        Destination::Replace(target) => temp_beside(path, &target).map(drop),
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A temporary file in `target`'s directory, so the rename is atomic.
fn temp_beside(path: &Path, target: &Path) -> Result<NamedTempFile, OutputError> {
    let dir = parent_dir(target);
    if !dir.is_dir() {
        return Err(OutputError::NoDirectory(shown_as(path, target)));
    }
    let name = target.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        // What File::create gives (less the umask), not tempfile's
        // owner-only default: reports are read by other users too.
        .permissions(Permissions::from_mode(0o666))
        .tempfile_in(&dir)
        .map_err(|source| OutputError::NotWritable { path: shown_as(path, target), source })
}

/// An output on its way to a path: for a regular file, a temporary file
/// that [`OutputFile::finish`] renames over it and that is removed if
/// dropped before; for a device or FIFO, the opened file itself (opening
/// a FIFO blocks until a reader opens it); for `-`, standard output.
pub struct OutputFile {
    sink: Sink,
    shown: String,
}

enum Sink {
    Stdout(io::Stdout),
    Temp { temp: NamedTempFile, target: PathBuf },
    InPlace(std::fs::File),
}

impl OutputFile {
    pub fn create(path: &Path) -> Result<OutputFile, OutputError> {
        let (sink, shown) = match destination(path)? {
            Destination::Stdout => (Sink::Stdout(io::stdout()), "standard output".to_owned()),
            Destination::InPlace(target) => {
                // Neither created nor truncated: it exists, and a device
                // or pipe has no length to cut.
                let file = OpenOptions::new().write(true).open(&target);
                let shown = shown_as(path, &target);
                match file {
                    Ok(file) => (Sink::InPlace(file), shown),
                    Err(source) => return Err(OutputError::NotWritable { path: shown, source }),
                }
            }
            Destination::Replace(target) => {
                let temp = temp_beside(path, &target)?;
                let shown = shown_as(path, &target);
                (Sink::Temp { temp, target }, shown)
            }
        };
        Ok(OutputFile { sink, shown })
    }

    /// Puts the output in place: syncs the temporary file and renames it
    /// over the destination; a device, FIFO or standard output only needs
    /// flushing (fsync fails on /dev/null and means nothing for a pipe).
    pub fn finish(self) -> Result<(), OutputError> {
        let done = match self.sink {
            Sink::Stdout(mut out) => out.flush(),
            Sink::InPlace(mut file) => file.flush(),
            Sink::Temp { temp, target } => temp
                .as_file()
                .sync_all()
                .and_then(|()| temp.persist(&target).map(drop).map_err(|err| err.error)),
        };
        done.map_err(|source| OutputError::NotWritable { path: self.shown, source })
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.sink {
            Sink::Stdout(out) => out.write(buf),
            Sink::Temp { temp, .. } => temp.write(buf),
            Sink::InPlace(file) => file.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.sink {
            Sink::Stdout(out) => out.flush(),
            Sink::Temp { temp, .. } => temp.flush(),
            Sink::InPlace(file) => file.flush(),
        }
    }
}

/// Writes `bytes` to `path` through an [`OutputFile`].
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let mut file = OutputFile::create(path)?;
    if let Err(source) = file.write_all(bytes) {
        return Err(OutputError::NotWritable { path: file.shown, source });
    }
    file.finish()
}

#[cfg(test)]
mod tests {
    use std::{
        os::unix::fs::{FileTypeExt, symlink},
        sync::mpsc,
        time::Duration,
    };

    use super::*;

    fn scratch_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tracer-output-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn output_path_checks() {
        let dir = scratch_dir("checks");
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

    #[test]
    fn a_symlink_is_followed_and_kept() {
        let dir = scratch_dir("symlink");
        let target = dir.join("target.json");
        std::fs::write(&target, b"old").unwrap();
        let link = dir.join("link.json");
        symlink("target.json", &link).unwrap();
        check_output_path(&link).unwrap();
        write_atomically(&link, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays");
        assert_eq!(std::fs::read(&target).unwrap(), b"new");

        // A dangling link makes its target, whose directory must exist.
        let dangling = dir.join("dangling.json");
        symlink(dir.join("sub/made.json"), &dangling).unwrap();
        let err = check_output_path(&dangling).unwrap_err();
        assert!(matches!(err, OutputError::NoDirectory(_)), "{err}");
        assert!(err.to_string().contains("sub/made.json"), "the message names the link's target: {err}");
        std::fs::create_dir(dir.join("sub")).unwrap();
        write_atomically(&dangling, b"made").unwrap();
        assert_eq!(std::fs::read(dir.join("sub/made.json")).unwrap(), b"made");
        assert!(std::fs::symlink_metadata(&dangling).unwrap().file_type().is_symlink());

        let to_dir = dir.join("to-dir");
        symlink("sub", &to_dir).unwrap();
        assert!(matches!(check_output_path(&to_dir), Err(OutputError::IsDirectory(_))));
        let names = |d: &Path| std::fs::read_dir(d).unwrap().count();
        assert_eq!((names(&dir), names(&dir.join("sub"))), (5, 1), "no temporary file left");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_fifo_is_written_in_place() {
        let dir = scratch_dir("fifo");
        let fifo = dir.join("fifo");
        let mode = rustix::fs::Mode::from_raw_mode(0o600);
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, mode, 0).unwrap();
        check_output_path(&fifo).expect("checked without opening it (which would wait for a reader)");
        let (tx, rx) = mpsc::channel();
        let reading = fifo.clone();
        std::thread::spawn(move || tx.send(std::fs::read(reading)));
        write_atomically(&fifo, b"through the pipe").unwrap();
        let read = rx.recv_timeout(Duration::from_secs(10)).expect("the reader got nothing").unwrap();
        assert_eq!(read, b"through the pipe");
        assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "still a FIFO");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "nothing created beside it");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_dash_is_standard_output() {
        assert!(is_stdout(Path::new("-")) && !is_stdout(Path::new("./-")));
        check_output_path(Path::new("-")).unwrap();
    }
}
