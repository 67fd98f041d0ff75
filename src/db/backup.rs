//! SQLite online backup of the state database into a file, page by page, while bty-web keeps
//! serving (readers and writers are not blocked for the whole copy). Naming, placement,
//! renaming into view and retention belong to `web::backups`.

use super::Db;
use crate::error::{Context, Result};
use std::path::Path;
use std::time::Duration;

/// Pages copied per step; between steps other connections may write.
const PAGES_PER_STEP: std::os::raw::c_int = 256;

impl Db {
    /// Copies the whole database into `dest` (created or overwritten) and syncs it to disk.
    pub fn backup_to(&self, dest: &Path) -> Result<()> {
        self.with(|src| {
            let mut dst = rusqlite::Connection::open(dest)?;
            {
                let b = rusqlite::backup::Backup::new(src, &mut dst)?;
                b.run_to_completion(PAGES_PER_STEP, Duration::from_millis(10), None)?;
            }
            // The copy carries the source's WAL mode; a backup file should be one self-contained file.
            dst.execute_batch("PRAGMA journal_mode = DELETE;")?;
            dst.close().map_err(|(_, e)| e)
        })
        .map_err(|e| e.context(format!("backing up the database to {}", dest.display())))?;
        std::fs::File::open(dest)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("syncing {}", dest.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Assignment, BootMode};

    #[test]
    fn a_backup_opens_on_its_own_and_holds_the_same_machines() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("state.db")).unwrap();
        let a = Assignment {
            bty_image_ref: None,
            labels: vec!["rack1".into()],
            boot_mode: BootMode::IpxeExit,
            sanboot_drive: None,
            target_disk_serial: None,
        };
        db.upsert_machine("aa:bb:cc:dd:ee:01", &a, &super::super::now()).unwrap();
        let dest = dir.path().join("copy.db");
        db.backup_to(&dest).unwrap();
        let copy = Db::open(&dest).unwrap();
        let macs: Vec<_> =
            copy.machines().unwrap().into_iter().map(|m| (m.machine.mac, m.machine.labels)).collect();
        assert_eq!(macs, [("aa:bb:cc:dd:ee:01".to_string(), vec!["rack1".to_string()])]);
    }
}
