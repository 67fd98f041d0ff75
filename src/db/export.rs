//! The rows behind `bty-web export` and the single transaction behind `bty-web import`. The
//! file format and its validation are `web::export`; this file only reads and writes rows.

use super::Db;
use crate::error::Result;
use crate::wire::Assignment;
use rusqlite::params;

/// A machine's hardware identity as stored (JSON columns kept as text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRow {
    /// Canonical MAC.
    pub mac: String,
    /// `known_disks` JSON text.
    pub known_disks: Option<String>,
    /// When the disks were reported.
    pub known_disks_at: Option<String>,
    /// `hw_lshw` JSON text.
    pub hw_lshw: Option<String>,
    /// When lshw was reported.
    pub hw_lshw_at: Option<String>,
}

impl Db {
    /// Every machine's hardware identity, ordered by MAC.
    pub fn identities(&self) -> Result<Vec<IdentityRow>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT mac, known_disks, known_disks_at, hw_lshw, hw_lshw_at FROM machines ORDER BY mac",
            )?;
            let rows = st
                .query_map([], |r| {
                    Ok(IdentityRow {
                        mac: r.get(0)?,
                        known_disks: r.get(1)?,
                        known_disks_at: r.get(2)?,
                        hw_lshw: r.get(3)?,
                        hw_lshw_at: r.get(4)?,
                    })
                })?
                .collect();
            rows
        })
    }

    /// Imports in one transaction: each identity replaces its machine as the reference does
    /// (`bty-inventory`, no binding, no labels, a fresh cycle, `created_at = updated_at = now`),
    /// then each binding is applied to its (imported) machine. All or nothing.
    pub fn import(
        &self,
        machines: &[IdentityRow],
        bindings: &[(String, Assignment)],
        now: &str,
    ) -> Result<()> {
        self.write(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for m in machines {
                tx.execute("DELETE FROM machine_labels WHERE mac = ?1", [&m.mac])?;
                tx.execute("DELETE FROM machines WHERE mac = ?1", [&m.mac])?;
                tx.execute(
                    "INSERT INTO machines (mac, boot_mode, known_disks, known_disks_at, hw_lshw, hw_lshw_at,
                       created_at, updated_at) VALUES (?1, 'bty-inventory', ?2, ?3, ?4, ?5, ?6, ?6)",
                    params![m.mac, m.known_disks, m.known_disks_at, m.hw_lshw, m.hw_lshw_at, now],
                )?;
            }
            for (mac, a) in bindings {
                let n = tx.execute(
                    "UPDATE machines SET bty_image_ref = ?2, boot_mode = ?3, sanboot_drive = ?4,
                       target_disk_serial = ?5 WHERE mac = ?1",
                    params![
                        mac,
                        a.bty_image_ref,
                        a.boot_mode.as_str(),
                        a.sanboot_drive,
                        a.target_disk_serial
                    ],
                )?;
                if n == 0 {
                    return Err(rusqlite::Error::QueryReturnedNoRows);
                }
                for label in &a.labels {
                    tx.execute(
                        "INSERT OR IGNORE INTO machine_labels (mac, label) VALUES (?1, ?2)",
                        params![mac, label],
                    )?;
                }
            }
            tx.commit()
        })
    }
}
