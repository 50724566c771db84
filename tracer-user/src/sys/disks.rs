//! Block devices by kernel `dev_t`, from /sys/block.
use std::collections::HashMap;

use crate::model::names::{NameError, close_matches};

/// Block devices by kernel `dev_t` (major << 20 | minor), from /sys/block.
#[derive(Debug, Default, Clone)]
pub struct Disks {
    by_dev: HashMap<u32, String>,
}

pub fn kernel_dev(major: u32, minor: u32) -> u32 {
    (major << 20) | minor
}

impl Disks {
    pub fn read() -> Disks {
        let mut by_dev = HashMap::new();
        if let Ok(entries) = std::fs::read_dir("/sys/block") {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Ok(dev) = std::fs::read_to_string(entry.path().join("dev")) else { continue };
                if let Some((major, minor)) = dev.trim().split_once(':')
                    && let (Ok(major), Ok(minor)) = (major.parse(), minor.parse())
                {
                    by_dev.insert(kernel_dev(major, minor), name);
                }
            }
        }
        Disks { by_dev }
    }

    pub fn name(&self, dev: u32) -> String {
        self.by_dev
            .get(&dev)
            .cloned()
            .unwrap_or_else(|| format!("{}:{}", dev >> 20, dev & 0xf_ffff))
    }

    /// The disk named `name`; a partition (`vda1`) resolves to its disk.
    pub fn resolve(&self, name: &str) -> Result<u32, NameError> {
        let name = name.trim_start_matches("/dev/");
        if let Some((&dev, _)) = self.by_dev.iter().find(|(_, n)| *n == name) {
            return Ok(dev);
        }
        let partition = std::path::Path::new("/sys/class/block").join(name).join("partition");
        if partition.exists()
            && let Ok(link) = std::fs::canonicalize(std::path::Path::new("/sys/class/block").join(name))
            && let Some(disk) = link.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str())
            && let Some((&dev, _)) = self.by_dev.iter().find(|(_, n)| *n == disk)
        {
            return Ok(dev);
        }
        Err(NameError::UnknownDevice {
            name: name.to_owned(),
            close: close_matches(name, self.by_dev.values().map(String::as_str)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;


    #[test]
    fn devices_resolve_and_unknown_ones_suggest() {
        let disks = Disks {
            by_dev: [(kernel_dev(254, 0), "vda".to_owned()), (kernel_dev(7, 0), "loop0".to_owned())]
                .into_iter()
                .collect(),
        };
        assert_eq!(disks.resolve("vda").unwrap(), kernel_dev(254, 0));
        assert_eq!(disks.resolve("/dev/vda").unwrap(), kernel_dev(254, 0));
        assert_eq!(disks.name(kernel_dev(254, 0)), "vda");
        assert_eq!(disks.name(kernel_dev(8, 1)), "8:1");
        let err = disks.resolve("vdb").unwrap_err().to_string();
        assert_eq!(err, "unknown block device `vdb` (did you mean: vda?)");
    }
}
