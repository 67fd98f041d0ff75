//! Partition tables inside an image: GPT (512- or 4096-byte logical sectors) and MBR, parsed
//! from the first bytes of the decoded disk into typed values for `inspect`.
//!
//! GPT wins over a protective MBR; header and entry-array CRCs are checked and a mismatch is
//! reported as a warning, not an error, because inspect is for looking at odd images too. MBR
//! logical partitions (inside an extended partition) are not followed: they can sit anywhere on
//! the disk, and reading that far through a decoder is not worth it for a summary. This module
//! never writes or repairs a table.

use crate::image::size::crc32;
use serde::Serialize;
use std::io::Read;

/// How much of the disk start is read first: covers GPT with 128 entries at either sector size.
pub const FIRST_READ: usize = 1 << 20;

/// The most disk bytes we read to reach a GPT entry array placed unusually far in.
const MAX_READ: u64 = 16 << 20;

/// A partition table found in an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionTable {
    /// `gpt` or `mbr`.
    pub kind: TableKind,
    /// The logical sector size the table was found with (GPT: 512 or 4096; MBR: 512).
    pub sector_size: u32,
    /// The GPT disk GUID (lower-case, dashed).
    pub disk_guid: Option<String>,
    /// Used entries, in table order.
    pub partitions: Vec<Partition>,
    /// Things that look wrong but did not stop parsing (a CRC mismatch).
    pub warnings: Vec<String>,
}

/// Which kind of partition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    /// GUID Partition Table.
    Gpt,
    /// DOS/MBR primary partitions.
    Mbr,
}

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    /// 1-based slot number (the `N` of `/dev/sdaN`).
    pub index: u32,
    /// The type: a GPT type GUID, or an MBR type byte as `0x83`.
    pub type_id: String,
    /// A friendly name for common types (`EFI System`, `Linux filesystem`).
    pub type_name: Option<&'static str>,
    /// Offset from the start of the disk, in bytes.
    pub start: u64,
    /// Length in bytes.
    pub size: u64,
    /// The GPT partition name (label).
    pub name: Option<String>,
    /// The GPT unique partition GUID.
    pub guid: Option<String>,
    /// The MBR boot flag.
    pub bootable: Option<bool>,
}

impl PartitionTable {
    /// The least size a disk must have to hold every partition, where the table can be
    /// trusted for it: a GPT whose CRCs match. An MBR is not used, because a filesystem's boot
    /// sector can pass for one and a wrong bound would refuse a good target.
    pub fn min_disk_size(&self) -> Option<u64> {
        let trusted = self.kind == TableKind::Gpt && self.warnings.is_empty();
        trusted.then(|| self.partitions.iter().map(|p| p.start.saturating_add(p.size)).max().unwrap_or(0))
    }
}

/// Reads the start of a decoded disk and parses its partition table, if it has one.
/// Reads [`FIRST_READ`] bytes, more only when a GPT header places its entries further in.
pub fn read_table(disk: &mut dyn Read) -> std::io::Result<Option<PartitionTable>> {
    let mut buf = Vec::with_capacity(FIRST_READ);
    disk.take(FIRST_READ as u64).read_to_end(&mut buf)?;
    loop {
        match parse(&buf) {
            Parsed::Table(t) => return Ok(Some(t)),
            Parsed::Nothing => return Ok(None),
            Parsed::NeedBytes(n) if n <= MAX_READ && (buf.len() as u64) < n => {
                let have = buf.len() as u64;
                disk.take(n - have).read_to_end(&mut buf)?;
                if buf.len() as u64 == have {
                    return Ok(parse_mbr(&buf));
                }
            }
            Parsed::NeedBytes(_) => return Ok(parse_mbr(&buf)),
        }
    }
}

/// What the first bytes of a disk told us.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Table(PartitionTable),
    Nothing,
    /// A GPT header whose entry array ends this many bytes into the disk.
    NeedBytes(u64),
}

fn parse(disk: &[u8]) -> Parsed {
    for sector in [512u32, 4096] {
        match parse_gpt(disk, sector) {
            Parsed::Nothing => continue,
            found => return found,
        }
    }
    parse_mbr(disk).map_or(Parsed::Nothing, Parsed::Table)
}

fn parse_gpt(disk: &[u8], sector: u32) -> Parsed {
    let ss = sector as usize;
    let Some(h) = disk.get(ss..ss + 92) else { return Parsed::Nothing };
    if &h[..8] != b"EFI PART" {
        return Parsed::Nothing;
    }
    let header_size = le32(h, 12) as usize;
    let entries_lba = le64(h, 72);
    let count = le32(h, 80);
    let entry_size = le32(h, 84) as usize;
    if !(92..=ss).contains(&header_size) || entry_size < 128 || entry_size % 8 != 0 || entry_size > 4096 {
        return Parsed::Nothing;
    }
    let Some(header) = disk.get(ss..ss + header_size) else { return Parsed::Nothing };
    let mut warnings = Vec::new();
    let mut header = header.to_vec();
    let stored_crc = le32(&header, 16);
    header[16..20].fill(0);
    if crc32(&header) != stored_crc {
        warnings
            .push("the GPT header CRC does not match (the header is damaged or was edited by hand)".into());
    }
    let array_len = u64::from(count) * entry_size as u64;
    let Some(array_end) = entries_lba.checked_mul(u64::from(sector)).and_then(|s| s.checked_add(array_len))
    else {
        return Parsed::Nothing;
    };
    if array_end > disk.len() as u64 {
        return Parsed::NeedBytes(array_end);
    }
    let array = &disk[(entries_lba * u64::from(sector)) as usize..array_end as usize];
    if crc32(array) != le32(h, 88) {
        warnings.push("the GPT partition entry array CRC does not match".into());
    }
    let mut partitions = Vec::new();
    for (i, e) in array.chunks_exact(entry_size).enumerate() {
        let type_guid: [u8; 16] = e[..16].try_into().unwrap_or_default();
        if type_guid == [0; 16] {
            continue;
        }
        let (first, last) = (le64(e, 32), le64(e, 40));
        let type_id = guid(&type_guid);
        let units: Vec<u16> = e[56..128].chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        let name: String = char::decode_utf16(units.into_iter().take_while(|&u| u != 0))
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect();
        partitions.push(Partition {
            index: i as u32 + 1,
            type_name: gpt_type_name(&type_id),
            type_id,
            start: first.saturating_mul(u64::from(sector)),
            size: last.saturating_sub(first).saturating_add(1).saturating_mul(u64::from(sector)),
            name: (!name.is_empty()).then_some(name),
            guid: Some(guid(e[16..32].try_into().unwrap_or(&[0; 16]))),
            bootable: None,
        });
    }
    Parsed::Table(PartitionTable {
        kind: TableKind::Gpt,
        sector_size: sector,
        disk_guid: Some(guid(h[56..72].try_into().unwrap_or(&[0; 16]))),
        partitions,
        warnings,
    })
}

/// The four primary MBR entries, if the first sector is a plausible MBR (signature, boot flags
/// 0x00/0x80). A filesystem boot sector also ends in 55 AA, hence the flag check.
fn parse_mbr(disk: &[u8]) -> Option<PartitionTable> {
    let s = disk.get(..512)?;
    if s[510..] != [0x55, 0xaa] {
        return None;
    }
    let entries: Vec<&[u8]> = s[446..510].chunks_exact(16).collect();
    if entries.iter().any(|e| e[0] != 0 && e[0] != 0x80) {
        return None;
    }
    let partitions: Vec<Partition> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e[4] != 0 && le32(e, 12) != 0)
        .map(|(i, e)| Partition {
            index: i as u32 + 1,
            type_id: format!("{:#04x}", e[4]),
            type_name: mbr_type_name(e[4]),
            start: u64::from(le32(e, 8)) * 512,
            size: u64::from(le32(e, 12)) * 512,
            name: None,
            guid: None,
            bootable: Some(e[0] == 0x80),
        })
        .collect();
    if partitions.is_empty() {
        return None;
    }
    Some(PartitionTable {
        kind: TableKind::Mbr,
        sector_size: 512,
        disk_guid: None,
        partitions,
        warnings: Vec::new(),
    })
}

/// Formats a GUID stored mixed-endian (the first three fields little-endian) as text.
fn guid(b: &[u8; 16]) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_le_bytes([b[4], b[5]]),
        u16::from_le_bytes([b[6], b[7]]),
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    )
}

fn gpt_type_name(type_guid: &str) -> Option<&'static str> {
    const NAMES: [(&str, &str); 22] = [
        ("c12a7328-f81f-11d2-ba4b-00a0c93ec93b", "EFI System"),
        ("21686148-6449-6e6f-744e-656564454649", "BIOS boot"),
        ("024dee41-33e7-11d3-9d69-0008c781f39f", "MBR partition scheme"),
        ("0fc63daf-8483-4772-8e79-3d69d8477de4", "Linux filesystem"),
        ("0657fd6d-a4ab-43c4-84e5-0933c84b4f4f", "Linux swap"),
        ("e6d6d379-f507-44c2-a23c-238f2a3df928", "Linux LVM"),
        ("a19d880f-05fc-4d3b-a006-743f0f84911e", "Linux RAID"),
        ("44479540-f297-41b2-9af7-d131d5f0458a", "Linux root (x86)"),
        ("4f68bce3-e8cd-4db1-96e7-fbcaf984b709", "Linux root (x86-64)"),
        ("69dad710-2ce4-4e3c-b16c-21a1d49abed3", "Linux root (ARM)"),
        ("b921b045-1df0-41c3-af44-4c6f280d3fae", "Linux root (ARM64)"),
        ("933ac7e1-2eb4-4f13-b844-0e14e2aef915", "Linux home"),
        ("3b8f8425-20e0-4f3b-907f-1a25a76f98e8", "Linux server data"),
        ("4d21b016-b534-45c2-a9fb-5c16e091fd2d", "Linux variable data"),
        ("bc13c2ff-59e6-4262-a352-b275fd6f7172", "Linux extended boot"),
        ("ca7d7ccb-63ed-4c53-861c-1742536059cc", "LUKS"),
        ("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7", "Microsoft basic data"),
        ("e3c9e316-0b5c-4db8-817d-f92df00215ae", "Microsoft reserved"),
        ("de94bba4-06d1-4d40-a16a-bfd50179d6ac", "Windows recovery"),
        ("48465300-0000-11aa-aa11-00306543ecac", "Apple HFS+"),
        ("7c3457ef-0000-11aa-aa11-00306543ecac", "Apple APFS"),
        ("516e7cb4-6ecf-11d6-8ff8-00022d09712b", "FreeBSD data"),
    ];
    NAMES.iter().find(|(g, _)| *g == type_guid).map(|&(_, n)| n)
}

fn mbr_type_name(t: u8) -> Option<&'static str> {
    Some(match t {
        0x01 => "FAT12",
        0x04 | 0x06 | 0x0e => "FAT16",
        0x05 | 0x0f | 0x85 => "Extended",
        0x07 => "NTFS/exFAT",
        0x0b | 0x0c => "FAT32",
        0x82 => "Linux swap",
        0x83 => "Linux",
        0x8e => "Linux LVM",
        0xa5 => "FreeBSD",
        0xee => "GPT protective",
        0xef => "EFI System",
        0xfd => "Linux RAID",
        _ => return None,
    })
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ESP: [u8; 16] =
        [0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b];

    fn utf16(name: &str) -> Vec<u8> {
        name.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    /// A disk of `len` bytes with a GPT at sector size `ss`: entries at LBA `entries_lba`,
    /// one ESP named "EFI" from LBA 2048 to 4095.
    fn gpt_disk(ss: usize, entries_lba: u64, len: usize) -> Vec<u8> {
        let mut d = vec![0u8; len];
        // Protective MBR.
        d[446 + 4] = 0xee;
        d[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
        d[446 + 12..446 + 16].copy_from_slice(&u32::MAX.to_le_bytes());
        d[510] = 0x55;
        d[511] = 0xaa;
        let at = entries_lba as usize * ss;
        let e = &mut d[at..at + 128];
        e[..16].copy_from_slice(&ESP);
        e[16] = 0xaa;
        e[32..40].copy_from_slice(&2048u64.to_le_bytes());
        e[40..48].copy_from_slice(&4095u64.to_le_bytes());
        e[56..62].copy_from_slice(&utf16("EFI"));
        let array_crc = crc32(&d[at..at + 128 * 128]);
        let h = &mut d[ss..ss + 92];
        h[..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&1u64.to_le_bytes());
        h[56] = 0x11;
        h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&array_crc.to_le_bytes());
        let crc = crc32(h);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        d
    }

    fn table(disk: &[u8]) -> PartitionTable {
        read_table(&mut &disk[..]).unwrap().expect("a partition table")
    }

    #[test]
    fn gpt_with_512_byte_sectors() {
        let t = table(&gpt_disk(512, 2, 1 << 20));
        assert_eq!((t.kind, t.sector_size, t.warnings.len()), (TableKind::Gpt, 512, 0));
        let p = &t.partitions[0];
        assert_eq!(p.type_id, "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
        assert_eq!(p.type_name, Some("EFI System"));
        assert_eq!((p.index, p.start, p.size), (1, 2048 * 512, 2048 * 512));
        assert_eq!(p.name.as_deref(), Some("EFI"));
        assert_eq!(p.guid.as_deref(), Some("000000aa-0000-0000-0000-000000000000"));
        assert_eq!(t.disk_guid.as_deref(), Some("00000011-0000-0000-0000-000000000000"));
        assert_eq!(t.partitions.len(), 1);
        assert_eq!(t.min_disk_size(), Some(4096 * 512), "the partition's end");
    }

    #[test]
    fn gpt_with_4096_byte_sectors() {
        let t = table(&gpt_disk(4096, 2, 1 << 20));
        assert_eq!((t.kind, t.sector_size), (TableKind::Gpt, 4096));
        assert_eq!((t.partitions[0].start, t.partitions[0].size), (2048 * 4096, 2048 * 4096));
    }

    #[test]
    fn gpt_entries_beyond_the_first_mib_are_read() {
        let t = table(&gpt_disk(512, 4096, 3 << 20));
        assert_eq!(t.partitions[0].name.as_deref(), Some("EFI"));
    }

    #[test]
    fn a_damaged_gpt_header_is_a_warning() {
        let mut d = gpt_disk(512, 2, 1 << 20);
        d[512 + 40] ^= 1;
        let t = table(&d);
        assert_eq!(t.kind, TableKind::Gpt);
        assert!(t.warnings[0].contains("header CRC"), "{:?}", t.warnings);
        assert_eq!(t.min_disk_size(), None, "a damaged GPT sizes no disk");
    }

    #[test]
    fn mbr_primary_partitions() {
        let mut d = vec![0u8; 4096];
        let entries = [(0x80u8, 0x0cu8, 2048u32, 1024u32), (0, 0x83, 4096, 8192)];
        for (i, (flag, kind, start, len)) in entries.into_iter().enumerate() {
            let e = &mut d[446 + 16 * i..446 + 16 * (i + 1)];
            e[0] = flag;
            e[4] = kind;
            e[8..12].copy_from_slice(&start.to_le_bytes());
            e[12..16].copy_from_slice(&len.to_le_bytes());
        }
        d[510..512].copy_from_slice(&[0x55, 0xaa]);
        let t = table(&d);
        assert_eq!(t.kind, TableKind::Mbr);
        let got: Vec<_> = t
            .partitions
            .iter()
            .map(|p| (p.index, p.type_id.as_str(), p.type_name, p.start, p.size, p.bootable))
            .collect();
        assert_eq!(
            got,
            [
                (1, "0x0c", Some("FAT32"), 2048 * 512, 1024 * 512, Some(true)),
                (2, "0x83", Some("Linux"), 4096 * 512, 8192 * 512, Some(false))
            ]
        );
        assert_eq!(t.min_disk_size(), None, "an MBR may be a boot sector's code");
    }

    #[test]
    fn damaged_tables_never_panic() {
        let clean = gpt_disk(512, 2, 64 << 10);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut d = clean.clone();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = 440 + (seed % 700) as usize;
                d[at] = (seed >> 32) as u8;
            }
            let cut = 512 + (seed >> 40) as usize % d.len();
            let _ = read_table(&mut &d[..cut.min(d.len())]);
        }
    }

    #[test]
    fn a_filesystem_boot_sector_is_not_an_mbr() {
        let mut d = vec![0x4eu8; 512];
        d[510..512].copy_from_slice(&[0x55, 0xaa]);
        assert_eq!(read_table(&mut &d[..]).unwrap(), None);
        assert_eq!(read_table(&mut &[0u8; 100][..]).unwrap(), None);
    }
}
