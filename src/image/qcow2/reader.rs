//! The sequential qcow2 reader: walks the virtual disk from offset 0 to its end, resolving each
//! cluster through the L1/L2 tables, and yields the disk's bytes in order.
//!
//! Runs are served in as few reads as possible: adjacent unallocated or zero clusters become one
//! zero fill, data clusters that are also adjacent in the file become one `read_at` straight
//! into the caller's buffer, and compressed clusters are read through a large window (qemu
//! writes them back to back) and decompressed in place when they fit. L2 tables are loaded
//! lazily, one at a time, by `table.rs`, which bounds-checks every offset taken from the file:
//! a corrupt table is an error naming the image, never a panic or a huge allocation. It does
//! not seek backwards and does not write.

use super::cluster::{self, Codec};
use super::header::{Compression, Header};
use super::table::{truncated, Granule, Tables};
use crate::error::{Error, Result};
use crate::image::size::read_exact_at;
use crate::image::stream;
use crate::source::Source;
use std::io::{self, Read};
use std::ops::Deref;

/// How much compressed data one read fetches.
const COMPRESSED_WINDOW: u64 = 4 << 20;
/// The widest stretch of the file one batch of compressed clusters may span (qemu writes them
/// back to back, so a batch normally spans about its compressed size).
const MAX_BATCH_SPAN: u64 = 32 << 20;
/// The most threads that decompress clusters.
const MAX_THREADS: usize = 4;

/// Decodes a qcow2 image's virtual disk sequentially. `S` is how the source is held: an
/// `Arc` for a reader handed to another thread, a plain reference for a quick look.
pub struct Reader<S> {
    src: S,
    t: Tables,
    pos: u64,
    /// The last compressed cluster decompressed (index and bytes), for reads that split it.
    cluster: Option<(u64, Vec<u8>)>,
    /// Compressed bytes read ahead: file offset of `window[0]`.
    window_base: u64,
    window: Vec<u8>,
    /// One set of decompression contexts per thread.
    codecs: Vec<Codec>,
}

impl<S: Deref<Target: Source>> Reader<S> {
    /// A reader for the image behind `src`, whose header is `h`.
    pub fn new(src: S, h: Header, file_len: u64) -> Result<Reader<S>> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS);
        let codecs = (0..threads).map(|_| Codec::new(h.compression)).collect();
        let t = Tables::new(src.describe(), h, file_len, &mut |at, buf| read_exact_at(&*src, at, buf))?;
        Ok(Reader { src, t, pos: 0, cluster: None, window_base: 0, window: Vec::new(), codecs })
    }

    /// Where granule `g` of the virtual disk is stored.
    fn granule(&mut self, g: u64) -> Result<Granule> {
        let src = &self.src;
        self.t.granule(g, &mut |at, buf| read_exact_at(&**src, at, buf))
    }

    /// Serves the run starting at `self.pos` into `out` (non-empty, within the disk); returns
    /// how many bytes it produced.
    fn fill(&mut self, out: &mut [u8]) -> Result<usize> {
        let gsize = 1u64 << self.t.granule_bits;
        let g = self.pos >> self.t.granule_bits;
        let within = self.pos & (gsize - 1);
        let first = self.granule(g)?;
        // How many bytes the run covers when `k` granules follow the first one.
        let reach = |k: u64| (k + 1) * gsize - within;
        match first {
            Granule::Zero => {
                let mut k = 0;
                // A granule that fails to map ends the run; it fails again when read itself,
                // at its own image offset.
                while reach(k) < out.len() as u64 && self.granule(g + k + 1).ok() == Some(Granule::Zero) {
                    k += 1;
                }
                let n = reach(k).min(out.len() as u64) as usize;
                out[..n].fill(0);
                Ok(n)
            }
            Granule::Data(host) => {
                let mut k = 0;
                while reach(k) < out.len() as u64
                    && self.granule(g + k + 1).ok() == Some(Granule::Data(host + (k + 1) * gsize))
                {
                    k += 1;
                }
                let n = reach(k).min(out.len() as u64) as usize;
                self.read_data(host + within, &mut out[..n])
            }
            Granule::Compressed { cluster, offset, len } => {
                let csize = self.t.h.cluster_size();
                let within = self.pos & (csize - 1);
                let cached = self.cluster.as_ref().is_some_and(|c| c.0 == cluster);
                if within == 0 && out.len() as u64 >= csize && !cached {
                    // Whole clusters fit: decompress the run straight into the caller's buffer.
                    let run = self.compressed_run(cluster, (offset, len), out.len() as u64 / csize)?;
                    let n = run.len() * csize as usize;
                    self.decompress(&run, &mut out[..n])?;
                    return Ok(n);
                }
                if !cached {
                    let mut buf = self.cluster.take().map(|c| c.1).unwrap_or_default();
                    buf.resize(csize as usize, 0);
                    self.decompress(&[(offset, len)], &mut buf)?;
                    self.cluster = Some((cluster, buf));
                }
                let Some((_, buf)) = &self.cluster else {
                    return Err(self.t.corrupt("no cluster cached".into()));
                };
                let n = ((csize - within) as usize).min(out.len());
                out[..n].copy_from_slice(&buf[within as usize..within as usize + n]);
                Ok(n)
            }
        }
    }

    /// The compressed clusters from `cluster` on (whose data is `first`), up to `max` of them,
    /// as (offset, length) of their data, stopping at the first other kind of cluster.
    fn compressed_run(&mut self, cluster: u64, first: (u64, u64), max: u64) -> Result<Vec<(u64, u64)>> {
        let sub_bits = self.t.h.cluster_bits - self.t.granule_bits;
        let mut run = vec![first];
        let (mut lo, mut hi) = (first.0, first.0.saturating_add(first.1));
        for next in cluster + 1..cluster + max {
            let Ok(Granule::Compressed { offset, len, .. }) = self.granule(next << sub_bits) else { break };
            let (l, h) = (lo.min(offset), hi.max(offset.saturating_add(len)));
            if h - l > MAX_BATCH_SPAN {
                break;
            }
            (lo, hi) = (l, h);
            run.push((offset, len));
        }
        Ok(run)
    }

    /// Decompresses the clusters whose data is at `run` (offset, length) into `out`, one
    /// cluster each, through the compressed-data window and across the codec threads.
    fn decompress(&mut self, run: &[(u64, u64)], out: &mut [u8]) -> Result<()> {
        // Bounds are checked where the tables are read (`table.rs`): each span is in the file.
        let spans = run;
        let lo = spans.iter().map(|s| s.0).min().unwrap_or(0);
        let hi = spans.iter().map(|s| s.0 + s.1).max().unwrap_or(0);
        if lo < self.window_base || hi > self.window_base + self.window.len() as u64 {
            let want = (hi - lo).max(COMPRESSED_WINDOW).min(self.t.file_len - lo);
            self.window.resize(want as usize, 0);
            read_exact_at(&*self.src, lo, &mut self.window)?;
            self.window_base = lo;
        }
        let base = self.window_base;
        let inputs: Vec<&[u8]> =
            spans.iter().map(|&(o, l)| &self.window[(o - base) as usize..(o - base + l) as usize]).collect();
        let csize = self.t.h.cluster_size() as usize;
        let result = cluster::decompress_all(&mut self.codecs, &inputs, out, csize);
        result.map_err(|(i, why)| self.bad_cluster(spans[i].0, &why))
    }

    /// Reads stored data at `at`. Every byte must be in the file: qemu would read a data
    /// cluster cut short by the end of the file as zeros, but qemu itself writes whole
    /// clusters, and a file cut inside its last cluster flashed as zeros is a corrupt disk
    /// reported good.
    /// Returns how many bytes it read: fewer than asked when the file ends within them (the
    /// next read, from there, is the error, so it names the image offset where data stops).
    fn read_data(&self, at: u64, out: &mut [u8]) -> Result<usize> {
        let mut done = 0;
        while done < out.len() {
            let n = self.src.read_at(at + done as u64, &mut out[done..])?;
            if n == 0 {
                break;
            }
            done += n;
        }
        if done == 0 && !out.is_empty() {
            return Err(truncated(&self.t.name, "cluster data", at, self.t.file_len));
        }
        Ok(done)
    }

    fn bad_cluster(&self, offset: u64, why: &str) -> Error {
        self.t.corrupt(format!(
            "the {} compressed cluster at byte {offset} does not decompress: {why}",
            match self.t.h.compression {
                Compression::Zlib => "zlib",
                Compression::Zstd => "zstd",
            }
        ))
    }
}

impl<S: Deref<Target: Source>> Read for Reader<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() && self.pos < self.t.h.size {
            let want = ((buf.len() - filled) as u64).min(self.t.h.size - self.pos) as usize;
            let n = match self.fill(&mut buf[filled..filled + want]) {
                Ok(n) => n,
                // Hand over what was read before the failure: the caller then knows the image
                // offset it stopped at, and the next read fails there again.
                Err(_) if filled > 0 => break,
                Err(e) => return Err(stream::read_error(e)),
            };
            filled += n;
            self.pos += n as u64;
        }
        Ok(filled)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::table::{COMPRESSED, ZERO};
    use super::*;
    use crate::image::mem::Mem;
    use crate::ErrorKind;
    use std::io::Write;

    /// A 64 KiB disk with 512-byte clusters: header at 0, L1 at 512, one L2 table at 1024
    /// (the second L1 entry is unallocated), data clusters at 1536 and 2048, and compressed
    /// data at 2560. `l2` gives the first L2 entries. (`map.rs`'s tests use it too.)
    pub(in crate::image::qcow2) fn image(l2: &[u64], compressed: &[u8], zstd: bool) -> Vec<u8> {
        let mut f = vec![0u8; 2560];
        f[..4].copy_from_slice(b"QFI\xfb");
        f[4..8].copy_from_slice(&3u32.to_be_bytes());
        f[20..24].copy_from_slice(&9u32.to_be_bytes());
        f[24..32].copy_from_slice(&(64u64 << 10).to_be_bytes());
        f[36..40].copy_from_slice(&2u32.to_be_bytes());
        f[40..48].copy_from_slice(&512u64.to_be_bytes());
        f[100..104].copy_from_slice(&112u32.to_be_bytes());
        if zstd {
            f[72..80].copy_from_slice(&(1u64 << 3).to_be_bytes());
            f[104] = 1;
        }
        f[512..520].copy_from_slice(&(1024u64 | 1 << 63).to_be_bytes());
        for (i, e) in l2.iter().enumerate() {
            f[1024 + 8 * i..1032 + 8 * i].copy_from_slice(&e.to_be_bytes());
        }
        f[1536..2048].fill(0x11);
        f[2048..2560].fill(0x22);
        f.extend_from_slice(compressed);
        f
    }

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// A compressed L2 entry for data at `offset` (512-byte clusters: one sector-count bit).
    fn compressed_at(offset: u64) -> u64 {
        COMPRESSED | offset
    }

    fn decode(file: Vec<u8>) -> Result<Vec<u8>> {
        let src = Mem::new("t.qcow2", file);
        let mut r = super::super::open_borrowed(&src)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    }

    fn expected() -> Vec<u8> {
        let mut d = vec![0u8; 64 << 10];
        d[..512].fill(0x11);
        d[512..1024].fill(0x22);
        d[2048..2560].fill(0x33);
        d
    }

    const DATA: [u64; 4] = [1536 | 1 << 63, 2048 | 1 << 63, ZERO, 0];

    #[test]
    fn data_zero_unallocated_and_zlib_clusters_decode_in_order() {
        let l2 = [&DATA[..], &[compressed_at(2560)]].concat();
        assert!(decode(image(&l2, &deflate(&[0x33; 512]), false)).unwrap() == expected());
    }

    #[test]
    fn zstd_clusters_decode() {
        let l2 = [&DATA[..], &[compressed_at(2560)]].concat();
        let z = zstd::bulk::compress(&[0x33; 512], 3).unwrap();
        assert!(decode(image(&l2, &z, true)).unwrap() == expected());
    }

    #[test]
    fn small_reads_split_runs_and_clusters_correctly() {
        let l2 = [&DATA[..], &[compressed_at(2560)]].concat();
        let src = Mem::new("t.qcow2", image(&l2, &deflate(&[0x33; 512]), false));
        let mut r = super::super::open_borrowed(&src).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 100];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert!(out == expected());
    }

    #[test]
    fn a_file_cut_inside_its_last_data_cluster_is_truncated() {
        let mut file = image(&DATA, &[], false);
        file.truncate(2048 + 100);
        let Err(e) = decode(file) else { panic!("a cut data cluster decoded") };
        assert!(e.to_string().contains("cluster data at byte 2148 lies beyond the end"), "{e}");
    }

    #[test]
    fn corrupt_tables_are_errors_naming_the_image() {
        let cases: [(Vec<u64>, &str); 3] = [
            (vec![1 << 20], "beyond the end of the file"),
            (vec![compressed_at(2560)], "does not decompress"),
            (vec![compressed_at(1 << 40)], "beyond the end of the file"),
        ];
        for (l2, expected) in cases {
            let Err(e) = decode(image(&l2, b"not deflate at all", false)) else { panic!("{l2:x?} decoded") };
            assert_eq!(e.kind(), ErrorKind::Failed);
            let msg = e.to_string();
            assert!(msg.contains("t.qcow2") && msg.contains(expected), "{msg}");
        }
    }

    #[test]
    fn an_l1_entry_past_the_file_is_an_error() {
        let mut file = image(&DATA, &[], false);
        file[512..520].copy_from_slice(&(1u64 << 30).to_be_bytes());
        let Err(e) = decode(file) else { panic!("decoded through a bad L1 entry") };
        assert!(e.to_string().contains("an L2 table at byte 1073741824"), "{e}");
    }

    #[test]
    fn damaged_images_fail_or_decode_but_never_panic() {
        let l2 = [&DATA[..], &[compressed_at(2560)]].concat();
        let clean = image(&l2, &deflate(&[0x33; 512]), false);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let mut f = clean.clone();
            for _ in 0..3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                // Header fields, the L1 table and the first L2 entries.
                let at = [(seed % 112) as usize, 512 + (seed % 16) as usize, 1024 + (seed % 48) as usize]
                    [(seed >> 60) as usize % 3];
                f[at] = (seed >> 24) as u8;
            }
            let _ = decode(f);
        }
    }

    #[test]
    fn a_backing_file_is_refused_with_its_name() {
        let mut file = image(&DATA, &[], false);
        file[8..16].copy_from_slice(&200u64.to_be_bytes());
        file[16..20].copy_from_slice(&8u32.to_be_bytes());
        file[200..208].copy_from_slice(b"base.img");
        let Err(e) = decode(file) else { panic!("decoded an image with a backing file") };
        assert_eq!(e.kind(), ErrorKind::Refused);
        assert!(e.to_string().contains("has a backing file (base.img); flatten it first"), "{e}");
    }
}
