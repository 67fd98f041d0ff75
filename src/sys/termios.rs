//! Terminal line settings (termios(3)) and window size on a file descriptor.
//!
//! Thin, named wrappers over rustix's safe termios calls, so the tui says what it wants ("raw
//! keys", "whole lines", "put it back") instead of flipping flag bits itself. Nothing here
//! needs `unsafe`: rustix already wraps the ioctls. This module does not decide when to switch
//! modes or restore them; `tui/term.rs` owns that.

use crate::error::{Context, Result};
use rustix::termios::{self, InputModes, LocalModes, OptionalActions, SpecialCodeIndex, Termios};
use std::os::fd::AsFd;

/// The terminal's current settings: `tcgetattr(3)`.
pub fn tcgetattr(fd: impl AsFd) -> Result<Termios> {
    termios::tcgetattr(fd).map_err(std::io::Error::from).context("reading the terminal settings (tcgetattr)")
}

/// Applies `settings` once pending output is written: `tcsetattr(3)` with `TCSADRAIN`.
///
/// Draining first keeps a half-sent frame from being read back under the new settings.
pub fn tcsetattr(fd: impl AsFd, settings: &Termios) -> Result<()> {
    termios::tcsetattr(fd, OptionalActions::Drain, settings)
        .map_err(std::io::Error::from)
        .context("changing the terminal settings (tcsetattr)")
}

/// Settings that deliver every key as it is typed, unechoed and unsignalled: `cfmakeraw(3)`.
///
/// Two departures from `cfmakeraw`: output post-processing stays on (a `\n` written by a panic
/// message still starts a new line), and software flow control (`IXON`) is kept as the line
/// had it, because a slow serial console may depend on XON/XOFF. Reads return after one byte
/// (`VMIN=1`, `VTIME=0`); the caller waits with poll(2).
pub fn raw_keys(original: &Termios) -> Termios {
    let mut t = original.clone();
    t.make_raw();
    t.output_modes = original.output_modes;
    t.input_modes.set(InputModes::IXON, original.input_modes.contains(InputModes::IXON));
    t.special_codes[SpecialCodeIndex::VMIN] = 1;
    t.special_codes[SpecialCodeIndex::VTIME] = 0;
    t
}

/// Settings for a line-at-a-time terminal: the kernel echoes and edits the line, Ctrl+C raises
/// SIGINT, and Enter ends the line (`ICANON|ECHO|ECHOE|ECHOK|ISIG` plus `ICRNL`).
///
/// Used on dumb terminals, where the tui prints plain text and reads whole lines.
pub fn whole_lines(original: &Termios) -> Termios {
    let mut t = original.clone();
    t.local_modes |= LocalModes::ICANON | LocalModes::ECHO | LocalModes::ECHOE | LocalModes::ECHOK;
    t.local_modes |= LocalModes::ISIG;
    t.input_modes |= InputModes::ICRNL;
    t
}

/// The window size in (columns, rows): `ioctl(TIOCGWINSZ)`; `None` when the descriptor is not a
/// terminal or the terminal does not know (a serial line reports 0×0).
pub fn window_size(fd: impl AsFd) -> Option<(u16, u16)> {
    let ws = termios::tcgetwinsize(fd).ok()?;
    (ws.ws_col > 0 && ws.ws_row > 0).then_some((ws.ws_col, ws.ws_row))
}

/// Whether `fd` is a terminal: `isatty(3)`.
pub fn isatty(fd: impl AsFd) -> bool {
    termios::isatty(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Termios {
        // A pseudo-terminal master gives real settings to work from without touching our tty.
        let ptmx =
            std::fs::OpenOptions::new().read(true).write(true).open("/dev/ptmx").expect("opening /dev/ptmx");
        tcgetattr(&ptmx).expect("tcgetattr on a fresh pty")
    }

    #[test]
    fn raw_keys_turns_off_line_editing_echo_and_signals_but_keeps_output_processing() {
        let original = sample();
        let raw = raw_keys(&original);
        assert!(!raw.local_modes.contains(LocalModes::ICANON));
        assert!(!raw.local_modes.contains(LocalModes::ECHO));
        assert!(!raw.local_modes.contains(LocalModes::ISIG));
        assert_eq!(raw.output_modes, original.output_modes);
        assert_eq!(raw.special_codes[SpecialCodeIndex::VMIN], 1);
    }

    #[test]
    fn whole_lines_turns_on_canonical_mode_echo_and_signals() {
        let raw = raw_keys(&sample());
        let lines = whole_lines(&raw);
        assert!(lines.local_modes.contains(LocalModes::ICANON | LocalModes::ECHO | LocalModes::ISIG));
        assert!(lines.input_modes.contains(InputModes::ICRNL));
    }
}
