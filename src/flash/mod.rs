//! The flash engine: source → decoder → writer on their own threads with bounded buffers.
//!
//! The engine takes its source and target as parameters and reports through a progress
//! callback, so the CLI, the tui and the plan agent share it. It never reports a target as
//! good unless every byte of the image's virtual size is on it.

use serde::Serialize;

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
    /// Check everything and decode nothing to the target.
    pub dry_run: bool,
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
    /// Bytes made zero without copying data (BLKZEROOUT or holes).
    pub bytes_zeroed: u64,
    /// Bytes read from the target and found equal (`--delta`).
    pub bytes_unchanged: u64,
    /// sha256 of the source bytes as stored (compressed), hex.
    pub source_sha256: String,
    /// Whether `--verify` read the target back and it matched (`None` without `--verify`).
    pub verified: Option<bool>,
    /// Wall time in seconds.
    pub seconds: f64,
}
