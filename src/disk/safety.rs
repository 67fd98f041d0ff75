//! The safety rules of SPEC §2 for one disk: which rule, if any, forbids writing an image onto
//! it. The tui greys out disks with a refusal; the flash engine refuses with it (exit 3).
//!
//! The rules only look at a [`Disk`] as discovery saw it; re-reading the system right before
//! the first write is the engine's job.

use super::{human_size, Disk};

/// The first safety rule that forbids flashing `disk`, as a message naming the rule and what
/// to do; `None` when the disk may be written. `image_size` is the image's virtual size when
/// known (an unknown size is checked while writing).
pub fn refusal(disk: &Disk, image_size: Option<u64>) -> Option<String> {
    let path = disk.path.display();
    if disk.holds_running_system {
        return Some(format!(
            "{path} holds the running system (root, /boot or the live medium); pick another disk"
        ));
    }
    if disk.read_only {
        return Some(format!("{path} is read-only; check the write-protect switch or pick another disk"));
    }
    let mounted: Vec<String> = disk
        .mountpoints
        .iter()
        .map(|m| format!("{path} on {m}"))
        .chain(
            disk.partitions
                .iter()
                .flat_map(|p| p.mountpoints.iter().map(move |m| format!("{} on {m}", p.path.display()))),
        )
        .collect();
    if !mounted.is_empty() {
        let fix = if mounted.iter().any(|m| m.ends_with(" on [SWAP]")) {
            "unmount it (swapoff for swap)"
        } else {
            "unmount it"
        };
        return Some(format!("{path} is in use ({} mounted); {fix} first", mounted.join(", ")));
    }
    match image_size {
        Some(size) if size > disk.size_bytes => Some(format!(
            "the image needs {} ({size} bytes) but {path} holds only {} ({} bytes); pick a larger disk",
            human_size(size),
            human_size(disk.size_bytes),
            disk.size_bytes
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::{Partition, Transport};
    use std::path::PathBuf;

    fn disk() -> Disk {
        Disk {
            name: "sdb".into(),
            path: PathBuf::from("/dev/sdb"),
            size_bytes: 8 << 30,
            vendor: None,
            model: None,
            serial: None,
            transport: Transport::Usb,
            removable: true,
            read_only: false,
            rotational: false,
            zeroes_offloaded: false,
            logical_sector_size: 512,
            physical_sector_size: 512,
            mountpoints: vec![],
            partitions: vec![Partition {
                name: "sdb1".into(),
                path: PathBuf::from("/dev/sdb1"),
                size_bytes: 1 << 30,
                mountpoints: vec![],
            }],
            holds_running_system: false,
        }
    }

    fn check(edit: impl FnOnce(&mut Disk), image: Option<u64>, expected: Option<&str>) {
        let mut d = disk();
        edit(&mut d);
        let got = refusal(&d, image);
        match expected {
            None => assert_eq!(got, None),
            Some(fragment) => {
                assert!(got.as_deref().unwrap_or("").contains(fragment), "{got:?} lacks {fragment:?}")
            }
        }
    }

    #[test]
    fn each_rule_names_itself() {
        check(|_| {}, Some(1 << 30), None);
        check(|_| {}, None, None);
        check(|d| d.holds_running_system = true, None, Some("holds the running system"));
        check(|d| d.read_only = true, None, Some("read-only"));
        check(|d| d.partitions[0].mountpoints.push("/mnt".into()), None, Some("/dev/sdb1 on /mnt mounted"));
        check(|d| d.mountpoints.push("/media/x".into()), None, Some("unmount it first"));
        check(|_| {}, Some(9 << 30), Some("needs 9.0 GiB"));
    }
}
