//! `--verify`: fingerprints of every decoded chunk taken while writing, and the read-back that
//! compares the target with them after the page cache has been dropped.
//!
//! A chunk of zeros is remembered as "zero" (checked without hashing, and a difference is named
//! to the byte); any other chunk by its sha256, so a difference is named to the chunk.

use super::buffer::AlignedBuf;
use super::target::Target;
use super::zero;
use crate::error::{Error, ErrorKind, Result};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The test hook: with `BTY_TEST_CORRUPT_AFTER_WRITE=OFFSET` in the environment the engine
/// flips the byte at OFFSET of the target through a separate descriptor after writing and
/// before reading back, which is how the black-box tests prove that `--verify` catches a block
/// changed behind the engine's back. This is the only place the variable is read.
const CORRUPT_HOOK: &str = "BTY_TEST_CORRUPT_AFTER_WRITE";

/// What one chunk of the image looked like.
enum Fingerprint {
    Zero,
    Sha256([u8; 32]),
}

/// The fingerprints of a whole image, in order.
#[derive(Default)]
pub struct Checks {
    chunks: Vec<(u64, usize, Fingerprint)>,
}

impl Checks {
    /// Remembers the decoded bytes `data` at image offset `offset`.
    pub fn record(&mut self, offset: u64, data: &[u8]) {
        let print = if zero::is_zero(data) {
            Fingerprint::Zero
        } else {
            Fingerprint::Sha256(Sha256::digest(data).into())
        };
        self.chunks.push((offset, data.len(), print));
    }

    /// Reads every chunk back from `target`, bypassing caches, and fails with
    /// [`ErrorKind::Integrity`] naming the first place that differs. `done` counts bytes read
    /// back for progress; `stop` cancels.
    pub fn read_back(&self, target: &Target, done: &AtomicU64, stop: &AtomicBool) -> Result<()> {
        if let Some(offset) = std::env::var(CORRUPT_HOOK).ok().and_then(|v| v.parse::<u64>().ok()) {
            corrupt_for_test(target, offset)?;
        }
        target.drop_caches()?;
        let largest = self.chunks.iter().map(|c| c.1).max().unwrap_or(0);
        let mut buf = AlignedBuf::new(largest);
        for (offset, len, print) in &self.chunks {
            if stop.load(Ordering::Relaxed) {
                return Err(Error::new(ErrorKind::Cancelled, "cancelled while verifying"));
            }
            let data = &mut buf.as_mut_slice()[..*len];
            target.read_at(*offset, data)?;
            let path = target.path().display();
            match print {
                Fingerprint::Zero => {
                    if let Some(at) = zero::first_non_zero(data) {
                        return Err(Error::new(
                            ErrorKind::Integrity,
                            format!(
                                "verify failed: {path} differs from the image at offset {}; flash it again",
                                offset + at as u64
                            ),
                        ));
                    }
                }
                Fingerprint::Sha256(expected) => {
                    if <[u8; 32]>::from(Sha256::digest(&*data)) != *expected {
                        return Err(Error::new(
                            ErrorKind::Integrity,
                            format!(
                                "verify failed: {path} differs from the image between offsets {offset} and {}; flash it again",
                                offset + *len as u64
                            ),
                        ));
                    }
                }
            }
            done.store(offset + *len as u64, Ordering::Relaxed);
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
