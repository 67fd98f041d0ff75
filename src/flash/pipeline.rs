//! The decode and write stages on their own threads, joined by a bounded channel of large
//! aligned buffers that flow back for reuse, plus the state the caller's thread polls for
//! progress and cancellation.
//!
//! The read stage is [`super::readahead::ReadAhead`], under the decoder; with `--delta` a
//! third thread reads the target under the next chunks while the writer compares this one.
//! The slowest stage sets the pace: the pool holds [`POOL`] buffers, so at most that many
//! chunks are in flight and memory stays fixed whatever the image size. A decoder blocked on a slow source does not
//! delay a cancel: the writer polls the stop flag and the caller does not wait for the decoder.

use super::buffer::AlignedBuf;
use super::digest;
use super::readahead::ReadAhead;
use super::target::{Target, TargetReader};
use super::writer::{Counts, Writer, HEAD};
use super::zero::{self, Kind, Run};
use super::Phase;
use crate::error::{Error, ErrorKind, Result};
use crate::source::{self, Piece, Source, SparseReader};
use std::collections::VecDeque;
use std::io::{self, Read};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::Arc;
use std::time::Duration;

/// Bytes per chunk: large enough for the device to see big sequential requests.
pub const CHUNK: usize = 8 << 20;
/// Chunks in the pool.
const POOL: usize = 4;
/// Chunks whose target bytes are asked for ahead of the writer (`--delta`).
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

    pub(super) fn set_phase(&self, phase: Phase) {
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
    /// What a flash by chunk index compared and fetched (`None` otherwise).
    pub network: Option<super::remote::NetworkDelta>,
}

/// What the decode stage reads from.
pub enum Input {
    /// The decoder's byte stream.
    Stream(Box<dyn Read + Send>),
    /// A raw image in a local regular file, read with its holes passed over: they are known
    /// zeros, so they are neither filled in memory nor scanned.
    Sparse(SparseReader),
}

/// A message from the decode stage.
enum Msg {
    /// `len` decoded bytes at image offset `offset`; `layout` is their [`zero::data_runs`]
    /// when the decode stage knows it already (then the bytes under its zero runs are
    /// unspecified: holes are not filled in).
    Data {
        buf: AlignedBuf,
        offset: u64,
        len: usize,
        layout: Option<Vec<Run>>,
    },
    End(u64),
    Failed(Error),
}

/// Starts both stages; the returned channel yields the write stage's result once.
pub fn start(
    input: Input,
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
    spawn("bty-decode", move || decode(input, full_tx, empty_rx, &decode_shared))?;
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
fn decode(mut input: Input, full: SyncSender<Msg>, empty: Receiver<AlignedBuf>, shared: &Shared) {
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
        let (len, layout, failure) = match &mut input {
            Input::Stream(reader) => {
                let (len, failure) = fill(reader, buf.as_mut_slice(), &shared.stop);
                (len, None, failure)
            }
            Input::Sparse(reader) => {
                let (len, holes, failure) = fill_sparse(reader, buf.as_mut_slice(), &shared.stop);
                (len, Some(zero::layout_with_holes(&mut buf.as_mut_slice()[..len], &holes)), failure)
            }
        };
        if let Some(e) = failure {
            let at = offset + len as u64;
            let _ =
                full.send(Msg::Failed(Error::from(e).context(format!("decoding the image at offset {at}"))));
            return;
        }
        let at_end = len < buf.capacity();
        if len > 0 && full.send(Msg::Data { buf, offset, len, layout }).is_err() {
            return;
        }
        offset += len as u64;
        if at_end {
            // Dropping the decoder first closes the read stage's channel, so its rest can be
            // hashed while the writer finishes.
            drop(input);
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

/// As [`fill`], passing over holes: returns the bytes filled or passed over, the holes among
/// them (never written into `buf`), and any error.
fn fill_sparse(
    reader: &mut SparseReader,
    buf: &mut [u8],
    stop: &AtomicBool,
) -> (usize, Vec<Range<usize>>, Option<io::Error>) {
    let (mut len, mut holes) = (0, Vec::new());
    while len < buf.len() {
        if stop.load(Ordering::Relaxed) {
            return (len, holes, Some(Error::new(ErrorKind::Cancelled, "cancelled").into()));
        }
        match reader.read_or_skip(&mut buf[len..]) {
            Ok(Piece::Data(0)) => break,
            Ok(Piece::Data(n)) => len += n,
            Ok(Piece::Hole(n)) => {
                holes.push(len..len + n);
                len += n;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (len, holes, Some(e)),
        }
    }
    (len, holes, None)
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
    let reader = if job.delta { Some(target.reader()?) } else { None };
    let mut writer = Writer::begin(&mut target, job.delta, job.verify, &shared.stop)?;
    // The reader skips the zero runs exactly when the writer zeroes them unread.
    let mut lookahead = match reader {
        Some(reader) => Some(Lookahead::start(reader, writer.zeros_read())?),
        None => None,
    };
    let result = write_body(&mut writer, &full, &empty, lookahead.as_mut(), job, shared);
    if let Some(lookahead) = lookahead {
        lookahead.close();
    }
    let result = result.and_then(|n| match job.virtual_size {
        Some(expected) if expected != n => Err(unreadable(job, &writer, Error::failed(format!(
            "the image decoded to {n} bytes but its header says {expected}; the source is truncated or corrupt"
        )), &shared.stop)),
        _ => Ok(n),
    });
    let image_bytes = match result {
        Ok(n) => n,
        Err(e) => {
            // Whatever was written is flushed, so the report of how far it got is true.
            drop(writer);
            let _ = target.sync();
            return Err(e);
        }
    };
    shared.set_phase(Phase::Flushing);
    writer.finish_body(image_bytes)?;
    let source_sha256 = stored_digest(job, &shared.stop)?;
    let path = writer_path(&writer);
    let expected = job.expected_sha256;
    if let Some(e) = digest::mismatch(
        &job.source.describe(),
        expected,
        source_sha256,
        digest::TargetState::Unverified(&path),
    ) {
        return Err(e);
    }
    writer.write_head()?;
    let counts = writer.counts;
    let checks = writer.checks.take();
    drop(writer);
    let verified = match checks {
        Some(checks) => {
            shared.set_phase(Phase::Verifying);
            shared.done.store(0, Ordering::Relaxed);
            if let Err(e) = checks.read_back(&target, &shared.done, &shared.stop) {
                return Err(unboot(&mut target, e));
            }
            Some(true)
        }
        None => None,
    };
    shared.set_phase(Phase::Done);
    Ok(Outcome { image_bytes, counts, source_sha256, verified, network: None })
}

/// The error `e` of a read-back that failed or was cancelled, after zeroing the target's first
/// MiB again: a disk that was not found good must not boot as if it were.
fn unboot(target: &mut Target, e: Error) -> Error {
    let path = target.path().display().to_string();
    match target.invalidate_head(HEAD as u64) {
        Ok(()) if e.kind() == ErrorKind::Cancelled => e,
        Ok(()) => e.context(format!("{path} does not boot: its first MiB was zeroed again")),
        Err(zeroing) => {
            e.context(format!("{path} may still boot: zeroing its first MiB failed too ({zeroing})"))
        }
    }
}

fn writer_path(writer: &Writer<'_>) -> String {
    writer.target_path().display().to_string()
}

/// The error to report when the image could not be read or decoded to its end (`e`): with a
/// digest expected, a mismatch if the stored bytes are not the ones named. Only for such
/// failures: a full target or a cancel says nothing about the image, and is not worth
/// hashing the rest of a download for.
fn unreadable(job: &Job, writer: &Writer<'_>, e: Error, stop: &AtomicBool) -> Error {
    let path = writer_path(writer);
    let target = digest::TargetState::Unverified(&path);
    digest::explain(e, &job.source.describe(), job.expected_sha256, target, || stored_digest(job, stop))
}

/// The sha256 of the stored bytes, when they are hashed.
fn stored_digest(job: &Job, stop: &AtomicBool) -> Result<Option<[u8; 32]>> {
    match job.tap.finish(stop)? {
        Some(digest) => Ok(Some(digest)),
        // The decoder read out of order (qcow2): hash the stored bytes in a pass of their own.
        None if job.hash => Ok(Some(source::sha256_of(job.source.as_ref(), stop)?)),
        None => Ok(None),
    }
}

/// Feeds chunks to the writer until the decoder's end; returns the image size. With
/// `--delta`, each chunk waits in `waiting` while the target under it is read, so the target
/// is read for the next chunks while the writer compares this one.
fn write_body(
    writer: &mut Writer<'_>,
    full: &Receiver<Msg>,
    empty: &Sender<AlignedBuf>,
    mut lookahead: Option<&mut Lookahead>,
    job: &Job,
    shared: &Shared,
) -> Result<u64> {
    let mut waiting: VecDeque<Decoded> = VecDeque::new();
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return Err(Error::new(ErrorKind::Cancelled, "cancelled"));
        }
        match full.recv_timeout(POLL) {
            Ok(Msg::Data { buf, offset, len, layout }) => {
                let layout = layout.unwrap_or_else(|| zero::data_runs(&buf.as_slice()[..len]));
                if let Some(lookahead) = lookahead.as_deref_mut() {
                    lookahead.ask(offset, len, &layout)?;
                }
                waiting.push_back(Decoded { buf, offset, len, layout });
                if waiting.len() > lookahead.as_ref().map_or(0, |_| LOOKAHEAD - 1) {
                    let chunk = waiting.pop_front().expect("a chunk is waiting");
                    settle(writer, lookahead.as_deref_mut(), chunk, empty, shared)?;
                }
            }
            Ok(Msg::End(total)) => {
                while let Some(chunk) = waiting.pop_front() {
                    settle(writer, lookahead.as_deref_mut(), chunk, empty, shared)?;
                }
                return Ok(total);
            }
            Ok(Msg::Failed(e)) => return Err(unreadable(job, writer, e, &shared.stop)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::failed("the decoder stopped without finishing the image"))
            }
        }
    }
}

/// A decoded chunk on its way to the writer.
struct Decoded {
    buf: AlignedBuf,
    offset: u64,
    len: usize,
    /// Its runs of data and zeros.
    layout: Vec<Run>,
}

/// Hands one decoded chunk (with the target's bytes under it, for `--delta`) to the writer
/// and its buffer back to the decoder.
fn settle(
    writer: &mut Writer<'_>,
    lookahead: Option<&mut Lookahead>,
    Decoded { buf, offset, len, layout }: Decoded,
    empty: &Sender<AlignedBuf>,
    shared: &Shared,
) -> Result<()> {
    let data = &buf.as_slice()[..len];
    match lookahead {
        Some(lookahead) => {
            let current = lookahead.next(offset)?;
            writer.chunk(offset, data, &layout, Some(&current.as_slice()[..len]))?;
            lookahead.give_back(current);
        }
        None => writer.chunk(offset, data, &layout, None)?,
    }
    shared.done.store(offset + len as u64, Ordering::Relaxed);
    let _ = empty.send(buf);
    Ok(())
}

/// A request to the target reader: fill `buf`'s `ranges` (chunk-relative) from the chunk at
/// `offset`.
type Ask = (u64, Vec<Range<usize>>, AlignedBuf);

/// The target's current bytes under each decoded chunk (`--delta`), read on a thread of its
/// own. Where the target zeroes without a data transfer, only the image's data granules are
/// read: the writer zeroes the zero granules unread, which costs less than reading them.
struct Lookahead {
    asks: Sender<Ask>,
    answers: Receiver<Result<(u64, AlignedBuf)>>,
    /// Buffers not lent to the reader.
    spare: Vec<AlignedBuf>,
    /// Whether the target is read under the image's zero runs too.
    zeros_read: bool,
    thread: std::thread::JoinHandle<()>,
}

impl Lookahead {
    fn start(reader: TargetReader, zeros_read: bool) -> Result<Lookahead> {
        let (ask_tx, ask_rx) = mpsc::channel::<Ask>();
        let (answer_tx, answer_rx) = mpsc::channel();
        // Ends when the writer closes its side (at the image's end, on an error or a cancel;
        // the writer polls the stop flag). Reads past the end of the target yield zeros and
        // are never used.
        let thread = spawn("bty-delta-read", move || {
            while let Ok((offset, ranges, mut buf)) = ask_rx.recv() {
                let read = ranges
                    .into_iter()
                    .try_for_each(|r| reader.read_at(offset + r.start as u64, &mut buf.as_mut_slice()[r]));
                let failed = read.is_err();
                if answer_tx.send(read.map(|()| (offset, buf))).is_err() || failed {
                    return;
                }
            }
        })?;
        let spare = (0..LOOKAHEAD).map(|_| AlignedBuf::new(CHUNK)).collect();
        Ok(Lookahead { asks: ask_tx, answers: answer_rx, spare, zeros_read, thread })
    }

    /// Asks for the target's bytes under the image's chunk of `len` bytes at `offset`, whose
    /// zero layout is `layout`. The held-back first MiB is read whole: it is compared whole.
    fn ask(&mut self, offset: u64, len: usize, layout: &[Run]) -> Result<()> {
        let buf = self.spare.pop().ok_or_else(|| Error::failed("delta: no buffer for the target's bytes"))?;
        let ranges = if self.zeros_read {
            std::iter::once(0..len).collect()
        } else {
            let head = if offset == 0 { len.min(HEAD) } else { 0 };
            let data = layout.iter().filter(|r| r.kind == Kind::Data).map(|r| r.start.max(head)..r.end);
            std::iter::once(0..head).chain(data).filter(|r| !r.is_empty()).collect()
        };
        if self.asks.send((offset, ranges, buf)).is_err() {
            // The reader ended after a failed read: its last answer says why.
            let failure = self.answers.iter().find_map(Result::err);
            return Err(failure.unwrap_or_else(|| Error::failed("the target reader stopped")));
        }
        Ok(())
    }

    /// Stops the reader and waits for it, so no read of the target (nor its descriptors)
    /// outlives the write stage.
    fn close(self) {
        let Lookahead { asks, answers, thread, .. } = self;
        drop(asks);
        drop(answers);
        let _ = thread.join();
    }

    /// The target's bytes for the chunk at `offset` (asked for in order).
    fn next(&mut self, offset: u64) -> Result<AlignedBuf> {
        let (at, buf) = self
            .answers
            .recv()
            .map_err(|_| Error::failed("the target reader stopped before the image's end"))??;
        if at != offset {
            return Err(Error::failed(format!("delta: read the target at {at} for a chunk at {offset}")));
        }
        Ok(buf)
    }

    fn give_back(&mut self, buf: AlignedBuf) {
        self.spare.push(buf);
    }
}
