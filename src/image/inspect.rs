//! `bty inspect`: what an image is before anyone flashes it — format, stored and virtual size,
//! the partition table inside, and on request the sha256 of the stored and of the decoded bytes.
//!
//! The result is one serialisable value; printing it (aligned text or JSON) is the applet's job.
//! Inspection never writes anything and reads only the start of the disk unless a digest is
//! asked for.

use super::partition::{self, PartitionTable};
use super::{detect, qcow2, stream, virtual_size, Format};
use crate::error::{Context, Result};
use crate::source::{self, HashingReader, Source};
use serde::Serialize;
use std::io::Read;

/// The version of the JSON shape `bty inspect --json` prints.
pub const SCHEMA_VERSION: u32 = 1;

/// The read size when hashing a whole image.
const DRAIN_BLOCK: usize = 4 << 20;

/// What to compute beyond the cheap facts.
#[derive(Debug, Clone, Copy, Default)]
pub struct InspectOptions {
    /// The sha256 of the stored bytes (what a catalog's `sha256` and `--sha256` check).
    pub hash: bool,
    /// The sha256 of the decoded disk bytes (what the target holds over the virtual size after
    /// a flash); decodes the whole image.
    pub decoded_hash: bool,
    /// Force a format instead of detecting it.
    pub format: Option<Format>,
}

/// Everything `inspect` learned about an image.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The source as messages name it (path or URL).
    pub source: String,
    /// The detected (or forced) format.
    pub format: Format,
    /// The stored size in bytes (compressed, for compressed formats), when known.
    pub compressed_size: Option<u64>,
    /// The decoded disk size in bytes, when the format records it.
    pub virtual_size: Option<u64>,
    /// qcow2 header details, for qcow2 images.
    pub qcow2: Option<Qcow2Info>,
    /// The partition table at the start of the decoded disk, if there is one.
    pub partition_table: Option<PartitionTable>,
    /// sha256 of the stored bytes, hex, with `hash`.
    pub sha256: Option<String>,
    /// sha256 of the decoded disk bytes, hex, with `decoded_hash`.
    pub decoded_sha256: Option<String>,
    /// The decoded size counted while hashing, with `decoded_hash` (fills in an unknown size).
    pub decoded_size: Option<u64>,
    /// The chunk index beside the image (`IMAGE.index`), if there is one.
    pub chunk_index: Option<crate::index::Summary>,
}

/// qcow2 header facts worth showing.
#[derive(Debug, Clone, Serialize)]
pub struct Qcow2Info {
    /// 2 or 3.
    pub version: u32,
    /// Cluster size in bytes.
    pub cluster_size: u64,
    /// How compressed clusters are compressed.
    pub compression: qcow2::Compression,
    /// Whether L2 entries carry subcluster bitmaps.
    pub extended_l2: bool,
}

/// Inspects `src`: format, sizes, partition table, and with `hash` the stored bytes' sha256.
pub fn inspect(src: &dyn Source, hash: bool) -> Result<Inspection> {
    inspect_with(src, InspectOptions { hash, ..InspectOptions::default() })
}

/// [`inspect`] with every option.
pub fn inspect_with(src: &dyn Source, opts: InspectOptions) -> Result<Inspection> {
    let format = match opts.format {
        Some(f) => f,
        None => detect(src)?,
    };
    let qcow2 = match format {
        Format::Qcow2 => {
            let (h, _) = qcow2::read_header(src)?;
            Some(Qcow2Info {
                version: h.version,
                cluster_size: h.cluster_size(),
                compression: h.compression,
                extended_l2: h.extended_l2,
            })
        }
        _ => None,
    };
    let partition_table = partition_table(src, format, u64::MAX)?;
    let mut found = Inspection {
        schema_version: SCHEMA_VERSION,
        source: src.describe(),
        format,
        compressed_size: src.len(),
        virtual_size: virtual_size(src, format)?,
        qcow2,
        partition_table,
        sha256: None,
        decoded_sha256: None,
        decoded_size: None,
        // An unreadable index is reported by the flash that would use it; here it is a note.
        chunk_index: crate::index::summary(src).unwrap_or_else(|e| {
            crate::log_warn!("{e}");
            None
        }),
    };
    if opts.decoded_hash && format != Format::Qcow2 {
        // One pass serves both digests: hash the stored bytes on their way into the decoder.
        let stored = HashingReader::new(src.open_stream(0)?);
        let stored_digest = stored.digest_handle();
        let mut disk =
            HashingReader::new(stream::decode_stream(Box::new(stored), format, &src.describe(), src.len())?);
        drain(&mut disk)?;
        found.decoded_sha256 = Some(source::hex(&disk.digest_handle().finish()));
        found.decoded_size = Some(disk.digest_handle().bytes());
        if opts.hash {
            found.sha256 = Some(source::hex(&stored_digest.finish()));
        }
        return Ok(found);
    }
    if opts.decoded_hash {
        let mut disk = HashingReader::new(open_disk(src, format)?);
        drain(&mut disk)?;
        found.decoded_sha256 = Some(source::hex(&disk.digest_handle().finish()));
        found.decoded_size = Some(disk.digest_handle().bytes());
    }
    if opts.hash {
        let mut stored = HashingReader::new(src.open_stream(0)?);
        drain(&mut stored)?;
        found.sha256 = Some(source::hex(&stored.digest_handle().finish()));
    }
    Ok(found)
}

/// Reads `r` to its end in large blocks (the decoders and the hash work best on megabytes,
/// not on `io::copy`'s 8 KiB).
fn drain(r: &mut dyn Read) -> Result<()> {
    let mut buf = vec![0u8; DRAIN_BLOCK];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// The decoded disk of `src` as a reader that borrows it.
/// The least size a disk needs to hold the image in `src`, from the GPT it starts with (see
/// [`PartitionTable::min_disk_size`]): for images whose virtual size is not stated (gzip,
/// bzip2, a zstd stream without content size), so a target too small for them is refused
/// before anything is written. Decodes the first [`SIZE_PROBE`] bytes of the image once more.
pub fn min_disk_size(src: &dyn Source, format: Format) -> Result<Option<u64>> {
    Ok(partition_table(src, format, SIZE_PROBE)?.and_then(|t| t.min_disk_size()))
}

/// The partition table at the start of the disk in `src`, decoding at most `limit` bytes.
fn partition_table(src: &dyn Source, format: Format, limit: u64) -> Result<Option<PartitionTable>> {
    partition::read_table(&mut open_disk(src, format)?.take(limit))
        .map_err(crate::Error::from)
        .with_context(|| format!("reading the partition table of {}", src.describe()))
}

/// How much of a disk [`min_disk_size`] decodes: a GPT and its usual 128 entries fit in it at
/// either sector size, and a remote source is read no further than needed for them.
const SIZE_PROBE: u64 = 64 << 10;

fn open_disk(src: &dyn Source, format: Format) -> Result<Box<dyn Read + '_>> {
    match format {
        Format::Qcow2 => qcow2::open_borrowed(src),
        _ => Ok(stream::decode_stream(src.open_stream(0)?, format, &src.describe(), src.len())?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::mem::Mem;

    #[test]
    fn a_raw_image_reports_sizes_and_digests() {
        let src = Mem::new("d.img", vec![0u8; 8192]);
        let found =
            inspect_with(&src, InspectOptions { hash: true, decoded_hash: true, format: None }).unwrap();
        assert_eq!(
            (found.format, found.compressed_size, found.virtual_size),
            (Format::Raw, Some(8192), Some(8192))
        );
        assert_eq!(found.sha256, found.decoded_sha256);
        assert_eq!(found.partition_table, None);
        let json = serde_json::to_value(&found).unwrap();
        assert_eq!(json["schema_version"], 1);
        assert_eq!(json["format"], "raw");
    }

    #[test]
    fn a_compressed_image_hashes_stored_and_decoded_bytes_apart() {
        let stored = zstd::bulk::compress(&[9u8; 100_000], 3).unwrap();
        let src = Mem::new("d.img.zst", stored);
        let found =
            inspect_with(&src, InspectOptions { hash: true, decoded_hash: true, format: None }).unwrap();
        // Not a local file, so the frame walk is skipped; decoding counts the size instead.
        assert_eq!((found.virtual_size, found.decoded_size), (None, Some(100_000)));
        assert_ne!(found.sha256, found.decoded_sha256);
        assert_eq!(found.sha256, Some(source::hex(&source::sha256_of(&src, &Default::default()).unwrap())));
    }
}
