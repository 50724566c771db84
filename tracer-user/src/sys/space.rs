//! Free space on the filesystem an output goes to.
use std::path::Path;

/// A filesystem's size and the bytes still available to write (to an
/// unprivileged writer: root's reserve is left alone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Space {
    pub available: u64,
    pub total: u64,
}

/// The space of the filesystem holding `dir`.
pub fn space_of(dir: &Path) -> std::io::Result<Space> {
    let vfs = rustix::fs::statvfs(dir)?;
    Ok(Space {
        available: vfs.f_bavail.saturating_mul(vfs.f_frsize),
        total: vfs.f_blocks.saturating_mul(vfs.f_frsize),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temporary_directory_has_some_space() {
        let space = space_of(&std::env::temp_dir()).unwrap();
        assert!(space.total > 0 && space.available <= space.total, "{space:?}");
    }
}
