//! Live flash progress as the UI reads it: what the netboot agent last posted, the transfer
//! rate and time left derived from the posts, and whether the flash has stalled (its bytes have
//! not moved for longer than `[ui] stall_seconds`).
//!
//! Kept in memory only (a restart forgets it, as it forgets the agent's connection); the
//! `done`/`failed` status, a new cycle or deleting the machine removes an entry. The
//! housekeeping thread calls [`announce_stalls`] so open pages learn of a stall through the
//! SSE stream although no post arrives to tell them.

use super::context::AppContext;
use crate::wire::Progress;
use std::time::{Duration, Instant};

/// The last post of a running flash and the history the rate needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveProgress {
    /// The last post.
    pub progress: Progress,
    /// Bytes and time of the first post of this run: the rate is the average since.
    started: (u64, Instant),
    /// When `bytes_written` last grew (or the run started).
    moved: Instant,
    /// Whether SSE subscribers were told this stall already (one message per stall).
    stall_announced: bool,
}

/// What the pages show of one live flash.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Shown {
    /// Average bytes per second since the run started, once it has moved.
    pub rate: Option<u64>,
    /// Seconds left at that rate, when the total is known.
    pub eta_seconds: Option<u64>,
    /// Whether the bytes have not moved for longer than the threshold.
    pub stalled: bool,
    /// Whole seconds since the bytes last moved.
    pub still_seconds: u64,
}

impl LiveProgress {
    /// The entry after post `p` arrived at `now`, given the previous one. A post with fewer
    /// bytes than before is a new run (the agent restarted) and restarts the rate.
    pub fn after(prev: Option<LiveProgress>, p: Progress, now: Instant) -> LiveProgress {
        match prev {
            Some(prev) if p.bytes_written >= prev.progress.bytes_written => {
                let grew = p.bytes_written > prev.progress.bytes_written;
                LiveProgress {
                    started: prev.started,
                    moved: if grew { now } else { prev.moved },
                    stall_announced: prev.stall_announced && !grew,
                    progress: p,
                }
            }
            _ => LiveProgress {
                started: (p.bytes_written, now),
                moved: now,
                stall_announced: false,
                progress: p,
            },
        }
    }

    /// Rate, time left and stall state at `now` with the stall threshold `stall`.
    pub fn shown(&self, now: Instant, stall: Duration) -> Shown {
        let (b0, t0) = self.started;
        let ms = self.moved.saturating_duration_since(t0).as_millis();
        let moved_bytes = u128::from(self.progress.bytes_written.saturating_sub(b0));
        // Under a second of history says nothing about the rate.
        let rate = (ms >= 1000).then(|| (moved_bytes * 1000 / ms) as u64).filter(|r| *r > 0);
        let eta_seconds = match (rate, self.progress.total_bytes) {
            (Some(r), Some(total)) => Some(total.saturating_sub(self.progress.bytes_written).div_ceil(r)),
            _ => None,
        };
        let still = now.saturating_duration_since(self.moved);
        Shown { rate, eta_seconds, stalled: still > stall, still_seconds: still.as_secs() }
    }
}

/// The stall threshold in effect (`[ui] stall_seconds`, editable on the Settings page).
pub fn stall_threshold(ctx: &AppContext) -> Duration {
    Duration::from_secs(super::settings::u64_of(ctx, "ui", "stall_seconds"))
}

/// The live progress of `mac` and what to show of it now.
pub fn live(ctx: &AppContext, mac: &str) -> Option<(LiveProgress, Shown)> {
    let stall = stall_threshold(ctx);
    let map = ctx.progress.lock().unwrap_or_else(|p| p.into_inner());
    let p = map.get(mac)?.clone();
    let shown = p.shown(Instant::now(), stall);
    Some((p, shown))
}

/// Records post `p` for `mac` and returns what to show (for the SSE message).
pub fn record(ctx: &AppContext, mac: &str, p: Progress) -> Shown {
    let stall = stall_threshold(ctx);
    let now = Instant::now();
    let mut map = ctx.progress.lock().unwrap_or_else(|p| p.into_inner());
    let entry = LiveProgress::after(map.remove(mac), p, now);
    let shown = entry.shown(now, stall);
    map.insert(mac.to_string(), entry);
    shown
}

/// Tells SSE subscribers once about each flash that stalled since the last call (a `machine`
/// message: pages re-render the machine from the server).
pub fn announce_stalls(ctx: &AppContext) {
    // Called five times a second: no settings read while nothing is flashing.
    if ctx.progress.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
        return;
    }
    let stall = stall_threshold(ctx);
    let now = Instant::now();
    let mut newly = Vec::new();
    {
        let mut map = ctx.progress.lock().unwrap_or_else(|p| p.into_inner());
        for (mac, p) in map.iter_mut() {
            if !p.stall_announced && p.shown(now, stall).stalled {
                p.stall_announced = true;
                newly.push(mac.clone());
            }
        }
    }
    for mac in newly {
        ctx.bus.publish("machine", &serde_json::json!({ "mac": mac, "stalled": true }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(bytes: u64) -> Progress {
        Progress { bytes_written: bytes, total_bytes: Some(1000), phase: "write".into(), figures: None }
    }

    #[test]
    fn rate_and_time_left_are_the_average_since_the_run_started() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let p = LiveProgress::after(None, post(0), t0);
        assert_eq!(p.shown(t0, s(60)).rate, None, "one post says nothing about the rate");
        let p = LiveProgress::after(Some(p), post(100), t0 + s(2));
        let shown = p.shown(t0 + s(2), s(60));
        assert_eq!((shown.rate, shown.eta_seconds, shown.stalled), (Some(50), Some(18), false));
        // A lower count is a new run: the rate starts over.
        let p = LiveProgress::after(Some(p), post(10), t0 + s(3));
        assert_eq!(p.shown(t0 + s(3), s(60)).rate, None);
    }

    #[test]
    fn a_flash_whose_bytes_do_not_move_past_the_threshold_is_stalled_until_they_move() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let p = LiveProgress::after(None, post(100), t0);
        // Posts that repeat the same count do not count as movement.
        let p = LiveProgress::after(Some(p), post(100), t0 + s(50));
        assert!(!p.shown(t0 + s(60), s(60)).stalled);
        let shown = p.shown(t0 + s(61), s(60));
        assert!(shown.stalled);
        assert_eq!(shown.still_seconds, 61);
        let p = LiveProgress::after(Some(p), post(101), t0 + s(62));
        assert!(!p.shown(t0 + s(62), s(60)).stalled);
    }
}
