//! Decompressing qcow2 compressed clusters, several at once across threads.
//!
//! A compressed cluster is an independent raw-deflate or zstd stream, so a run of them can be
//! split over cores the way `qemu-img convert` does with its thread pool. Each thread owns a
//! [`Codec`] (the decompression contexts are reused, not rebuilt per cluster). This module
//! knows nothing about tables or files: it turns input slices into cluster-sized outputs.

use super::header::Compression;
use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};

/// The decompression contexts one thread needs.
pub struct Codec {
    compression: Compression,
    inflate: flate2::Decompress,
    zstd: Option<Decoder<'static>>,
}

impl Codec {
    /// Contexts for clusters compressed with `compression`.
    pub fn new(compression: Compression) -> Codec {
        Codec { compression, inflate: flate2::Decompress::new(false), zstd: None }
    }

    /// Decompresses one cluster from `input` into all of `out`; the error says why not.
    /// Trailing bytes after the compressed stream (the rest of its last sector) are ignored.
    pub fn cluster(&mut self, input: &[u8], out: &mut [u8]) -> Result<(), String> {
        let produced = match self.compression {
            Compression::Zlib => {
                self.inflate.reset(false);
                // A full output buffer before the end marker is fine: the cluster is complete.
                self.inflate
                    .decompress(input, out, flate2::FlushDecompress::Finish)
                    .map_err(|e| e.to_string())?;
                self.inflate.total_out() as usize
            }
            Compression::Zstd => {
                let d = match &mut self.zstd {
                    Some(d) => {
                        d.reinit().map_err(|e| e.to_string())?;
                        d
                    }
                    empty => empty.insert(Decoder::new().map_err(|e| e.to_string())?),
                };
                let mut src = InBuffer::around(input);
                let mut dst = OutBuffer::around(&mut *out);
                while dst.pos() < dst.capacity() {
                    let before = (src.pos(), dst.pos());
                    let hint = d.run(&mut src, &mut dst).map_err(|e| e.to_string())?;
                    if hint == 0 || before == (src.pos(), dst.pos()) {
                        break;
                    }
                }
                dst.pos()
            }
        };
        if produced != out.len() {
            return Err(format!("it holds {produced} bytes, not {}", out.len()));
        }
        Ok(())
    }
}

/// Decompresses `inputs[i]` into the `i`-th `cluster_size` chunk of `out`, spreading the work
/// over one thread per codec. On failure returns the index of a cluster that failed and why.
pub fn decompress_all(
    codecs: &mut [Codec],
    inputs: &[&[u8]],
    out: &mut [u8],
    cluster_size: usize,
) -> Result<(), (usize, String)> {
    let outputs: Vec<&mut [u8]> = out.chunks_mut(cluster_size).collect();
    if codecs.len() < 2 || inputs.len() < 2 {
        let Some(codec) = codecs.first_mut() else { return Err((0, "no decompressor".into())) };
        for (i, (input, output)) in inputs.iter().zip(outputs).enumerate() {
            codec.cluster(input, output).map_err(|why| (i, why))?;
        }
        return Ok(());
    }
    let per_thread = inputs.len().div_ceil(codecs.len());
    let mut outputs = outputs.into_iter();
    std::thread::scope(|scope| {
        let mut workers = Vec::new();
        for (t, (codec, chunk)) in codecs.iter_mut().zip(inputs.chunks(per_thread)).enumerate() {
            let mine: Vec<&mut [u8]> = outputs.by_ref().take(chunk.len()).collect();
            workers.push(scope.spawn(move || {
                for (i, (input, output)) in chunk.iter().zip(mine).enumerate() {
                    codec.cluster(input, output).map_err(|why| (t * per_thread + i, why))?;
                }
                Ok(())
            }));
        }
        for w in workers {
            w.join().unwrap_or_else(|_| Err((0, "a decompression thread panicked".into())))?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn a_batch_decodes_in_order_across_threads() {
        let clusters: Vec<Vec<u8>> = (0..9u8).map(|i| vec![i; 4096]).collect();
        for compression in [Compression::Zlib, Compression::Zstd] {
            let stored: Vec<Vec<u8>> = clusters
                .iter()
                .map(|c| match compression {
                    Compression::Zlib => deflate(c),
                    Compression::Zstd => zstd::bulk::compress(c, 1).unwrap(),
                })
                .collect();
            let inputs: Vec<&[u8]> = stored.iter().map(Vec::as_slice).collect();
            let mut codecs: Vec<Codec> = (0..2).map(|_| Codec::new(compression)).collect();
            let mut out = vec![0xffu8; 9 * 4096];
            decompress_all(&mut codecs, &inputs, &mut out, 4096).unwrap();
            assert!(out == clusters.concat(), "{compression:?}");
        }
    }

    #[test]
    fn a_bad_cluster_is_reported_by_index() {
        let good = deflate(&[1u8; 512]);
        let inputs: Vec<&[u8]> = vec![&good, &good, &good, b"garbage!", &good];
        let mut codecs: Vec<Codec> = (0..2).map(|_| Codec::new(Compression::Zlib)).collect();
        let mut out = vec![0u8; 5 * 512];
        assert_eq!(decompress_all(&mut codecs, &inputs, &mut out, 512).unwrap_err().0, 3);
    }

    #[test]
    fn a_short_cluster_is_an_error() {
        let short = deflate(&[1u8; 100]);
        assert!(Codec::new(Compression::Zlib).cluster(&short, &mut [0u8; 512]).is_err());
    }
}
