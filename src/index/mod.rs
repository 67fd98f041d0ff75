//! The chunk index of an image: what a client needs to reflash a disk by fetching only the
//! chunks that differ (`bty index`, `bty flash --delta` with an index).
//!
//! An index describes the *decoded* image cut into fixed-size chunks: each chunk's SHA-256,
//! whether it is all zeros, and, where the stored object can be read at random (raw, seekable
//! zstd), the byte range of the stored object that decodes to it; a qcow2 image is read at
//! random through its own cluster tables, so its index carries no ranges. It is a public file format
//! (version 1, described in the README), so it is parsed strictly here, once: a truncated,
//! corrupt or inconsistent index is refused with a message, never half-used. Building an index
//! is [`build`]; the seekable zstd layout it can write is [`seekable`]. This module does not
//! touch targets (see `flash/remote.rs`).

mod build;
mod locate;
pub mod seekable;

pub use build::{build, BuildOptions};
pub use locate::{find, for_delta, load};

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::ops::Range;

/// The file's first 8 bytes.
pub const MAGIC: &[u8; 8] = b"BTYINDEX";
/// The format version this code writes and reads.
pub const VERSION: u32 = 1;
/// The chunk size `bty index` uses unless told otherwise (measured: README, "Chunk index").
pub const DEFAULT_CHUNK_SIZE: u32 = 1 << 20;
/// Chunk sizes outside this range are refused (a power of two in between is required).
const CHUNK_MIN: u32 = 64 << 10;
const CHUNK_MAX: u32 = 64 << 20;
/// Header bytes before the chunk entries.
const HEADER_LEN: usize = 112;
/// Bytes per chunk entry.
const ENTRY_LEN: usize = 48;
/// The trailing SHA-256 of everything before it.
const TRAILER_LEN: usize = 32;

/// How the stored object maps onto chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// No byte ranges: the stored object cannot be read at random (gz, xz, bz2, single-frame
    /// zstd); a client compares but must stream the image to write.
    Stream,
    /// The stored object is the decoded image: a chunk's range is its own offsets.
    Raw,
    /// The stored object is a seekable zstd file with one frame per chunk.
    ZstdSeekable,
    /// The stored object is a qcow2 image: no byte ranges (a chunk spans many clusters); a
    /// client finds a chunk's clusters through the image's own L1/L2 tables.
    Qcow2,
}

impl Layout {
    fn code(self) -> u8 {
        match self {
            Layout::Stream => 0,
            Layout::Raw => 1,
            Layout::ZstdSeekable => 2,
            Layout::Qcow2 => 3,
        }
    }

    /// Whether chunk entries carry the byte ranges of the stored object that decode to them.
    pub fn has_ranges(self) -> bool {
        matches!(self, Layout::Raw | Layout::ZstdSeekable)
    }

    fn from_code(code: u8) -> Option<Layout> {
        match code {
            0 => Some(Layout::Stream),
            1 => Some(Layout::Raw),
            2 => Some(Layout::ZstdSeekable),
            3 => Some(Layout::Qcow2),
            _ => None,
        }
    }
}

/// One chunk of the decoded image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// SHA-256 of the chunk's decoded bytes.
    pub sha256: [u8; 32],
    /// Whether every byte is zero.
    pub zero: bool,
    /// The bytes of the stored object that decode to it (`0..0` in layouts without ranges).
    pub source: Range<u64>,
}

/// A parsed, validated chunk index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkIndex {
    /// Bytes per chunk (the last chunk may be shorter).
    pub chunk_size: u32,
    /// The decoded image's size.
    pub virtual_size: u64,
    /// How chunks map onto the stored object.
    pub layout: Layout,
    /// The stored object's size in bytes.
    pub source_size: u64,
    /// The stored object's SHA-256: ties the index to one file.
    pub source_sha256: [u8; 32],
    /// The SHA-256 of the image the stored object was converted from (bty-web's store keeps
    /// the original's digest as the image's identity), or the source's own.
    pub origin_sha256: [u8; 32],
    /// Where the stored object is, relative to the index's own location (a file name or a
    /// URL path); empty when it is the image the index sits beside (`IMAGE.index`).
    pub location: String,
    /// Every chunk, in order.
    pub chunks: Vec<Chunk>,
}

impl ChunkIndex {
    /// The decoded bytes chunk `i` covers.
    pub fn span(&self, i: usize) -> Range<u64> {
        let start = i as u64 * u64::from(self.chunk_size);
        start..(start + u64::from(self.chunk_size)).min(self.virtual_size)
    }

    /// Whether a delta flash can fetch single chunks from the stored object (by the entries'
    /// byte ranges, or through a qcow2 image's tables), else only compare them.
    pub fn fetches_chunks(&self) -> bool {
        self.layout != Layout::Stream
    }

    /// The index as the version-1 file.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.chunks.len() * ENTRY_LEN + TRAILER_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.chunk_size.to_le_bytes());
        out.extend_from_slice(&self.virtual_size.to_le_bytes());
        out.extend_from_slice(&(self.chunks.len() as u64).to_le_bytes());
        out.push(self.layout.code());
        out.push(0);
        out.extend_from_slice(&(self.location.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0u8; 4]);
        out.extend_from_slice(&self.source_size.to_le_bytes());
        out.extend_from_slice(&self.source_sha256);
        out.extend_from_slice(&self.origin_sha256);
        for c in &self.chunks {
            out.extend_from_slice(&c.sha256);
            out.extend_from_slice(&c.source.start.to_le_bytes());
            out.extend_from_slice(&((c.source.end - c.source.start) as u32).to_le_bytes());
            out.extend_from_slice(&u32::from(c.zero).to_le_bytes());
        }
        out.extend_from_slice(self.location.as_bytes());
        let sum: [u8; 32] = Sha256::digest(&out).into();
        out.extend_from_slice(&sum);
        out
    }

    /// Parses and validates a version-1 index; `name` is used in messages.
    pub fn parse(bytes: &[u8], name: &str) -> Result<ChunkIndex> {
        let bad = |why: String| {
            Error::invalid(format!(
                "{name} is not a usable chunk index: {why}; write it again with `bty index IMAGE -o FILE`"
            ))
        };
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err(bad("it does not start with BTYINDEX".into()));
        }
        if bytes.len() < HEADER_LEN + TRAILER_LEN {
            return Err(bad(format!(
                "it is {} bytes long, shorter than its header (truncated)",
                bytes.len()
            )));
        }
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default());
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
        let version = u32_at(8);
        if version != VERSION {
            return Err(bad(format!("it is version {version}; this bty reads version {VERSION}")));
        }
        let chunk_size = u32_at(12);
        if !chunk_size.is_power_of_two() || !(CHUNK_MIN..=CHUNK_MAX).contains(&chunk_size) {
            return Err(bad(format!("chunk size {chunk_size} is not a power of two from 64 KiB to 64 MiB")));
        }
        let virtual_size = u64_at(16);
        let count = u64_at(24);
        if count != virtual_size.div_ceil(u64::from(chunk_size)) {
            return Err(bad(format!("{count} chunks do not cover {virtual_size} bytes")));
        }
        let location_len = usize::from(u16::from_le_bytes([bytes[34], bytes[35]]));
        let expected_len = (count as usize)
            .checked_mul(ENTRY_LEN)
            .and_then(|n| n.checked_add(HEADER_LEN + TRAILER_LEN + location_len))
            .ok_or_else(|| bad(format!("{count} chunks is more than this machine can hold")))?;
        if bytes.len() != expected_len {
            return Err(bad(format!(
                "it is {} bytes long, {expected_len} expected for {count} chunks (truncated or padded)",
                bytes.len()
            )));
        }
        let body = &bytes[..expected_len - TRAILER_LEN];
        let sum: [u8; 32] = Sha256::digest(body).into();
        if sum[..] != bytes[expected_len - TRAILER_LEN..] {
            return Err(bad("its checksum does not match its contents (corrupt)".into()));
        }
        let layout = Layout::from_code(bytes[32])
            .ok_or_else(|| bad(format!("unknown layout {} (written by a newer bty?)", bytes[32])))?;
        let source_size = u64_at(40);
        let mut source_sha256 = [0u8; 32];
        source_sha256.copy_from_slice(&bytes[48..80]);
        let mut origin_sha256 = [0u8; 32];
        origin_sha256.copy_from_slice(&bytes[80..112]);
        let at = expected_len - TRAILER_LEN - location_len;
        let location = std::str::from_utf8(&bytes[at..at + location_len])
            .map_err(|_| bad("its location is not UTF-8".into()))?
            .to_string();
        if location.contains("..") || location.starts_with('/') || location.contains('\\') {
            return Err(bad(format!("its location {location:?} leaves the index's directory")));
        }
        let mut chunks = Vec::with_capacity(count as usize);
        let mut next_source = 0u64;
        let mut zero_hashes = Vec::new();
        for i in 0..count as usize {
            let at = HEADER_LEN + i * ENTRY_LEN;
            let mut sha256 = [0u8; 32];
            sha256.copy_from_slice(&bytes[at..at + 32]);
            let start = u64_at(at + 32);
            let len = u64::from(u32_at(at + 40));
            let zero = match u32_at(at + 44) {
                0 => false,
                1 => true,
                other => return Err(bad(format!("chunk {i} has unknown flags {other}"))),
            };
            let source = start..start.saturating_add(len);
            // Ranges run in order without overlap and inside the object, so a fetch plan built
            // from them can trust them; a layout without ranges has none to misread.
            if layout.has_ranges() && (start < next_source || source.end > source_size || len == 0) {
                return Err(bad(format!(
                    "chunk {i}'s byte range {start}+{len} is out of order or outside the file"
                )));
            }
            if !layout.has_ranges() && (start != 0 || len != 0) {
                return Err(bad(format!(
                    "chunk {i} has a byte range {start}+{len} in a layout without ranges"
                )));
            }
            next_source = source.end;
            // A zero chunk is compared by looking for data, not by hash: its hash must agree,
            // or a client would zero what the image holds.
            let span_len = (virtual_size - i as u64 * u64::from(chunk_size)).min(u64::from(chunk_size));
            if zero && sha256 != zero_hash(&mut zero_hashes, span_len) {
                return Err(bad(format!("chunk {i} is flagged zero but its hash is not that of zeros")));
            }
            chunks.push(Chunk { sha256, zero, source });
        }
        Ok(ChunkIndex {
            chunk_size,
            virtual_size,
            layout,
            source_size,
            source_sha256,
            origin_sha256,
            location,
            chunks,
        })
    }
}

/// What `bty inspect` shows about the index beside an image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// Bytes per chunk.
    pub chunk_size: u32,
    /// Number of chunks.
    pub chunks: usize,
    /// How chunks map onto the stored object.
    pub layout: Layout,
    /// Whether a delta flash can fetch chunks by byte range from this image with it.
    pub delta_ready: bool,
}

/// The index beside `image`, summarised; `Ok(None)` without one, an error for a bad one.
pub fn summary(image: &dyn crate::source::Source) -> Result<Option<Summary>> {
    Ok(find(image)?.map(|idx| Summary {
        chunk_size: idx.chunk_size,
        chunks: idx.chunks.len(),
        layout: idx.layout,
        delta_ready: idx.fetches_chunks()
            && image.supports_random_access()
            && image.len().is_none_or(|len| len == idx.source_size),
    }))
}

/// The SHA-256 of `len` zero bytes, computed once per length (an index has at most two).
fn zero_hash(cache: &mut Vec<(u64, [u8; 32])>, len: u64) -> [u8; 32] {
    if let Some((_, h)) = cache.iter().find(|(l, _)| *l == len) {
        return *h;
    }
    let h = sha256(&vec![0u8; len as usize]);
    cache.push((len, h));
    h
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ChunkIndex {
        let cs = CHUNK_MIN;
        ChunkIndex {
            chunk_size: cs,
            virtual_size: u64::from(cs) + 10,
            layout: Layout::Raw,
            source_size: u64::from(cs) + 10,
            source_sha256: [7; 32],
            origin_sha256: [8; 32],
            location: "disk.img.zst".into(),
            chunks: vec![
                Chunk { sha256: [1; 32], zero: false, source: 0..u64::from(cs) },
                Chunk { sha256: sha256(&[0; 10]), zero: true, source: u64::from(cs)..u64::from(cs) + 10 },
            ],
        }
    }

    #[test]
    fn index_round_trips_through_its_file() {
        let idx = sample();
        assert_eq!(ChunkIndex::parse(&idx.encode(), "x").unwrap(), idx);
    }

    #[test]
    fn truncated_corrupt_and_foreign_indexes_are_refused() {
        let bytes = sample().encode();
        let check = |b: &[u8], says: &str| {
            let e = ChunkIndex::parse(b, "x.index").unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        };
        check(&bytes[..bytes.len() - 1], "truncated");
        check(&bytes[..40], "truncated");
        check(b"not an index at all, not at all, no", "BTYINDEX");
        let mut flipped = bytes.clone();
        flipped[HEADER_LEN + 3] ^= 1;
        check(&flipped, "corrupt");
        let mut v2 = bytes;
        v2[8] = 2;
        check(&v2, "version 2");
        let mut lying = sample();
        lying.chunks[0].zero = true;
        check(&lying.encode(), "flagged zero");
        let mut future = sample().encode();
        future[32] = 9;
        let body = future.len() - TRAILER_LEN;
        let sum = sha256(&future[..body]);
        future[body..].copy_from_slice(&sum);
        check(&future, "unknown layout 9");
    }

    #[test]
    fn a_qcow2_index_carries_no_ranges() {
        let mut qcow2 = sample();
        qcow2.layout = Layout::Qcow2;
        let e = ChunkIndex::parse(&qcow2.encode(), "x").unwrap_err().to_string();
        assert!(e.contains("chunk 0 has a byte range 0+65536 in a layout without ranges"), "{e}");
        for c in &mut qcow2.chunks {
            c.source = 0..0;
        }
        let parsed = ChunkIndex::parse(&qcow2.encode(), "x").unwrap();
        assert_eq!(parsed, qcow2);
        assert!(parsed.fetches_chunks() && !parsed.layout.has_ranges());
    }
}
