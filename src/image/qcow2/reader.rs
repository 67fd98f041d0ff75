//! The sequential qcow2 reader: walks the virtual disk from offset 0 to its end, resolving each
//! cluster through the L1/L2 tables, and yields the disk's bytes in order.
//!
//! Runs are served in as few reads as possible: adjacent unallocated or zero clusters become one
//! zero fill, data clusters that are also adjacent in the file become one `read_at` straight
//! into the caller's buffer, and compressed clusters are read through a large window (qemu
//! writes them back to back) and decompressed in place when they fit. L2 tables are loaded
//! lazily, one at a time. Every offset taken from the file is bounds-checked: a corrupt table is
//! an error naming the image, never a panic or a huge allocation. It does not seek backwards
//! and does not write.

use super::header::{Compression, Header};
use crate::error::{Error, Result};
use crate::source::Source;
use std::io::{self, Read};
use std::ops::Deref;
use zstd::stream::raw::Operation;

/// Host offsets in L1 and standard L2 entries: bits 9..=55.
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// L2 entry flag: the cluster is compressed.
const COMPRESSED: u64 = 1 << 62;
/// L2 entry flag (v3, standard entries): the cluster reads as zeros.
const ZERO: u64 = 1;
/// Subclusters per cluster with extended L2 entries.
const SUBCLUSTERS: u32 = 32;
/// How much compressed data one read fetches.
const COMPRESSED_WINDOW: usize = 4 << 20;

/// Where the bytes of one granule (a cluster, or a subcluster with extended L2 entries) are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Granule {
    /// Unallocated or explicitly zero: reads as zeros.
    Zero,
    /// Stored uncompressed at this file offset.
    Data(u64),
    /// Part of compressed cluster `cluster`, whose data starts at `offset` and spans `len` bytes.
    Compressed { cluster: u64, offset: u64, len: u64 },
}

/// Decodes a qcow2 image's virtual disk sequentially. `S` is how the source is held: an
/// `Arc` for a reader handed to another thread, a plain reference for a quick look.
pub struct Reader<S> {
    src: S,
    name: String,
    h: Header,
    file_len: u64,
    /// log2 of the granule size: the cluster, or one of its 32 subclusters.
    granule_bits: u32,
    l1: Vec<u64>,
    /// The L2 table currently loaded: its L1 index and raw entries.
    l2: Option<(u64, Vec<u64>)>,
    pos: u64,
    /// The last compressed cluster decompressed (index and bytes), for reads that split it.
    cluster: Option<(u64, Vec<u8>)>,
    /// Compressed bytes read ahead: file offset of `window[0]`.
    window_base: u64,
    window: Vec<u8>,
    inflate: flate2::Decompress,
    zstd: Option<zstd::stream::raw::Decoder<'static>>,
}

impl<S: Deref<Target: Source>> Reader<S> {
    /// A reader for the image behind `src`, whose header is `h`.
    pub fn new(src: S, h: Header, file_len: u64) -> Result<Reader<S>> {
        let name = src.describe();
        let l1_bytes = h.l1_size * 8;
        if h.l1_table_offset.checked_add(l1_bytes).is_none_or(|end| end > file_len) {
            return Err(truncated(&name, "the L1 table", h.l1_table_offset, file_len));
        }
        let mut raw = vec![0u8; l1_bytes as usize];
        crate::image::size::read_exact_at(&*src, h.l1_table_offset, &mut raw)?;
        let l1 = be_words(&raw);
        let granule_bits = h.cluster_bits - if h.extended_l2 { SUBCLUSTERS.trailing_zeros() } else { 0 };
        Ok(Reader {
            src,
            name,
            file_len,
            granule_bits,
            l1,
            l2: None,
            pos: 0,
            cluster: None,
            window_base: 0,
            window: Vec::new(),
            inflate: flate2::Decompress::new(false),
            zstd: None,
            h,
        })
    }

    fn corrupt(&self, what: String) -> Error {
        Error::failed(format!("{}: corrupt qcow2 image: {what}", self.name))
    }

    /// Where granule `g` of the virtual disk is stored.
    fn granule(&mut self, g: u64) -> Result<Granule> {
        let sub_bits = self.h.cluster_bits - self.granule_bits;
        let cluster = g >> sub_bits;
        let (l1_index, l2_index) = (cluster / self.h.l2_entries(), cluster % self.h.l2_entries());
        let Some(&l1_entry) = self.l1.get(l1_index as usize) else {
            return Err(self.corrupt(format!("cluster {cluster} lies beyond the L1 table")));
        };
        let table_at = l1_entry & OFFSET_MASK;
        if table_at == 0 {
            return Ok(Granule::Zero);
        }
        if self.l2.as_ref().is_none_or(|(i, _)| *i != l1_index) {
            self.l2 = Some((l1_index, self.load_l2(table_at)?));
        }
        let words_per_entry = (self.h.l2_entry_bytes() / 8) as usize;
        let Some((_, table)) = &self.l2 else { return Err(self.corrupt("no L2 table loaded".into())) };
        let at = l2_index as usize * words_per_entry;
        let entry = table[at];
        if entry & COMPRESSED != 0 {
            // Bits 0..x are the byte offset, bits x..62 the count of further 512-byte sectors.
            let x = 62 - (self.h.cluster_bits - 8);
            let offset = entry & ((1u64 << x) - 1);
            let sectors = (entry & !(COMPRESSED | 1 << 63)) >> x;
            let len = (offset & !511) + (sectors + 1) * 512 - offset;
            return Ok(Granule::Compressed { cluster, offset, len });
        }
        let host = entry & OFFSET_MASK;
        let granule = if self.h.extended_l2 {
            let bitmap = table[at + 1];
            let sub = (g & u64::from(SUBCLUSTERS - 1)) as u32;
            if bitmap >> (32 + sub) & 1 != 0 || bitmap >> sub & 1 == 0 {
                Granule::Zero
            } else if host == 0 {
                return Err(self.corrupt(format!("cluster {cluster} is marked allocated without an offset")));
            } else {
                Granule::Data(host + (u64::from(sub) << self.granule_bits))
            }
        } else if entry & ZERO != 0 || host == 0 {
            Granule::Zero
        } else {
            Granule::Data(host)
        };
        if let Granule::Data(at) = granule {
            if host % self.h.cluster_size() != 0 {
                return Err(self.corrupt(format!("cluster {cluster} has unaligned offset {host}")));
            }
            if at >= self.file_len {
                return Err(truncated(&self.name, &format!("data of cluster {cluster}"), at, self.file_len));
            }
        }
        Ok(granule)
    }

    fn load_l2(&self, at: u64) -> Result<Vec<u64>> {
        let size = self.h.cluster_size();
        if at % size != 0 {
            return Err(self.corrupt(format!("an L2 table offset {at} is not cluster-aligned")));
        }
        if at.checked_add(size).is_none_or(|end| end > self.file_len) {
            return Err(truncated(&self.name, "an L2 table", at, self.file_len));
        }
        let mut raw = vec![0u8; size as usize];
        crate::image::size::read_exact_at(&*self.src, at, &mut raw)?;
        Ok(be_words(&raw))
    }

    /// Serves the run starting at `self.pos` into `out` (non-empty, within the disk); returns
    /// how many bytes it produced.
    fn fill(&mut self, out: &mut [u8]) -> Result<usize> {
        let gsize = 1u64 << self.granule_bits;
        let g = self.pos >> self.granule_bits;
        let within = self.pos & (gsize - 1);
        let first = self.granule(g)?;
        // How many bytes the run covers when `k` granules follow the first one.
        let reach = |k: u64| (k + 1) * gsize - within;
        match first {
            Granule::Zero => {
                let mut k = 0;
                while reach(k) < out.len() as u64 && self.granule(g + k + 1)? == Granule::Zero {
                    k += 1;
                }
                let n = reach(k).min(out.len() as u64) as usize;
                out[..n].fill(0);
                Ok(n)
            }
            Granule::Data(host) => {
                let mut k = 0;
                while reach(k) < out.len() as u64
                    && self.granule(g + k + 1)? == Granule::Data(host + (k + 1) * gsize)
                {
                    k += 1;
                }
                let n = reach(k).min(out.len() as u64) as usize;
                self.read_data(host + within, &mut out[..n], gsize)?;
                Ok(n)
            }
            Granule::Compressed { cluster, offset, len } => {
                let csize = self.h.cluster_size();
                let within = self.pos & (csize - 1);
                if within == 0
                    && out.len() as u64 >= csize
                    && self.cluster.as_ref().is_none_or(|c| c.0 != cluster)
                {
                    // The whole cluster fits: decompress straight into the caller's buffer.
                    self.decompress(offset, len, &mut out[..csize as usize])?;
                    return Ok(csize as usize);
                }
                if self.cluster.as_ref().is_none_or(|c| c.0 != cluster) {
                    let mut buf = self.cluster.take().map(|c| c.1).unwrap_or_default();
                    buf.resize(csize as usize, 0);
                    self.decompress(offset, len, &mut buf)?;
                    self.cluster = Some((cluster, buf));
                }
                let Some((_, buf)) = &self.cluster else {
                    return Err(self.corrupt("no cluster cached".into()));
                };
                let n = ((csize - within) as usize).min(out.len());
                out[..n].copy_from_slice(&buf[within as usize..within as usize + n]);
                Ok(n)
            }
        }
    }

    /// Reads stored data at `at`. qemu does not always extend the file over the whole last
    /// cluster (the rest reads as zeros), so up to one granule missing at the end of the file is
    /// zero; more than that means the file was cut short.
    fn read_data(&self, at: u64, out: &mut [u8], gsize: u64) -> Result<()> {
        let mut done = 0;
        while done < out.len() {
            let n = self.src.read_at(at + done as u64, &mut out[done..])?;
            if n == 0 {
                break;
            }
            done += n;
        }
        if done < out.len() {
            if (out.len() - done) as u64 >= gsize || at + (done as u64) < self.file_len {
                return Err(truncated(&self.name, "cluster data", at + done as u64, self.file_len));
            }
            out[done..].fill(0);
        }
        Ok(())
    }

    /// Decompresses one cluster whose data is `len` bytes at `offset` into `out` (one cluster).
    fn decompress(&mut self, offset: u64, len: u64, out: &mut [u8]) -> Result<()> {
        if offset >= self.file_len {
            return Err(truncated(&self.name, "a compressed cluster", offset, self.file_len));
        }
        // The sector count rounds up, so the last cluster's span may run past the end of file.
        let len = len.min(self.file_len - offset);
        let end = offset + len;
        if offset < self.window_base || end > self.window_base + self.window.len() as u64 {
            let want = (len.max(COMPRESSED_WINDOW as u64)).min(self.file_len - offset);
            self.window.resize(want as usize, 0);
            crate::image::size::read_exact_at(&*self.src, offset, &mut self.window)?;
            self.window_base = offset;
        }
        let start = (offset - self.window_base) as usize;
        let input = &self.window[start..start + len as usize];
        let produced = match self.h.compression {
            Compression::Zlib => {
                self.inflate.reset(false);
                // A full output buffer before the end marker is fine: the cluster is complete.
                match self.inflate.decompress(input, out, flate2::FlushDecompress::Finish) {
                    Ok(_) => self.inflate.total_out() as usize,
                    Err(e) => return Err(self.bad_cluster(offset, &e.to_string())),
                }
            }
            Compression::Zstd => {
                let mut decoder = match self.zstd.take() {
                    Some(mut d) => {
                        d.reinit().map_err(|e| self.bad_cluster(offset, &e.to_string()))?;
                        d
                    }
                    None => zstd::stream::raw::Decoder::new()
                        .map_err(|e| self.bad_cluster(offset, &e.to_string()))?,
                };
                let result = zstd_into(&mut decoder, input, out);
                self.zstd = Some(decoder);
                result.map_err(|e| self.bad_cluster(offset, &e))?
            }
        };
        if produced != out.len() {
            return Err(self.bad_cluster(offset, &format!("it holds {produced} bytes, not {}", out.len())));
        }
        Ok(())
    }

    fn bad_cluster(&self, offset: u64, why: &str) -> Error {
        self.corrupt(format!(
            "the {} compressed cluster at byte {offset} does not decompress: {why}",
            match self.h.compression {
                Compression::Zlib => "zlib",
                Compression::Zstd => "zstd",
            }
        ))
    }
}

/// Runs a zstd decoder over `input` until `out` is full or the input is used up; returns the
/// bytes produced. Trailing bytes after the frame (the rest of the last sector) are ignored.
fn zstd_into(
    d: &mut zstd::stream::raw::Decoder<'static>,
    input: &[u8],
    out: &mut [u8],
) -> Result<usize, String> {
    use zstd::stream::raw::{InBuffer, OutBuffer};
    let mut src = InBuffer::around(input);
    let mut dst = OutBuffer::around(out);
    while dst.pos() < dst.capacity() {
        let before = (src.pos(), dst.pos());
        let hint = d.run(&mut src, &mut dst).map_err(|e| e.to_string())?;
        if hint == 0 || before == (src.pos(), dst.pos()) {
            break;
        }
    }
    Ok(dst.pos())
}

fn truncated(name: &str, what: &str, at: u64, file_len: u64) -> Error {
    Error::failed(format!(
        "{name}: {what} at byte {at} lies beyond the end of the file ({file_len} bytes): the qcow2 image is \
         truncated or corrupt"
    ))
}

fn be_words(raw: &[u8]) -> Vec<u64> {
    raw.chunks_exact(8)
        .map(|c| u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect()
}

impl<S: Deref<Target: Source>> Read for Reader<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() && self.pos < self.h.size {
            let want = ((buf.len() - filled) as u64).min(self.h.size - self.pos) as usize;
            let n = self.fill(&mut buf[filled..filled + want])?;
            filled += n;
            self.pos += n as u64;
        }
        Ok(filled)
    }
}
