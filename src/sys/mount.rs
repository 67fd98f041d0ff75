//! `mount(2)` for PID 1: the pseudo filesystems an initramfs needs before anything else works.
//!
//! Only what the plan agent needs: mount a filesystem type on a directory, creating the
//! directory, and treat "already mounted" as success; and mount a device (the USB stick's
//! images partition). It does not parse mount tables (that is
//! `disk/`'s job) and never unmounts.

use crate::error::{Context, Result};
use rustix::mount::MountFlags;
use std::path::Path;

/// Mounts a filesystem of `fstype` on `target` (see mount(2)), creating `target` first.
///
/// `EBUSY` (something is already mounted there, e.g. a kernel that mounted devtmpfs itself)
/// counts as success: the caller wanted the filesystem there and it is.
pub fn mount(fstype: &str, target: &Path, flags: MountFlags, data: &str) -> Result<()> {
    std::fs::create_dir_all(target).with_context(|| format!("creating mount point {}", target.display()))?;
    let data = std::ffi::CString::new(data).map_err(|_| crate::Error::invalid("mount data contains NUL"))?;
    match rustix::mount::mount(fstype, target, fstype, flags, data.as_c_str()) {
        Ok(()) | Err(rustix::io::Errno::BUSY) => Ok(()),
        Err(e) => {
            Err(std::io::Error::from(e)).with_context(|| format!("mounting {fstype} on {}", target.display()))
        }
    }
}

/// Mounts the filesystem of type `fstype` on the block device `source` at `target` (see
/// mount(2)), creating `target` first.
pub fn mount_device(source: &Path, fstype: &str, target: &Path, flags: MountFlags, data: &str) -> Result<()> {
    std::fs::create_dir_all(target).with_context(|| format!("creating mount point {}", target.display()))?;
    let data = std::ffi::CString::new(data).map_err(|_| crate::Error::invalid("mount data contains NUL"))?;
    rustix::mount::mount(source, target, fstype, flags, data.as_c_str())
        .map_err(std::io::Error::from)
        .with_context(|| format!("mounting {} ({fstype}) on {}", source.display(), target.display()))
}
