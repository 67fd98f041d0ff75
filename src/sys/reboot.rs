//! `sync(2)` and `reboot(2)`: how the plan agent ends a cycle, and how the stick powers off.

use crate::error::{Context, Result};

/// Flushes every filesystem buffer to its device (see sync(2)).
pub fn sync() {
    rustix::fs::sync();
}

/// Restarts the machine at once (`reboot(RB_AUTOBOOT)`, see reboot(2)); call [`sync`] first.
///
/// Returns only on failure (e.g. not PID 1 in the initial namespace, or no CAP_SYS_BOOT).
pub fn reboot() -> Result<()> {
    rustix::system::reboot(rustix::system::RebootCommand::Restart)
        .map_err(std::io::Error::from)
        .context("rebooting")
}

/// Switches the machine off at once (`reboot(RB_POWER_OFF)`, see reboot(2)); call [`sync`]
/// first. Returns only on failure, like [`reboot`].
pub fn power_off() -> Result<()> {
    rustix::system::reboot(rustix::system::RebootCommand::PowerOff)
        .map_err(std::io::Error::from)
        .context("powering off")
}
