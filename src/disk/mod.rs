//! Block devices from sysfs: discovery, identity by serial, safety checks.
//!
//! Discovery reads `/sys/block`, `/sys/class/block` and `/proc/self/mountinfo` (no `lsblk`);
//! the sysfs root and the mountinfo text are parameters so tests can use a fake tree. This
//! module decides which disks may be written; it never writes.

use serde::Serialize;
use std::path::PathBuf;

/// How a disk is attached, as far as sysfs tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// NVMe namespace.
    Nvme,
    /// SATA/SAS/ATA behind libata or SCSI.
    Sata,
    /// USB mass storage.
    Usb,
    /// virtio-blk (virtual machines).
    Virtio,
    /// SD/eMMC (mmcblk).
    Mmc,
    /// A loop device (only listed with `--all`).
    Loop,
    /// Anything sysfs does not let us name.
    Unknown,
}

/// A partition of a disk and where it is mounted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    /// Kernel name, e.g. `sda1`, `nvme0n1p2`.
    pub name: String,
    /// Device node, e.g. `/dev/sda1`.
    pub path: PathBuf,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Mount points of this partition (empty when not mounted).
    pub mountpoints: Vec<String>,
}

/// A whole block device that could be a flash target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disk {
    /// Kernel name, e.g. `sda`, `nvme0n1`, `loop3`.
    pub name: String,
    /// Device node, e.g. `/dev/sda`.
    pub path: PathBuf,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Vendor string with whitespace trimmed; `None` when empty.
    pub vendor: Option<String>,
    /// Model string with whitespace trimmed; `None` when empty.
    pub model: Option<String>,
    /// Serial with whitespace trimmed; `None` when empty. Server-driven flashes match it exactly.
    pub serial: Option<String>,
    /// How the disk is attached.
    pub transport: Transport,
    /// Removable media flag from sysfs.
    pub removable: bool,
    /// Read-only flag from sysfs.
    pub read_only: bool,
    /// Rotational flag from sysfs (spinning disk).
    pub rotational: bool,
    /// Logical sector size in bytes.
    pub logical_sector_size: u32,
    /// Physical sector size in bytes.
    pub physical_sector_size: u32,
    /// Mount points of the whole disk itself (rare: a filesystem without a partition table).
    pub mountpoints: Vec<String>,
    /// Partitions with their mount points.
    pub partitions: Vec<Partition>,
    /// Whether the running system lives on this disk (`/` or `/boot` or the live medium).
    pub holds_running_system: bool,
}
