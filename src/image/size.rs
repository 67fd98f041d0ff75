//! Virtual-size probes for compressed images: how many disk bytes an image will decode to,
//! learned from the format's own metadata without decoding.
//!
//! zstd records a content size per frame, so the probe walks the frame and block headers (a
//! few bytes each) and sums them only if every frame has one. xz keeps an index at the end of
//! each stream, read backwards from the footer. gzip's trailer size wraps at 4 GiB and bzip2
//! records none, so both stay unknown. The probes only run on sources with random access;
//! a wrong size would be worse than none, so anything doubtful answers `None` or an error.

use crate::error::{Error, Result};
use crate::source::Source;

/// The most header reads a zstd walk may make before giving up (answering "unknown"): enough
/// for tens of GiB of typical images, bounded for sources where each read is a request.
const ZSTD_WALK_BUDGET: usize = 65_536;

/// How much a header read fetches: one page, so a walk touches only the pages holding block
/// headers, yet runs of tiny blocks (zero areas compress to a few bytes each) share one read.
const WINDOW: usize = 4 << 10;

/// The largest xz index we read into memory (an index has 2 varints per block).
const XZ_INDEX_MAX: u64 = 16 << 20;

/// Random-access reads of zstd headers through a small window, bounded by a read budget.
struct Window<'a> {
    src: &'a dyn Source,
    len: u64,
    base: u64,
    buf: Vec<u8>,
    reads_left: usize,
}

impl<'a> Window<'a> {
    fn new(src: &'a dyn Source, len: u64, budget: usize) -> Window<'a> {
        Window { src, len, base: 0, buf: Vec::new(), reads_left: budget }
    }

    /// Exactly `n` bytes at `offset`, `Ok(None)` when the budget is spent; a header that would
    /// lie past the end of the file means the file is truncated.
    fn get(&mut self, offset: u64, n: usize) -> Result<Option<&[u8]>> {
        let end = offset.checked_add(n as u64).filter(|&e| e <= self.len);
        let Some(end) = end else { return Err(corrupt_zstd(self.src, offset.min(self.len))) };
        if offset < self.base || end > self.base + self.buf.len() as u64 {
            if self.reads_left == 0 {
                return Ok(None);
            }
            self.reads_left -= 1;
            let want = (n.max(WINDOW) as u64).min(self.len - offset) as usize;
            self.buf.resize(want, 0);
            read_exact_at(self.src, offset, &mut self.buf)?;
            self.base = offset;
        }
        let start = (offset - self.base) as usize;
        Ok(Some(&self.buf[start..start + n]))
    }
}

/// Fills `buf` from `offset` with `read_at`, failing on a short read.
pub fn read_exact_at<S: Source + ?Sized>(src: &S, offset: u64, buf: &mut [u8]) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let n = src.read_at(offset + done as u64, &mut buf[done..])?;
        if n == 0 {
            return Err(Error::failed(format!(
                "{}: unexpected end of file reading {} bytes at offset {offset} (the file is truncated)",
                src.describe(),
                buf.len()
            )));
        }
        done += n;
    }
    Ok(())
}

/// The decoded size of a zstd image: the sum of every frame's content size, or `None` when a
/// frame does not record one (streamed compression) or the walk would cost too many reads.
pub fn zstd_content_size(src: &dyn Source) -> Result<Option<u64>> {
    let Some(len) = src.len() else { return Ok(None) };
    let mut w = Window::new(src, len, ZSTD_WALK_BUDGET);
    let mut pos = 0u64;
    let mut total = 0u64;
    while pos < len {
        let Some(magic) = w.get(pos, 4)? else { return Ok(None) };
        let magic = u32::from_le_bytes([magic[0], magic[1], magic[2], magic[3]]);
        if magic & 0xffff_fff0 == 0x184d_2a50 {
            // A skippable frame: 4-byte magic, 4-byte size, payload.
            let Some(size) = w.get(pos + 4, 4)? else { return Ok(None) };
            pos += 8 + u64::from(u32::from_le_bytes([size[0], size[1], size[2], size[3]]));
            continue;
        }
        if magic != 0xfd2f_b528 {
            return Err(corrupt_zstd(src, pos));
        }
        let Some(&[descriptor]) = w.get(pos + 4, 1)? else { return Ok(None) };
        let fcs_flag = descriptor >> 6;
        let single_segment = descriptor & 0x20 != 0;
        let checksum = descriptor & 0x04 != 0;
        let dict_len = [0u64, 1, 2, 4][usize::from(descriptor & 0x03)];
        let fcs_len = match (fcs_flag, single_segment) {
            (0, false) => return Ok(None),
            (0, true) => 1,
            (1, _) => 2,
            (2, _) => 4,
            _ => 8,
        };
        let fcs_at = pos + 5 + u64::from(!single_segment) + dict_len;
        let Some(fcs) = w.get(fcs_at, fcs_len)? else { return Ok(None) };
        let mut le = [0u8; 8];
        le[..fcs_len].copy_from_slice(fcs);
        let content = u64::from_le_bytes(le) + if fcs_len == 2 { 256 } else { 0 };
        total = total.saturating_add(content);
        pos = fcs_at + fcs_len as u64;
        loop {
            let Some(h) = w.get(pos, 3)? else { return Ok(None) };
            let header = u32::from(h[0]) | u32::from(h[1]) << 8 | u32::from(h[2]) << 16;
            let last = header & 1 != 0;
            let size = u64::from(header >> 3);
            pos += 3 + match (header >> 1) & 3 {
                0 | 2 => size,
                1 => 1,
                _ => return Err(corrupt_zstd(src, pos)),
            };
            if last {
                break;
            }
        }
        if checksum {
            pos += 4;
        }
    }
    // A walk that overshoots the end means a truncated last frame.
    if pos > len {
        return Err(corrupt_zstd(w.src, len));
    }
    Ok(Some(total))
}

fn corrupt_zstd(src: &dyn Source, at: u64) -> Error {
    Error::failed(format!(
        "reading zstd frame headers of {}: invalid header at byte {at} (the file is truncated or corrupt)",
        src.describe()
    ))
}

/// The decoded size of an xz image from the index of each of its streams (read backwards
/// from the end), or `None` when the length is unknown.
pub fn xz_uncompressed_size(src: &dyn Source) -> Result<Option<u64>> {
    let Some(len) = src.len() else { return Ok(None) };
    let corrupt = |what: &str| {
        Error::failed(format!(
            "reading the xz index of {}: {what} (the file is truncated or corrupt)",
            src.describe()
        ))
    };
    let mut pos = len;
    let mut total = 0u64;
    while pos > 0 {
        if pos < 12 {
            return Err(corrupt("no stream footer"));
        }
        let mut footer = [0u8; 12];
        read_exact_at(src, pos - 12, &mut footer)?;
        if footer[8..] == [0, 0, 0, 0] {
            // Stream padding between or after streams: groups of four zero bytes.
            pos -= 4;
            continue;
        }
        if &footer[10..] != b"YZ" {
            return Err(corrupt("no stream footer at the end"));
        }
        let backward = (u64::from(u32::from_le_bytes([footer[4], footer[5], footer[6], footer[7]])) + 1) * 4;
        if backward > XZ_INDEX_MAX || backward + 24 > pos {
            return Err(corrupt("the index size in the footer is out of range"));
        }
        let index_at = pos - 12 - backward;
        let mut index = vec![0u8; backward as usize];
        read_exact_at(src, index_at, &mut index)?;
        let (blocks, uncompressed) =
            parse_xz_index(&index).ok_or_else(|| corrupt("the index is malformed"))?;
        total = total.checked_add(uncompressed).ok_or_else(|| corrupt("sizes overflow"))?;
        let stream_at = index_at
            .checked_sub(blocks)
            .and_then(|p| p.checked_sub(12))
            .ok_or_else(|| corrupt("the index describes more data than the file holds"))?;
        let mut header = [0u8; 6];
        read_exact_at(src, stream_at, &mut header)?;
        if header != [0xfd, b'7', b'z', b'X', b'Z', 0] {
            return Err(corrupt("the index does not lead back to a stream header"));
        }
        pos = stream_at;
    }
    Ok(Some(total))
}

/// Parses an xz index: returns (the blocks' total stored size, their total uncompressed size).
fn parse_xz_index(index: &[u8]) -> Option<(u64, u64)> {
    let mut at = 1usize;
    if index.first() != Some(&0) {
        return None;
    }
    let records = varint(index, &mut at)?;
    let (mut stored, mut uncompressed) = (0u64, 0u64);
    for _ in 0..records {
        let unpadded = varint(index, &mut at)?;
        let size = varint(index, &mut at)?;
        stored = stored.checked_add(unpadded.checked_add(3)? & !3)?;
        uncompressed = uncompressed.checked_add(size)?;
    }
    // The rest is padding to four bytes and a CRC32 of what precedes it.
    let body = at.checked_add(3)? & !3;
    if body + 4 != index.len() {
        return None;
    }
    let crc = u32::from_le_bytes(index[body..].try_into().ok()?);
    (crc32(&index[..body]) == crc).then_some((stored, uncompressed))
}

/// An xz multibyte integer: 7 bits per byte, low bits first, at most 9 bytes.
fn varint(buf: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..9 {
        let b = *buf.get(*at)?;
        *at += 1;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// CRC-32 (IEEE), as the xz index and GPT headers use it.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(data);
    crc.sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::mem::Mem;
    use std::io::Write;

    fn xz(data: &[u8]) -> Vec<u8> {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 0);
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn zstd_sizes_sum_over_frames() {
        // The one-shot compressor records the content size, as the zstd tool does for files.
        let mut stored = zstd::bulk::compress(&[1u8; 300_000], 3).unwrap();
        stored.extend(zstd::bulk::compress(&vec![0u8; 5 << 20], 1).unwrap());
        assert_eq!(zstd_content_size(&Mem::new("a.zst", stored)).unwrap(), Some(300_000 + (5 << 20)));
    }

    #[test]
    fn zstd_without_content_size_is_unknown() {
        // The streaming encoder does not know the size up front, so the frame has none.
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        e.write_all(&[3u8; 100_000]).unwrap();
        let stored = e.finish().unwrap();
        assert_eq!(zstd_content_size(&Mem::new("a.zst", stored)).unwrap(), None);
    }

    #[test]
    fn zstd_truncated_is_an_error() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| i.wrapping_mul(2654435761).to_le_bytes()).collect();
        let mut stored = zstd::bulk::compress(&data, 3).unwrap();
        stored.truncate(stored.len() - 100);
        assert!(zstd_content_size(&Mem::new("a.zst", stored)).is_err());
    }

    #[test]
    fn xz_size_comes_from_every_stream_index() {
        let mut stored = xz(&[5u8; 70_000]);
        stored.extend([0u8; 8]); // stream padding
        stored.extend(xz(&[6u8; 1234]));
        assert_eq!(xz_uncompressed_size(&Mem::new("a.xz", stored)).unwrap(), Some(71_234));
    }

    #[test]
    fn xz_truncated_is_an_error() {
        let mut stored = xz(&[5u8; 70_000]);
        stored.truncate(stored.len() - 3);
        assert!(xz_uncompressed_size(&Mem::new("a.xz", stored)).is_err());
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }
}
