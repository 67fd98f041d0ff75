//! The qcow2 header: parsed into a typed value, with every field a reader relies on checked
//! once, here. Images this reader cannot reproduce exactly (encryption, a backing file, an
//! external data file, unknown incompatible features) are refused with what to do instead.

use crate::error::{Error, ErrorKind, Result};
use serde::Serialize;

/// Incompatible feature bits (qcow2 spec, "incompatible_features").
const DIRTY: u64 = 1 << 0;
const CORRUPT: u64 = 1 << 1;
const EXTERNAL_DATA: u64 = 1 << 2;
const COMPRESSION_TYPE: u64 = 1 << 3;
const EXTENDED_L2: u64 = 1 << 4;

/// QEMU's own limit on the L1 table (32 MiB); a larger one is a corrupt header, and the bound
/// keeps a hostile header from making us allocate without limit.
const MAX_L1_BYTES: u64 = 32 << 20;

/// How compressed clusters are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Raw deflate (no zlib header), the default.
    Zlib,
    /// zstd frames (qcow2 v3 `compression_type=zstd`).
    Zstd,
}

/// What the reader needs from a qcow2 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// 2 or 3.
    pub version: u32,
    /// log2 of the cluster size, 9 (512 B) to 21 (2 MiB).
    pub cluster_bits: u32,
    /// The virtual disk size in bytes.
    pub size: u64,
    /// Entries in the L1 table.
    pub l1_size: u64,
    /// Where the L1 table starts in the file.
    pub l1_table_offset: u64,
    /// How compressed clusters are compressed.
    pub compression: Compression,
    /// L2 entries are 128 bits with a 32-subcluster bitmap.
    pub extended_l2: bool,
    /// Where the backing file name is stored and its length, if the image has one.
    pub backing_file: Option<(u64, u32)>,
}

impl Header {
    /// The cluster size in bytes.
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// Bytes per L2 entry (16 with extended L2 entries).
    pub fn l2_entry_bytes(&self) -> u64 {
        if self.extended_l2 {
            16
        } else {
            8
        }
    }

    /// Entries per L2 table (one table fills one cluster).
    pub fn l2_entries(&self) -> u64 {
        self.cluster_size() / self.l2_entry_bytes()
    }

    /// Parses the first bytes of the file (at least 112, or the whole file if shorter).
    /// `name` is what messages call the image.
    pub fn parse(b: &[u8], name: &str) -> Result<Header> {
        let corrupt = |what: String| Error::failed(format!("{name}: invalid qcow2 header: {what}"));
        if b.len() < 72 {
            return Err(corrupt(format!("the file is only {} bytes long", b.len())));
        }
        if b[..4] != super::super::detect::QCOW2_MAGIC {
            return Err(corrupt("no QFI\\xfb magic".into()));
        }
        let version = be32(b, 4);
        if version != 2 && version != 3 {
            return Err(Error::refused(format!(
                "{name}: qcow2 version {version} is not supported (only versions 2 and 3); convert it with \
                 `qemu-img convert -O qcow2 {name} new.qcow2`"
            )));
        }
        let backing_offset = be64(b, 8);
        let backing_size = be32(b, 16);
        let cluster_bits = be32(b, 20);
        let size = be64(b, 24);
        let crypt_method = be32(b, 32);
        let l1_size = u64::from(be32(b, 36));
        let l1_table_offset = be64(b, 40);
        if !(9..=21).contains(&cluster_bits) {
            return Err(corrupt(format!("cluster_bits {cluster_bits} is outside 9..=21")));
        }
        if crypt_method != 0 {
            return Err(Error::refused(format!(
                "{name} is an encrypted qcow2 image; decrypt it first with `qemu-img convert` into an \
                 unencrypted image"
            )));
        }
        let (mut compression, mut extended_l2) = (Compression::Zlib, false);
        if version == 3 {
            if b.len() < 104 {
                return Err(corrupt("the version 3 header is cut short".into()));
            }
            let incompatible = be64(b, 72);
            let header_length = be32(b, 100);
            if header_length < 104 {
                return Err(corrupt(format!("header_length {header_length} is below 104")));
            }
            if incompatible & CORRUPT != 0 {
                return Err(Error::refused(format!(
                    "{name} is marked corrupt by QEMU; repair it with `qemu-img check -r all {name}` first"
                )));
            }
            if incompatible & EXTERNAL_DATA != 0 {
                return Err(Error::refused(format!(
                    "{name} keeps its data in an external data file; convert it into a self-contained \
                     image with `qemu-img convert -O qcow2 {name} flat.qcow2`"
                )));
            }
            let unknown = incompatible & !(DIRTY | COMPRESSION_TYPE | EXTENDED_L2);
            if unknown != 0 {
                return Err(Error::refused(format!(
                    "{name} uses qcow2 incompatible features this reader does not know (bits {unknown:#x}); \
                     convert it with `qemu-img convert -O qcow2 -o compat=1.1 {name} new.qcow2`"
                )));
            }
            extended_l2 = incompatible & EXTENDED_L2 != 0;
            // qemu allows subclusters only from 16 KiB clusters; smaller would make 16-byte
            // granules, and a reader walks a disk granule by granule.
            if extended_l2 && cluster_bits < 14 {
                return Err(corrupt(format!(
                    "extended L2 entries with {}-byte clusters (qemu needs at least 16 KiB)",
                    1u32 << cluster_bits
                )));
            }
            if incompatible & COMPRESSION_TYPE != 0 {
                let byte = if header_length > 104 { b.get(104).copied() } else { None };
                compression = match byte {
                    Some(0) => Compression::Zlib,
                    Some(1) => Compression::Zstd,
                    Some(other) => {
                        return Err(Error::refused(format!(
                            "{name} uses qcow2 compression type {other}, which this reader does not know"
                        )))
                    }
                    None => return Err(corrupt("the compression type field is missing".into())),
                };
            }
        }
        let header = Header {
            version,
            cluster_bits,
            size,
            l1_size,
            l1_table_offset,
            compression,
            extended_l2,
            backing_file: (backing_offset != 0).then_some((backing_offset, backing_size)),
        };
        header.check_l1(name)?;
        Ok(header)
    }

    /// The L1 table must be bounded, cluster-aligned and large enough to map the whole disk.
    fn check_l1(&self, name: &str) -> Result<()> {
        let corrupt = |what: String| Error::failed(format!("{name}: invalid qcow2 header: {what}"));
        if self.l1_size * 8 > MAX_L1_BYTES {
            return Err(corrupt(format!("the L1 table has {} entries, more than QEMU allows", self.l1_size)));
        }
        let per_l2 = self.cluster_size() * self.l2_entries();
        let needed = self.size.div_ceil(per_l2);
        if needed > self.l1_size {
            return Err(corrupt(format!(
                "the L1 table has {} entries but a {}-byte disk needs {needed}",
                self.l1_size, self.size
            )));
        }
        if self.l1_size > 0 && (self.l1_table_offset == 0 || self.l1_table_offset % self.cluster_size() != 0)
        {
            return Err(corrupt(format!(
                "the L1 table offset {} is not cluster-aligned",
                self.l1_table_offset
            )));
        }
        Ok(())
    }
}

/// The refusal for an image with a backing file: its content is only complete with that file.
pub fn backing_file_refusal(name: &str, backing: &str) -> Error {
    Error::new(
        ErrorKind::Refused,
        format!(
            "{name} has a backing file ({backing}); flatten it first with \
             `qemu-img convert -O qcow2 {name} flat.qcow2`"
        ),
    )
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(x)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A v3 header for a `size`-byte disk with 64 KiB clusters and the L1 table at 0x30000.
    pub fn v3(size: u64) -> Vec<u8> {
        let mut b = vec![0u8; 112];
        b[..4].copy_from_slice(b"QFI\xfb");
        b[4..8].copy_from_slice(&3u32.to_be_bytes());
        b[20..24].copy_from_slice(&16u32.to_be_bytes());
        b[24..32].copy_from_slice(&size.to_be_bytes());
        let l1 = size.div_ceil(64 << 10 << 13) as u32;
        b[36..40].copy_from_slice(&l1.to_be_bytes());
        b[40..48].copy_from_slice(&0x30000u64.to_be_bytes());
        b[96..100].copy_from_slice(&4u32.to_be_bytes());
        b[100..104].copy_from_slice(&112u32.to_be_bytes());
        b
    }

    fn set_incompatible(b: &mut [u8], bits: u64) {
        b[72..80].copy_from_slice(&bits.to_be_bytes());
    }

    #[test]
    fn a_v3_header_parses() {
        let h = Header::parse(&v3(1 << 30), "d.qcow2").unwrap();
        assert_eq!((h.version, h.cluster_size(), h.size, h.l1_size), (3, 65536, 1 << 30, 2));
        assert_eq!((h.compression, h.extended_l2, h.backing_file), (Compression::Zlib, false, None));
        assert_eq!(h.l2_entries(), 8192);
    }

    #[test]
    fn the_compression_type_and_extended_l2_bits_are_read() {
        let mut b = v3(1 << 20);
        set_incompatible(&mut b, COMPRESSION_TYPE | EXTENDED_L2);
        b[104] = 1;
        let h = Header::parse(&b, "d.qcow2").unwrap();
        assert_eq!((h.compression, h.extended_l2, h.l2_entries()), (Compression::Zstd, true, 4096));
        b[20..24].copy_from_slice(&9u32.to_be_bytes());
        let e = Header::parse(&b, "d.qcow2").unwrap_err().to_string();
        assert!(e.contains("extended L2 entries with 512-byte clusters"), "{e}");
    }

    #[test]
    fn unsupported_images_are_refused_with_advice() {
        type Edit = fn(&mut Vec<u8>);
        let cases: [(Edit, &str); 5] = [
            (|b| b[32..36].copy_from_slice(&1u32.to_be_bytes()), "encrypted"),
            (|b| set_incompatible(b, CORRUPT), "qemu-img check"),
            (|b| set_incompatible(b, EXTERNAL_DATA), "external data file"),
            (|b| set_incompatible(b, 1 << 9), "bits 0x200"),
            (|b| b[4..8].copy_from_slice(&4u32.to_be_bytes()), "version 4"),
        ];
        for (edit, expected) in cases {
            let mut b = v3(1 << 20);
            edit(&mut b);
            let e = Header::parse(&b, "d.qcow2").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
            assert!(e.to_string().contains(expected), "{e}");
        }
    }

    #[test]
    fn corrupt_headers_are_errors_not_panics() {
        let cases: [fn(&mut Vec<u8>); 5] = [
            |b| b[20..24].copy_from_slice(&30u32.to_be_bytes()),
            |b| b[36..40].copy_from_slice(&0u32.to_be_bytes()),
            |b| b[36..40].copy_from_slice(&u32::MAX.to_be_bytes()),
            |b| b[40..48].copy_from_slice(&12345u64.to_be_bytes()),
            |b| b.truncate(90),
        ];
        for edit in cases {
            let mut b = v3(1 << 34);
            edit(&mut b);
            assert_eq!(Header::parse(&b, "d.qcow2").unwrap_err().kind(), ErrorKind::Failed);
        }
    }

    #[test]
    fn a_v2_header_has_no_feature_fields() {
        let mut b = v3(1 << 20);
        b[4..8].copy_from_slice(&2u32.to_be_bytes());
        b.truncate(72);
        assert_eq!(Header::parse(&b, "d.qcow2").unwrap().version, 2);
    }

    #[test]
    fn a_backing_file_is_recorded() {
        let mut b = v3(1 << 20);
        b[8..16].copy_from_slice(&0x200u64.to_be_bytes());
        b[16..20].copy_from_slice(&9u32.to_be_bytes());
        assert_eq!(Header::parse(&b, "d.qcow2").unwrap().backing_file, Some((0x200, 9)));
    }
}
