//! Backups of the state database: `state-YYYYMMDDTHHMMSSZ.db` files in `[paths] backup_dir`,
//! made on demand (`POST /backups`) and every `[backup] interval_hours` by a background thread,
//! keeping the newest `[backup] keep`.
//!
//! A backup is written under a hidden temporary name and renamed into view, so a listed file is
//! always complete; a temporary file left by a crash is removed when bty-web starts. Names are strictly validated before any path is built. The copy itself is
//! SQLite's online backup (`db::backup`); this module does not restore (stop bty-web and copy
//! the file over `state.db`).

use super::context::{event, AppContext};
use crate::error::{Context, Error, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One backup file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupInfo {
    /// File name in the backup directory (`state-20261123T154012Z.db`).
    pub name: String,
    /// File size.
    pub size_bytes: u64,
    /// When it was taken, from its name (`2026-11-23T15:40:12Z`).
    pub created_at: String,
}

/// Backups run one at a time (the scheduler and a request may meet).
static RUNNING: Mutex<()> = Mutex::new(());

/// A parsed backup name: its time and same-second sequence number, which order backups.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Stamp {
    time: String,
    seq: u32,
}

impl Stamp {
    /// `state-YYYYMMDDTHHMMSSZ.db` or `state-YYYYMMDDTHHMMSSZ-N.db`; nothing else.
    fn parse(name: &str) -> Option<Stamp> {
        let core = name.strip_prefix("state-")?.strip_suffix(".db")?;
        let (time, seq) = match core.split_once('-') {
            Some((t, n)) if !n.is_empty() && n.len() <= 4 && n.bytes().all(|b| b.is_ascii_digit()) => {
                (t, n.parse().ok()?)
            }
            Some(_) => return None,
            None => (core, 0),
        };
        let b = time.as_bytes();
        let shape = b.len() == 16
            && b[8] == b'T'
            && b[15] == b'Z'
            && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
        shape.then(|| Stamp { time: time.to_string(), seq })
    }

    fn name(&self) -> String {
        match self.seq {
            0 => format!("state-{}.db", self.time),
            n => format!("state-{}-{n}.db", self.time),
        }
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`.
    fn created_at(&self) -> String {
        let t = &self.time;
        format!("{}-{}-{}T{}:{}:{}Z", &t[0..4], &t[4..6], &t[6..8], &t[9..11], &t[11..13], &t[13..15])
    }
}

fn now_stamp() -> Stamp {
    let t = time::OffsetDateTime::now_utc();
    let time = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    Stamp { time, seq: 0 }
}

/// Takes a backup now, then prunes beyond `[backup] keep`. Records `backup.created` or
/// `backup.failed` (and `backup.pruned` per removed file).
pub fn create(ctx: &AppContext) -> Result<BackupInfo> {
    let _one = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
    let result = take(ctx);
    match &result {
        Ok(info) => {
            ctx.audit(
                None,
                event(
                    "backup.created",
                    ("backup", &info.name),
                    "system",
                    format!("backup {} taken", info.name),
                ),
            );
            prune(ctx);
        }
        Err(e) => {
            crate::log_warn!("backup failed: {e}");
            ctx.audit(None, event("backup.failed", ("backup", ""), "system", format!("backup failed: {e}")));
        }
    }
    result
}

fn take(ctx: &AppContext) -> Result<BackupInfo> {
    let dir = &ctx.config.paths.backup_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut stamp = now_stamp();
    while dir.join(stamp.name()).exists() {
        stamp.seq += 1;
    }
    let name = stamp.name();
    let tmp = dir.join(format!(".{name}.tmp"));
    let done = ctx.db.backup_to(&tmp).and_then(|()| {
        std::fs::rename(&tmp, dir.join(&name)).with_context(|| format!("renaming {}", tmp.display()))
    });
    if let Err(e) = done {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    info(ctx, &stamp)
}

fn info(ctx: &AppContext, stamp: &Stamp) -> Result<BackupInfo> {
    let name = stamp.name();
    let path = ctx.config.paths.backup_dir.join(&name);
    let meta = std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(BackupInfo { name, size_bytes: meta.len(), created_at: stamp.created_at() })
}

/// Every backup, newest first. A missing directory is an empty list.
pub fn list(ctx: &AppContext) -> Result<Vec<BackupInfo>> {
    let dir = &ctx.config.paths.backup_dir;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::from(e).context(format!("listing {}", dir.display()))),
    };
    let mut stamps: Vec<Stamp> =
        entries.flatten().filter_map(|e| Stamp::parse(&e.file_name().to_string_lossy())).collect();
    stamps.sort_by(|a, b| b.cmp(a));
    // A file removed between listing and stat is simply not listed.
    Ok(stamps.iter().filter_map(|s| info(ctx, s).ok()).collect())
}

/// The path of backup `name`: invalid names are `Invalid` (400), absent ones `NotFound`.
pub fn path_of(ctx: &AppContext, name: &str) -> Result<PathBuf> {
    let stamp = Stamp::parse(name).ok_or_else(|| {
        Error::invalid(format!("invalid backup name {name:?}; names look like state-20261123T154012Z.db"))
    })?;
    let path = ctx.config.paths.backup_dir.join(stamp.name());
    if !path.is_file() {
        return Err(Error::not_found(format!("no backup named {name}")));
    }
    Ok(path)
}

/// Deletes backup `name`.
pub fn delete(ctx: &AppContext, name: &str) -> Result<()> {
    let path = path_of(ctx, name)?;
    std::fs::remove_file(&path).with_context(|| format!("deleting {}", path.display()))
}

/// Removes the oldest backups beyond `[backup] keep` (0 keeps all).
fn prune(ctx: &AppContext) {
    let keep = super::settings::u64_of(ctx, "backup", "keep");
    if keep == 0 {
        return;
    }
    let Ok(all) = list(ctx) else { return };
    for old in all.iter().skip(keep.min(usize::MAX as u64) as usize) {
        match delete(ctx, &old.name) {
            Ok(()) => ctx.audit(
                None,
                event(
                    "backup.pruned",
                    ("backup", &old.name),
                    "system",
                    format!("backup {} pruned", old.name),
                ),
            ),
            Err(e) => crate::log_warn!("pruning backup {}: {e}", old.name),
        }
    }
}

/// Removes the temporary files of backups that a crash or power loss interrupted.
fn remove_leftovers(ctx: &AppContext) {
    let dir = &ctx.config.paths.backup_dir;
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let leftover = name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(".tmp"))
            .is_some_and(|n| Stamp::parse(n).is_some());
        if leftover {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => crate::log_info!("removed {name}, left by an interrupted backup"),
                Err(e) => crate::log_warn!("removing {}: {e}", entry.path().display()),
            }
        }
    }
}

/// Removes what interrupted backups left, then starts the scheduler: a backup every
/// `[backup] interval_hours` (none while 0), the first one an interval after start. The
/// interval is re-read every few seconds, so a change on the Settings page takes effect without
/// a restart. It ends when shutdown begins.
pub fn start(ctx: Arc<AppContext>) -> Option<std::thread::JoinHandle<()>> {
    const REREAD: Duration = Duration::from_secs(5);
    remove_leftovers(&ctx);
    let spawned = std::thread::Builder::new().name("bty-backups".into()).spawn(move || {
        let mut last = Instant::now();
        let mut hours = super::settings::u64_of(&ctx, "backup", "interval_hours");
        let mut read_at = Instant::now();
        while !ctx.shutting_down() {
            if read_at.elapsed() >= REREAD {
                hours = super::settings::u64_of(&ctx, "backup", "interval_hours");
                read_at = Instant::now();
            }
            if hours > 0 && last.elapsed() >= Duration::from_secs(hours.saturating_mul(3600)) {
                let _ = create(&ctx);
                last = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    spawned.map_err(|e| crate::log_error!("starting the backup scheduler: {e}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_strictly_and_order_by_time_then_sequence() {
        let a = Stamp::parse("state-20261123T154012Z.db").unwrap();
        let b = Stamp::parse("state-20261123T154012Z-1.db").unwrap();
        assert!(a < b);
        assert_eq!(b.name(), "state-20261123T154012Z-1.db");
        assert_eq!(a.created_at(), "2026-11-23T15:40:12Z");
        for bad in [
            "state.db",
            "../state-20261123T154012Z.db",
            "state-20261123T154012Z.db.tmp",
            ".state-20261123T154012Z.db.tmp",
            "state-2026112XT154012Z.db",
            "state-20261123T154012Z-.db",
            "state-20261123T154012Z-x.db",
            "state-20261123T154012Z/../x.db",
        ] {
            assert!(Stamp::parse(bad).is_none(), "{bad}");
        }
    }
}
