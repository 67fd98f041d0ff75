//! A machine's lifecycle as operators read it: `flashing 42%` while progress arrives, `failed`
//! after the netboot agent reported a failure (in any mode, until a cycle completes), otherwise
//! the cycle label the plan module derives (`pending flash`, `live env running; awaiting flash`,
//! `flashed; booting disk`, …) or the mode's plain meaning.
//!
//! A flash whose bytes have not moved for `[ui] stall_seconds` reads `stalled in PHASE`
//! until they move again or the agent reports.
//!
//! One function so the machines table, the machine page and the dashboard never disagree.

use crate::db::MachineRecord;
use crate::plan::{Decision, ExitReason, Offer, Purpose};
use crate::web::context::AppContext;
use crate::web::progress::{LiveProgress, Shown};
use crate::wire::BootMode;

/// What the UI shows for one machine.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Lifecycle {
    /// Human label.
    pub label: String,
    /// CSS modifier: `busy`, `ok`, `bad`, `wait`, `idle`.
    pub tone: &'static str,
    /// Percent written, while flashing with a known total.
    pub percent: Option<u8>,
    /// The agent's phase name, while flashing.
    pub phase: Option<String>,
    /// Rate, time left and stall state, while flashing.
    pub live: Option<Shown>,
}

/// The live progress for `mac` and what to show of it (see [`crate::web::progress`]).
pub fn live(ctx: &AppContext, mac: &str) -> Option<(LiveProgress, Shown)> {
    crate::web::progress::live(ctx, mac)
}

/// What the machine's next PXE boot does, in the operator's words, for the decision
/// [`crate::web::handlers::pxe::next_decision`] made.
pub fn next_boot(d: &Decision) -> &'static str {
    match &d.offer {
        Offer::Netboot { purpose: Purpose::Flash, retry: true } => {
            "The next PXE boot retries the flash (same cycle)."
        }
        Offer::Netboot { purpose: Purpose::Flash, retry: false } => {
            "Flashes on its next PXE boot — power-cycle it."
        }
        Offer::Netboot { purpose: Purpose::Inventory, .. } => "The next PXE boot reports its inventory.",
        Offer::Netboot { purpose: Purpose::Tui, .. } => "The next PXE boot opens the wizard.",
        Offer::Disk { .. } | Offer::Unknown => "The next PXE boot boots the local disk.",
        Offer::Exit(ExitReason::NoTargetDisk) => {
            "The next PXE boot returns to the firmware: no target disk is set."
        }
        Offer::Exit(ExitReason::OrphanRef) => {
            "The next PXE boot returns to the firmware: the bound image is not in the catalog."
        }
    }
}

/// Percent of `written` over `total`, clamped to 0..=100.
pub fn percent(written: u64, total: Option<u64>) -> Option<u8> {
    total.filter(|t| *t > 0).map(|t| (written.saturating_mul(100) / t).min(100) as u8)
}

/// The lifecycle of `rec` given its live progress.
pub fn of(rec: &MachineRecord, live: Option<&(LiveProgress, Shown)>) -> Lifecycle {
    let m = &rec.machine;
    if let Some((l, shown)) = live {
        let pct = percent(l.progress.bytes_written, l.progress.total_bytes);
        let phase = Some(l.progress.phase.clone()).filter(|p| !p.is_empty());
        // A stall names the phase it stopped in: "stalled in write" tells download from disk.
        let (label, tone) = match (shown.stalled, pct, &phase) {
            (true, _, Some(ph)) => (format!("stalled in {ph}"), "wait"),
            (true, _, None) => ("stalled".to_string(), "wait"),
            (false, Some(p), _) => (format!("flashing {p}%"), "busy"),
            (false, None, _) => ("flashing".to_string(), "busy"),
        };
        return Lifecycle { label, tone, percent: pct, phase, live: Some(shown.clone()) };
    }
    let plain =
        |label: &str, tone| Lifecycle { label: label.into(), tone, percent: None, phase: None, live: None };
    if rec.failed_now() {
        return plain("failed", "bad");
    }
    if !m.boot_state.is_empty() {
        let tone = if m.boot_state.starts_with("flashed") || m.boot_state.starts_with("inventoried") {
            "ok"
        } else if m.boot_state.starts_with("live env") {
            "busy"
        } else {
            "wait"
        };
        let label = m.boot_state.strip_suffix("; booting disk").unwrap_or(&m.boot_state);
        return plain(label, tone);
    }
    match m.boot_mode {
        BootMode::IpxeExit => plain("local disk", "idle"),
        BootMode::BtyTui => plain("interactive wizard", "idle"),
        _ => plain("—", "idle"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_is_clamped_and_needs_a_total() {
        assert_eq!(percent(50, Some(200)), Some(25));
        assert_eq!(percent(300, Some(200)), Some(100));
        assert_eq!(percent(1, None), None);
        assert_eq!(percent(1, Some(0)), None);
    }
}
