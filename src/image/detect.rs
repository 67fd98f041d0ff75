//! Format detection: magic bytes first, the file name second, and tarballs refused early.
//!
//! The magic decides whenever there is one, so a mislabelled file still decodes. A name is only
//! trusted for raw images, which have no magic; a name promising a compressed format whose
//! bytes say otherwise is an error rather than a guess. A source with no telling name (a block
//! device) is raw when its first sector carries the 55 AA boot signature. This module decides the format and
//! nothing else: decoding is `stream.rs` and `qcow2/`.

use super::{stream, Format};
use crate::error::{Error, Result};
use crate::source::Source;
use std::io::Read;

/// How much of the start of an image detection looks at (a tar header is 512 bytes).
const HEAD: usize = 512;

/// The qcow2 magic, `QFI\xfb`.
pub const QCOW2_MAGIC: [u8; 4] = *b"QFI\xfb";

/// Names (lower-case suffixes) of tarballs, which are never flashable.
const TAR_SUFFIXES: [&str; 9] =
    [".tar", ".tgz", ".txz", ".tbz", ".tbz2", ".tzst", ".tar.gz", ".tar.xz", ".tar.bz2"];

/// Detects the format of `src` from its first bytes, then its name.
///
/// Tarballs (by name, by a ustar header, or by a ustar header inside a compressed stream) are
/// refused as `Invalid` with a hint to extract them; anything unrecognised is `Refused`.
pub fn detect(src: &dyn Source) -> Result<Format> {
    let name = src.describe();
    let file_name = src.file_name();
    let lower = file_name.to_ascii_lowercase();
    if is_tar_name(&lower) {
        return Err(tar_error(&name, &file_name));
    }
    let head = read_head(src.open_stream(0)?, HEAD)?;
    if head.is_empty() {
        return Err(Error::invalid(format!("{name} is empty")));
    }
    if is_tar_header(&head) {
        return Err(tar_error(&name, &file_name));
    }
    match by_magic(&head) {
        Some(Format::Raw) | None => {}
        Some(Format::Qcow2) => return Ok(Format::Qcow2),
        Some(compressed) => {
            check_decoded_head(src, compressed, &name, &file_name)?;
            return Ok(compressed);
        }
    }
    match by_name(&lower) {
        Some(Format::Raw) => Ok(Format::Raw),
        // A disk or a copy of one (`/dev/sdb`, `disk.bin`) has no magic of its own, but a
        // partitioned or bootable one ends its first sector with the 55 AA boot signature.
        None if has_boot_signature(&head) => Ok(Format::Raw),
        Some(named) => Err(Error::invalid(format!(
            "{name} is named like a {} image but does not start with the {} magic bytes: it is corrupt \
             or mislabelled (pass --format raw if it is an uncompressed disk image)",
            named.long_name(),
            named.long_name()
        ))),
        None => Err(Error::refused(format!(
            "{name}: unrecognised image format (no known magic bytes, no known extension); supported \
             formats: {} (pass --format FMT to force one)",
            supported_list()
        ))),
    }
}

/// Parses a `--format` or catalog `format` value (`raw`, `img`, `zst`, `img.zst`, `gzip`, ...).
pub fn parse_format(text: &str) -> Result<Format> {
    let lower = text.trim().trim_start_matches('.').to_ascii_lowercase();
    let format = match lower.as_str() {
        "raw" | "img" | "iso" => Format::Raw,
        "zst" | "zstd" | "img.zst" => Format::Zstd,
        "gz" | "gzip" | "img.gz" => Format::Gzip,
        "xz" | "img.xz" => Format::Xz,
        "bz2" | "bzip2" | "img.bz2" => Format::Bzip2,
        "qcow2" => Format::Qcow2,
        _ if is_tar_name(&format!(".{lower}")) || lower.starts_with("tar") => {
            return Err(Error::invalid(format!(
                "format {text:?} is a tar archive, which is not flashable; extract it first and flash \
                 the disk image inside"
            )))
        }
        _ => {
            return Err(Error::invalid(format!(
                "unknown image format {text:?}; --format takes raw, zst, gz, xz, bz2 or qcow2"
            )))
        }
    };
    Ok(format)
}

/// The format a file's first bytes announce, if any.
fn by_magic(head: &[u8]) -> Option<Format> {
    const MAGICS: [(&[u8], Format); 5] = [
        (&[0x28, 0xb5, 0x2f, 0xfd], Format::Zstd),
        (&[0x1f, 0x8b], Format::Gzip),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], Format::Xz),
        (b"BZh", Format::Bzip2),
        (&QCOW2_MAGIC, Format::Qcow2),
    ];
    // pzstd and other parallel writers open with a skippable frame (magic 0x184D2A5?).
    let skippable_zstd = head.len() >= 4 && head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18];
    if skippable_zstd {
        return Some(Format::Zstd);
    }
    MAGICS.iter().find(|(magic, _)| head.starts_with(magic)).map(|&(_, f)| f)
}

/// The format a (lower-case) file name suggests, if any.
fn by_name(lower: &str) -> Option<Format> {
    const SUFFIXES: [(&str, Format); 9] = [
        (".img", Format::Raw),
        (".raw", Format::Raw),
        (".iso", Format::Raw),
        (".zst", Format::Zstd),
        (".gz", Format::Gzip),
        (".xz", Format::Xz),
        (".bz2", Format::Bzip2),
        (".qcow2", Format::Qcow2),
        (".qcow", Format::Qcow2),
    ];
    SUFFIXES.iter().find(|(suffix, _)| lower.ends_with(suffix)).map(|&(_, f)| f)
}

fn is_tar_name(lower: &str) -> bool {
    TAR_SUFFIXES.iter().any(|s| lower.ends_with(s)) || lower.contains(".tar.")
}

/// An MBR (protective or not) or a boot sector ends with 55 AA at offset 510.
fn has_boot_signature(head: &[u8]) -> bool {
    head.get(510..512) == Some(&[0x55, 0xaa])
}

/// A POSIX or GNU tar header has `ustar` at offset 257.
fn is_tar_header(head: &[u8]) -> bool {
    head.get(257..262) == Some(b"ustar")
}

fn tar_error(name: &str, file_name: &str) -> Error {
    Error::invalid(format!(
        "{name} is a tar archive; extract it first (tar -xf {}) and flash the disk image inside",
        if name.ends_with(file_name) { name } else { file_name }
    ))
}

/// Looks at the first decoded block of a compressed image: a compressed tarball or a
/// compressed qcow2 cannot be flashed as a stream.
fn check_decoded_head(src: &dyn Source, format: Format, name: &str, file_name: &str) -> Result<()> {
    let decoder = stream::decode_stream(src.open_stream(0)?, format, name, src.len())?;
    let head = read_head(decoder, HEAD)?;
    if is_tar_header(&head) {
        return Err(tar_error(name, file_name));
    }
    if head.starts_with(&QCOW2_MAGIC) {
        return Err(Error::invalid(format!(
            "{name} is a qcow2 image inside a {} stream; decompress it first and flash the .qcow2 file",
            format.long_name()
        )));
    }
    Ok(())
}

/// Reads up to `n` bytes from the start of a stream (fewer only at its end).
fn read_head(reader: Box<dyn Read + Send>, n: usize) -> Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    reader.take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

fn supported_list() -> String {
    ".img/.raw/.iso (raw), .img.zst, .img.gz, .img.xz, .img.bz2, .qcow2".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::mem::Mem;
    use crate::ErrorKind;

    fn mem(name: &str, bytes: Vec<u8>) -> Mem {
        Mem::new(name, bytes)
    }

    fn tar_header() -> Vec<u8> {
        let mut h = vec![0u8; 1024];
        h[..8].copy_from_slice(b"disk.img");
        h[257..263].copy_from_slice(b"ustar\0");
        h
    }

    #[test]
    fn magic_beats_the_name() {
        let cases: [(&[u8], Format); 2] = [(b"QFI\xfb\0\0\0\x03", Format::Qcow2), (b"BZh9", Format::Bzip2)];
        for (bytes, expected) in cases {
            let mut b = bytes.to_vec();
            b.resize(64, 0);
            // bzip2's decoded head is checked, so give it a real stream.
            if expected == Format::Bzip2 {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
                std::io::Write::write_all(&mut e, &[0u8; 4096]).unwrap();
                b = e.finish().unwrap();
            }
            assert_eq!(detect(&mem("disk.img", b)).unwrap(), expected);
        }
    }

    #[test]
    fn compressed_streams_are_detected_by_magic() {
        let z = zstd::encode_all(&[7u8; 8192][..], 3).unwrap();
        assert_eq!(detect(&mem("whatever", z)).unwrap(), Format::Zstd);
    }

    #[test]
    fn raw_names_are_raw_without_magic() {
        for name in ["disk.img", "DISK.RAW", "x.iso"] {
            assert_eq!(detect(&mem(name, vec![0u8; 4096])).unwrap(), Format::Raw, "{name}");
        }
    }

    #[test]
    fn an_unnamed_disk_with_a_boot_signature_is_raw() {
        let mut disk = vec![0u8; 4096];
        disk[510..512].copy_from_slice(&[0x55, 0xaa]);
        assert_eq!(detect(&mem("sdb", disk)).unwrap(), Format::Raw);
    }

    #[test]
    fn a_compressed_name_without_its_magic_is_invalid() {
        let e = detect(&mem("disk.img.zst", vec![0u8; 4096])).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert!(e.to_string().contains("zstd magic"), "{e}");
    }

    #[test]
    fn unknown_files_are_refused_with_the_supported_list() {
        let e = detect(&mem("notes.txt", b"hello world".to_vec())).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Refused);
        assert!(e.to_string().contains("notes.txt") && e.to_string().contains(".qcow2"), "{e}");
    }

    #[test]
    fn tarballs_are_refused_by_name_header_and_inside_compression() {
        let by_name = detect(&mem("rootfs.tar.zst", vec![0u8; 4096])).unwrap_err();
        let by_header = detect(&mem("disk.img", tar_header())).unwrap_err();
        let inside =
            detect(&mem("disk.img.zst", zstd::encode_all(&tar_header()[..], 3).unwrap())).unwrap_err();
        for e in [by_name, by_header, inside] {
            assert_eq!(e.kind(), ErrorKind::Invalid);
            assert!(e.to_string().contains("tar archive; extract it first (tar -xf"), "{e}");
        }
    }

    #[test]
    fn parse_format_accepts_catalog_and_cli_spellings() {
        let cases = [
            ("raw", Format::Raw),
            ("img", Format::Raw),
            ("img.zst", Format::Zstd),
            ("zstd", Format::Zstd),
            (".gz", Format::Gzip),
            ("GZIP", Format::Gzip),
            ("img.xz", Format::Xz),
            ("bz2", Format::Bzip2),
            ("img.bz2", Format::Bzip2),
            ("qcow2", Format::Qcow2),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_format(text).unwrap(), expected, "{text}");
        }
        for f in Format::ALL {
            assert_eq!(parse_format(f.name()).unwrap(), f);
        }
        assert!(parse_format("tar.gz").unwrap_err().to_string().contains("extract"));
        assert!(parse_format("vmdk").unwrap_err().to_string().contains("raw, zst, gz, xz, bz2 or qcow2"));
    }
}
