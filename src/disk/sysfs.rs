//! Reads block devices out of a sysfs tree (`block/`, `class/block/`) and attributes mounts to
//! them, following partitions and the dm/md devices stacked on them (`holders/`).
//!
//! The root of the tree is a parameter, so tests build a fake one in a scratch directory. This
//! file only reads; which disks may be written is `safety.rs`'s decision.

use super::mountinfo::{self, Mount};
use super::{Disk, Partition, Transport};
use crate::error::{Context, Error, Result};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Mount points that mean "the running system lives here": the root, the boot partitions, and
/// the places live systems mount the medium they booted from.
const SYSTEM_MOUNT_POINTS: &[&str] = &[
    "/",
    "/boot",
    "/boot/efi",
    "/efi",
    "/usr",
    "/run/live/medium",
    "/lib/live/mount/medium",
    "/run/initramfs/live",
    "/run/archiso/bootmnt",
    "/cdrom",
];

/// Kernel name prefixes that are never flash targets by default: RAM disks, optical drives,
/// device-mapper and md arrays (their member disks are listed instead), floppies, nbd, loops.
const HIDDEN_PREFIXES: &[&str] = &["loop", "ram", "zram", "sr", "dm-", "md", "fd", "nbd"];

/// A sysfs tree together with the mount table, indexed for lookups by device number and name.
pub struct Tree {
    root: PathBuf,
    mounts: Vec<Mount>,
    /// `major:minor` → kernel name, for every entry of `class/block`.
    by_dev: HashMap<(u32, u32), String>,
    /// `/dev/NAME` and `/dev/mapper/DMNAME` → kernel name, for mounts whose device number is
    /// anonymous (btrfs, some overlays).
    by_node: HashMap<String, String>,
}

impl Tree {
    /// Indexes the tree at `root` (normally `/sys`) and the mount table text.
    pub fn read(root: &Path, mountinfo_text: &str) -> Result<Tree> {
        let class = root.join("class/block");
        let entries = fs::read_dir(&class).with_context(|| format!("listing {}", class.display()))?;
        let mut by_dev = HashMap::new();
        let mut by_node = HashMap::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let dir = class.join(&name);
            if let Some(dev) = read_trimmed(&dir.join("dev")).as_deref().and_then(mountinfo::parse_dev) {
                by_dev.insert(dev, name.clone());
            }
            if let Some(dm) = read_trimmed(&dir.join("dm/name")) {
                by_node.insert(format!("/dev/mapper/{dm}"), name.clone());
            }
            by_node.insert(format!("/dev/{name}"), name);
        }
        Ok(Tree { root: root.to_path_buf(), mounts: mountinfo::parse(mountinfo_text), by_dev, by_node })
    }

    /// Every whole disk under `block/`, sorted by name; hidden kinds and empty devices are
    /// left out, loop devices are kept when `include_loops`.
    pub fn disks(&self, include_loops: bool) -> Result<Vec<Disk>> {
        let block = self.root.join("block");
        let entries = fs::read_dir(&block).with_context(|| format!("listing {}", block.display()))?;
        let mut names: Vec<String> =
            entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        let mut disks = Vec::new();
        for name in names {
            let is_loop = name.starts_with("loop");
            let hidden = HIDDEN_PREFIXES.iter().any(|p| name.starts_with(p));
            if hidden && !(is_loop && include_loops) {
                continue;
            }
            let disk = self.disk(&name)?;
            if disk.size_bytes > 0 {
                disks.push(disk);
            }
        }
        Ok(disks)
    }

    /// The whole disk with kernel name `name`, whatever its kind.
    pub fn disk(&self, name: &str) -> Result<Disk> {
        let dir = self.dir(name);
        if !dir.exists() {
            return Err(Error::not_found(format!("no block device {name} in {}", self.root.display())));
        }
        let mut partitions = Vec::new();
        for entry in fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?.flatten() {
            let part = entry.file_name().to_string_lossy().into_owned();
            if entry.path().join("partition").exists() {
                partitions.push(Partition {
                    path: dev_node(&part),
                    size_bytes: sectors(&entry.path()),
                    mountpoints: self.mountpoints(&part),
                    name: part,
                });
            }
        }
        partitions.sort_by_key(|p| natural_key(&p.name));
        let mountpoints = self.mountpoints(name);
        let holds_running_system = mountpoints
            .iter()
            .chain(partitions.iter().flat_map(|p| p.mountpoints.iter()))
            .any(|m| SYSTEM_MOUNT_POINTS.contains(&m.as_str()));
        let transport = self.transport(name);
        let queue = dir.join("queue");
        Ok(Disk {
            name: name.to_string(),
            path: dev_node(name),
            size_bytes: sectors(&dir),
            // virtio's `device/vendor` is the PCI vendor id (0x1af4), not a name.
            vendor: read_trimmed(&dir.join("device/vendor")).filter(|_| transport != Transport::Virtio),
            model: read_trimmed(&dir.join("device/model")).or_else(|| {
                // SD/eMMC cards name their product in `name` rather than `model`.
                (transport == Transport::Mmc).then(|| read_trimmed(&dir.join("device/name"))).flatten()
            }),
            serial: self.serial(&dir, transport),
            transport,
            removable: read_flag(&dir.join("removable")),
            read_only: read_flag(&dir.join("ro")),
            rotational: read_flag(&queue.join("rotational")),
            zeroes_offloaded: read_flag(&queue.join("write_zeroes_max_bytes")),
            logical_sector_size: read_number(&queue.join("logical_block_size")).unwrap_or(512) as u32,
            physical_sector_size: read_number(&queue.join("physical_block_size")).unwrap_or(512) as u32,
            mountpoints,
            partitions,
            holds_running_system,
        })
    }

    /// The kernel name of the device numbered `dev`, and the whole disk it belongs to when it
    /// is a partition (`(name, Some(disk))`).
    pub fn name_of_dev(&self, dev: (u32, u32)) -> Option<(String, Option<String>)> {
        let name = self.by_dev.get(&dev)?.clone();
        let dir = self.dir(&name);
        if !dir.join("partition").exists() {
            return Some((name, None));
        }
        // A partition's directory sits inside its disk's: .../block/sda/sda1.
        let real = fs::canonicalize(&dir).ok()?;
        let disk = real.parent()?.file_name()?.to_string_lossy().into_owned();
        Some((name, Some(disk)))
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join("class/block").join(name)
    }

    /// Mount points of `name` and of everything stacked on it (dm, md, nested holders).
    fn mountpoints(&self, name: &str) -> Vec<String> {
        let mut family = vec![name.to_string()];
        let mut i = 0;
        while let Some(member) = family.get(i).cloned() {
            if let Ok(holders) = fs::read_dir(self.dir(&member).join("holders")) {
                for h in holders.flatten() {
                    let h = h.file_name().to_string_lossy().into_owned();
                    // A cycle cannot happen in a real tree; the check keeps a fake one finite.
                    if !family.contains(&h) {
                        family.push(h);
                    }
                }
            }
            i += 1;
        }
        let mut points: Vec<String> = self
            .mounts
            .iter()
            .filter(|m| {
                let owner = self.by_dev.get(&m.dev).or_else(|| self.by_node.get(&m.source));
                owner.is_some_and(|o| family.contains(o))
            })
            .map(|m| m.mount_point.clone())
            .collect();
        points.sort();
        points.dedup();
        points
    }

    fn transport(&self, name: &str) -> Transport {
        let real = fs::canonicalize(self.dir(name)).unwrap_or_default().to_string_lossy().into_owned();
        if name.starts_with("nvme") {
            Transport::Nvme
        } else if name.starts_with("mmcblk") {
            Transport::Mmc
        } else if name.starts_with("loop") {
            Transport::Loop
        } else if real.contains("/usb") {
            Transport::Usb
        } else if name.starts_with("vd") || real.contains("/virtio") {
            Transport::Virtio
        } else if real.contains("/ata") || real.contains("/sas") {
            Transport::Sata
        } else {
            Transport::Unknown
        }
    }

    /// The serial as the kernel exposes it: virtio-blk in `serial`, NVMe and MMC in
    /// `device/serial`, SCSI/SATA in VPD page 0x80, USB sticks on the USB device up the tree.
    fn serial(&self, dir: &Path, transport: Transport) -> Option<String> {
        if let Some(s) =
            read_trimmed(&dir.join("serial")).or_else(|| read_trimmed(&dir.join("device/serial")))
        {
            return Some(s);
        }
        if let Some(s) = fs::read(dir.join("device/vpd_pg80")).ok().and_then(|page| vpd_serial(&page)) {
            return Some(s);
        }
        if transport == Transport::Usb {
            let real = fs::canonicalize(dir).ok()?;
            return real
                .ancestors()
                .find(|a| a.join("idVendor").exists())
                .and_then(|usb| read_trimmed(&usb.join("serial")));
        }
        None
    }
}

/// The unit serial number from a SCSI VPD page 0x80: a 4-byte header whose last byte is the
/// length, then the serial in ASCII.
fn vpd_serial(page: &[u8]) -> Option<String> {
    let len = usize::from(*page.get(3)?);
    let text = String::from_utf8_lossy(page.get(4..4 + len)?).trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn dev_node(name: &str) -> PathBuf {
    PathBuf::from("/dev").join(name)
}

/// A sysfs `size` file counts 512-byte sectors whatever the device's sector size.
fn sectors(dir: &Path) -> u64 {
    read_number(&dir.join("size")).unwrap_or(0) * 512
}

fn read_trimmed(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn read_number(path: &Path) -> Option<u64> {
    read_trimmed(path)?.parse().ok()
}

fn read_flag(path: &Path) -> bool {
    read_number(path).unwrap_or(0) != 0
}

/// Sorts `sda2` before `sda10`.
fn natural_key(name: &str) -> (String, u64) {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (stem, number) = name.split_at(name.len() - digits);
    (stem.to_string(), number.parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpd_page_80_yields_the_trimmed_serial() {
        let mut page = vec![0, 0x80, 0, 10];
        page.extend_from_slice(b"  WD-12345");
        assert_eq!(vpd_serial(&page).as_deref(), Some("WD-12345"));
        assert_eq!(vpd_serial(&[0, 0x80, 0, 0]), None);
        assert_eq!(vpd_serial(&[0, 0x80]), None);
    }

    #[test]
    fn natural_order_puts_partition_10_after_2() {
        let mut names = vec!["sda10", "sda2", "sda1"];
        names.sort_by_key(|n| natural_key(n));
        assert_eq!(names, ["sda1", "sda2", "sda10"]);
    }
}
