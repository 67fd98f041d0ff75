//! Machines, their labels and their boot cycle.
//!
//! Contacts from unknown MACs create rows race-free (`INSERT … ON CONFLICT DO NOTHING` inside an
//! immediate transaction); cycle transitions are single guarded UPDATEs so concurrent contacts
//! cannot skip a phase. Which transition to make is decided by the caller (`plan::decide`).

use super::{zulu, Db};
use crate::error::Result;
use crate::plan::{boot_state, Phase};
use crate::wire::{Assignment, BootMode, FlashFigures, FlashOutcome, Machine};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

/// A machine row: the API view plus the cycle state the API does not show.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineRecord {
    /// What `GET /machines/{mac}` returns.
    pub machine: Machine,
    /// Current cycle number (bumped when a cycle closes or the assignment changes).
    pub cycle: i64,
    /// Phase of the current cycle.
    pub phase: Phase,
    /// Whether an lshw blob is stored.
    pub has_lshw: bool,
    /// The cycle in which the last flash outcome was reported (`None` before migration 3).
    pub last_flash_cycle: Option<i64>,
}

impl MachineRecord {
    /// Whether the last flash failed in the current cycle (a new cycle clears the failure
    /// state but keeps its record).
    pub fn failed_now(&self) -> bool {
        self.machine.last_flash_status.as_deref() == Some("failed")
            && self.last_flash_cycle.map_or(self.phase != Phase::Done, |c| c == self.cycle)
    }
}

/// What `/status` reports, with what the server knows about the flash.
#[derive(Debug, Clone)]
pub struct StatusReport {
    /// done or failed.
    pub outcome: FlashOutcome,
    /// Bytes the agent last reported written.
    pub bytes: Option<u64>,
    /// Content sha256 of the bound image.
    pub image_sha256: Option<String>,
    /// The agent's reason for a failure.
    pub reason: Option<String>,
    /// The progress phase last reported before the outcome.
    pub phase: Option<String>,
    /// What the flash fetched and wrote, when the agent said.
    pub figures: Option<FlashFigures>,
}

/// Caps on auto-discovery (`[limits] discovery_per_hour`, `discovery_max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscoveryCaps {
    /// Machines discovered in the last hour.
    pub per_hour: u64,
    /// Machines in total.
    pub total: u64,
}

/// What a PXE contact did.
#[derive(Debug, Clone, PartialEq)]
pub enum Contact {
    /// The row as it is now, and whether this contact created it.
    Stored {
        /// The machine.
        rec: Box<MachineRecord>,
        /// Whether this contact discovered it.
        created: bool,
    },
    /// An unknown MAC beyond a discovery cap: nothing was stored.
    Refused,
}

const COLUMNS: &str =
    "mac, bty_image_ref, discovered_at, last_seen_at, last_seen_ip, boot_mode, sanboot_drive,
    last_flashed_at, known_disks, known_disks_at, target_disk_serial, created_at, updated_at,
    last_flash_status, last_flash_seconds, last_flash_bytes, last_flashed_image_sha256, cycle, cycle_phase,
    hw_lshw IS NOT NULL, last_flash_reason, last_flash_phase, last_flash_cycle, delta, last_flash_figures";

fn opt_zulu(s: Option<String>) -> Option<String> {
    s.map(|s| zulu(&s))
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<MachineRecord> {
    let mode_text: String = r.get(5)?;
    // A mode this build does not offer (an old `ramboot` row) boots the disk, never a flasher.
    let mode = BootMode::parse(&mode_text).unwrap_or(BootMode::IpxeExit);
    let disks: Option<String> = r.get(8)?;
    let phase = Phase::parse(&r.get::<_, String>(18)?);
    let last_flash_bytes: Option<i64> = r.get(15)?;
    let figures: Option<String> = r.get(24)?;
    let machine = Machine {
        mac: r.get(0)?,
        bty_image_ref: r.get(1)?,
        labels: Vec::new(),
        discovered_at: opt_zulu(r.get(2)?),
        last_seen_at: opt_zulu(r.get(3)?),
        last_seen_ip: r.get(4)?,
        boot_mode: mode,
        sanboot_drive: r.get(6)?,
        last_flashed_at: opt_zulu(r.get(7)?),
        known_disks: disks.and_then(|d| serde_json::from_str(&d).ok()),
        known_disks_at: opt_zulu(r.get(9)?),
        target_disk_serial: r.get(10)?,
        created_at: zulu(&r.get::<_, String>(11)?),
        updated_at: zulu(&r.get::<_, String>(12)?),
        last_flash_status: r.get(13)?,
        last_flash_seconds: r.get(14)?,
        last_flash_bytes: last_flash_bytes.map(|b| b.max(0) as u64),
        last_flashed_image_sha256: r.get(16)?,
        last_flash_reason: r.get(20)?,
        last_flash_phase: r.get(21)?,
        last_flash_figures: figures.and_then(|f| serde_json::from_str(&f).ok()),
        delta: r.get(23)?,
        boot_state: boot_state(mode, phase).to_string(),
    };
    Ok(MachineRecord {
        machine,
        cycle: r.get(17)?,
        phase,
        has_lshw: r.get(19)?,
        last_flash_cycle: r.get(22)?,
    })
}

fn labels_of(conn: &Connection, mac: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare_cached("SELECT label FROM machine_labels WHERE mac = ?1 ORDER BY label")?;
    let rows = st.query_map([mac], |r| r.get(0))?.collect();
    rows
}

fn get_in(conn: &Connection, mac: &str) -> rusqlite::Result<Option<MachineRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM machines WHERE mac = ?1");
    let rec = conn.query_row(&sql, [mac], from_row).optional()?;
    match rec {
        Some(mut rec) => {
            rec.machine.labels = labels_of(conn, mac)?;
            Ok(Some(rec))
        }
        None => Ok(None),
    }
}

fn seconds_between(from: &str, to: &str) -> Option<f64> {
    let (a, b) = (super::parse_ts(from)?, super::parse_ts(to)?);
    Some((b - a).as_seconds_f64().max(0.0))
}

impl Db {
    /// Every machine, ordered by MAC.
    pub fn machines(&self) -> Result<Vec<MachineRecord>> {
        self.with(|c| {
            let sql = format!("SELECT {COLUMNS} FROM machines ORDER BY mac");
            let mut st = c.prepare(&sql)?;
            let mut recs: Vec<MachineRecord> =
                st.query_map([], from_row)?.collect::<rusqlite::Result<_>>()?;
            let mut lst = c.prepare("SELECT mac, label FROM machine_labels ORDER BY mac, label")?;
            let pairs: Vec<(String, String)> =
                lst.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
            for (mac, label) in pairs {
                if let Ok(i) = recs.binary_search_by(|m| m.machine.mac.as_str().cmp(&mac)) {
                    recs[i].machine.labels.push(label);
                }
            }
            Ok(recs)
        })
    }

    /// One machine by canonical MAC.
    pub fn machine(&self, mac: &str) -> Result<Option<MachineRecord>> {
        self.with(|c| get_in(c, mac))
    }

    /// Creates or fully replaces a machine's assignment. Changing mode, ref or serial starts a
    /// new cycle (and clears `last_flashed_at`/`known_disks_at`, as the reference); labels and
    /// sanboot drive do not. Returns the row and whether it was created.
    pub fn upsert_machine(&self, mac: &str, a: &Assignment, now: &str) -> Result<(MachineRecord, bool)> {
        self.write(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let old = get_in(&tx, mac)?;
            let created = old.is_none();
            // The same values for a new row and an update; a delta left out is on for a new
            // machine and keeps the stored value for a known one.
            let row = params![
                mac,
                a.bty_image_ref,
                a.boot_mode.as_str(),
                a.sanboot_drive,
                a.target_disk_serial,
                now,
                a.delta
            ];
            match old {
                None => {
                    tx.execute(
                        "INSERT INTO machines (mac, bty_image_ref, boot_mode, sanboot_drive, target_disk_serial,
                           created_at, updated_at, delta) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, COALESCE(?7, 1))",
                        row,
                    )?;
                }
                Some(old) => {
                    let m = &old.machine;
                    let new_cycle = m.boot_mode != a.boot_mode
                        || m.bty_image_ref != a.bty_image_ref
                        || m.target_disk_serial != a.target_disk_serial;
                    // Changing how to reflash is not a new assignment: the cycle goes on.
                    tx.execute(
                        "UPDATE machines SET bty_image_ref = ?2, boot_mode = ?3, sanboot_drive = ?4,
                           target_disk_serial = ?5, updated_at = ?6, delta = COALESCE(?7, delta) WHERE mac = ?1",
                        row,
                    )?;
                    if new_cycle {
                        tx.execute(
                            "UPDATE machines SET cycle = cycle + 1, cycle_phase = 'pending', cycle_armed_at = NULL,
                               saw_flasher_boot = 0, last_flashed_at = NULL, known_disks_at = NULL WHERE mac = ?1",
                            [mac],
                        )?;
                    }
                }
            }
            tx.execute("DELETE FROM machine_labels WHERE mac = ?1", [mac])?;
            for label in &a.labels {
                tx.execute("INSERT OR IGNORE INTO machine_labels (mac, label) VALUES (?1, ?2)", params![mac, label])?;
            }
            let rec = get_in(&tx, mac)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
            tx.commit()?;
            Ok((rec, created))
        })
    }

    /// Starts a new cycle of the current assignment ("flash again"): the next PXE boot is
    /// offered the netboot environment as if the assignment had just been saved. The last
    /// flash's record stays. `None` for an unknown MAC.
    pub fn rearm_machine(&self, mac: &str, now: &str) -> Result<Option<MachineRecord>> {
        self.write(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "UPDATE machines SET cycle = cycle + 1, cycle_phase = 'pending', cycle_armed_at = NULL,
                   saw_flasher_boot = 0, updated_at = ?2 WHERE mac = ?1",
                params![mac, now],
            )?;
            let rec = if n == 1 { get_in(&tx, mac)? } else { None };
            tx.commit()?;
            Ok(rec)
        })
    }

    /// Deletes a machine and its labels; whether it existed.
    pub fn delete_machine(&self, mac: &str) -> Result<bool> {
        self.write(|c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM machine_labels WHERE mac = ?1", [mac])?;
            let n = tx.execute("DELETE FROM machines WHERE mac = ?1", [mac])?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    /// A PXE contact: creates the row as `bty-inventory` when the MAC is new (exactly once, even
    /// under concurrent first contacts) and refreshes `last_seen_*`. A new MAC is stored only
    /// while fewer than `caps.per_hour` machines were discovered in the last hour and fewer than
    /// `caps.total` exist; otherwise nothing is written and the answer is [`Contact::Refused`].
    pub fn machine_contact(&self, mac: &str, ip: &str, now: &str, caps: DiscoveryCaps) -> Result<Contact> {
        let hour_ago = super::parse_ts(now)
            .map(|t| super::format_ts(t - time::Duration::hours(1)))
            .unwrap_or_else(|| now.to_string());
        self.write_expendable(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let known =
                tx.query_row("SELECT 1 FROM machines WHERE mac = ?1", [mac], |_| Ok(())).optional()?;
            let created = known.is_none();
            if created {
                let total: i64 = tx.query_row("SELECT COUNT(*) FROM machines", [], |r| r.get(0))?;
                let recent: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM machines WHERE discovered_at >= ?1",
                    [&hour_ago],
                    |r| r.get(0),
                )?;
                if total as u64 >= caps.total || recent as u64 >= caps.per_hour {
                    return Ok(Contact::Refused);
                }
                tx.execute(
                    "INSERT INTO machines (mac, boot_mode, discovered_at, created_at, updated_at)
                       VALUES (?1, 'bty-inventory', ?2, ?2, ?2) ON CONFLICT(mac) DO NOTHING",
                    params![mac, now],
                )?;
            }
            tx.execute(
                "UPDATE machines SET last_seen_at = ?2, last_seen_ip = ?3, updated_at = ?2,
                   discovered_at = COALESCE(discovered_at, ?2) WHERE mac = ?1",
                params![mac, now, ip],
            )?;
            let rec = get_in(&tx, mac)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
            tx.commit()?;
            Ok(Contact::Stored { rec: Box::new(rec), created })
        })
    }

    /// Closes cycle `cycle` (the alternating modes after their disk boot); a no-op when another
    /// contact already closed it.
    pub fn end_cycle(&self, mac: &str, cycle: i64) -> Result<bool> {
        self.write_expendable(|c| {
            let n = c.execute(
                "UPDATE machines SET cycle = cycle + 1, cycle_phase = 'pending', cycle_armed_at = NULL,
                   saw_flasher_boot = 0 WHERE mac = ?1 AND cycle = ?2",
                params![mac, cycle],
            )?;
            Ok(n > 0)
        })
    }

    /// The netboot environment fetched an artifact: arms a pending cycle of a machine whose mode
    /// boots the environment for a cycle. Refreshes `last_seen_*`. Returns whether the cycle
    /// was armed by this call; `None` for an unknown MAC.
    pub fn arm_cycle(&self, mac: &str, ip: &str, now: &str) -> Result<Option<bool>> {
        self.write_expendable(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let known = tx.execute(
                "UPDATE machines SET last_seen_at = ?2, last_seen_ip = ?3 WHERE mac = ?1",
                params![mac, now, ip],
            )? == 1;
            if !known {
                return Ok(None);
            }
            let armed = tx.execute(
                "UPDATE machines SET cycle_phase = 'armed', cycle_armed_at = ?2, saw_flasher_boot = 1
                   WHERE mac = ?1 AND cycle_phase = 'pending'
                   AND boot_mode IN ('bty-flash-always', 'bty-flash-once', 'bty-inventory')",
                params![mac, now],
            )? == 1;
            tx.commit()?;
            Ok(Some(armed))
        })
    }

    /// Records a `/status` report. `done` completes an armed flash cycle (only an armed one: a
    /// `done` that did not follow a flasher boot in this cycle must not let a later crash boot
    /// the disk). Returns the updated row, or `None` for an unknown MAC.
    pub fn record_status(
        &self,
        mac: &str,
        r: &StatusReport,
        ip: &str,
        now: &str,
    ) -> Result<Option<MachineRecord>> {
        self.write_expendable(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(old) = get_in(&tx, mac)? else {
                return Ok(None);
            };
            tx.execute(
                "UPDATE machines SET last_seen_at = ?2, last_seen_ip = ?3, updated_at = ?2 WHERE mac = ?1",
                params![mac, now, ip],
            )?;
            let armed_at: Option<String> =
                tx.query_row("SELECT cycle_armed_at FROM machines WHERE mac = ?1", [mac], |row| row.get(0))?;
            let seconds = armed_at.as_deref().and_then(|a| seconds_between(a, now));
            let bytes = r.bytes.map(|b| b as i64);
            let figures = r.figures.as_ref().and_then(|f| serde_json::to_string(f).ok());
            match r.outcome {
                FlashOutcome::Done => {
                    tx.execute(
                        "UPDATE machines SET last_flashed_at = ?2, last_flash_status = 'done',
                           last_flash_seconds = ?3, last_flash_bytes = ?4, last_flashed_image_sha256 = ?5,
                           last_flash_reason = NULL, last_flash_phase = NULL, last_flash_cycle = cycle,
                           last_flash_figures = ?6 WHERE mac = ?1",
                        params![mac, now, seconds, bytes, r.image_sha256, figures],
                    )?;
                    if old.machine.boot_mode.flashes() {
                        tx.execute(
                            "UPDATE machines SET cycle_phase = 'done' WHERE mac = ?1 AND cycle_phase = 'armed'",
                            [mac],
                        )?;
                    }
                }
                FlashOutcome::Failed => {
                    tx.execute(
                        "UPDATE machines SET last_flash_status = 'failed', last_flash_seconds = ?2,
                           last_flash_bytes = ?3, last_flash_reason = ?4, last_flash_phase = ?5,
                           last_flash_cycle = cycle, last_flash_figures = ?6 WHERE mac = ?1",
                        params![mac, seconds, bytes, r.reason, r.phase, figures],
                    )?;
                }
            }
            let rec = get_in(&tx, mac)?;
            tx.commit()?;
            Ok(rec)
        })
    }

    /// Records an inventory: disks (sorted-key JSON), and the lshw blob when given (a missing
    /// blob keeps the old one). Completes an armed inventory cycle. `None` for an unknown MAC.
    pub fn record_inventory(
        &self,
        mac: &str,
        disks_json: &str,
        lshw_json: Option<&str>,
        ip: &str,
        now: &str,
    ) -> Result<Option<MachineRecord>> {
        self.write_expendable(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "UPDATE machines SET known_disks = ?2, known_disks_at = ?3, last_seen_at = ?3, last_seen_ip = ?4,
                   updated_at = ?3, hw_lshw = COALESCE(?5, hw_lshw),
                   hw_lshw_at = CASE WHEN ?5 IS NULL THEN hw_lshw_at ELSE ?3 END WHERE mac = ?1",
                params![mac, disks_json, now, ip, lshw_json],
            )?;
            if n == 0 {
                return Ok(None);
            }
            tx.execute(
                "UPDATE machines SET cycle_phase = 'done'
                   WHERE mac = ?1 AND cycle_phase = 'armed' AND boot_mode = 'bty-inventory'",
                [mac],
            )?;
            let rec = get_in(&tx, mac)?;
            tx.commit()?;
            Ok(rec)
        })
    }

    /// The stored lshw blob: `None` for an unknown MAC, `Some(None)` when none was posted.
    pub fn machine_lshw(&self, mac: &str) -> Result<Option<Option<String>>> {
        self.with(|c| {
            c.query_row("SELECT hw_lshw FROM machines WHERE mac = ?1", [mac], |r| r.get(0)).optional()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::now;

    fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("state.db")).unwrap();
        (dir, db)
    }

    fn assign(mode: BootMode) -> Assignment {
        Assignment {
            bty_image_ref: Some("a".repeat(64)),
            labels: vec!["b".into(), "a".into()],
            boot_mode: mode,
            sanboot_drive: None,
            target_disk_serial: Some("S1".into()),
            delta: None,
        }
    }

    const MAC: &str = "aa:bb:cc:dd:ee:ff";
    const OPEN: DiscoveryCaps = DiscoveryCaps { per_hour: 1000, total: 1000 };

    fn contact(db: &Db, mac: &str, caps: DiscoveryCaps) -> Option<(MachineRecord, bool)> {
        match db.machine_contact(mac, "10.0.0.5", &now(), caps).unwrap() {
            Contact::Stored { rec, created } => Some((*rec, created)),
            Contact::Refused => None,
        }
    }

    #[test]
    fn contact_discovers_once_as_inventory() {
        let (_d, db) = db();
        let (rec, created) = contact(&db, MAC, OPEN).unwrap();
        assert!(created);
        assert_eq!(rec.machine.boot_mode, BootMode::BtyInventory);
        assert!(rec.machine.discovered_at.as_deref().unwrap().ends_with('Z'));
        let (_, again) = contact(&db, MAC, OPEN).unwrap();
        assert!(!again);
    }

    #[test]
    fn discovery_stops_at_the_caps_but_known_machines_are_still_seen() {
        let (_d, db) = db();
        let per_hour = DiscoveryCaps { per_hour: 2, total: 1000 };
        assert!(contact(&db, "aa:00:00:00:00:01", per_hour).is_some());
        assert!(contact(&db, "aa:00:00:00:00:02", per_hour).is_some());
        assert!(contact(&db, "aa:00:00:00:00:03", per_hour).is_none());
        assert!(contact(&db, "aa:00:00:00:00:01", per_hour).is_some(), "a known MAC is not a discovery");
        let total = DiscoveryCaps { per_hour: 1000, total: 2 };
        assert!(contact(&db, "aa:00:00:00:00:04", total).is_none());
        assert_eq!(db.machines().unwrap().len(), 2);
    }

    #[test]
    fn changing_the_assignment_starts_a_new_cycle_but_labels_do_not() {
        let (_d, db) = db();
        db.upsert_machine(MAC, &assign(BootMode::BtyFlashOnce), &now()).unwrap();
        db.arm_cycle(MAC, "ip", &now()).unwrap();
        let mut a = assign(BootMode::BtyFlashOnce);
        a.labels = vec!["z".into()];
        let (rec, created) = db.upsert_machine(MAC, &a, &now()).unwrap();
        assert!(!created);
        assert_eq!((rec.phase, rec.machine.labels.clone()), (Phase::Armed, vec!["z".to_string()]));
        a.target_disk_serial = Some("S2".into());
        let (rec2, _) = db.upsert_machine(MAC, &a, &now()).unwrap();
        assert_eq!((rec2.phase, rec2.cycle), (Phase::Pending, rec.cycle + 1));
    }

    #[test]
    fn delta_is_on_by_default_kept_when_unsaid_and_no_new_cycle() {
        let (_d, db) = db();
        let (rec, _) = db.upsert_machine(MAC, &assign(BootMode::BtyFlashOnce), &now()).unwrap();
        assert!(rec.machine.delta);
        let mut a = assign(BootMode::BtyFlashOnce);
        a.delta = Some(false);
        let (off, _) = db.upsert_machine(MAC, &a, &now()).unwrap();
        assert_eq!((off.machine.delta, off.cycle), (false, rec.cycle), "a setting, not a new assignment");
        let (kept, _) = db.upsert_machine(MAC, &assign(BootMode::BtyFlashOnce), &now()).unwrap();
        assert!(!kept.machine.delta, "an upsert that does not say keeps the setting");
    }

    #[test]
    fn done_keeps_the_flash_figures_and_a_later_done_without_them_clears_them() {
        let (_d, db) = db();
        db.upsert_machine(MAC, &assign(BootMode::BtyFlashAlways), &now()).unwrap();
        let figures = FlashFigures {
            image_bytes: 8 << 20,
            bytes_fetched: Some(1 << 20),
            bytes_written: 1 << 20,
            chunks_compared: Some(8),
            chunks_unchanged: Some(7),
            chunks_fetched: Some(1),
        };
        let mut report = StatusReport {
            outcome: FlashOutcome::Done,
            bytes: None,
            image_sha256: None,
            reason: None,
            phase: None,
            figures: Some(figures.clone()),
        };
        let rec = db.record_status(MAC, &report, "ip", &now()).unwrap().unwrap();
        assert_eq!(rec.machine.last_flash_figures, Some(figures));
        report.figures = None;
        let rec = db.record_status(MAC, &report, "ip", &now()).unwrap().unwrap();
        assert_eq!(rec.machine.last_flash_figures, None, "figures belong to the flash that reported them");
    }

    #[test]
    fn done_completes_only_an_armed_cycle() {
        let (_d, db) = db();
        db.upsert_machine(MAC, &assign(BootMode::BtyFlashAlways), &now()).unwrap();
        let report = StatusReport {
            outcome: FlashOutcome::Done,
            bytes: Some(10),
            image_sha256: None,
            reason: None,
            phase: None,
            figures: None,
        };
        let rec = db.record_status(MAC, &report, "ip", &now()).unwrap().unwrap();
        assert_eq!(rec.phase, Phase::Pending, "done without a flasher boot does not complete the cycle");
        assert_eq!(db.arm_cycle(MAC, "ip", &now()).unwrap(), Some(true));
        assert_eq!(db.arm_cycle(MAC, "ip", &now()).unwrap(), Some(false));
        let rec = db.record_status(MAC, &report, "ip", &now()).unwrap().unwrap();
        assert_eq!(rec.phase, Phase::Done);
        assert_eq!(rec.machine.last_flash_bytes, Some(10));
        assert!(db.end_cycle(MAC, rec.cycle).unwrap());
        assert!(!db.end_cycle(MAC, rec.cycle).unwrap(), "a cycle closes once");
        assert_eq!(db.machine(MAC).unwrap().unwrap().phase, Phase::Pending);
    }

    #[test]
    fn a_failure_keeps_its_reason_and_phase_and_flash_again_starts_a_clean_cycle() {
        let (_d, db) = db();
        db.upsert_machine(MAC, &assign(BootMode::BtyFlashOnce), &now()).unwrap();
        db.arm_cycle(MAC, "ip", &now()).unwrap();
        let report = StatusReport {
            outcome: FlashOutcome::Failed,
            bytes: Some(5),
            image_sha256: None,
            reason: Some("disk vanished".into()),
            phase: Some("write".into()),
            figures: None,
        };
        let rec = db.record_status(MAC, &report, "ip", &now()).unwrap().unwrap();
        assert!(rec.failed_now());
        assert_eq!(rec.machine.last_flash_reason.as_deref(), Some("disk vanished"));
        assert_eq!(
            (rec.machine.last_flash_phase.as_deref(), rec.machine.last_flash_bytes),
            (Some("write"), Some(5))
        );
        let again = db.rearm_machine(MAC, &now()).unwrap().unwrap();
        assert_eq!((again.cycle, again.phase), (rec.cycle + 1, Phase::Pending));
        assert!(!again.failed_now(), "a new cycle is not failed yet");
        assert_eq!(again.machine.last_flash_reason.as_deref(), Some("disk vanished"), "the record stays");
        assert!(db.rearm_machine("00:00:00:00:00:01", &now()).unwrap().is_none());
    }

    #[test]
    fn status_and_inventory_never_create_rows() {
        let (_d, db) = db();
        let report = StatusReport {
            outcome: FlashOutcome::Failed,
            bytes: None,
            image_sha256: None,
            reason: None,
            phase: None,
            figures: None,
        };
        assert!(db.record_status(MAC, &report, "ip", &now()).unwrap().is_none());
        assert!(db.record_inventory(MAC, "[]", None, "ip", &now()).unwrap().is_none());
        assert!(db.machines().unwrap().is_empty());
    }

    #[test]
    fn inventory_keeps_the_old_lshw_when_none_is_posted() {
        let (_d, db) = db();
        contact(&db, MAC, OPEN).unwrap();
        db.record_inventory(MAC, "[]", Some("{\"a\":1}"), "ip", &now()).unwrap();
        db.record_inventory(MAC, "[{\"path\":\"/dev/sda\"}]", None, "ip", &now()).unwrap();
        assert_eq!(db.machine_lshw(MAC).unwrap(), Some(Some("{\"a\":1}".to_string())));
        let rec = db.machine(MAC).unwrap().unwrap();
        assert_eq!(rec.machine.known_disks.unwrap().len(), 1);
    }
}
