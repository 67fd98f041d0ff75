//! The flash engine: source → decoder → writer on their own threads with bounded buffers.
//!
//! The engine takes its source and target as parameters and reports through a progress
//! callback, so the CLI, the tui and the plan agent share it. It never reports a target as
//! good unless every byte of the image's virtual size is on it.
//!
//! The stages: [`readahead`] fetches and hashes the stored bytes, the decoder from `image/`
//! runs on the decode thread of [`pipeline`], and [`writer`] turns chunks into writes, zero
//! ranges and skipped blocks on a [`target`]. The caller's thread only reports progress and
//! watches the cancel flag. This module does not parse formats or discover disks.

mod buffer;
mod digest;
mod fetch_plan;
mod pipeline;
mod rate;
mod readahead;
mod remote;
mod target;
mod verify;
mod writer;
mod zero;

pub use remote::NetworkDelta;
pub use target::{check_target, TargetInfo};
pub use zero::is_zero;

use crate::error::{Error, ErrorKind, Result};
use crate::image;
use crate::index::ChunkIndex;
use crate::source::{self, Source};
use pipeline::{Job, Shared};
use readahead::ReadAhead;
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often progress is reported (at most four times a second).
const TICK: Duration = Duration::from_millis(250);

/// What the caller asks of one flash.
#[derive(Debug, Clone, Default)]
pub struct FlashOptions {
    /// Force a format instead of detecting it.
    pub format: Option<crate::image::Format>,
    /// The sha256 the source bytes must have (catalog, `--sha256`, OCI digest, plan).
    pub expected_sha256: Option<[u8; 32]>,
    /// Read the written range back, bypassing the page cache, and compare.
    pub verify: bool,
    /// Compare each block with the target and write only those that differ.
    pub delta: bool,
    /// With `delta`: the image's chunk index, so only the chunks that differ are fetched.
    pub index: Option<Arc<ChunkIndex>>,
    /// Check everything and decode nothing to the target.
    pub dry_run: bool,
    /// Hash the source and report its sha256 even when no digest is checked (hashing a
    /// sparse raw image costs more than flashing it, so it is off unless wanted).
    pub hash: bool,
}

/// The stage a flash is in, for progress displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Safety checks and opening the source.
    Checking,
    /// Streaming the image onto the target.
    Writing,
    /// Flushing caches and writing the first MiB last.
    Flushing,
    /// Reading back for `--verify`.
    Verifying,
    /// Finished.
    Done,
}

/// A progress report, delivered to the callback at most a few times a second.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// The current stage.
    pub phase: Phase,
    /// Bytes of the decoded image handled so far (written, zeroed or found equal).
    pub bytes_written: u64,
    /// The image's virtual size, when known.
    pub total_bytes: Option<u64>,
    /// Recent throughput in bytes per second.
    pub rate: f64,
    /// Estimated seconds left, when the total is known.
    pub eta_seconds: Option<f64>,
}

/// What a finished flash did.
#[derive(Debug, Clone, Serialize)]
pub struct FlashReport {
    /// Format that was decoded.
    pub format: crate::image::Format,
    /// Decoded bytes that now match the target (the image's virtual size).
    pub image_bytes: u64,
    /// Bytes actually written with data.
    pub bytes_written: u64,
    /// Bytes made zero without copying data (BLKZEROOUT or holes). With `--delta` these are
    /// the zero runs found different, or every zero run where the target zeroes without a
    /// data transfer (then they are zeroed unread, which costs less than reading them).
    pub bytes_zeroed: u64,
    /// Bytes read from the target and found equal (`--delta`).
    pub bytes_unchanged: u64,
    /// sha256 of the source bytes as stored (compressed), hex; empty after a dry run, or when
    /// no digest was checked and none was asked for ([`FlashOptions::hash`]).
    pub source_sha256: String,
    /// Whether `--verify` read the target back and it matched (`None` without `--verify`).
    pub verified: Option<bool>,
    /// Wall time in seconds.
    pub seconds: f64,
    /// What a flash by chunk index compared and fetched (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_delta: Option<NetworkDelta>,
}

/// Writes the image in `source` onto `target` (a block device or a regular file).
///
/// Checks the safety rules before the first byte (a refusal is [`ErrorKind::Refused`]),
/// streams the decoded image with zero runs as BLKZEROOUT or holes, writes the first MiB
/// last, checks the source digest when one is known (mismatch: [`ErrorKind::Integrity`]) and
/// with `opts.verify` reads the target back. `progress` is called on this thread at most four
/// times a second; setting `cancel` stops the flash within a second with
/// [`ErrorKind::Cancelled`] and a message saying how far it got.
pub fn flash(
    source: Arc<dyn Source>,
    target: &Path,
    opts: &FlashOptions,
    progress: &mut dyn FnMut(&Progress),
    cancel: &AtomicBool,
) -> Result<FlashReport> {
    let started = Instant::now();
    progress(&Progress {
        phase: Phase::Checking,
        bytes_written: 0,
        total_bytes: None,
        rate: 0.0,
        eta_seconds: None,
    });
    let expected_sha256 = opts.expected_sha256.or_else(|| source.expected_sha256());
    let index = opts.index.as_ref().filter(|_| opts.delta);
    let by_index = match index {
        Some(index) => usable_index(source.as_ref(), index, expected_sha256)?,
        None => None,
    };
    // Streamed despite an index (no Range, or a layout without ranges), the object must still
    // be the one the index describes: a change behind its back is a digest mismatch (exit 4).
    let expected_sha256 = match (index, &by_index) {
        (Some(index), None) => Some(index.source_sha256),
        _ => expected_sha256,
    };
    // Bytes that cannot be recognised or opened may simply not be the ones that were named.
    let target_name = target.display().to_string();
    let unreadable = |e: Error| {
        let hash = || source::sha256_of(source.as_ref(), cancel).map(Some);
        digest::explain(
            e,
            &source.describe(),
            expected_sha256,
            digest::TargetState::Untouched(&target_name),
            hash,
        )
    };
    // The index says how its object decodes (detecting would cost a fetch); a --format that
    // says otherwise would flash another disk depending on whether the server takes Range.
    // An index that locates another object (bty-web's seekable copy of a gz or qcow2 image)
    // describes that one, and --format still names the original: no contradiction.
    let describes_given = index.is_some_and(|i| i.location.is_empty());
    let format = match (opts.format, index.and_then(|i| index_format(i))) {
        (Some(asked), Some(indexed)) if asked != indexed && describes_given => {
            return Err(Error::invalid(format!(
                "--format {} contradicts the chunk index of {}, which describes a {} image; \
                 leave --format out or give the index of this image",
                asked.name(),
                source.describe(),
                indexed.name()
            )))
        }
        (_, Some(format)) | (Some(format), None) => format,
        (None, None) => image::detect(source.as_ref()).map_err(unreadable)?,
    };
    if let Some(path) = source.local_path() {
        target::refuse_the_source_itself(path, target)?;
    }
    let work = match by_index {
        Some(index) => Work::ByIndex(index),
        None => {
            let hash = opts.hash || expected_sha256.is_some();
            let tap = Arc::new(ReadAhead::new(source.clone(), format != image::Format::Raw, hash));
            let decoded = image::open(tap.clone(), format).map_err(unreadable)?;
            Work::Stream(tap, decoded)
        }
    };
    let total = match &work {
        Work::ByIndex(index) => Some(index.virtual_size),
        Work::Stream(_, decoded) => decoded.virtual_size,
    };
    // Without a stated size, the image's own GPT says how large a disk it needs at least; a
    // failure to read it is left for the flash itself to report.
    let needed = match total {
        Some(size) => Some(size),
        None => image::min_disk_size(source.as_ref(), format).ok().flatten(),
    };
    if opts.dry_run {
        check_target(target, needed)?;
        return Ok(FlashReport {
            format,
            image_bytes: total.unwrap_or(0),
            bytes_written: 0,
            bytes_zeroed: 0,
            bytes_unchanged: 0,
            source_sha256: String::new(),
            verified: None,
            seconds: started.elapsed().as_secs_f64(),
            network_delta: None,
        });
    }
    // Writing begins: from here a cancel is the engine's to carry out (see `cancel`).
    progress(&Progress {
        phase: Phase::Writing,
        bytes_written: 0,
        total_bytes: total,
        rate: 0.0,
        eta_seconds: None,
    });
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::new(
            ErrorKind::Cancelled,
            format!("cancelled before anything was written; {} is untouched", target.display()),
        ));
    }
    let opened = target::Target::open(target, needed)?;
    let shared = Arc::new(Shared::default());
    let done = match work {
        Work::ByIndex(index) => remote::start(source, index, opened, opts.verify, shared.clone())?,
        Work::Stream(tap, decoded) => {
            start_pipeline(source, tap, decoded, opened, opts, expected_sha256, shared.clone())?
        }
    };
    let mut meter = rate::Meter::default();
    let result = loop {
        match done.recv_timeout(TICK) {
            Ok(result) => break result,
            Err(RecvTimeoutError::Timeout) => {
                if cancel.load(Ordering::Relaxed) {
                    shared.stop.store(true, Ordering::Relaxed);
                }
                let bytes = shared.done.load(Ordering::Relaxed);
                let (rate, eta_seconds) = meter.sample(Instant::now(), bytes, total);
                progress(&Progress {
                    phase: shared.phase(),
                    bytes_written: bytes,
                    total_bytes: total,
                    rate,
                    eta_seconds,
                });
            }
            Err(RecvTimeoutError::Disconnected) => break Err(Error::failed("the writer thread crashed")),
        }
    };
    let outcome = result.map_err(|e| match e.kind() {
        ErrorKind::Cancelled => {
            let at = shared.done.load(Ordering::Relaxed);
            let when = match shared.phase() {
                Phase::Verifying => format!("while reading back, at offset {at}"),
                _ => format!("after {at} bytes at offset {at}"),
            };
            Error::new(
                ErrorKind::Cancelled,
                format!("cancelled {when}; {} is incomplete and not bootable", target.display()),
            )
        }
        _ => e,
    })?;
    let seconds = started.elapsed().as_secs_f64();
    progress(&Progress {
        phase: Phase::Done,
        bytes_written: outcome.image_bytes,
        total_bytes: Some(outcome.image_bytes),
        rate: outcome.image_bytes as f64 / seconds.max(1e-9),
        eta_seconds: Some(0.0),
    });
    Ok(FlashReport {
        format,
        image_bytes: outcome.image_bytes,
        bytes_written: outcome.counts.written,
        bytes_zeroed: outcome.counts.zeroed,
        bytes_unchanged: outcome.counts.unchanged,
        source_sha256: outcome.source_sha256.map(|d| source::hex(&d)).unwrap_or_default(),
        verified: outcome.verified,
        seconds,
        network_delta: outcome.network,
    })
}

/// How the image reaches the target.
enum Work {
    /// Only the chunks that differ from the index, by byte range.
    ByIndex(Arc<ChunkIndex>),
    /// Every byte, through the read-ahead tap and the decoder.
    Stream(Arc<ReadAhead>, image::Decoded),
}

/// The index when a flash can go by it; `None` (with the reason logged) when the source cannot
/// be read by range, so the flash streams instead. An index of another file is an error.
fn usable_index(
    source: &dyn Source,
    index: &Arc<ChunkIndex>,
    expected_sha256: Option<[u8; 32]>,
) -> Result<Option<Arc<ChunkIndex>>> {
    let name = source.describe();
    if let Some(expected) = expected_sha256 {
        if expected != index.source_sha256 && expected != index.origin_sha256 {
            return Err(Error::new(
                ErrorKind::Integrity,
                format!(
                    "the chunk index given for {name} describes a file with sha256 {}, not the expected {}; \
                     give the index of this image",
                    source::hex(&index.source_sha256),
                    source::hex(&expected)
                ),
            ));
        }
    }
    if let Some(len) = source.len().filter(|&len| len != index.source_size) {
        return Err(Error::invalid(format!(
            "the chunk index given for {name} describes a file of {} bytes, but it has {len}; \
             the index belongs to another version (write it again with `bty index`)",
            index.source_size
        )));
    }
    if !index.fetches_chunks() {
        crate::log_info!(
            "{name}: its index has no byte ranges (the format cannot be read at random); \
             streaming the whole image and writing only what differs"
        );
        return Ok(None);
    }
    if !source.supports_random_access() {
        crate::log_info!(
            "{name}: the server does not take Range requests; streaming the whole image and writing only what differs"
        );
        return Ok(None);
    }
    Ok(Some(index.clone()))
}

/// The format of the object an index describes; `None` for a layout that does not say.
fn index_format(index: &ChunkIndex) -> Option<image::Format> {
    match index.layout {
        crate::index::Layout::Raw => Some(image::Format::Raw),
        crate::index::Layout::ZstdSeekable => Some(image::Format::Zstd),
        crate::index::Layout::Qcow2 => Some(image::Format::Qcow2),
        crate::index::Layout::Stream => None,
    }
}

/// Starts the streaming pipeline: every byte of the image is read and decoded.
fn start_pipeline(
    source: Arc<dyn Source>,
    tap: Arc<ReadAhead>,
    decoded: image::Decoded,
    opened: target::Target,
    opts: &FlashOptions,
    expected_sha256: Option<[u8; 32]>,
    shared: Arc<Shared>,
) -> Result<std::sync::mpsc::Receiver<Result<pipeline::Outcome>>> {
    let format = decoded.format;
    let total = decoded.virtual_size;
    let hash = opts.hash || expected_sha256.is_some();
    // A raw image file is read directly, so its holes are passed over rather than filled
    // and scanned; a hashed one goes through the stream, which hashes every byte.
    let sparse = source.local_path().filter(|_| format == image::Format::Raw && !hash);
    // A source that is not a regular file (a device) is read through the stream instead.
    let input = match sparse.and_then(|path| source::SparseReader::open(path).ok()) {
        Some(reader) => pipeline::Input::Sparse(reader),
        None => pipeline::Input::Stream(decoded.reader),
    };
    let job = Job {
        expected_sha256,
        hash,
        source,
        tap,
        virtual_size: total,
        delta: opts.delta,
        verify: opts.verify,
    };
    pipeline::start(input, opened, job, shared)
}
