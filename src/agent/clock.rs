//! Setting the system clock from the server's HTTP `Date` when it is far off.
//!
//! A netboot machine's clock may start in 1970 (dead RTC battery) or years off; TLS to an OCI
//! registry then fails on certificate dates. Upstream's rule is kept: step only when the skew
//! exceeds a minute, and never backwards (a clock ahead of the server is left alone, since
//! stepping back can confuse whatever already ran). HTTP dates have one-second resolution,
//! which is plenty for certificates.

use crate::error::{Context, Result};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Skew below which the clock is left alone.
pub const MAX_SKEW: Duration = Duration::from_secs(60);

/// The time to step to, if `now` is more than [`MAX_SKEW`] behind `server`.
pub fn step_needed(now: SystemTime, server: SystemTime) -> Option<SystemTime> {
    let behind = server.duration_since(now).ok()?;
    (behind > MAX_SKEW).then_some(server)
}

/// Sets CLOCK_REALTIME to `to` (see clock_settime(2)); needs CAP_SYS_TIME.
pub fn set(to: SystemTime) -> Result<()> {
    let since = to.duration_since(UNIX_EPOCH).unwrap_or_default();
    let ts = rustix::time::Timespec { tv_sec: since.as_secs() as i64, tv_nsec: since.subsec_nanos() as _ };
    rustix::time::clock_settime(rustix::time::ClockId::Realtime, ts)
        .map_err(std::io::Error::from)
        .context("setting the clock from the server's Date header")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_only_forward_and_only_beyond_a_minute() {
        let server = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(step_needed(UNIX_EPOCH, server), Some(server), "a 1970 clock is stepped");
        assert_eq!(step_needed(server - Duration::from_secs(30), server), None, "30 s is fine");
        assert_eq!(step_needed(server + Duration::from_secs(3600), server), None, "never backwards");
    }
}
