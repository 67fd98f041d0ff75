//! Block devices from sysfs: discovery, identity by serial, safety checks.
//!
//! Discovery reads `/sys/block`, `/sys/class/block` and `/proc/self/mountinfo` (no `lsblk`);
//! the sysfs root and the mountinfo text are parameters so tests can use a fake tree. This
//! module decides which disks may be written; it never writes.

pub mod exfat;
mod mountinfo;
mod safety;
mod sysfs;

pub use safety::refusal;
pub(crate) use sysfs::Tree;

use crate::error::{Context, Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

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

impl Transport {
    /// The lowercase name shown in tables and JSON (`nvme`, `sata`, `usb`, …).
    pub fn name(self) -> &'static str {
        match self {
            Transport::Nvme => "nvme",
            Transport::Sata => "sata",
            Transport::Usb => "usb",
            Transport::Virtio => "virtio",
            Transport::Mmc => "mmc",
            Transport::Loop => "loop",
            Transport::Unknown => "unknown",
        }
    }
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
    /// Whether the device zeroes a range itself (`queue/write_zeroes_max_bytes` > 0), so that
    /// BLKZEROOUT sends no data: `--delta` then zeroes the image's zero runs instead of reading them.
    pub zeroes_offloaded: bool,
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

/// Lists the whole disks under `sysfs_root` (normally `/sys`) with the mounts of `mountinfo`
/// (the text of `/proc/self/mountinfo`) attributed to them. Loop devices, RAM disks, optical
/// drives, dm/md devices and empty devices are left out; `include_loops` keeps non-empty loops.
pub fn discover(sysfs_root: &Path, mountinfo: &str, include_loops: bool) -> Result<Vec<Disk>> {
    Tree::read(sysfs_root, mountinfo)?.disks(include_loops)
}

/// [`discover`] on the running system: `/sys` and `/proc/self/mountinfo`.
pub fn discover_system(include_loops: bool) -> Result<Vec<Disk>> {
    discover(Path::new("/sys"), &system_mountinfo()?, include_loops)
}

/// The running system's mount table text, plus a line per active swap device or file from
/// `/proc/swaps`, mounted at `[SWAP]` as lsblk shows it: a disk in use as swap is in use.
pub(crate) fn system_mountinfo() -> Result<String> {
    let mut text = std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    // Without /proc/swaps (no swap support) nothing is swapped to.
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    for name in swaps.lines().skip(1).filter_map(|l| l.split_whitespace().next()) {
        // The name keeps the kernel's octal escapes, as mountinfo does.
        text.push_str(&format!("0 0 0:0 / [SWAP] rw - swap {name} rw\n"));
    }
    Ok(text)
}

/// The disk whose serial equals `serial` exactly (server-driven flashes). No match is a
/// refusal naming the serials that were seen, so the operator can fix the plan.
pub fn find_by_serial<'a>(disks: &'a [Disk], serial: &str) -> Result<&'a Disk> {
    disks.iter().find(|d| d.serial.as_deref() == Some(serial)).ok_or_else(|| {
        let seen: Vec<String> = disks
            .iter()
            .map(|d| format!("{}={}", d.path.display(), d.serial.as_deref().unwrap_or("(none)")))
            .collect();
        Error::refused(format!(
            "target disk serial {serial:?} is not present on this host (disks seen: {})",
            if seen.is_empty() { "none".to_string() } else { seen.join(", ") }
        ))
    })
}

/// A size in binary units with one decimal, as people read disk sizes: `7.5 GiB`, `512 B`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// A fake sysfs: devices under `devices/`, linked from `block/` and `class/block/` the way
    /// the kernel links them.
    struct FakeSys {
        dir: tempfile::TempDir,
        next_minor: u32,
    }

    impl FakeSys {
        fn new() -> FakeSys {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir_all(dir.path().join("block")).unwrap();
            fs::create_dir_all(dir.path().join("class/block")).unwrap();
            FakeSys { dir, next_minor: 0 }
        }

        fn root(&self) -> &Path {
            self.dir.path()
        }

        /// Adds a whole disk at `devpath` (relative to `devices/`), with `files` relative to
        /// the disk's directory. Returns its `major:minor`.
        fn disk(&mut self, name: &str, devpath: &str, files: &[(&str, &str)]) -> String {
            let dir = self.root().join("devices").join(devpath).join("block").join(name);
            let dev = self.node(&dir, files);
            let rel = format!("devices/{devpath}/block/{name}");
            std::os::unix::fs::symlink(format!("../{rel}"), self.root().join("block").join(name)).unwrap();
            std::os::unix::fs::symlink(format!("../../{rel}"), self.root().join("class/block").join(name))
                .unwrap();
            dev
        }

        fn partition(&mut self, disk: &str, name: &str, files: &[(&str, &str)]) -> String {
            let disk_dir = fs::canonicalize(self.root().join("block").join(disk)).unwrap();
            let dir = disk_dir.join(name);
            let dev = self.node(&dir, files);
            fs::write(dir.join("partition"), "1").unwrap();
            std::os::unix::fs::symlink(&dir, self.root().join("class/block").join(name)).unwrap();
            dev
        }

        /// A virtual device (dm, md) stacked on `members`.
        fn holder(&mut self, name: &str, members: &[&str], files: &[(&str, &str)]) -> String {
            let dev = self.disk(name, "virtual", files);
            for m in members {
                let holders =
                    fs::canonicalize(self.root().join("class/block").join(m)).unwrap().join("holders");
                fs::create_dir_all(&holders).unwrap();
                fs::write(holders.join(name), "").unwrap();
            }
            dev
        }

        fn node(&mut self, dir: &Path, files: &[(&str, &str)]) -> String {
            fs::create_dir_all(dir.join("queue")).unwrap();
            self.next_minor += 1;
            let dev = format!("8:{}", self.next_minor);
            let defaults = [("dev", dev.as_str()), ("size", "2048"), ("ro", "0"), ("removable", "0")];
            for (file, content) in defaults.iter().chain(files) {
                let path = dir.join(file);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(path, format!("{content}\n")).unwrap();
            }
            dev
        }
    }

    fn names(disks: &[Disk]) -> Vec<&str> {
        disks.iter().map(|d| d.name.as_str()).collect()
    }

    #[test]
    fn discovery_reads_identity_and_transport_per_bus() {
        let mut sys = FakeSys::new();
        sys.disk(
            "nvme0n1",
            "pci0000:00/0000:00:04.0/nvme/nvme0",
            &[
                ("size", "1953525168"),
                ("device/model", "Samsung SSD 980   "),
                ("device/serial", "  S64DNX0R1234  "),
                ("queue/rotational", "0"),
                ("queue/write_zeroes_max_bytes", "131072"),
                ("queue/logical_block_size", "512"),
                ("queue/physical_block_size", "4096"),
            ],
        );
        sys.disk(
            "sda",
            "pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0",
            &[("device/vendor", "ATA     "), ("device/model", "WDC WD10EZEX"), ("queue/rotational", "1")],
        );
        fs::write(
            fs::canonicalize(sys.root().join("block/sda")).unwrap().join("device/vpd_pg80"),
            b"\0\x80\0\x08WD-ABCDE",
        )
        .unwrap();
        let usb = "pci0000:00/0000:00:14.0/usb1/1-2";
        fs::create_dir_all(sys.root().join("devices").join(usb)).unwrap();
        fs::write(sys.root().join("devices").join(usb).join("idVendor"), "0781\n").unwrap();
        fs::write(sys.root().join("devices").join(usb).join("serial"), "4C530001\n").unwrap();
        sys.disk(
            "sdb",
            &format!("{usb}/1-2:1.0/host6/target6:0:0/6:0:0:0"),
            &[("removable", "1"), ("device/model", "Cruzer")],
        );
        sys.disk("vda", "pci0000:00/0000:00:05.0/virtio2", &[("serial", "vm-disk-7")]);
        sys.disk(
            "mmcblk0",
            "platform/fe340000.mmc/mmc_host/mmc0/mmc0:aaaa",
            &[("device/name", "SA16G"), ("device/serial", "0x1234abcd")],
        );
        sys.disk("loop0", "virtual", &[]);
        sys.disk("loop1", "virtual", &[("size", "0")]);
        sys.disk("sr0", "pci0000:00/0000:00:1f.2/ata2/host1/target1:0:0/1:0:0:0", &[]);
        sys.disk("zram0", "virtual", &[]);

        let disks = discover(sys.root(), "", false).unwrap();
        assert_eq!(names(&disks), ["mmcblk0", "nvme0n1", "sda", "sdb", "vda"]);
        let by = |n: &str| disks.iter().find(|d| d.name == n).unwrap();
        let nvme = by("nvme0n1");
        assert_eq!(nvme.transport, Transport::Nvme);
        assert_eq!(nvme.size_bytes, 1953525168 * 512);
        assert_eq!(nvme.model.as_deref(), Some("Samsung SSD 980"));
        assert_eq!(nvme.serial.as_deref(), Some("S64DNX0R1234"));
        assert_eq!((nvme.logical_sector_size, nvme.physical_sector_size), (512, 4096));
        assert_eq!(nvme.path, PathBuf::from("/dev/nvme0n1"));
        let sda = by("sda");
        assert_eq!(
            (sda.transport, sda.vendor.as_deref(), sda.serial.as_deref()),
            (Transport::Sata, Some("ATA"), Some("WD-ABCDE"))
        );
        assert!(sda.rotational);
        assert!(nvme.zeroes_offloaded && !sda.zeroes_offloaded);
        let sdb = by("sdb");
        assert_eq!((sdb.transport, sdb.serial.as_deref()), (Transport::Usb, Some("4C530001")));
        assert!(sdb.removable);
        assert_eq!(
            (by("vda").transport, by("vda").serial.as_deref()),
            (Transport::Virtio, Some("vm-disk-7"))
        );
        let mmc = by("mmcblk0");
        assert_eq!(
            (mmc.transport, mmc.model.as_deref(), mmc.serial.as_deref()),
            (Transport::Mmc, Some("SA16G"), Some("0x1234abcd"))
        );

        let all = discover(sys.root(), "", true).unwrap();
        assert_eq!(
            names(&all),
            ["loop0", "mmcblk0", "nvme0n1", "sda", "sdb", "vda"],
            "empty loop1 stays hidden"
        );
        assert_eq!(all[0].transport, Transport::Loop);
    }

    #[test]
    fn mounted_partition_is_attributed_to_its_disk() {
        let mut sys = FakeSys::new();
        sys.disk("sdb", "pci0000:00/usb1/1-1/host1", &[]);
        let p1 = sys.partition("sdb", "sdb1", &[("size", "1024")]);
        sys.partition("sdb", "sdb2", &[]);
        let mountinfo = format!("40 1 {p1} / /media/stick rw - vfat /dev/sdb1 rw\n");
        let disks = discover(sys.root(), &mountinfo, false).unwrap();
        let sdb = &disks[0];
        assert_eq!(sdb.partitions.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["sdb1", "sdb2"]);
        assert_eq!(sdb.partitions[0].mountpoints, ["/media/stick"]);
        assert_eq!(sdb.partitions[0].size_bytes, 1024 * 512);
        assert_eq!(sdb.partitions[0].path, PathBuf::from("/dev/sdb1"));
        assert!(!sdb.holds_running_system);
        assert!(refusal(sdb, None).unwrap().contains("/dev/sdb1 on /media/stick"));
    }

    #[test]
    fn root_on_dm_over_a_partition_marks_the_disk_as_the_running_system() {
        let mut sys = FakeSys::new();
        sys.disk("nvme0n1", "pci0000:00/nvme/nvme0", &[]);
        sys.partition("nvme0n1", "nvme0n1p1", &[]);
        sys.partition("nvme0n1", "nvme0n1p2", &[]);
        let crypt = sys.holder("dm-0", &["nvme0n1p2"], &[("dm/name", "cryptroot")]);
        let lvm = sys.holder("dm-1", &["dm-0"], &[("dm/name", "vg-root")]);
        sys.disk("sda", "pci0000:00/ata1/host0", &[]);
        let mountinfo = format!(
            "25 1 {lvm} / / rw - ext4 /dev/mapper/vg-root rw\n26 25 {crypt} / /srv rw - ext4 /dev/dm-0 rw\n"
        );
        let disks = discover(sys.root(), &mountinfo, false).unwrap();
        assert_eq!(names(&disks), ["nvme0n1", "sda"], "dm devices are not listed themselves");
        assert!(disks[0].holds_running_system);
        assert_eq!(disks[0].partitions[1].mountpoints, ["/", "/srv"]);
        assert!(!disks[1].holds_running_system);
        assert!(refusal(&disks[0], None).unwrap().contains("running system"));
    }

    #[test]
    fn a_btrfs_root_with_an_anonymous_device_number_is_found_by_source() {
        let mut sys = FakeSys::new();
        sys.disk("vda", "pci0000:00/virtio1", &[]);
        sys.partition("vda", "vda1", &[]);
        let disks = discover(sys.root(), "25 1 0:27 /@ / rw - btrfs /dev/vda1 rw\n", false).unwrap();
        assert!(disks[0].holds_running_system);
    }

    #[test]
    fn find_by_serial_matches_exactly_and_names_what_it_saw() {
        let mut sys = FakeSys::new();
        sys.disk("vda", "pci0000:00/virtio1", &[("serial", "ABC")]);
        let disks = discover(sys.root(), "", false).unwrap();
        assert_eq!(find_by_serial(&disks, "ABC").unwrap().name, "vda");
        let err = find_by_serial(&disks, "abc").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Refused);
        assert!(err.to_string().contains("/dev/vda=ABC"), "{err}");
    }

    #[test]
    fn human_size_uses_binary_units() {
        let cases = [
            (0, "0 B"),
            (512, "512 B"),
            (1536, "1.5 KiB"),
            (7_516_192_768, "7.0 GiB"),
            (8_053_063_680, "7.5 GiB"),
        ];
        for (bytes, text) in cases {
            assert_eq!(human_size(bytes), text);
        }
    }

    #[test]
    fn transport_names_match_the_json_names() {
        use Transport::*;
        for t in [Nvme, Sata, Usb, Virtio, Mmc, Loop, Unknown] {
            assert_eq!(serde_json::to_value(t).unwrap(), t.name(), "{t:?}");
        }
    }
}
