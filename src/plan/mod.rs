//! Machine state → what a PXE contact gets: pure functions, no I/O.
//!
//! [`decide`] is the one decision tree behind both `GET /pxe/{mac}` (which script iPXE runs) and
//! `GET /pxe/{mac}/plan` (what the netboot agent does), so the two always agree (SPEC §4). Boot
//! cycles are tracked per cycle ([`Phase`]): arming a flash starts a cycle, only a `done` posted
//! in that cycle completes it, and only a completed cycle boots the disk, so a crash in any cycle
//! boots the flasher again, never a half-written disk. Rendering the iPXE text is `web/`'s job;
//! this module says which script and with what values.

use crate::wire::{BootMode, Plan};

/// Where a machine is in its current boot cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The netboot environment has not been fetched in this cycle.
    Pending,
    /// The kernel/initrd were fetched (`/boot/...?mac=`): the environment is running.
    Armed,
    /// The environment reported completion (`status done`, or the inventory) in this cycle.
    Done,
}

impl Phase {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Armed => "armed",
            Phase::Done => "done",
        }
    }

    /// Parses a stored name; anything unknown is treated as `Pending` (boots the environment,
    /// never the disk).
    pub fn parse(s: &str) -> Phase {
        match s {
            "armed" => Phase::Armed,
            "done" => Phase::Done,
            _ => Phase::Pending,
        }
    }
}

/// The parts of a machine the decision reads.
#[derive(Debug, Clone, Copy)]
pub struct MachineState<'a> {
    /// Operator intent.
    pub mode: BootMode,
    /// Bound image ref.
    pub image_ref: Option<&'a str>,
    /// Target disk serial.
    pub target_disk_serial: Option<&'a str>,
    /// BIOS drive for sanboot (`0x80` when unset).
    pub sanboot_drive: Option<&'a str>,
    /// Current cycle phase.
    pub phase: Phase,
    /// Reflash by delta (the plan's `delta`).
    pub delta: bool,
}

/// The bound image, as the server can serve or point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageTarget {
    /// Catalog name.
    pub name: String,
    /// Where the agent fetches the bytes.
    pub url: String,
    /// Content sha256, when known.
    pub sha256: Option<String>,
    /// Catalog format id, when known.
    pub format: Option<String>,
}

/// Why the netboot environment is booted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Write the bound image.
    Flash,
    /// The interactive wizard.
    Tui,
    /// Post an inventory and reboot.
    Inventory,
}

/// Why the disk is booted with a plain `exit` (reference `ipxe.j2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// A flash mode without a target disk serial.
    NoTargetDisk,
    /// A flash mode bound to an image the server does not know.
    OrphanRef,
}

/// Which script a PXE contact gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// Chain the netboot kernel and initrd (`netboot.j2`).
    Netboot {
        /// What the environment will do.
        purpose: Purpose,
        /// The cycle was armed but not completed: a retry after a crash or reboot.
        retry: bool,
    },
    /// Boot the local disk, firmware-aware (`sanboot.j2`).
    Disk {
        /// BIOS drive.
        drive: String,
    },
    /// Return to the firmware (`exit.j2`).
    Exit(ExitReason),
    /// No usable assignment: boot the disk at 0x80 (`unknown.j2`).
    Unknown,
}

/// The decision for one contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The script to send.
    pub offer: Offer,
    /// Whether a PXE contact with this decision closes the cycle (the alternating modes after
    /// their disk boot). `/plan` never closes cycles.
    pub end_cycle: bool,
    /// The reference's `offer_kind` for the audit log (`bty-flash-once`, `exit-fallback`, …):
    /// scripts and upstream's tests match on these values, so they are the reference's exactly.
    pub offer_kind: &'static str,
}

/// The decision tree (reference §4.5 with SPEC §4's fixes).
pub fn decide(m: &MachineState<'_>, image: Option<&ImageTarget>) -> Decision {
    let drive = || m.sanboot_drive.unwrap_or("0x80").to_string();
    let netboot = |purpose, offer_kind| Decision {
        offer: Offer::Netboot { purpose, retry: m.phase == Phase::Armed },
        end_cycle: false,
        offer_kind,
    };
    let exit =
        |reason| Decision { offer: Offer::Exit(reason), end_cycle: false, offer_kind: "exit-fallback" };
    match m.mode {
        BootMode::BtyTui => Decision {
            offer: Offer::Netboot { purpose: Purpose::Tui, retry: false },
            end_cycle: false,
            offer_kind: "bty-tui",
        },
        BootMode::BtyInventory if m.phase == Phase::Done => Decision {
            offer: Offer::Disk { drive: drive() },
            end_cycle: true,
            offer_kind: "bty-inventory-ipxe-exit",
        },
        BootMode::BtyInventory => netboot(Purpose::Inventory, "bty-inventory"),
        BootMode::IpxeExit => {
            Decision { offer: Offer::Disk { drive: drive() }, end_cycle: false, offer_kind: "ipxe-exit" }
        }
        BootMode::BtyFlashAlways | BootMode::BtyFlashOnce => match (m.image_ref, image, m.target_disk_serial)
        {
            (None, _, _) => Decision { offer: Offer::Unknown, end_cycle: false, offer_kind: "unknown" },
            (Some(_), None, _) => exit(ExitReason::OrphanRef),
            (Some(_), Some(_), None) => exit(ExitReason::NoTargetDisk),
            (Some(_), Some(_), Some(_)) if m.phase == Phase::Done => Decision {
                offer: Offer::Disk { drive: drive() },
                // flash-once is terminal: its completed cycle stays completed.
                end_cycle: m.mode == BootMode::BtyFlashAlways,
                offer_kind: if m.mode == BootMode::BtyFlashAlways {
                    "bty-flash-always-ipxe-exit"
                } else {
                    "bty-flash-once-ipxe-exit"
                },
            },
            (Some(_), Some(_), Some(_)) => netboot(Purpose::Flash, m.mode.as_str()),
        },
    }
}

impl Decision {
    /// The `details` of the `netboot.pxe.offered` event, with the reference's keys and values
    /// (§4.5: `boot_mode`, `offer`, `offer_kind`, `reason`, `bty_image_ref`, the retry flags).
    pub fn offered_details(&self, m: &MachineState<'_>, image: Option<&ImageTarget>) -> serde_json::Value {
        use serde_json::json;
        let mut d = match &self.offer {
            Offer::Netboot { purpose: Purpose::Flash, retry } => {
                let mut d = json!({
                    "offer": m.mode.as_str(), "bty_image_ref": m.image_ref,
                    "image_name": image.map(|i| i.name.as_str()), "target_disk_serial": m.target_disk_serial,
                });
                if *retry {
                    d["retry_after_armed_no_done"] = json!(true);
                }
                d
            }
            Offer::Netboot { purpose: Purpose::Inventory, retry } => {
                let mut d = json!({ "offer": "bty-inventory" });
                if *retry {
                    d["retry_after_armed_no_post"] = json!(true);
                }
                d
            }
            Offer::Netboot { purpose: Purpose::Tui, .. } => json!({ "offer": "bty-tui" }),
            Offer::Disk { drive } => {
                let mut d = json!({ "offer": "ipxe-exit", "sanboot_drive": drive });
                match m.mode {
                    BootMode::BtyInventory => d["after_inventory"] = json!(true),
                    BootMode::BtyFlashAlways | BootMode::BtyFlashOnce => {
                        d["ipxe_exit_after_flash"] = json!(true)
                    }
                    _ => {}
                }
                d
            }
            Offer::Exit(reason) => json!({
                "offer": "exit-fallback", "bty_image_ref": m.image_ref,
                "reason": match reason {
                    ExitReason::NoTargetDisk => "no_target_disk",
                    ExitReason::OrphanRef => "orphan_ref",
                },
            }),
            Offer::Unknown => json!({ "offer": "unknown" }),
        };
        d["boot_mode"] = json!(m.mode.as_str());
        d["offer_kind"] = json!(self.offer_kind);
        d
    }
}

/// The reference's `offer_kind` of a `netboot.pxe.plan` event (§4.4): `plan:flash:<mode>`,
/// `plan:interactive:tui`, `plan:inventory`, `plan:exit:<mode>`.
pub fn plan_kind(plan: &Plan, mode: BootMode) -> String {
    match plan {
        Plan::Flash { .. } => format!("plan:flash:{}", mode.as_str()),
        Plan::Interactive { .. } => "plan:interactive:tui".to_string(),
        Plan::Inventory => "plan:inventory".to_string(),
        Plan::Exit => format!("plan:exit:{}", mode.as_str()),
    }
}

/// The agent plan for a decision: flash only when the netboot environment was chosen to flash.
pub fn plan_for(d: &Decision, m: &MachineState<'_>, image: Option<&ImageTarget>, base: &str) -> Plan {
    match (&d.offer, image, m.target_disk_serial) {
        (Offer::Netboot { purpose: Purpose::Flash, .. }, Some(img), Some(serial)) => Plan::Flash {
            image: img.url.clone(),
            target_disk_serial: serial.to_string(),
            name: img.name.clone(),
            disk_image_sha: img.sha256.clone(),
            format: img.format.clone(),
            delta: Some(m.delta),
        },
        (Offer::Netboot { purpose: Purpose::Tui, .. }, _, _) => {
            Plan::Interactive { catalog: Some(format!("{base}/catalog.toml")) }
        }
        (Offer::Netboot { purpose: Purpose::Inventory, .. }, _, _) => Plan::Inventory,
        _ => Plan::Exit,
    }
}

/// The lifecycle label of reference §4.7 for the machines page; empty for modes without cycles.
pub fn boot_state(mode: BootMode, phase: Phase) -> &'static str {
    match (mode, phase) {
        (BootMode::BtyFlashOnce | BootMode::BtyFlashAlways, Phase::Done) => "flashed; booting disk",
        (BootMode::BtyFlashOnce | BootMode::BtyFlashAlways, Phase::Armed) => {
            "live env running; awaiting flash"
        }
        (BootMode::BtyFlashOnce, Phase::Pending) => "pending flash",
        (BootMode::BtyFlashAlways, Phase::Pending) => "ready to flash",
        (BootMode::BtyInventory, Phase::Done) => "inventoried; booting disk",
        (BootMode::BtyInventory, Phase::Armed) => "live env running; awaiting inventory",
        (BootMode::BtyInventory, Phase::Pending) => "pending inventory",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REF: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn image() -> ImageTarget {
        ImageTarget {
            name: "debian.img.zst".into(),
            url: "http://h:8080/images/r/debian.img.zst".into(),
            sha256: Some("b".repeat(64)),
            format: Some("img.zst".into()),
        }
    }

    fn state(mode: BootMode, phase: Phase) -> MachineState<'static> {
        MachineState {
            mode,
            image_ref: Some(REF),
            target_disk_serial: Some("S1"),
            sanboot_drive: None,
            phase,
            delta: true,
        }
    }

    /// (mode, phase, image known, expected offer, end_cycle, expected plan mode)
    #[test]
    fn decision_table() {
        use BootMode::*;
        use Phase::*;
        let disk = Offer::Disk { drive: "0x80".into() };
        let flash = |retry| Offer::Netboot { purpose: Purpose::Flash, retry };
        let cases: Vec<(BootMode, Phase, bool, Offer, bool, &str)> = vec![
            (BtyFlashAlways, Pending, true, flash(false), false, "flash"),
            (BtyFlashAlways, Armed, true, flash(true), false, "flash"),
            (BtyFlashAlways, Done, true, disk.clone(), true, "exit"),
            (BtyFlashOnce, Pending, true, flash(false), false, "flash"),
            (BtyFlashOnce, Armed, true, flash(true), false, "flash"),
            (BtyFlashOnce, Done, true, disk.clone(), false, "exit"),
            (BtyFlashOnce, Pending, false, Offer::Exit(ExitReason::OrphanRef), false, "exit"),
            (
                BtyInventory,
                Pending,
                true,
                Offer::Netboot { purpose: Purpose::Inventory, retry: false },
                false,
                "inventory",
            ),
            (
                BtyInventory,
                Armed,
                true,
                Offer::Netboot { purpose: Purpose::Inventory, retry: true },
                false,
                "inventory",
            ),
            (BtyInventory, Done, true, disk.clone(), true, "exit"),
            (
                BtyTui,
                Done,
                true,
                Offer::Netboot { purpose: Purpose::Tui, retry: false },
                false,
                "interactive",
            ),
            (IpxeExit, Armed, true, disk.clone(), false, "exit"),
        ];
        for (mode, phase, known, offer, end, plan_mode) in cases {
            let m = state(mode, phase);
            let img = image();
            let img = known.then_some(&img);
            let d = decide(&m, img);
            assert_eq!((&d.offer, d.end_cycle), (&offer, end), "{mode:?} {phase:?} known={known}");
            let plan = serde_json::to_value(plan_for(&d, &m, img, "http://h:8080")).unwrap();
            assert_eq!(plan["mode"], plan_mode, "{mode:?} {phase:?}");
        }
    }

    #[test]
    fn flash_modes_without_ref_or_serial_never_flash() {
        let mut m = state(BootMode::BtyFlashAlways, Phase::Pending);
        m.image_ref = None;
        assert_eq!(decide(&m, None).offer, Offer::Unknown);
        let mut m = state(BootMode::BtyFlashAlways, Phase::Pending);
        m.target_disk_serial = None;
        let d = decide(&m, Some(&image()));
        assert_eq!(d.offer, Offer::Exit(ExitReason::NoTargetDisk));
        assert_eq!(plan_for(&d, &m, Some(&image()), "http://h"), Plan::Exit);
    }

    #[test]
    fn flash_plan_carries_url_serial_sha_and_format() {
        let m = state(BootMode::BtyFlashOnce, Phase::Armed);
        let d = decide(&m, Some(&image()));
        let plan = plan_for(&d, &m, Some(&image()), "http://h:8080");
        assert_eq!(
            plan,
            Plan::Flash {
                image: "http://h:8080/images/r/debian.img.zst".into(),
                target_disk_serial: "S1".into(),
                name: "debian.img.zst".into(),
                disk_image_sha: Some("b".repeat(64)),
                format: Some("img.zst".into()),
                delta: Some(true),
            }
        );
    }

    #[test]
    fn sanboot_drive_is_used_for_disk_boots() {
        let mut m = state(BootMode::IpxeExit, Phase::Pending);
        m.sanboot_drive = Some("0x81");
        assert_eq!(decide(&m, None).offer, Offer::Disk { drive: "0x81".into() });
    }

    #[test]
    fn unknown_stored_phase_boots_the_environment_not_the_disk() {
        assert_eq!(Phase::parse("garbage"), Phase::Pending);
    }

    #[test]
    fn boot_state_labels_follow_the_reference() {
        assert_eq!(boot_state(BootMode::BtyFlashAlways, Phase::Pending), "ready to flash");
        assert_eq!(boot_state(BootMode::BtyInventory, Phase::Done), "inventoried; booting disk");
        assert_eq!(boot_state(BootMode::IpxeExit, Phase::Done), "");
    }
}
