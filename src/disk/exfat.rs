//! The volume label of an exFAT filesystem, read from the device without mounting it: how the
//! USB stick finds its `BTY_IMAGES` partition whatever the partition table calls it (a user may
//! have re-created the partition on another system and kept only the label).
//!
//! Only the boot sector and the first cluster of the root directory are read (the label entry
//! is among the first entries mkfs tools write). Nothing else of exFAT is understood here.

use std::io::{Read, Seek, SeekFrom};

/// Directory entry type of the volume label (in use).
const LABEL_ENTRY: u8 = 0x83;
/// At most this much of the root directory is scanned for the label.
const SCAN_BYTES: u64 = 64 * 1024;

/// The label of the exFAT filesystem at the start of `dev`, or `None` when it is not exFAT,
/// has no label, or cannot be read.
pub fn label(dev: &mut (impl Read + Seek)) -> Option<String> {
    let mut boot = [0u8; 512];
    dev.seek(SeekFrom::Start(0)).ok()?;
    dev.read_exact(&mut boot).ok()?;
    if &boot[3..11] != b"EXFAT   " || boot[510..512] != [0x55, 0xAA] {
        return None;
    }
    let u32_at = |o: usize| u32::from_le_bytes([boot[o], boot[o + 1], boot[o + 2], boot[o + 3]]);
    let (sector_shift, cluster_shift) = (u32::from(boot[108]), u32::from(boot[109]));
    // The specification bounds these (512 B to 4 KiB sectors, clusters up to 32 MiB).
    if !(9..=12).contains(&sector_shift) || sector_shift + cluster_shift > 25 {
        return None;
    }
    let heap = u64::from(u32_at(88));
    let root_cluster = u64::from(u32_at(96)).checked_sub(2)?;
    let offset = (heap + (root_cluster << cluster_shift)) << sector_shift;
    let len = (1u64 << (sector_shift + cluster_shift)).min(SCAN_BYTES);
    let mut dir = vec![0u8; len as usize];
    dev.seek(SeekFrom::Start(offset)).ok()?;
    dev.read_exact(&mut dir).ok()?;
    for entry in dir.chunks_exact(32) {
        match entry[0] {
            0 => return None, // end of directory
            LABEL_ENTRY => {
                let count = usize::from(entry[1]).min(11);
                let units: Vec<u16> = entry[2..2 + 2 * count]
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .collect();
                return Some(String::from_utf16_lossy(&units));
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A minimal exFAT start: 512-byte sectors, 8-sector clusters, heap at sector 64, root
    /// directory in cluster 4, whose entries are `entries`.
    fn volume(entries: &[[u8; 32]]) -> Vec<u8> {
        let mut v = vec![0u8; 512 * (64 + 8 * 3)];
        v[3..11].copy_from_slice(b"EXFAT   ");
        v[88..92].copy_from_slice(&64u32.to_le_bytes());
        v[96..100].copy_from_slice(&4u32.to_le_bytes());
        v[108] = 9;
        v[109] = 3;
        v[510] = 0x55;
        v[511] = 0xAA;
        let root = (64 + 2 * 8) * 512;
        for (i, e) in entries.iter().enumerate() {
            v[root + 32 * i..root + 32 * (i + 1)].copy_from_slice(e);
        }
        v
    }

    fn label_entry(text: &str) -> [u8; 32] {
        let mut e = [0u8; 32];
        e[0] = LABEL_ENTRY;
        let units: Vec<u16> = text.encode_utf16().collect();
        e[1] = units.len() as u8;
        for (i, u) in units.iter().enumerate() {
            e[2 + 2 * i..4 + 2 * i].copy_from_slice(&u.to_le_bytes());
        }
        e
    }

    #[test]
    fn finds_the_label_after_other_entries() {
        let mut bitmap = [0u8; 32];
        bitmap[0] = 0x81;
        let v = volume(&[bitmap, label_entry("BTY_IMAGES")]);
        assert_eq!(label(&mut Cursor::new(v)).as_deref(), Some("BTY_IMAGES"));
    }

    #[test]
    fn no_label_not_exfat_or_short_is_none() {
        assert_eq!(label(&mut Cursor::new(volume(&[]))), None);
        let mut fat = volume(&[label_entry("BTY_IMAGES")]);
        fat[3..11].copy_from_slice(b"MSDOS5.0");
        assert_eq!(label(&mut Cursor::new(fat)), None);
        assert_eq!(label(&mut Cursor::new(vec![0u8; 100])), None);
        let mut cut = volume(&[label_entry("BTY_IMAGES")]);
        cut.truncate(600);
        assert_eq!(label(&mut Cursor::new(cut)), None);
    }
}
