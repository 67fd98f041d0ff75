//! A tiny leveled logger to stderr, set by `BTY_LOG` (error|warn|info|debug; default info).
//!
//! Deliberately minimal: one line per event, no timestamps when stderr is a journal
//! (systemd adds them), no global registry of targets. Servers log access lines at info.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

/// Severity of a log line; a line is printed when its level is at or below the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Something failed and the user must act.
    Error = 0,
    /// Something looks wrong but work goes on.
    Warn = 1,
    /// Normal progress worth a line (startup, access log, transfer done).
    Info = 2,
    /// Detail for debugging.
    Debug = 3,
}

static THRESHOLD: AtomicU8 = AtomicU8::new(u8::MAX);

/// The current threshold, read once from `BTY_LOG` on first use.
pub fn threshold() -> Level {
    let v = THRESHOLD.load(Ordering::Relaxed);
    if v != u8::MAX {
        return from_u8(v);
    }
    let level = std::env::var("BTY_LOG").ok().and_then(|s| parse_level(&s)).unwrap_or(Level::Info);
    THRESHOLD.store(level as u8, Ordering::Relaxed);
    level
}

/// Overrides the threshold (e.g. `--quiet`, or tests).
pub fn set_threshold(level: Level) {
    THRESHOLD.store(level as u8, Ordering::Relaxed);
}

/// Parses a `BTY_LOG` value; `None` for anything unknown.
pub fn parse_level(s: &str) -> Option<Level> {
    match s.trim().to_ascii_lowercase().as_str() {
        "error" => Some(Level::Error),
        "warn" | "warning" => Some(Level::Warn),
        "info" => Some(Level::Info),
        "debug" | "trace" => Some(Level::Debug),
        _ => None,
    }
}

fn from_u8(v: u8) -> Level {
    match v {
        0 => Level::Error,
        1 => Level::Warn,
        2 => Level::Info,
        _ => Level::Debug,
    }
}

/// Writes one line if `level` passes the threshold. Use the `error!`..`debug!` macros.
pub fn write(level: Level, args: std::fmt::Arguments<'_>) {
    if level > threshold() {
        return;
    }
    let tag = match level {
        Level::Error => "error",
        Level::Warn => "warn",
        Level::Info => "info",
        Level::Debug => "debug",
    };
    // One write call per line so lines from threads do not interleave.
    let line = format!("bty: {tag}: {args}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Logs at error level.
#[macro_export]
macro_rules! log_error { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Error, format_args!($($t)*)) } }
/// Logs at warn level.
#[macro_export]
macro_rules! log_warn { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Warn, format_args!($($t)*)) } }
/// Logs at info level.
#[macro_export]
macro_rules! log_info { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Info, format_args!($($t)*)) } }
/// Logs at debug level.
#[macro_export]
macro_rules! log_debug { ($($t:tt)*) => { $crate::log::write($crate::log::Level::Debug, format_args!($($t)*)) } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_level_accepts_documented_names_only() {
        assert_eq!(parse_level("DEBUG"), Some(Level::Debug));
        assert_eq!(parse_level("warn"), Some(Level::Warn));
        assert_eq!(parse_level("loud"), None);
    }
}
