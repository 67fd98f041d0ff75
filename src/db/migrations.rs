//! The schema, as an append-only list of migrations; `PRAGMA user_version` records how many ran.
//!
//! Never edit a migration that has shipped: append a new one. Each runs in its own transaction
//! together with the version bump, so a crash leaves the database at a whole version.

use rusqlite::Connection;

/// Migration 1: the reference's tables (reference §5.1), so its data shape maps one to one.
const V1: &str = "
CREATE TABLE machines (
    mac TEXT PRIMARY KEY,
    bty_image_ref TEXT,
    discovered_at TEXT,
    last_seen_at TEXT,
    last_seen_ip TEXT,
    boot_mode TEXT NOT NULL DEFAULT 'ipxe-exit',
    sanboot_drive TEXT,
    last_flashed_at TEXT,
    saw_flasher_boot INTEGER NOT NULL DEFAULT 0,
    known_disks TEXT,
    known_disks_at TEXT,
    hw_lshw TEXT,
    hw_lshw_at TEXT,
    target_disk_serial TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE machine_labels (
    mac TEXT NOT NULL REFERENCES machines(mac) ON DELETE CASCADE,
    label TEXT NOT NULL,
    PRIMARY KEY (mac, label)
);
CREATE INDEX machine_labels_label_idx ON machine_labels(label);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject_kind TEXT,
    subject_id TEXT,
    actor TEXT,
    source_ip TEXT,
    summary TEXT NOT NULL,
    details TEXT,
    acknowledged INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX events_ts_idx ON events(ts);
CREATE INDEX events_kind_idx ON events(kind);
CREATE INDEX events_subject_idx ON events(subject_kind, subject_id);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
";

/// Migration 2: per-cycle boot tracking (replaces the single `saw_flasher_boot` bit, whose state
/// is carried over), flash outcome extras, the image store, sessions and API tokens.
const V2: &str = "
ALTER TABLE machines ADD COLUMN cycle INTEGER NOT NULL DEFAULT 0;
ALTER TABLE machines ADD COLUMN cycle_phase TEXT NOT NULL DEFAULT 'pending';
ALTER TABLE machines ADD COLUMN cycle_armed_at TEXT;
ALTER TABLE machines ADD COLUMN last_flash_status TEXT;
ALTER TABLE machines ADD COLUMN last_flash_seconds REAL;
ALTER TABLE machines ADD COLUMN last_flash_bytes INTEGER;
ALTER TABLE machines ADD COLUMN last_flashed_image_sha256 TEXT;
UPDATE machines SET cycle_phase = CASE
    WHEN saw_flasher_boot = 1 AND boot_mode IN ('bty-flash-always', 'bty-flash-once')
         AND last_flashed_at IS NOT NULL THEN 'done'
    WHEN saw_flasher_boot = 1 AND boot_mode = 'bty-inventory' AND known_disks_at IS NOT NULL THEN 'done'
    WHEN saw_flasher_boot = 1 THEN 'armed'
    ELSE 'pending' END;
CREATE TABLE images (
    ref TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    src TEXT,
    sha256 TEXT,
    format TEXT,
    size_bytes INTEGER,
    virtual_size INTEGER,
    arch TEXT,
    description TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    source_ip TEXT
);
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used_at TEXT
);
";

/// Migration 3: why and where the last flash failed, and in which cycle it was reported (a
/// failure shows as the machine's state only while that cycle lasts).
const V3: &str = "
ALTER TABLE machines ADD COLUMN last_flash_reason TEXT;
ALTER TABLE machines ADD COLUMN last_flash_phase TEXT;
ALTER TABLE machines ADD COLUMN last_flash_cycle INTEGER;
";

/// Migration 4: whether a machine reflashes by delta (on unless the operator turns it off), and
/// what its last flash fetched and wrote (the agent's figures, as JSON).
const V4: &str = "
ALTER TABLE machines ADD COLUMN delta INTEGER NOT NULL DEFAULT 1;
ALTER TABLE machines ADD COLUMN last_flash_figures TEXT;
";

const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Applies every migration past the database's `user_version`.
pub fn apply(conn: &mut Connection) -> rusqlite::Result<()> {
    apply_up_to(conn, SCHEMA_VERSION)
}

/// Applies migrations up to `target` (tests build old schemas with it).
pub fn apply_up_to(conn: &mut Connection, target: i64) -> rusqlite::Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(rusqlite::Error::ToSqlConversionFailure(Box::from(format!(
            "schema version {current} is newer than this bty ({SCHEMA_VERSION}); upgrade bty, or restore a backup"
        ))));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().take(target as usize).skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v1_database_with_data_upgrades_keeping_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let mut conn = Connection::open(&path).unwrap();
        apply_up_to(&mut conn, 1).unwrap();
        conn.execute_batch(
            "INSERT INTO machines (mac, boot_mode, saw_flasher_boot, last_flashed_at, created_at, updated_at)
               VALUES ('aa:bb:cc:dd:ee:01', 'bty-flash-once', 1, 't', 't', 't'),
                      ('aa:bb:cc:dd:ee:02', 'bty-flash-always', 1, NULL, 't', 't');
             INSERT INTO machine_labels VALUES ('aa:bb:cc:dd:ee:01', 'rack-1');
             INSERT INTO events (ts, kind, summary) VALUES ('t', 'machine.created', 's');",
        )
        .unwrap();
        drop(conn);
        let db = crate::db::Db::open(&path).unwrap();
        let rows: Vec<(String, String)> = db
            .with(|c| {
                let mut st = c.prepare("SELECT mac, cycle_phase FROM machines ORDER BY mac")?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect();
                rows
            })
            .unwrap();
        assert_eq!(
            rows,
            [
                ("aa:bb:cc:dd:ee:01".to_string(), "done".to_string()),
                ("aa:bb:cc:dd:ee:02".into(), "armed".into())
            ]
        );
        let (labels, events): (i64, i64) = db
            .with(|c| {
                Ok((
                    c.query_row("SELECT COUNT(*) FROM machine_labels", [], |r| r.get(0))?,
                    c.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?,
                ))
            })
            .unwrap();
        assert_eq!((labels, events), (1, 1));
    }

    #[test]
    fn a_database_from_a_newer_bty_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        Connection::open(&path).unwrap().execute_batch("PRAGMA user_version = 99").unwrap();
        let e = crate::db::Db::open(&path).err().unwrap().to_string();
        assert!(e.contains("newer"), "{e}");
    }
}
