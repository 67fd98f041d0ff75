//! Image formats: detection by magic bytes (then by name), decoders, inspection.
//!
//! Decoders turn a [`crate::source::Source`] into the stream of the disk's bytes; qcow2 is read
//! natively through random access. This module does not write anything.

mod detect;
mod inspect;
#[cfg(test)]
pub(crate) mod mem;
mod partition;
pub mod qcow2;
mod size;
mod stream;
mod xz;

pub use detect::{detect, parse_format};
pub use inspect::{
    inspect, inspect_with, min_disk_size, InspectOptions, Inspection, Qcow2Info, SCHEMA_VERSION,
};
pub use partition::{Partition, PartitionTable, TableKind};
pub use qcow2::Compression as Qcow2Compression;
pub use size::read_exact_at;
pub use stream::decode_stream;

use crate::error::Result;
use crate::source::Source;
use serde::Serialize;
use std::io::Read;
use std::sync::Arc;

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

    /// The name messages use (`decoding xz stream of ...`).
    pub fn long_name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Zstd => "zstd",
            Format::Gzip => "gzip",
            Format::Xz => "xz",
            Format::Bzip2 => "bzip2",
            Format::Qcow2 => "qcow2",
        }
    }
}

/// An image opened for decoding: the disk's bytes in order, and how many there will be.
pub struct Decoded {
    /// The format being decoded.
    pub format: Format,
    /// The decoded disk bytes, sequentially from offset 0. Errors carry a [`crate::Error`]
    /// (convert with `bty::Error::from`) naming the source, the format and where it failed;
    /// a truncated or corrupt image is always an error, never an early end of file.
    pub reader: Box<dyn Read + Send>,
    /// The number of bytes `reader` will yield, when the format records it.
    pub virtual_size: Option<u64>,
}

/// Opens `src` as an image of `format` (from [`detect`] or `--format`) for sequential decoding.
pub fn open(src: Arc<dyn Source>, format: Format) -> Result<Decoded> {
    let virtual_size = virtual_size(&*src, format)?;
    let reader = match format {
        Format::Qcow2 => qcow2::open(src)?,
        _ => decode_stream(src.open_stream(0)?, format, &src.describe(), src.len())?,
    };
    Ok(Decoded { format, reader, virtual_size })
}

/// The number of disk bytes `src` decodes to, when the format records it without decoding:
/// raw (the length), qcow2 (the header), zstd (every frame's content size, local files only),
/// xz (the stream indexes). gzip's size field wraps at 4 GiB and bzip2 has none: both are
/// `None`, as is any compressed format on a source without random access.
pub fn virtual_size(src: &dyn Source, format: Format) -> Result<Option<u64>> {
    if format == Format::Raw {
        return Ok(src.len());
    }
    if !src.supports_random_access() {
        return Ok(None);
    }
    match format {
        Format::Qcow2 => qcow2::virtual_size(src).map(Some),
        // A seekable zstd file says it in two reads at its end, over HTTP too.
        Format::Zstd => match crate::index::seekable::read_table(src)? {
            Some(frames) => Ok(Some(frames.iter().map(|f| f.decoded_len).sum())),
            // The walk reads a few bytes per 128 KiB block all through the file: cheap on a
            // local file, but through HTTP's block cache it would fetch nearly every byte twice.
            None if std::path::Path::new(&src.describe()).is_file() => size::zstd_content_size(src),
            None => Ok(None),
        },
        Format::Xz => size::xz_uncompressed_size(src),
        Format::Raw | Format::Gzip | Format::Bzip2 => Ok(None),
    }
}
