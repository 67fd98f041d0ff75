//! The wizard's view of the rest of bty: list images, list disks, flash, reboot.
//!
//! The driver calls a [`Backend`] for every effect that touches the world, always off the UI
//! thread, so the wizard keeps drawing while a catalog downloads or a disk is written. The
//! [`SystemBackend`] is the real one, a thin adapter over `catalog`, `disk`, `source` and
//! `flash`; it decides nothing those modules already decide (which disk is refused and why,
//! how a catalog merges with the image root). The row types here are the vocabulary shared
//! with the state machine.

use crate::catalog::{self, Entry};
use crate::disk::Disk;
use crate::error::{Error, ErrorKind, Result};
use crate::flash::{FlashReport, Progress};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

/// Where the image list comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceChoice {
    /// Only the local image root.
    Local,
    /// A catalog (path, `http(s)://`, `oras://`), listed after the local image root's images.
    Catalog(String),
}

/// One disk as the wizard shows it: the device, whether a safety rule refuses it, and whether
/// anything on it would be lost.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskRow {
    /// The device as discovered.
    pub disk: Disk,
    /// Why this disk may not be the target of the chosen image (greyed out when `Some`).
    pub refusal: Option<String>,
    /// Whether the first MiB reads as zeros; `None` when it could not be read.
    pub first_mib_blank: Option<bool>,
}

impl DiskRow {
    /// Whether flashing would destroy something: partitions, mounts, or any non-zero byte at the
    /// start of the disk. A disk that could not be read counts as holding data.
    pub fn holds_data(&self) -> bool {
        !self.disk.partitions.is_empty()
            || !self.disk.mountpoints.is_empty()
            || self.first_mib_blank != Some(true)
    }
}

/// The disks found for one image, with the image size the safety rules were checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskScan {
    /// The image's size on disk once written, when known before decoding.
    pub image_size: Option<u64>,
    /// Every disk offered, refused ones included.
    pub disks: Vec<DiskRow>,
}

/// What the user confirmed: this image onto this device.
#[derive(Debug, Clone, PartialEq)]
pub struct FlashJob {
    /// The catalog entry (or local image) to write.
    pub image: Entry,
    /// The device node to write to.
    pub target: PathBuf,
    /// Read the written range back and compare.
    pub verify: bool,
}

/// Why a flash did not finish well, in words for the done screen.
#[derive(Debug, Clone, PartialEq)]
pub struct FlashFailure {
    /// Cancelled, refused, integrity or plain failure.
    pub kind: ErrorKind,
    /// The error's full message.
    pub message: String,
}

impl From<Error> for FlashFailure {
    fn from(e: Error) -> FlashFailure {
        FlashFailure { kind: e.kind(), message: e.to_string() }
    }
}

/// How a flash ended.
pub type FlashResult = std::result::Result<FlashReport, FlashFailure>;

/// Everything the wizard needs from the world. Every method may block; the driver calls them
/// on worker threads.
pub trait Backend: Send + Sync {
    /// The images `source` offers, local image root first.
    fn images(&self, source: &SourceChoice) -> Result<Vec<Entry>>;

    /// The disks that could receive `image`, each with the safety rule that refuses it, if any.
    fn disks(&self, image: &Entry) -> Result<DiskScan>;

    /// Writes the image; reports progress and stops soon after `cancel` becomes true.
    fn flash(
        &self,
        job: &FlashJob,
        progress: &mut dyn FnMut(&Progress),
        cancel: &AtomicBool,
    ) -> Result<FlashReport>;

    /// Asks the system to reboot.
    fn reboot(&self) -> Result<()>;
}

/// The real backend: this machine's image root, disks and flash engine.
#[derive(Debug, Clone)]
pub struct SystemBackend {
    /// The local image root (`BTY_IMAGE_ROOT`).
    pub image_root: PathBuf,
    /// When non-empty, only these device nodes are offered (loop devices included).
    pub only_disks: Vec<PathBuf>,
    /// Offer loop devices too, as `bty disks --all` lists them.
    pub all_disks: bool,
}

impl Backend for SystemBackend {
    fn images(&self, source: &SourceChoice) -> Result<Vec<Entry>> {
        let local = catalog::scan_local(&self.image_root)?;
        match source {
            SourceChoice::Local => Ok(local),
            SourceChoice::Catalog(spec) => Ok(catalog::merge(local, catalog::load(spec)?.entries)),
        }
    }

    fn disks(&self, _image: &Entry) -> Result<DiskScan> {
        Err(Error::failed("disk discovery is not available in this build yet"))
    }

    fn flash(
        &self,
        _job: &FlashJob,
        _progress: &mut dyn FnMut(&Progress),
        _cancel: &AtomicBool,
    ) -> Result<FlashReport> {
        Err(Error::failed("the flash engine is not available in this build yet"))
    }

    fn reboot(&self) -> Result<()> {
        Err(Error::failed("rebooting is not available in this build yet"))
    }
}
