//! The decode and write stages on their own threads, joined by a bounded channel of large
//! aligned buffers that flow back for reuse, plus the state the caller's thread polls for
//! progress and cancellation.
//!
//! The read stage is [`super::readahead::ReadAhead`], under the decoder; with `--delta` a
//! third thread reads the target ahead of the writer, which compares. The slowest stage
//! sets the pace: the pool holds [`POOL`] buffers, so at most that many chunks are in flight
//! and memory stays fixed whatever the image size. A decoder blocked on a slow source does not
//! delay a cancel: the writer polls the stop flag and the caller does not wait for the decoder.

use super::buffer::AlignedBuf;
use super::readahead::ReadAhead;
use super::target::{Target, TargetReader};
use super::writer::{Counts, Writer};
use super::Phase;
use crate::error::{Error, ErrorKind, Result};
use crate::source::{self, Source};
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::Arc;
use std::time::Duration;

/// Bytes per chunk: large enough for the device to see big sequential requests.
pub const CHUNK: usize = 8 << 20;
/// Chunks in the pool.
const POOL: usize = 4;
/// Chunks of the target read ahead of the writer (`--delta`).
const LOOKAHEAD: usize = 2;
/// How often a waiting stage looks at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// What the stages share with the thread that reports progress.
#[derive(Default)]
pub struct Shared {
    /// Image bytes handled by the current phase.
    pub done: AtomicU64,
    /// The current [`Phase`], as its index.
    phase: AtomicU8,
    /// Set by the caller on cancel; every stage stops at its next check.
    pub stop: AtomicBool,
}

impl Shared {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Checking,
            1 => Phase::Writing,
            2 => Phase::Flushing,
            3 => Phase::Verifying,
            _ => Phase::Done,
        }
    }

    fn set_phase(&self, phase: Phase) {
        let index = match phase {
            Phase::Checking => 0,
            Phase::Writing => 1,
            Phase::Flushing => 2,
            Phase::Verifying => 3,
            Phase::Done => 4,
        };
        self.phase.store(index, Ordering::Relaxed);
    }
}

/// What the write stage needs besides the bytes.
pub struct Job {
    /// The source as the caller gave it (for a separate hash pass after random access).
    pub source: Arc<dyn Source>,
    /// The read stage under the decoder, which hashes the stored bytes.
    pub tap: Arc<ReadAhead>,
    /// The digest the stored bytes must have.
    pub expected_sha256: Option<[u8; 32]>,
    /// Whether the stored bytes are hashed (always when a digest is expected).
    pub hash: bool,
    /// The image's size as its header states it.
    pub virtual_size: Option<u64>,
    /// `--delta`.
    pub delta: bool,
    /// `--verify`.
    pub verify: bool,
}

/// What the stages did.
pub struct Outcome {
    /// Decoded bytes, now on the target.
    pub image_bytes: u64,
    /// Written, zeroed, unchanged.
    pub counts: Counts,
    /// The sha256 of the stored bytes, when it was computed.
    pub source_sha256: Option<[u8; 32]>,
    /// Whether the read-back matched (`None` without `--verify`).
    pub verified: Option<bool>,
}

/// A message from the decode stage.
enum Msg {
    Data { buf: AlignedBuf, offset: u64, len: usize },
    End(u64),
    Failed(Error),
}

/// Starts both stages; the returned channel yields the write stage's result once.
pub fn start(
    reader: Box<dyn Read + Send>,
    target: Target,
    job: Job,
    shared: Arc<Shared>,
) -> Result<Receiver<Result<Outcome>>> {
    let (full_tx, full_rx) = mpsc::sync_channel(POOL);
    let (empty_tx, empty_rx) = mpsc::channel();
    for _ in 0..POOL {
        let _ = empty_tx.send(AlignedBuf::new(CHUNK));
    }
    let (done_tx, done_rx) = mpsc::channel();
    let decode_shared = shared.clone();
    spawn("bty-decode", move || decode(reader, full_tx, empty_rx, &decode_shared))?;
    spawn("bty-write", move || {
        let _ = done_tx.send(write(target, &job, full_rx, empty_tx, &shared));
    })?;
    Ok(done_rx)
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| Error::failed(format!("starting the {name} thread: {e}")))
}

/// The decode stage: fills pool buffers completely from the decoder (only the last one may be
/// short) and hands them on.
fn decode(
    mut reader: Box<dyn Read + Send>,
    full: SyncSender<Msg>,
    empty: Receiver<AlignedBuf>,
    shared: &Shared,
) {
    let mut offset = 0u64;
    loop {
        let mut buf = loop {
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
            match empty.recv_timeout(POLL) {
                Ok(buf) => break buf,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        };
        let (len, failure) = fill(&mut reader, buf.as_mut_slice(), &shared.stop);
        if let Some(e) = failure {
            let at = offset + len as u64;
            let _ =
                full.send(Msg::Failed(Error::from(e).context(format!("decoding the image at offset {at}"))));
            return;
        }
        let at_end = len < buf.capacity();
        if len > 0 && full.send(Msg::Data { buf, offset, len }).is_err() {
            return;
        }
        offset += len as u64;
        if at_end {
            // Dropping the decoder first closes the read stage's channel, so its rest can be
            // hashed while the writer finishes.
            drop(reader);
            let _ = full.send(Msg::End(offset));
            return;
        }
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read and any error.
fn fill(reader: &mut dyn Read, buf: &mut [u8], stop: &AtomicBool) -> (usize, Option<io::Error>) {
    let mut len = 0;
    while len < buf.len() {
        if stop.load(Ordering::Relaxed) {
            return (len, Some(Error::new(ErrorKind::Cancelled, "cancelled").into()));
        }
        match reader.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (len, Some(e)),
        }
    }
    (len, None)
}

/// The write stage, start to finish: body, flush, digest check, first MiB, verify.
fn write(
    mut target: Target,
    job: &Job,
    full: Receiver<Msg>,
    empty: Sender<AlignedBuf>,
    shared: &Shared,
) -> Result<Outcome> {
    shared.set_phase(Phase::Writing);
    let lookahead = if job.delta { Some(Lookahead::start(target.reader()?)?) } else { None };
    let mut writer = Writer::begin(&mut target, job.delta, job.verify, &shared.stop)?;
    let result = write_body(&mut writer, &full, &empty, lookahead.as_ref(), shared);
    if let Some(lookahead) = lookahead {
        lookahead.close();
    }
    let image_bytes = match result {
        Ok(n) => n,
        Err(e) => {
            // Whatever was written is flushed, so the report of how far it got is true.
            drop(writer);
            let _ = target.sync();
            return Err(e);
        }
    };
    if let Some(expected) = job.virtual_size.filter(|&v| v != image_bytes) {
        return Err(Error::failed(format!(
            "the image decoded to {image_bytes} bytes but its header says {expected}; the source is truncated or corrupt"
        )));
    }
    shared.set_phase(Phase::Flushing);
    writer.finish_body(image_bytes)?;
    let source_sha256 = match job.tap.finish()? {
        Some(digest) => Some(digest),
        // The decoder read out of order (qcow2): hash the stored bytes in a pass of their own.
        None if job.hash => Some(source::sha256_of(job.source.as_ref())?),
        None => None,
    };
    if let Some(expected) = job.expected_sha256 {
        if source_sha256 != Some(expected) {
            return Err(Error::new(
                ErrorKind::Integrity,
                format!(
                    "sha256 of {} is {}, expected {}: {} holds unverified data (its first MiB was not written, so it will not boot); flash again from a trusted source",
                    job.source.describe(),
                    source_sha256.map(|d| source::hex(&d)).unwrap_or_default(),
                    source::hex(&expected),
                    writer_path(&writer)
                ),
            ));
        }
    }
    writer.write_head()?;
    let counts = writer.counts;
    let checks = writer.checks.take();
    drop(writer);
    let verified = match checks {
        Some(checks) => {
            shared.set_phase(Phase::Verifying);
            shared.done.store(0, Ordering::Relaxed);
            checks.read_back(&target, &shared.done, &shared.stop)?;
            Some(true)
        }
        None => None,
    };
    shared.set_phase(Phase::Done);
    Ok(Outcome { image_bytes, counts, source_sha256, verified })
}

fn writer_path(writer: &Writer<'_>) -> String {
    writer.target_path().display().to_string()
}

/// Feeds chunks to the writer until the decoder's end; returns the image size.
fn write_body(
    writer: &mut Writer<'_>,
    full: &Receiver<Msg>,
    empty: &Sender<AlignedBuf>,
    lookahead: Option<&Lookahead>,
    shared: &Shared,
) -> Result<u64> {
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return Err(Error::new(ErrorKind::Cancelled, "cancelled"));
        }
        match full.recv_timeout(POLL) {
            Ok(Msg::Data { buf, offset, len }) => {
                let data = &buf.as_slice()[..len];
                match lookahead {
                    Some(lookahead) => {
                        let current = lookahead.next(offset)?;
                        writer.chunk(offset, data, Some(&current.as_slice()[..len]))?;
                        lookahead.give_back(current);
                    }
                    None => writer.chunk(offset, data, None)?,
                }
                shared.done.store(offset + len as u64, Ordering::Relaxed);
                let _ = empty.send(buf);
            }
            Ok(Msg::End(total)) => return Ok(total),
            Ok(Msg::Failed(e)) => return Err(e),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::failed("the decoder stopped without finishing the image"))
            }
        }
    }
}

/// The target's current bytes, read chunk by chunk from offset 0 on a thread of its own so
/// that `--delta` compares one chunk while the next is being read.
struct Lookahead {
    full: Receiver<Result<(u64, AlignedBuf)>>,
    empty: Sender<AlignedBuf>,
    thread: std::thread::JoinHandle<()>,
}

impl Lookahead {
    fn start(reader: TargetReader) -> Result<Lookahead> {
        let (full_tx, full_rx) = mpsc::sync_channel(LOOKAHEAD);
        let (empty_tx, empty_rx) = mpsc::channel();
        for _ in 0..LOOKAHEAD {
            let _ = empty_tx.send(AlignedBuf::new(CHUNK));
        }
        // Ends when the writer closes its side (at the image's end, on an error or a cancel;
        // the writer polls the stop flag). Reads past the end of the target yield zeros and
        // are never used.
        let thread = spawn("bty-delta-read", move || {
            let mut offset = 0u64;
            while let Ok(mut buf) = empty_rx.recv() {
                let read = reader.read_at(offset, buf.as_mut_slice());
                let failed = read.is_err();
                if full_tx.send(read.map(|()| (offset, buf))).is_err() || failed {
                    return;
                }
                offset += CHUNK as u64;
            }
        })?;
        Ok(Lookahead { full: full_rx, empty: empty_tx, thread })
    }

    /// Stops the reader and waits for it, so no read of the target (nor its descriptors)
    /// outlives the write stage.
    fn close(self) {
        let Lookahead { full, empty, thread } = self;
        drop(full);
        drop(empty);
        let _ = thread.join();
    }

    /// The target's bytes for the chunk at `offset` (chunks arrive in order).
    fn next(&self, offset: u64) -> Result<AlignedBuf> {
        let (at, buf) = self
            .full
            .recv()
            .map_err(|_| Error::failed("the target reader stopped before the image's end"))??;
        if at != offset {
            return Err(Error::failed(format!("delta: read the target at {at} for a chunk at {offset}")));
        }
        Ok(buf)
    }

    fn give_back(&self, buf: AlignedBuf) {
        let _ = self.empty.send(buf);
    }
}
