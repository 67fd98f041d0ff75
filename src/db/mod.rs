//! SQLite state of bty-web: one `state.db` file (WAL, foreign keys on, busy timeout), opened once,
//! migrated once, and shared through a small pool of connections. The only place with SQL.
//!
//! One file per table group: `machines.rs` (machines, labels and the boot cycle), `events.rs`
//! (the audit log), `images.rs` (the image store and remote catalog entries), `sessions.rs`
//! (browser sessions and API tokens), `settings.rs` (key/value settings), `backup.rs` (online
//! copies of the file), `export.rs` (the rows of export/import bundles). Schema changes are
//! appended to `migrations.rs` and recorded in `PRAGMA user_version`; an upgrade keeps every row.
//! Nothing here decides policy: callers pass validated values and get typed rows back.

mod backup;
mod events;
mod export;
mod images;
mod machines;
mod migrations;
mod sessions;
mod settings;
mod space;

pub use events::{EventFilter, NewEvent};
pub use export::IdentityRow;
pub use images::{ImageKind, ImageRow};
pub use machines::{Contact, DiscoveryCaps, MachineRecord, StatusReport};
pub use migrations::SCHEMA_VERSION;
pub use sessions::{ApiToken, SessionRow};
pub use space::fs_space;

use crate::error::{Error, ErrorKind, Result};
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Idle connections kept for reuse; more are opened on demand under load and closed afterwards.
const POOL_IDLE_MAX: usize = 8;

/// How long a writer waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a waiting writer sleeps between attempts at the lock.
const BUSY_POLL: Duration = Duration::from_micros(200);

/// The state database: a path and a pool of configured connections.
pub struct Db {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// Held by whoever writes (see [`Db::write`]).
    write_gate: Mutex<()>,
    /// Room for an operator's writes on a full disk (see `space.rs`).
    reserve: space::Reserve,
}

impl Db {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Db> {
        let mut conn = connect(path)?;
        migrations::apply(&mut conn).map_err(|e| sql(e).context(format!("migrating {}", path.display())))?;
        Ok(Db {
            path: path.to_path_buf(),
            idle: Mutex::new(vec![conn]),
            write_gate: Mutex::new(()),
            reserve: space::Reserve::default(),
        })
    }

    /// Runs `f`, which only reads, with a pooled connection.
    pub fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        self.with_raw(f)?.map_err(sql)
    }

    /// Runs `f`, which writes, with a pooled connection while holding this process's write gate.
    /// SQLite lets one writer in at a time; queueing for the gate costs a lock hand-over, while
    /// queueing inside SQLite means its busy handler's sleep-and-retry, which under a burst of
    /// PXE requests (each appends an audit row) cost throughput and tail latency. Readers never
    /// take the gate: WAL lets them run beside the writer.
    ///
    /// This is for an operator's writes: on a full disk it releases the space reserve (when one
    /// is kept, [`Db::keep_reserve`]) and tries once more, so login and deletes still work.
    pub fn write<T>(&self, mut f: impl FnMut(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        let _gate = self.write_gate.lock().unwrap_or_else(|p| p.into_inner());
        match self.with_raw(&mut f)? {
            Err(e) if is_full(&e) => {
                self.reserve.mark_starved();
                if self.reserve.release() {
                    return self.with_raw(&mut f)?.map_err(sql);
                }
                Err(sql(e))
            }
            other => other.map_err(sql),
        }
    }

    /// Like [`Db::write`], for what unauthenticated clients cause (PXE contacts, their reports,
    /// audit rows): never uses the space reserve, and while the disk is full it fails at once
    /// without touching SQLite, so a flood of contacts cannot eat the room kept for the operator.
    pub fn write_expendable<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        if self.reserve.starved() {
            return Err(Error::new(ErrorKind::Failed, "database: the state filesystem is full"));
        }
        let _gate = self.write_gate.lock().unwrap_or_else(|p| p.into_inner());
        self.with_raw(f)?.map_err(|e| {
            if is_full(&e) {
                self.reserve.mark_starved();
            }
            sql(e)
        })
    }

    /// Keeps a space reserve beside the database file (bty-web does; tools and tests need not).
    pub fn keep_reserve(&self) {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push("-reserve");
        self.reserve.keep(self.path.with_file_name(name));
    }

    /// [`Db::with`] without the error conversion, so [`Db::write`] can see SQLite's code.
    fn with_raw<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<rusqlite::Result<T>> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => connect(&self.path)?,
        };
        let result = f(&mut conn);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < POOL_IDLE_MAX {
            idle.push(conn);
        }
        Ok(result)
    }

    /// Checkpoints the WAL into the main file and closes the pooled connections.
    pub fn close(&self) {
        let conns: Vec<Connection> =
            std::mem::take(&mut *self.idle.lock().unwrap_or_else(|p| p.into_inner()));
        for (i, conn) in conns.into_iter().enumerate() {
            if i == 0 {
                let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
            }
            let _ = conn.close();
        }
    }

    /// The file this database lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn connect(path: &Path) -> Result<Connection> {
    let mut conn =
        Connection::open(path).map_err(|e| sql(e).context(format!("opening {}", path.display())))?;
    // Writers in this process queue at `Db::write`; the busy handler only waits out other
    // processes (a backup, `bty-web import`). Short polls instead of `busy_timeout`, whose
    // handler backs off to 100 ms sleeps.
    let attempts = (BUSY_TIMEOUT.as_micros() / BUSY_POLL.as_micros()) as i32;
    conn.busy_handler(Some(move |attempt: i32| {
        std::thread::sleep(BUSY_POLL);
        attempt < attempts
    }))
    .map_err(sql)?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
        .map_err(|e| sql(e).context(format!("configuring {}", path.display())))?;
    Ok(conn)
}

fn is_full(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull)
}

/// Turns an SQLite error into ours; a busy database is a retryable failure, a constraint a conflict.
fn sql(e: rusqlite::Error) -> Error {
    let kind = match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
            ErrorKind::Conflict
        }
        rusqlite::Error::QueryReturnedNoRows => ErrorKind::NotFound,
        _ => ErrorKind::Failed,
    };
    Error::new(kind, format!("database: {e}"))
}

/// The current time as stored: ISO-8601 UTC with microseconds and `+00:00`, as the reference.
pub fn now() -> String {
    format_ts(time::OffsetDateTime::now_utc())
}

/// Formats a time the way rows store it.
pub fn format_ts(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}+00:00",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// Parses a stored time (or any RFC 3339 time).
pub fn parse_ts(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// A stored `+00:00` time in the `Z` form the reference's `Machine` JSON uses.
pub fn zulu(s: &str) -> String {
    match s.strip_suffix("+00:00") {
        Some(head) => format!("{head}Z"),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_and_convert_to_zulu() {
        let s = now();
        assert!(s.ends_with("+00:00") && s.len() == 32, "{s}");
        assert!(parse_ts(&s).is_some());
        assert_eq!(zulu("2026-11-23T12:18:44.050905+00:00"), "2026-11-23T12:18:44.050905Z");
    }

    #[test]
    fn open_sets_wal_and_the_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("state.db")).unwrap();
        let (mode, version, fk): (String, i64, i64) = db
            .with(|c| {
                Ok((
                    c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?,
                    c.query_row("PRAGMA user_version", [], |r| r.get(0))?,
                    c.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?,
                ))
            })
            .unwrap();
        assert_eq!((mode.as_str(), version, fk), ("wal", SCHEMA_VERSION, 1));
    }
}
