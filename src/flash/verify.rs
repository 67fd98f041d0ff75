//! `--verify`: fingerprints of the decoded image taken while writing, and the read-back that
//! compares the target with them after the page cache has been dropped.
//!
//! The image is remembered as runs: a zero run by its extent alone (checked without hashing,
//! and a difference is named to the byte), a data run by its sha256 (a difference is named to
//! the run, at most one chunk long). Memory stays small: a run per chunk of data plus one per
//! stretch of zeros.

use super::buffer::AlignedBuf;
use super::target::Target;
use super::zero::{self, Kind};
use crate::error::{Error, ErrorKind, Result};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The test hook: with `BTY_TEST_CORRUPT_AFTER_WRITE=OFFSET` in the environment the engine
/// flips the byte at OFFSET of the target through a separate descriptor after writing and
/// before reading back, which is how the black-box tests prove that `--verify` catches a block
/// changed behind the engine's back. This is the only place the variable is read.
const CORRUPT_HOOK: &str = "BTY_TEST_CORRUPT_AFTER_WRITE";

/// How much is read back at once.
const PIECE: usize = 8 << 20;

/// What one run of the image held.
enum Fingerprint {
    Zero,
    Sha256([u8; 32]),
}

/// The fingerprints of a whole image, in order: (offset, length, fingerprint).
#[derive(Default)]
pub struct Checks {
    runs: Vec<(u64, u64, Fingerprint)>,
}

impl Checks {
    /// Remembers the decoded bytes `data` at image offset `offset`, whose zero layout is
    /// `layout` ([`zero::data_runs`]).
    pub fn record(&mut self, offset: u64, data: &[u8], layout: &[zero::Run]) {
        for run in layout {
            let at = offset + run.start as u64;
            let len = (run.end - run.start) as u64;
            match (run.kind, self.runs.last_mut()) {
                (Kind::Zero, Some((prev, prev_len, Fingerprint::Zero))) if *prev + *prev_len == at => {
                    *prev_len += len
                }
                (Kind::Zero, _) => self.runs.push((at, len, Fingerprint::Zero)),
                _ => self.runs.push((
                    at,
                    len,
                    Fingerprint::Sha256(Sha256::digest(&data[run.start..run.end]).into()),
                )),
            }
        }
    }

    /// Reads every run back from `target`, bypassing caches, and fails with
    /// [`ErrorKind::Integrity`] naming the first place that differs. `done` counts bytes read
    /// back for progress; `stop` cancels.
    pub fn read_back(&self, target: &Target, done: &AtomicU64, stop: &AtomicBool) -> Result<()> {
        if let Some(offset) = std::env::var(CORRUPT_HOOK).ok().and_then(|v| v.parse::<u64>().ok()) {
            corrupt_for_test(target, offset)?;
        }
        target.drop_caches()?;
        let mut buf = AlignedBuf::new(PIECE);
        let path = target.path().display();
        for (offset, len, print) in &self.runs {
            let mut hash = Sha256::new();
            let mut at = *offset;
            while at < offset + len {
                if stop.load(Ordering::Relaxed) {
                    return Err(Error::new(ErrorKind::Cancelled, "cancelled while verifying"));
                }
                let n = (offset + len - at).min(PIECE as u64) as usize;
                let data = &mut buf.as_mut_slice()[..n];
                target.read_at(at, data)?;
                match print {
                    Fingerprint::Zero => {
                        if let Some(i) = zero::first_non_zero(data) {
                            return Err(Error::new(
                                ErrorKind::Integrity,
                                format!("verify failed: {path} differs from the image at offset {}; flash it again", at + i as u64),
                            ));
                        }
                    }
                    Fingerprint::Sha256(_) => hash.update(&*data),
                }
                at += n as u64;
                done.store(at, Ordering::Relaxed);
            }
            if let Fingerprint::Sha256(expected) = print {
                if <[u8; 32]>::from(hash.finalize()) != *expected {
                    return Err(Error::new(
                        ErrorKind::Integrity,
                        format!(
                            "verify failed: {path} differs from the image between offsets {offset} and {}; flash it again",
                            offset + len
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn corrupt_for_test(target: &Target, offset: u64) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(target.path())?;
    let mut byte = [0u8; 1];
    f.read_exact_at(&mut byte, offset)?;
    f.write_all_at(&[!byte[0]], offset)?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_runs_merge_across_chunks_and_data_runs_are_hashed() {
        let mut checks = Checks::default();
        let mut chunk = vec![0u8; 4 * zero::GRANULE];
        checks.record(0, &chunk, &zero::data_runs(&chunk));
        chunk[zero::GRANULE] = 1;
        checks.record(chunk.len() as u64, &chunk, &zero::data_runs(&chunk));
        let shape: Vec<(u64, u64, bool)> =
            checks.runs.iter().map(|(o, l, f)| (*o, *l, matches!(f, Fingerprint::Zero))).collect();
        let g = zero::GRANULE as u64;
        assert_eq!(shape, [(0, 5 * g, true), (5 * g, g, false), (6 * g, 2 * g, true)]);
    }
}
