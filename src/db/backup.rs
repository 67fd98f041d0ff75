//! A consistent copy of the state database into a file while bty-web keeps serving, made with
//! `VACUUM INTO` inside one read transaction: in WAL mode writers go on beside it, and the copy
//! is one snapshot. (SQLite's page-stepping online backup restarts whenever another connection
//! writes between steps, so under steady PXE traffic it never finished.) Naming, placement,
//! renaming into view and retention belong to `web::backups`.

use super::Db;
use crate::error::{Context, Result};
use std::path::Path;

impl Db {
    /// Copies the whole database into `dest` (replaced if present) and syncs it to disk.
    pub fn backup_to(&self, dest: &Path) -> Result<()> {
        match std::fs::remove_file(dest) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(crate::error::Error::from(e).context(format!("replacing {}", dest.display())))
            }
            _ => {}
        }
        let target = dest.to_string_lossy().into_owned();
        self.with(|src| {
            src.execute("VACUUM INTO ?1", [&target])?;
            let dst = rusqlite::Connection::open(dest)?;
            // A backup file should be one self-contained file, whatever mode the copy carries.
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
            delta: None,
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
