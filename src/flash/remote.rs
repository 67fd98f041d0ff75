//! Reflash by chunk index (`--delta` with an index): compare the target with the index chunk
//! by chunk, fetch only the stored bytes of the chunks that differ, and write them.
//!
//! The pass over the target is read ahead on a thread of its own (a few chunk buffers, so
//! memory stays bounded whatever the disk's size) and hashed on this one. What to fetch for
//! the changed chunks (their byte ranges, or a qcow2 image's clusters) is planned by
//! `fetch_plan.rs`; [`FETCHERS`] requests are in flight; each fetched chunk is decoded and
//! checked against the index *before* it is written, so bytes that changed behind the
//! index's back never land as "good". Chunks that are zero in the image are zeroed only where
//! the target is not zero. The first MiB is invalidated before the first change and written
//! last, as in a plain flash. This module does not parse the index (see `index/`).

use super::buffer::AlignedBuf;
use super::fetch_plan::{self, Decoder, Fetches, Request};
use super::pipeline::{Outcome, Shared};
use super::target::{Target, TargetReader};
use super::writer::{Counts, HEAD};
use super::{zero, Phase};
use crate::error::{Error, ErrorKind, Result};
use crate::index::{self, ChunkIndex};
use crate::source::Source;
use serde::Serialize;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};

/// Target chunks read ahead of the hashing.
const READ_AHEAD: usize = 4;
/// Changed chunks planned at a time (256 MiB of image with 1 MiB chunks): bounds the plan's
/// memory (a qcow2 chunk can be a dozen parts); each window's fetches run in parallel.
const PLAN_WINDOW: usize = 256;
/// Range requests in flight at once.
const FETCHERS: usize = 4;

/// What a flash by index compared and fetched.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NetworkDelta {
    /// Chunks of the target read and compared with the index.
    pub chunks_compared: u64,
    /// Chunks found equal to the image.
    pub chunks_unchanged: u64,
    /// Chunks fetched from the source and written.
    pub chunks_fetched: u64,
    /// Zero chunks of the image that held data on the target and were zeroed.
    pub chunks_zeroed: u64,
    /// Stored bytes fetched from the source (Range request bodies, a qcow2 image's header and
    /// tables included).
    pub bytes_fetched: u64,
    /// The stored object's size: what a full flash would fetch.
    pub source_bytes: u64,
}

/// Starts the flash by index on a thread; the receiver gets its outcome.
pub fn start(
    source: Arc<dyn Source>,
    index: Arc<ChunkIndex>,
    target: Target,
    verify: bool,
    shared: Arc<Shared>,
) -> Result<Receiver<Result<Outcome>>> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("bty-delta".into())
        .spawn(move || {
            let _ = tx.send(run(&source, &index, target, verify, &shared));
        })
        .map_err(|e| Error::failed(format!("starting the delta thread: {e}")))?;
    Ok(rx)
}

/// What the comparison found.
#[derive(Default)]
struct Plan {
    /// Data chunks that differ, in order.
    changed: Vec<usize>,
    /// Target ranges that hold data where the image has zeros.
    to_zero: Vec<Range<u64>>,
}

fn run(
    source: &Arc<dyn Source>,
    index: &ChunkIndex,
    mut target: Target,
    verify: bool,
    shared: &Shared,
) -> Result<Outcome> {
    shared.set_phase(Phase::Writing);
    let head_len = (HEAD as u64).min(index.virtual_size) as usize;
    let mut head = vec![0u8; head_len];
    let mut plan = Plan::default();
    let mut counts = Counts::default();
    let mut report = NetworkDelta { source_bytes: index.source_size, ..Default::default() };
    scan(&target.reader()?, index, shared, |i, data| {
        let span = index.span(i);
        copy_head(&mut head, span.start, data);
        let chunk = &index.chunks[i];
        report.chunks_compared += 1;
        let equal = if chunk.zero { zero::is_zero(data) } else { index::sha256(data) == chunk.sha256 };
        if equal {
            report.chunks_unchanged += 1;
            counts.unchanged += data.len() as u64;
            shared.done.fetch_add(data.len() as u64, Ordering::Relaxed);
        } else if chunk.zero {
            report.chunks_zeroed += 1;
            copy_head(&mut head, span.start, &vec![0u8; data.len()]);
            for run in zero::data_runs(data).iter().filter(|r| r.kind == zero::Kind::Data) {
                plan.to_zero.push(span.start + run.start as u64..span.start + run.end as u64);
            }
        } else {
            plan.changed.push(i);
        }
        Ok(())
    })?;
    if !plan.changed.is_empty() || !plan.to_zero.is_empty() {
        // The first window is planned before the first write: a qcow2 image whose header or
        // first tables cannot be read leaves the target as it was. A later window's failure
        // comes after the head was invalidated, so the target is never taken for good.
        let mut planner = fetch_plan::Planner::new(source.as_ref(), index);
        let mut windows = plan.changed.chunks(PLAN_WINDOW);
        let mut next = windows.next().map(|w| planner.plan(w, &shared.stop)).transpose()?;
        target.invalidate_head(head_len as u64)?;
        for range in &plan.to_zero {
            let body = range.start.max(head_len as u64)..range.end;
            if !body.is_empty() {
                target.zero_range(body.clone())?;
                counts.zeroed += body.end - body.start;
            }
            shared.done.fetch_add(range.end - range.start, Ordering::Relaxed);
        }
        while let Some(fetches) = next {
            report.bytes_fetched += fetches.metadata_bytes;
            fetch_and_write(
                source,
                index,
                &fetches,
                &mut target,
                &mut head,
                &mut counts,
                &mut report,
                shared,
            )?;
            next = windows.next().map(|w| planner.plan(w, &shared.stop)).transpose()?;
        }
        shared.set_phase(Phase::Flushing);
        // Everything else is on stable storage before the head makes the disk bootable again.
        target.sync()?;
        if head_len > 0 {
            target.write_at(0, &head)?;
            counts.written += head_len as u64;
        }
    }
    target.finish(index.virtual_size)?;
    let verified = if verify {
        shared.set_phase(Phase::Verifying);
        shared.done.store(0, Ordering::Relaxed);
        target.drop_caches()?;
        scan(&target.reader()?, index, shared, |i, data| {
            shared.done.fetch_add(data.len() as u64, Ordering::Relaxed);
            if index::sha256(data) != index.chunks[i].sha256 {
                let span = index.span(i);
                return Err(Error::new(
                    ErrorKind::Integrity,
                    format!(
                        "reading back {}: chunk {i} (bytes {}..{}) does not match the index; \
                         the target holds unverified data and is not bootable as the image",
                        target.path().display(),
                        span.start,
                        span.end
                    ),
                ));
            }
            Ok(())
        })?;
        Some(true)
    } else {
        None
    };
    Ok(Outcome {
        image_bytes: index.virtual_size,
        counts,
        source_sha256: None,
        verified,
        network: Some(report),
    })
}

/// Copies the part of `data` (decoded bytes at `offset`) that falls in the held-back head.
fn copy_head(head: &mut [u8], offset: u64, data: &[u8]) {
    if offset < head.len() as u64 {
        let n = (head.len() - offset as usize).min(data.len());
        head[offset as usize..offset as usize + n].copy_from_slice(&data[..n]);
    }
}

/// Reads every chunk of the target in order on a read-ahead thread and hands each to `each`
/// (bytes past a file's end read as zeros).
fn scan(
    reader: &TargetReader,
    index: &ChunkIndex,
    shared: &Shared,
    mut each: impl FnMut(usize, &[u8]) -> Result<()>,
) -> Result<()> {
    let cs = index.chunk_size as usize;
    let (full_tx, full_rx) = mpsc::sync_channel::<Result<(usize, AlignedBuf)>>(READ_AHEAD);
    let (empty_tx, empty_rx) = mpsc::channel::<AlignedBuf>();
    for _ in 0..READ_AHEAD + 1 {
        let _ = empty_tx.send(AlignedBuf::new(cs));
    }
    // `move`: when the loop below stops early, the channel ends drop with the closure, which
    // unblocks the reader before the scope waits for it.
    std::thread::scope(move |s| {
        s.spawn(move || {
            for i in 0..index.chunks.len() {
                let Ok(mut buf) = empty_rx.recv() else { return };
                let span = index.span(i);
                let len = (span.end - span.start) as usize;
                let read = reader.read_at(span.start, &mut buf.as_mut_slice()[..len]).map(|()| (i, buf));
                let failed = read.is_err();
                if full_tx.send(read).is_err() || failed {
                    return;
                }
            }
        });
        for _ in 0..index.chunks.len() {
            if shared.stop.load(Ordering::Relaxed) {
                return Err(Error::new(ErrorKind::Cancelled, "cancelled"));
            }
            let (i, buf) =
                full_rx.recv().map_err(|_| Error::failed("the target reader thread stopped"))??;
            let span = index.span(i);
            let result = each(i, &buf.as_slice()[..(span.end - span.start) as usize]);
            let _ = empty_tx.send(buf);
            result?;
        }
        Ok(())
    })
}

/// Fetches the changed chunks with several requests in flight, checks each against the index
/// and writes it (its head part into `head`).
#[allow(clippy::too_many_arguments)]
fn fetch_and_write(
    source: &Arc<dyn Source>,
    index: &ChunkIndex,
    fetches: &Fetches,
    target: &mut Target,
    head: &mut [u8],
    counts: &mut Counts,
    report: &mut NetworkDelta,
    shared: &Shared,
) -> Result<()> {
    let queue = Mutex::new(fetches.requests.iter().collect::<VecDeque<_>>());
    let queue = &queue;
    let (tx, rx) = mpsc::sync_channel::<Result<(usize, u64, Vec<u8>)>>(2 * FETCHERS);
    std::thread::scope(move |s| {
        for _ in 0..FETCHERS {
            let tx = tx.clone();
            s.spawn(move || {
                let mut decoder = fetches.decoder();
                loop {
                    if shared.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let Some(req) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front() else {
                        return;
                    };
                    if let Err(e) = fetch_one(source.as_ref(), index, req, &mut decoder, &tx) {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut result = Ok(());
        let (mut received, want) = (0, fetches.chunks());
        while received < want {
            let Ok(msg) = rx.recv() else {
                result = Err(Error::failed("a fetch thread stopped"));
                break;
            };
            let written = msg.and_then(|(i, fetched, data)| {
                report.bytes_fetched += fetched;
                let span = index.span(i);
                copy_head(head, span.start, &data);
                let skip = (head.len() as u64).saturating_sub(span.start).min(data.len() as u64);
                if (skip as usize) < data.len() {
                    target.write_at(span.start + skip, &data[skip as usize..])?;
                    counts.written += data.len() as u64 - skip;
                }
                report.chunks_fetched += 1;
                shared.done.fetch_add(data.len() as u64, Ordering::Relaxed);
                Ok(())
            });
            if let Err(e) = written {
                result = Err(e);
                break;
            }
            received += 1;
            if shared.stop.load(Ordering::Relaxed) {
                result = Err(Error::new(ErrorKind::Cancelled, "cancelled"));
                break;
            }
        }
        if result.is_err() {
            // Unblocks the fetchers: they stop at their next check or failed send.
            shared.stop.store(true, Ordering::Relaxed);
            drop(rx);
        }
        result
    })
}

/// Fetches one request, decodes its chunks and checks each against the index; sends
/// `(chunk, stored bytes it cost, decoded bytes)` (the request's cost with its first chunk).
fn fetch_one(
    source: &dyn Source,
    index: &ChunkIndex,
    req: &Request,
    decoder: &mut Decoder,
    tx: &mpsc::SyncSender<Result<(usize, u64, Vec<u8>)>>,
) -> Result<()> {
    let mut fetched = Vec::with_capacity(req.ranges().len());
    for range in req.ranges() {
        fetched.push(source.read_range(range.clone())?);
    }
    let mut cost: u64 = fetched.iter().map(|b| b.len() as u64).sum();
    req.assemble(index, &fetched, decoder, source, |i, data| {
        let span = index.span(i);
        if data.len() as u64 != span.end - span.start || index::sha256(&data) != index.chunks[i].sha256 {
            return Err(Error::new(
                ErrorKind::Integrity,
                format!(
                    "chunk {i} (image bytes {}..{}) fetched from {} does not match its index: the image \
                     changed behind its index (rebuild it with `bty index`); nothing of it was written",
                    span.start,
                    span.end,
                    source.describe()
                ),
            ));
        }
        Ok(tx.send(Ok((i, std::mem::take(&mut cost), data))).is_ok())
    })
}
