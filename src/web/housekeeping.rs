//! The background thread that keeps state bounded: prunes events past the configured
//! retention (newest N, D days, and `[limits] events_max_rows`) and expired sessions, once at
//! start and then hourly, and writes the tally of repeated events (`tally.rs`) every
//! [`FLUSH_EVERY`], and tells open pages when a flash stalls (`progress::announce_stalls`).

use super::context::AppContext;
use super::tally::FLUSH_EVERY;
use std::sync::Arc;
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_secs(3600);

/// Starts the thread; it ends when shutdown begins.
pub fn start(ctx: Arc<AppContext>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut last: Option<Instant> = None;
        let mut flushed = Instant::now();
        while !ctx.shutting_down() {
            if last.is_none_or(|t| t.elapsed() >= EVERY) {
                prune(&ctx);
                last = Some(Instant::now());
            }
            if flushed.elapsed() >= FLUSH_EVERY {
                flush_tally(&ctx);
                flushed = Instant::now();
            }
            super::progress::announce_stalls(&ctx);
            std::thread::sleep(Duration::from_millis(200));
        }
    })
}

/// Writes the summaries of repeated events counted since the last flush.
pub fn flush_tally(ctx: &AppContext) {
    for e in ctx.tally.drain() {
        ctx.audit(None, e);
    }
}

fn prune(ctx: &AppContext) {
    let t = &ctx.config.tuning;
    match ctx.db.prune_events(t.events_keep_days, t.events_keep_max) {
        Ok(0) => {}
        Ok(n) => crate::log_info!(
            "pruned {n} events (keep {} days, at most {})",
            t.events_keep_days,
            t.events_keep_max
        ),
        Err(e) => crate::log_warn!("pruning events: {e}"),
    }
    ctx.trim_events();
    if let Err(e) = ctx.db.prune_sessions(time::OffsetDateTime::now_utc().unix_timestamp()) {
        crate::log_warn!("pruning sessions: {e}");
    }
}
