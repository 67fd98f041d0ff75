//! The wizard's view of the rest of bty: list images, list disks, flash, reboot.
//!
//! The driver calls a [`Backend`] for every effect that touches the world, always off the UI
//! thread, so the wizard keeps drawing while a catalog downloads or a disk is written. The
//! [`SystemBackend`] is the real one, a thin adapter over `catalog`, `disk`, `source` and
//! `flash`; it decides nothing those modules already decide (which disk is refused and why,
//! how a catalog merges with the image root). The row types here are the vocabulary shared
//! with the state machine.

use crate::catalog::{self, Entry};
use crate::disk::{self, Disk};
use crate::error::{Context, Error, ErrorKind, Result};
use crate::flash::{self, FlashOptions, FlashReport, Progress};
use crate::image::{self, Format, InspectOptions, PartitionTable};
use crate::source::{self, FileSource, Source};
use crate::sys;
use std::path::{Path, PathBuf};
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
    /// What the start of the disk holds.
    pub contents: Contents,
}

impl DiskRow {
    /// Whether flashing would destroy something: partitions, mounts, or any non-zero byte at the
    /// start of the disk. A disk that could not be read counts as holding data.
    pub fn holds_data(&self) -> bool {
        !self.disk.partitions.is_empty()
            || !self.disk.mountpoints.is_empty()
            || self.contents != Contents::Blank
    }
}

/// What the start of a disk holds, read from the device itself (the kernel may not have parsed
/// its partition table, as with loop devices).
#[derive(Debug, Clone, PartialEq)]
pub enum Contents {
    /// The first MiB reads as zeros.
    Blank,
    /// A partition table.
    Table(PartitionTable),
    /// Data, but no partition table bty recognises (a bare filesystem, old bytes).
    Data,
    /// The disk could not be read; the reason.
    Unreadable(String),
}

/// How much of a disk is read to tell a blank disk from one holding data.
const PROBE_BYTES: usize = 1 << 20;

impl Contents {
    /// Reads the start of the device at `path`: blank, a partition table, or other data.
    pub fn probe(path: &Path) -> Contents {
        let disk = match FileSource::open(path) {
            Ok(d) => d,
            Err(e) => return Contents::Unreadable(e.to_string()),
        };
        let mut head = vec![0u8; PROBE_BYTES];
        let mut got = 0;
        while got < head.len() {
            match disk.read_at(got as u64, &mut head[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => return Contents::Unreadable(e.to_string()),
            }
        }
        if head[..got].iter().all(|&b| b == 0) {
            return Contents::Blank;
        }
        // The disk is read as a raw image: the image module's partition table reader applies.
        let options = InspectOptions { format: Some(Format::Raw), ..InspectOptions::default() };
        match image::inspect_with(&disk, options) {
            Ok(found) => found.partition_table.map_or(Contents::Data, Contents::Table),
            Err(e) => Contents::Unreadable(e.to_string()),
        }
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

    /// Asks the system to switch off.
    fn power_off(&self) -> Result<()>;
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
    /// Never offer these disks (the USB stick the system runs from).
    pub hide_disks: Vec<PathBuf>,
}

impl Backend for SystemBackend {
    fn images(&self, source: &SourceChoice) -> Result<Vec<Entry>> {
        let local = catalog::scan_local(&self.image_root)?;
        match source {
            SourceChoice::Local => Ok(local),
            SourceChoice::Catalog(spec) => Ok(catalog::merge(local, catalog::load(spec)?.entries)),
        }
    }

    fn disks(&self, image: &Entry) -> Result<DiskScan> {
        let image_size = virtual_size(&image.src);
        // Naming a disk with --disk may name a loop device, which discovery lists only on request.
        let include_loops = self.all_disks || !self.only_disks.is_empty();
        let mut disks = disk::discover_system(include_loops)?;
        if !self.only_disks.is_empty() {
            // Compare resolved paths, so /dev/disk/by-id/... names work too.
            let wanted: Vec<PathBuf> = self
                .only_disks
                .iter()
                .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
                .collect();
            disks.retain(|d| wanted.contains(&d.path));
            if disks.is_empty() {
                let named: Vec<String> = self.only_disks.iter().map(|p| p.display().to_string()).collect();
                return Err(Error::not_found(format!(
                    "no whole disk matches --disk {}; `bty disks --all` lists the disks there are",
                    named.join(" --disk ")
                )));
            }
        }
        disks.retain(|d| !self.hide_disks.contains(&d.path));
        let disks = disks
            .into_iter()
            .map(|d| DiskRow {
                refusal: disk::refusal(&d, image_size),
                contents: Contents::probe(&d.path),
                disk: d,
            })
            .collect();
        Ok(DiskScan { image_size, disks })
    }

    fn flash(
        &self,
        job: &FlashJob,
        progress: &mut dyn FnMut(&Progress),
        cancel: &AtomicBool,
    ) -> Result<FlashReport> {
        let source = source::open(&job.image.src)?;
        // The digest the catalog listed is checked; without one the engine falls back to the
        // transport's own (an OCI layer digest).
        let listed = job.image.sha256.as_deref().map(source::parse_sha256).transpose()?;
        let options = FlashOptions {
            expected_sha256: listed,
            verify: job.verify,
            hash: true,
            ..FlashOptions::default()
        };
        flash::flash(source, &job.target, &options, progress, cancel)
    }

    fn reboot(&self) -> Result<()> {
        shut_down("reboot", sys::reboot::reboot)
    }

    fn power_off(&self) -> Result<()> {
        shut_down("poweroff", sys::reboot::power_off)
    }
}

/// Reboots or powers off: under systemd a clean shutdown is systemd's job (`systemctl VERB`);
/// in an initramfs there is no one to ask, so the filesystems are synced and `now` is called.
fn shut_down(verb: &str, now: fn() -> Result<()>) -> Result<()> {
    if Path::new("/run/systemd/system").exists() {
        let status = std::process::Command::new("systemctl")
            .arg(verb)
            .status()
            .with_context(|| format!("running systemctl {verb}"))?;
        if !status.success() {
            return Err(Error::failed(format!("systemctl {verb} failed ({status})")));
        }
        return Ok(());
    }
    sys::reboot::sync();
    now()
}

/// The image's size once written, when it can be known without decoding it; `None` when not
/// (the engine then checks the size while writing) or when the source cannot be read now (the
/// flash will report why).
fn virtual_size(src: &str) -> Option<u64> {
    let source = source::open(src).ok()?;
    let format = image::detect(&*source).ok()?;
    image::virtual_size(&*source, format).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(bytes: &[u8]) -> Contents {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::write(&path, bytes).unwrap();
        Contents::probe(&path)
    }

    #[test]
    fn a_zeroed_disk_is_blank_and_any_byte_makes_it_hold_data() {
        assert_eq!(probe(&vec![0u8; 2 << 20]), Contents::Blank);
        let mut bytes = vec![0u8; 2 << 20];
        bytes[4096] = 1;
        assert_eq!(probe(&bytes), Contents::Data);
    }

    #[test]
    fn an_mbr_is_read_from_the_device_itself() {
        let mut bytes = vec![0u8; 2 << 20];
        // One primary Linux partition from sector 2048, 2048 sectors long.
        let entry = &mut bytes[446..462];
        entry[4] = 0x83;
        entry[8..12].copy_from_slice(&2048u32.to_le_bytes());
        entry[12..16].copy_from_slice(&2048u32.to_le_bytes());
        bytes[510] = 0x55;
        bytes[511] = 0xaa;
        match probe(&bytes) {
            Contents::Table(t) => assert_eq!(t.partitions.len(), 1),
            other => panic!("expected a table, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_device_is_unreadable_with_the_reason() {
        let c = Contents::probe(Path::new("/nonexistent/disk"));
        assert!(matches!(&c, Contents::Unreadable(why) if why.contains("/nonexistent/disk")), "{c:?}");
    }
}
