//! Key/value settings the operator changes at run time (the config file stays read-only).

use super::Db;
use crate::error::Result;
use rusqlite::{params, OptionalExtension};

impl Db {
    /// A setting's value, if set.
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        self.with(|c| {
            c.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0)).optional()
        })
    }

    /// Sets a setting; `None` deletes it.
    pub fn set_setting(&self, key: &str, value: Option<&str>) -> Result<()> {
        let now = super::now();
        self.write(|c| {
            match value {
                Some(v) => c.execute(
                    "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3)
                       ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                    params![key, v, now],
                )?,
                None => c.execute("DELETE FROM settings WHERE key = ?1", [key])?,
            };
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_set_replace_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("state.db")).unwrap();
        assert_eq!(db.setting("a").unwrap(), None);
        db.set_setting("a", Some("1")).unwrap();
        db.set_setting("a", Some("2")).unwrap();
        assert_eq!(db.setting("a").unwrap().as_deref(), Some("2"));
        db.set_setting("a", None).unwrap();
        assert_eq!(db.setting("a").unwrap(), None);
    }
}
