//! Room for the operator on a full disk. SQLite needs free pages for every write, a `DELETE`
//! included (in WAL mode each changed page is appended to the `-wal` file), so once the state
//! filesystem is full nobody could log in or delete anything to make room. bty-web therefore
//! keeps a reserve file beside `state.db` (`state.db-reserve`, written with real blocks, not a
//! sparse file). The first write that fails with "disk full" marks the database starved: writes
//! from the unauthenticated PXE plane are refused from then on without touching SQLite, and an
//! operator's write (login, deletes) removes the reserve and retries into the room it freed.
//! Once space is back (checked at most every few seconds), the reserve is written again and
//! the starved mark cleared. This module only manages the file and the mark; which writes are
//! expendable is chosen by the callers in `db/`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Size of the reserve: room for a login and a few thousand deleted pages.
pub const RESERVE_BYTES: u64 = 8 << 20;
/// Free space (besides the reserve) needed before the reserve is rewritten and the mark cleared.
const RECOVER_MARGIN: u64 = 16 << 20;
/// How often a starved database looks at the free space again.
const RECHECK: Duration = Duration::from_secs(5);

/// The reserve file and the starved mark.
#[derive(Default)]
pub struct Reserve {
    path: Mutex<Option<PathBuf>>,
    starved: AtomicBool,
    last_check: Mutex<Option<Instant>>,
}

impl Reserve {
    /// Starts keeping a reserve at `path` (writes it now when there is room).
    pub fn keep(&self, path: PathBuf) {
        *self.path.lock().unwrap_or_else(|p| p.into_inner()) = Some(path);
        self.replenish();
    }

    /// Whether expendable writes are paused. A starved database re-checks the free space at
    /// most every [`RECHECK`] and recovers when there is room again.
    pub fn starved(&self) -> bool {
        if !self.starved.load(Ordering::Relaxed) {
            return false;
        }
        let due = {
            let mut last = self.last_check.lock().unwrap_or_else(|p| p.into_inner());
            let due = last.is_none_or(|t| t.elapsed() >= RECHECK);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due {
            self.replenish();
        }
        self.starved.load(Ordering::Relaxed)
    }

    /// Marks the database starved (a write failed with "disk full").
    pub fn mark_starved(&self) {
        if !self.starved.swap(true, Ordering::Relaxed) {
            crate::log_warn!(
                "the state filesystem is full: PXE clients are served from what is stored, and \
                 nothing they report is recorded until space is freed"
            );
            *self.last_check.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
    }

    /// Removes the reserve file so an operator's write fits; whether there was one to remove.
    pub fn release(&self) -> bool {
        let path = self.path.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(path) = path else { return false };
        match std::fs::remove_file(&path) {
            Ok(()) => {
                crate::log_warn!(
                    "released the {} MiB space reserve for an operator's change",
                    RESERVE_BYTES >> 20
                );
                true
            }
            Err(_) => false,
        }
    }

    /// Writes the reserve when it is missing and the filesystem has room for it and a margin;
    /// clears the starved mark when there is room.
    fn replenish(&self) {
        let path = self.path.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(path) = path else {
            self.starved.store(false, Ordering::Relaxed);
            return;
        };
        let have = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let free = path.parent().and_then(fs_space).map_or(0, |(free, _)| free);
        if free < RESERVE_BYTES.saturating_sub(have) + RECOVER_MARGIN {
            return;
        }
        if have < RESERVE_BYTES {
            if let Err(e) = write_reserve(&path) {
                crate::log_warn!("writing the space reserve {}: {e}", path.display());
                let _ = std::fs::remove_file(&path);
                return;
            }
        }
        if self.starved.swap(false, Ordering::Relaxed) {
            crate::log_info!("the state filesystem has room again; PXE reports are recorded again");
        }
    }
}

fn write_reserve(path: &Path) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..RESERVE_BYTES / chunk.len() as u64 {
        f.write_all(&chunk)?;
    }
    f.sync_all()
}

/// Bytes an unprivileged writer may still use on the filesystem holding `path`, and its size
/// (statvfs(3)).
pub fn fs_space(path: &Path) -> Option<(u64, u64)> {
    let s = rustix::fs::statvfs(path).ok()?;
    Some((s.f_bavail.saturating_mul(s.f_frsize), s.f_blocks.saturating_mul(s.f_frsize)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_written_released_and_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db-reserve");
        let r = Reserve::default();
        r.keep(path.clone());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), RESERVE_BYTES);
        r.mark_starved();
        assert!(r.release());
        assert!(!path.exists());
        assert!(!r.release());
        *r.last_check.lock().unwrap() = None;
        assert!(!r.starved(), "a roomy filesystem recovers at the next check");
        assert!(path.exists());
    }
}
