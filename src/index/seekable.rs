//! The zstd seekable format (zstd's `contrib/seekable_format`): independent frames, then a
//! skippable frame holding the seek table, so a reader finds any frame from the table while
//! any zstd decoder still reads the file as one stream (skippable frames are skipped).
//!
//! bty writes one frame per index chunk, so a chunk's stored byte range is its frame. Frame
//! checksums are left out of the table (its descriptor says so); each frame carries zstd's own
//! content checksum, and the chunk index carries SHA-256s. This module reads and writes the
//! table only; compression is the zstd crate's.

use crate::error::{Error, Result};
use crate::image::read_exact_at;
use crate::source::Source;
use std::io::Write;
use std::ops::Range;

/// The skippable-frame magic the seek table uses.
const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
/// The last four bytes of a seekable file.
const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;
/// Number of frames (4), descriptor (1), magic (4).
const FOOTER_LEN: u64 = 9;
/// The compression level: zstd's default, fast enough to convert images on a store.
const LEVEL: i32 = 3;

/// One frame: its stored bytes and how many bytes it decodes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The frame's bytes in the file.
    pub stored: Range<u64>,
    /// Decoded length.
    pub decoded_len: u64,
}

/// Writes frames to `out` one at a time, then the seek table.
pub struct Writer<W: Write> {
    out: W,
    at: u64,
    frames: Vec<Frame>,
    compressor: zstd::bulk::Compressor<'static>,
}

impl<W: Write> Writer<W> {
    /// Starts a seekable file on `out`.
    pub fn new(out: W) -> Result<Writer<W>> {
        let mut compressor = zstd::bulk::Compressor::new(LEVEL)
            .map_err(|e| Error::failed(format!("starting the zstd compressor: {e}")))?;
        // The checksum lets a plain `zstd -d` catch corruption of any frame.
        compressor
            .set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
            .map_err(|e| Error::failed(format!("configuring the zstd compressor: {e}")))?;
        Ok(Writer { out, at: 0, frames: Vec::new(), compressor })
    }

    /// Compresses `data` as one independent frame and returns its stored range.
    pub fn frame(&mut self, data: &[u8]) -> Result<Range<u64>> {
        let packed =
            self.compressor.compress(data).map_err(|e| Error::failed(format!("compressing a frame: {e}")))?;
        self.out.write_all(&packed)?;
        let stored = self.at..self.at + packed.len() as u64;
        self.at = stored.end;
        self.frames.push(Frame { stored: stored.clone(), decoded_len: data.len() as u64 });
        Ok(stored)
    }

    /// Writes the seek table and returns the writer and the file's total length.
    pub fn finish(mut self) -> Result<(W, u64)> {
        let table_len = self.frames.len() as u64 * 8 + FOOTER_LEN;
        let frame_size = u32::try_from(table_len)
            .map_err(|_| Error::invalid("too many frames for one seek table; use larger chunks"))?;
        let mut t = Vec::with_capacity(table_len as usize + 8);
        t.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
        t.extend_from_slice(&frame_size.to_le_bytes());
        for f in &self.frames {
            // Frames are at most one chunk (64 MiB) decoded, and a zstd frame of that many
            // bytes stays below 4 GiB stored.
            t.extend_from_slice(&((f.stored.end - f.stored.start) as u32).to_le_bytes());
            t.extend_from_slice(&(f.decoded_len as u32).to_le_bytes());
        }
        t.extend_from_slice(&(self.frames.len() as u32).to_le_bytes());
        t.push(0);
        t.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
        self.out.write_all(&t)?;
        self.out.flush()?;
        Ok((self.out, self.at + t.len() as u64))
    }
}

/// The frames of a seekable zstd file, from its seek table; `None` when the file does not end
/// with one (an ordinary zstd file). A table that does not fit the file is an error.
pub fn read_table(src: &dyn Source) -> Result<Option<Vec<Frame>>> {
    let Some(len) = src.len() else { return Ok(None) };
    if len < FOOTER_LEN + 8 || !src.supports_random_access() {
        return Ok(None);
    }
    let mut footer = [0u8; FOOTER_LEN as usize];
    read_exact_at(src, len - FOOTER_LEN, &mut footer)?;
    if u32::from_le_bytes([footer[5], footer[6], footer[7], footer[8]]) != SEEKABLE_MAGIC {
        return Ok(None);
    }
    let bad = |why: &str| {
        Error::failed(format!(
            "{}: the zstd seek table is {why} (the file is truncated or corrupt)",
            src.describe()
        ))
    };
    let count = u64::from(u32::from_le_bytes([footer[0], footer[1], footer[2], footer[3]]));
    let entry = if footer[4] & 0x80 != 0 { 12 } else { 8 };
    let table_len = count * entry + FOOTER_LEN;
    if table_len + 8 > len {
        return Err(bad("longer than the file"));
    }
    let mut table = vec![0u8; (table_len + 8) as usize];
    read_exact_at(src, len - table_len - 8, &mut table)?;
    let word = |at: usize| u32::from_le_bytes([table[at], table[at + 1], table[at + 2], table[at + 3]]);
    if word(0) != SKIPPABLE_MAGIC || u64::from(word(4)) != table_len {
        return Err(bad("not inside a skippable frame of its size"));
    }
    let mut frames = Vec::with_capacity(count as usize);
    let mut at = 0u64;
    for i in 0..count as usize {
        let stored = u64::from(word(8 + i * entry as usize));
        let decoded_len = u64::from(word(12 + i * entry as usize));
        frames.push(Frame { stored: at..at + stored, decoded_len });
        at += stored;
    }
    if at != len - table_len - 8 {
        return Err(bad("inconsistent with the frames before it"));
    }
    Ok(Some(frames))
}

/// Decodes one frame's bytes (`expected` decoded bytes); `what` names it in messages.
pub fn decode_frame(packed: &[u8], expected: usize, what: &dyn Fn() -> String) -> Result<Vec<u8>> {
    let data = zstd::bulk::decompress(packed, expected)
        .map_err(|e| Error::failed(format!("decoding {}: {e}", what())))?;
    if data.len() != expected {
        return Err(Error::failed(format!("decoding {}: {} bytes, {expected} expected", what(), data.len())));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::mem::Mem;
    use std::io::Read;

    #[test]
    fn seekable_file_reads_as_one_stream_and_by_frame() {
        let a = vec![1u8; 100_000];
        let b = vec![0u8; 5000];
        let mut w = Writer::new(Vec::new()).unwrap();
        w.frame(&a).unwrap();
        w.frame(&b).unwrap();
        let (file, len) = w.finish().unwrap();
        assert_eq!(file.len() as u64, len);
        let mut all = Vec::new();
        zstd::stream::read::Decoder::new(&file[..]).unwrap().read_to_end(&mut all).unwrap();
        assert_eq!(all, [a.clone(), b].concat());
        let frames = read_table(&Mem::new("x.zst", file.clone())).unwrap().unwrap();
        assert_eq!(frames.len(), 2);
        let first = &file[frames[0].stored.start as usize..frames[0].stored.end as usize];
        assert_eq!(decode_frame(first, a.len(), &|| "frame 0".into()).unwrap(), a);
        let plain = zstd::bulk::compress(&a, 3).unwrap();
        assert_eq!(read_table(&Mem::new("y.zst", plain)).unwrap(), None);
    }
}
