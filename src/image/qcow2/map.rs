//! Mapping virtual byte ranges of a qcow2 image onto its file, so a client can fetch single
//! chunks of the disk by Range request instead of streaming the image (`bty flash --delta`
//! with a qcow2 index).
//!
//! A range becomes pieces in order: zeros, uncompressed data at a file offset, or a part of a
//! compressed cluster. The header, the L1 table and each L2 table are read by exact Range
//! reads, counted, and only when a range needs them; tables resolve through `table.rs`, as
//! the sequential reader's do. Ranges are expected in increasing order (a client walks its
//! changed chunks in order), so each L2 table is read once. This module reads no data and
//! decompresses nothing: that is the caller's, with [`super::Codec`].

use super::header::Compression;
use super::table::{truncated, Granule, Tables};
use crate::error::Result;
use crate::source::Source;
use std::ops::Range;

/// One stretch of a virtual range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// `len` bytes that read as zeros.
    Zero(u64),
    /// `len` bytes stored as they are at file offset `at`.
    Data { at: u64, len: u64 },
    /// Bytes `skip..skip + len` of the compressed cluster stored at `stored`.
    Compressed { stored: Range<u64>, skip: u64, len: u64 },
}

/// Resolves virtual ranges of one qcow2 image into [`Piece`]s.
pub struct Mapper<'a> {
    src: &'a dyn Source,
    t: Tables,
    /// Bytes of the file read for the header and tables.
    fetched: u64,
}

impl<'a> Mapper<'a> {
    /// Reads the header and the L1 table of the qcow2 image behind `src`.
    pub fn open(src: &'a dyn Source) -> Result<Mapper<'a>> {
        let mut fetched = 0;
        let (h, file_len) = super::header_via(src, &mut counted(src, &mut fetched))?;
        let t = Tables::new(src.describe(), h, file_len, &mut counted(src, &mut fetched))?;
        Ok(Mapper { src, t, fetched })
    }

    /// Bytes of the file read so far for the header and the tables.
    pub fn fetched(&self) -> u64 {
        self.fetched
    }

    /// How the image's compressed clusters are compressed.
    pub fn compression(&self) -> Compression {
        self.t.h.compression
    }

    /// The cluster size: what a compressed cluster decompresses to.
    pub fn cluster_size(&self) -> u64 {
        self.t.h.cluster_size()
    }

    /// The pieces that make up the virtual bytes `range` (within the disk), in order,
    /// adjacent pieces of one kind merged.
    pub fn map(&mut self, range: Range<u64>) -> Result<Vec<Piece>> {
        if range.end > self.t.h.size {
            return Err(self.t.corrupt(format!(
                "bytes {}..{} were asked of a disk of {} bytes (the index does not belong to this image)",
                range.start, range.end, self.t.h.size
            )));
        }
        let bits = self.t.granule_bits;
        let mut pieces: Vec<Piece> = Vec::new();
        let mut pos = range.start;
        while pos < range.end {
            let within = pos & ((1 << bits) - 1);
            let len = ((1 << bits) - within).min(range.end - pos);
            let src = self.src;
            let granule = self.t.granule(pos >> bits, &mut counted(src, &mut self.fetched))?;
            let piece = match granule {
                Granule::Zero => Piece::Zero(len),
                Granule::Data(host) => {
                    let at = host + within;
                    if at + len > self.t.file_len {
                        let what = format!("data of image byte {pos}");
                        return Err(truncated(&self.t.name, &what, at + len - 1, self.t.file_len));
                    }
                    Piece::Data { at, len }
                }
                Granule::Compressed { offset, len: stored, .. } => Piece::Compressed {
                    stored: offset..offset + stored,
                    skip: pos & (self.t.h.cluster_size() - 1),
                    len,
                },
            };
            merge(&mut pieces, piece);
            pos += len;
        }
        Ok(pieces)
    }
}

/// Appends `next` to `pieces`, extending the last piece when `next` continues it.
fn merge(pieces: &mut Vec<Piece>, next: Piece) {
    match (pieces.last_mut(), &next) {
        (Some(Piece::Zero(n)), Piece::Zero(m)) => *n += m,
        (Some(Piece::Data { at, len }), Piece::Data { at: a, len: l }) if *at + *len == *a => *len += l,
        (Some(Piece::Compressed { stored, skip, len }), Piece::Compressed { stored: s, skip: k, len: l })
            if stored == s && *skip + *len == *k =>
        {
            *len += l
        }
        _ => pieces.push(next),
    }
}

/// Reads exact ranges of `src`, adding their length to `fetched`.
fn counted<'s>(src: &'s dyn Source, fetched: &'s mut u64) -> impl FnMut(u64, &mut [u8]) -> Result<()> + 's {
    move |at, buf| {
        let got = src.read_range(at..at + buf.len() as u64)?;
        *fetched += got.len() as u64;
        buf.copy_from_slice(&got);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::mem::Mem;

    /// The test image of `reader.rs` with `l2` as its first L2 entries: header at 0, L1 at
    /// 512 (one L2 table at 1024), data clusters at 1536 and 2048, then 512 bytes from 2560.
    fn image(l2: &[u64]) -> Vec<u8> {
        super::super::reader::tests::image(l2, &[0; 512], false)
    }

    const L2: [u64; 5] = [1536 | 1 << 63, 2048 | 1 << 63, super::super::table::ZERO, 0, 1 << 62 | 2600];

    #[test]
    fn a_range_maps_to_merged_pieces_in_order() {
        let src = Mem::new("t.qcow2", image(&L2));
        let mut m = Mapper::open(&src).unwrap();
        let header_and_l1 = m.fetched();
        let pieces = m.map(100..2048 + 700).unwrap();
        assert_eq!(
            pieces,
            vec![
                Piece::Data { at: 1636, len: 924 },
                Piece::Zero(1024),
                Piece::Compressed { stored: 2600..3072, skip: 0, len: 512 },
                Piece::Zero(188),
            ]
        );
        assert_eq!(m.fetched(), header_and_l1 + 512, "the one L2 table, once");
        m.map(2048 + 700..4096).unwrap();
        assert_eq!(m.fetched(), header_and_l1 + 512, "not read again");
    }

    #[test]
    fn a_corrupt_table_is_an_error_naming_the_image() {
        let cases: [(u64, &str); 2] = [
            (1 << 20 | 1 << 63, "data of cluster 0 at byte 1048576 lies beyond the end of the file"),
            (1 << 62 | 1 << 40, "a compressed cluster at byte 1099511627776 lies beyond the end"),
        ];
        for (entry, says) in cases {
            let src = Mem::new("t.qcow2", image(&[entry]));
            let mut m = Mapper::open(&src).unwrap();
            let e = m.map(0..4096).unwrap_err().to_string();
            assert!(e.contains("t.qcow2") && e.contains(says), "{e}");
        }
        let mut cut = image(&L2);
        cut.truncate(1200);
        let src = Mem::new("t.qcow2", cut);
        let e = Mapper::open(&src).and_then(|mut m| m.map(0..512)).unwrap_err().to_string();
        assert!(e.contains("t.qcow2") && e.contains("an L2 table at byte 1024"), "{e}");
        let src = Mem::new("t.qcow2", image(&L2));
        let e = Mapper::open(&src).unwrap().map(0..(1 << 20)).unwrap_err().to_string();
        assert!(e.contains("t.qcow2") && e.contains("does not belong"), "{e}");
    }
}
