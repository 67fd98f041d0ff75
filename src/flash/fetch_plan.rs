//! What a flash by index fetches for its changed chunks, and how each chunk is put back
//! together from what was fetched.
//!
//! A changed chunk is made of parts: a raw chunk is its own byte range, a seekable zstd chunk
//! one frame, and a qcow2 chunk whatever its clusters are (zeros, data, parts of compressed
//! clusters), found through the image's tables by `image::qcow2::Mapper` on this thread, in
//! chunk order, so the table reads are the same on every run. Parts whose stored bytes touch
//! or overlap are fetched in one Range request; consecutive chunks whose bytes continue each
//! other share a request, [`MAX_REQUEST`] at most. This module does no I/O on the target and
//! checks no hashes (see `remote.rs`).

use crate::error::{Error, ErrorKind, Result};
use crate::image::qcow2::{self, Codec, Compression, Piece};
use crate::index::{seekable, ChunkIndex, Layout};
use crate::source::Source;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

/// The most stored bytes one request asks for (a single larger chunk is asked for whole).
const MAX_REQUEST: u64 = 16 << 20;

/// How stored bytes turn into bytes of a chunk.
#[derive(Debug)]
enum Part {
    /// Zeros (qcow2 clusters that are unallocated or zero).
    Zeros(u64),
    /// Stored bytes that are the decoded bytes (raw, qcow2 data clusters).
    Plain(Range<u64>),
    /// A seekable zstd frame that decodes to the whole chunk.
    Frame(Range<u64>),
    /// Bytes `skip..skip + len` of the qcow2 compressed cluster stored at `stored`.
    Cluster { stored: Range<u64>, skip: u64, len: u64 },
}

impl Part {
    fn stored(&self) -> Option<&Range<u64>> {
        match self {
            Part::Zeros(_) => None,
            Part::Plain(r) | Part::Frame(r) | Part::Cluster { stored: r, .. } => Some(r),
        }
    }
}

/// A changed chunk and the parts it is made of, in order.
#[derive(Debug)]
struct Need {
    chunk: usize,
    parts: Vec<Part>,
}

/// One fetcher's job: consecutive changed chunks and the stored ranges holding their parts,
/// one Range request each.
#[derive(Debug)]
pub struct Request {
    needs: Vec<Need>,
    ranges: Vec<Range<u64>>,
}

/// Everything the fetchers are to fetch.
pub struct Fetches {
    /// The requests, in chunk order.
    pub requests: VecDeque<Request>,
    /// Stored bytes read while planning these fetches (a qcow2 image's header and tables).
    pub metadata_bytes: u64,
    /// With a qcow2 image: how its compressed clusters decode.
    clusters: Option<(Compression, u64)>,
}

impl Fetches {
    /// How many chunks the requests fetch.
    pub fn chunks(&self) -> usize {
        self.requests.iter().map(|r| r.needs.len()).sum()
    }

    /// What one fetcher thread decodes with.
    pub fn decoder(&self) -> Decoder {
        Decoder {
            clusters: self.clusters.map(|(c, size)| (Codec::new(c), vec![0u8; size as usize])),
            held: None,
        }
    }
}

/// Plans the fetches of changed chunks, a window of them at a time, so the plan's memory is
/// bounded by the window, not by how much of the disk changed. With a qcow2 image the mapper
/// (its header, L1 table and the last L2 table read) is kept from window to window, so each
/// table is still read once.
pub struct Planner<'a> {
    source: &'a dyn Source,
    index: &'a ChunkIndex,
    /// Opened by the first window with a qcow2 image.
    mapper: Option<qcow2::Mapper<'a>>,
    /// Metadata bytes already handed out with an earlier window's [`Fetches`].
    counted: u64,
}

impl<'a> Planner<'a> {
    /// A planner for `index`'s chunks stored in `source`.
    pub fn new(source: &'a dyn Source, index: &'a ChunkIndex) -> Planner<'a> {
        Planner { source, index, mapper: None, counted: 0 }
    }

    /// Plans the fetches of the `changed` chunks (in order, after those of earlier calls); the
    /// first call with a qcow2 image reads its header and L1 table.
    pub fn plan(&mut self, changed: &[usize], stop: &AtomicBool) -> Result<Fetches> {
        let index = self.index;
        let mut needs = Vec::with_capacity(changed.len());
        let mut clusters = None;
        if index.layout == Layout::Qcow2 && self.mapper.is_none() && !changed.is_empty() {
            self.mapper = Some(qcow2::Mapper::open(self.source)?);
        }
        if let Some(mapper) = &mut self.mapper {
            clusters = Some((mapper.compression(), mapper.cluster_size()));
            for &i in changed {
                if stop.load(Ordering::Relaxed) {
                    return Err(Error::new(ErrorKind::Cancelled, "cancelled"));
                }
                let parts = mapper.map(index.span(i))?.into_iter().map(Part::from).collect();
                needs.push(Need { chunk: i, parts });
            }
        } else {
            for &i in changed {
                let range = index.chunks[i].source.clone();
                let part = if index.layout == Layout::ZstdSeekable {
                    Part::Frame(range)
                } else {
                    Part::Plain(range)
                };
                needs.push(Need { chunk: i, parts: vec![part] });
            }
        }
        let read = self.mapper.as_ref().map_or(0, qcow2::Mapper::fetched);
        let metadata_bytes = read - self.counted;
        self.counted = read;
        Ok(Fetches { requests: group(needs), metadata_bytes, clusters })
    }
}

impl From<Piece> for Part {
    fn from(p: Piece) -> Part {
        match p {
            Piece::Zero(len) => Part::Zeros(len),
            Piece::Data { at, len } => Part::Plain(at..at + len),
            Piece::Compressed { stored, skip, len } => Part::Cluster { stored, skip, len },
        }
    }
}

/// Groups needs into requests: a chunk whose stored bytes continue the previous request's
/// joins it while the request stays within [`MAX_REQUEST`].
fn group(needs: Vec<Need>) -> VecDeque<Request> {
    let mut out: VecDeque<Request> = VecDeque::new();
    for need in needs {
        let mut ranges: Vec<Range<u64>> = Vec::new();
        for r in need.parts.iter().filter_map(Part::stored) {
            add(&mut ranges, r.clone());
        }
        if let Some(last) = out.back_mut() {
            let continues = match (last.ranges.last(), ranges.first()) {
                (Some(l), Some(f)) => touches(l, f),
                // A chunk that fetches nothing (a qcow2 chunk of zero clusters whose target was
                // not zero) rides with the previous request: it costs no bytes.
                (_, None) => true,
                (None, Some(_)) => false,
            };
            let total: u64 = last.ranges.iter().chain(&ranges).map(|r| r.end - r.start).sum();
            if continues && total <= MAX_REQUEST {
                for r in ranges {
                    add(&mut last.ranges, r);
                }
                last.needs.push(need);
                continue;
            }
        }
        out.push_back(Request { needs: vec![need], ranges });
    }
    out
}

/// Whether half-open ranges `a` and `b` overlap or meet end to start (one request reads both).
fn touches(a: &Range<u64>, b: &Range<u64>) -> bool {
    b.start <= a.end && a.start <= b.end
}

/// Adds `r` to `ranges`, merging it into the last one when they touch or overlap (qemu packs
/// compressed clusters byte by byte, so neighbours share a sector).
fn add(ranges: &mut Vec<Range<u64>>, r: Range<u64>) {
    match ranges.last_mut() {
        Some(last) if touches(last, &r) => *last = last.start.min(r.start)..last.end.max(r.end),
        _ => ranges.push(r),
    }
}

/// A fetcher thread's decoding state: qcow2 decompression contexts and a cluster buffer.
pub struct Decoder {
    clusters: Option<(Codec, Vec<u8>)>,
    /// Where the cluster in the buffer is stored: chunks smaller than a cluster share one,
    /// which is then decompressed once.
    held: Option<Range<u64>>,
}

impl Request {
    /// The stored ranges to fetch, one Range request each.
    pub fn ranges(&self) -> &[Range<u64>] {
        &self.ranges
    }

    /// Assembles each chunk of the request from `fetched` (the bytes of [`Request::ranges`], in
    /// order) and hands `(chunk, decoded bytes)` to `each`, which may stop early with `false`.
    pub fn assemble(
        &self,
        index: &ChunkIndex,
        fetched: &[Vec<u8>],
        decoder: &mut Decoder,
        source: &dyn Source,
        mut each: impl FnMut(usize, Vec<u8>) -> Result<bool>,
    ) -> Result<()> {
        for need in &self.needs {
            let i = need.chunk;
            let span = index.span(i);
            let len = (span.end - span.start) as usize;
            let mut data = Vec::with_capacity(len);
            for part in &need.parts {
                let packed = match part.stored() {
                    Some(r) => self.bytes(fetched, r)?,
                    None => &[],
                };
                match part {
                    Part::Zeros(n) => data.resize(data.len() + *n as usize, 0),
                    Part::Plain(_) => data.extend_from_slice(packed),
                    Part::Frame(_) => {
                        let what = || format!("chunk {i} of {}", source.describe());
                        data = seekable::decode_frame(packed, len, &what)?;
                    }
                    Part::Cluster { stored, skip, len } => {
                        let Some((codec, cluster)) = &mut decoder.clusters else {
                            return Err(Error::failed("a qcow2 cluster without a decoder"));
                        };
                        if decoder.held.as_ref() != Some(stored) {
                            decoder.held = None;
                            codec
                                .cluster(packed, cluster)
                                .map_err(|why| undecodable(i, stored, source, &why))?;
                            decoder.held = Some(stored.clone());
                        }
                        data.extend_from_slice(&cluster[*skip as usize..(*skip + *len) as usize]);
                    }
                }
            }
            if !each(i, data)? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// The fetched bytes of stored range `r` (inside one of the request's ranges).
    fn bytes<'f>(&self, fetched: &'f [Vec<u8>], r: &Range<u64>) -> Result<&'f [u8]> {
        self.ranges
            .iter()
            .zip(fetched)
            .find(|(got, _)| got.start <= r.start && r.end <= got.end)
            .map(|(got, bytes)| &bytes[(r.start - got.start) as usize..(r.end - got.start) as usize])
            .ok_or_else(|| Error::failed(format!("stored bytes {}..{} were not fetched", r.start, r.end)))
    }
}

/// Chunk `i`'s compressed cluster at `stored` does not decompress, for reason `why`.
fn undecodable(i: usize, stored: &Range<u64>, source: &dyn Source, why: &str) -> Error {
    Error::new(
        ErrorKind::Integrity,
        format!(
            "chunk {i}: the compressed cluster at bytes {}..{} of {} does not decompress ({why}): the image \
             changed behind its index (rebuild it with `bty index`); nothing of it was written",
            stored.start,
            stored.end,
            source.describe()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(chunk: usize, parts: Vec<Part>) -> Need {
        Need { chunk, parts }
    }

    #[test]
    fn touching_and_overlapping_parts_share_requests() {
        let cluster = |r: Range<u64>| Part::Cluster { stored: r, skip: 0, len: 1 };
        let requests = group(vec![
            need(0, vec![Part::Plain(0..10)]),
            need(1, vec![Part::Plain(10..20), Part::Zeros(5), Part::Plain(40..50)]),
            need(2, vec![cluster(45..60), cluster(58..70)]),
            need(3, vec![Part::Plain(100..110)]),
            need(4, vec![Part::Zeros(10)]),
        ]);
        let got: Vec<(Vec<usize>, Vec<Range<u64>>)> =
            requests.iter().map(|r| (r.needs.iter().map(|n| n.chunk).collect(), r.ranges.clone())).collect();
        let tail: Vec<Range<u64>> = std::iter::once(100..110).collect();
        assert_eq!(got, vec![(vec![0, 1, 2], vec![0..20, 40..70]), (vec![3, 4], tail)]);
    }

    #[test]
    fn requests_stop_growing_at_the_cap() {
        let mb = 1u64 << 20;
        let needs = (0..40).map(|i| need(i as usize, vec![Part::Plain(i * mb..(i + 1) * mb)])).collect();
        let sizes: Vec<usize> = group(needs).iter().map(|r| r.needs.len()).collect();
        assert_eq!(sizes, vec![16, 16, 8]);
    }
}
