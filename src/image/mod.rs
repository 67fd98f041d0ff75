//! Image formats: detection by magic bytes (then by name), decoders, inspection.
//!
//! Decoders turn a [`crate::source::Source`] into the stream of the disk's bytes; qcow2 is read
//! natively through random access. This module does not write anything.

use serde::Serialize;

/// A supported image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Format {
    /// A raw disk image (`.img`, `.raw`, `.iso`).
    #[serde(rename = "raw")]
    Raw,
    /// zstd-compressed raw image (`.img.zst`).
    #[serde(rename = "zst")]
    Zstd,
    /// gzip-compressed raw image (`.img.gz`).
    #[serde(rename = "gz")]
    Gzip,
    /// xz-compressed raw image (`.img.xz`).
    #[serde(rename = "xz")]
    Xz,
    /// bzip2-compressed raw image (`.img.bz2`).
    #[serde(rename = "bz2")]
    Bzip2,
    /// QEMU copy-on-write v2/v3 (`.qcow2`).
    #[serde(rename = "qcow2")]
    Qcow2,
}

impl Format {
    /// Every format, in the order help text lists them.
    pub const ALL: [Format; 6] =
        [Format::Raw, Format::Zstd, Format::Gzip, Format::Xz, Format::Bzip2, Format::Qcow2];

    /// The short name used by `--format`, JSON output and the catalog's `format` key suffix.
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Zstd => "zst",
            Format::Gzip => "gz",
            Format::Xz => "xz",
            Format::Bzip2 => "bz2",
            Format::Qcow2 => "qcow2",
        }
    }
}
