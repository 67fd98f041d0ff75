//! The terminal as the wizard sees it, and the real one on the process's tty.
//!
//! [`Terminal`] is what the driver needs: input (keys, lines, resizes, signals) with a
//! timeout, output bytes, and the size. [`Tty`] implements it on stdin/stdout: raw keys when
//! the terminal has cursor addressing, whole lines (the kernel echoes and edits) when it is
//! dumb. Whatever happens, the settings found at start are put back: on drop, from a panic
//! hook when the UI thread panics, and after SIGTERM/SIGHUP/SIGINT, which are turned into
//! inputs instead of killing the process with the terminal left raw. While the wizard draws,
//! a stderr that is the same terminal is muted so stray log lines cannot garble the screen.

use super::caps::Caps;
use super::key::{Key, KeyDecoder};
use super::state::Outcome;
use super::view::Size;
use crate::error::{Context, Error, Result};
use crate::sys::termios;
use rustix::event::{PollFd, PollFlags, Timespec};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGWINCH};
use signal_hook::SigId;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread::ThreadId;
use std::time::Duration;

/// Something that happened at the terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A key (terminals with cursor addressing).
    Key(Key),
    /// A whole typed line, without its newline (dumb terminals).
    Line(String),
    /// The window changed size.
    Resize,
    /// SIGINT: Ctrl+C on a terminal in line mode, or `kill -INT`.
    Interrupt,
    /// The session is over: SIGTERM or SIGHUP (`Interrupted`), or end of input (`Quit`).
    Stop(Outcome),
}

/// A terminal the wizard can run on.
pub trait Terminal {
    /// Waits up to `timeout` for input; returns what arrived (nothing on timeout).
    fn read_input(&mut self, timeout: Duration) -> Result<Vec<Input>>;
    /// Writes bytes and flushes them.
    fn write(&mut self, bytes: &[u8]) -> Result<()>;
    /// The current size (80×24 when the terminal does not say, as on a serial line).
    fn size(&self) -> Size;
}

/// How long a lone ESC waits for the rest of an escape sequence before it counts as Esc.
/// Long enough for a 9600-baud line to deliver three bytes, short enough to feel instant.
const ESC_WAIT: Duration = Duration::from_millis(60);

/// What must be put back when the wizard ends, however it ends.
#[derive(Clone)]
struct Restore {
    /// The thread that owns the terminal; only its panic restores (a worker's is reported).
    owner: ThreadId,
    /// The terminal settings found at start.
    settings: rustix::termios::Termios,
    /// Bytes that end the drawing (attribute reset only where escapes are understood).
    reset: &'static [u8],
    /// The real stderr, when it was the terminal and got muted.
    stderr: Option<Arc<OwnedFd>>,
}

impl Restore {
    fn apply(&self) {
        let _ = termios::tcsetattr(std::io::stdin(), &self.settings);
        if let Some(fd) = &self.stderr {
            let _ = rustix::stdio::dup2_stderr(fd.as_fd());
        }
    }
}

/// Set while a [`Tty`] is open, for the panic hook.
static RESTORE: Mutex<Option<Restore>> = Mutex::new(None);

/// The process's controlling terminal on stdin/stdout, switched to the mode the wizard needs.
pub struct Tty {
    restore: Restore,
    lines: bool,
    decoder: KeyDecoder,
    partial_line: Vec<u8>,
    winch: Arc<AtomicBool>,
    interrupt: Arc<AtomicBool>,
    terminate: Arc<AtomicBool>,
    signal_ids: Vec<SigId>,
}

impl Tty {
    /// Takes over stdin/stdout: raw keys when `caps` has cursor addressing, whole lines
    /// otherwise. Fails when stdin is not a terminal.
    pub fn open(caps: Caps) -> Result<Tty> {
        let stdin = std::io::stdin();
        if !termios::isatty(&stdin) {
            return Err(Error::invalid("the wizard needs a terminal on stdin; use `bty flash` in scripts"));
        }
        let original = termios::tcgetattr(&stdin)?;
        let lines = !caps.addressing;
        let wanted = if lines { termios::whole_lines(&original) } else { termios::raw_keys(&original) };
        install_panic_hook();
        let restore = Restore {
            owner: std::thread::current().id(),
            settings: original,
            reset: if lines { b"\n" } else { b"\x1b[0m\r\n" },
            stderr: mute_stderr()?,
        };
        *RESTORE.lock().unwrap_or_else(|p| p.into_inner()) = Some(restore.clone());
        let mut tty = Tty {
            restore,
            lines,
            decoder: KeyDecoder::new(),
            partial_line: Vec::new(),
            winch: Arc::default(),
            interrupt: Arc::default(),
            terminate: Arc::default(),
            signal_ids: Vec::new(),
        };
        // Registered before the mode changes, so a signal in between still restores on drop.
        for (signal, flag) in [
            (SIGWINCH, &tty.winch),
            (SIGINT, &tty.interrupt),
            (SIGTERM, &tty.terminate),
            (SIGHUP, &tty.terminate),
        ] {
            let id = signal_hook::flag::register(signal, Arc::clone(flag))
                .with_context(|| format!("installing the handler for signal {signal}"))?;
            tty.signal_ids.push(id);
        }
        termios::tcsetattr(&stdin, &wanted)?;
        Ok(tty)
    }

    fn signalled(&self) -> Vec<Input> {
        let mut inputs = Vec::new();
        if self.winch.swap(false, Ordering::Relaxed) {
            inputs.push(Input::Resize);
        }
        if self.interrupt.swap(false, Ordering::Relaxed) {
            inputs.push(Input::Interrupt);
        }
        if self.terminate.swap(false, Ordering::Relaxed) {
            inputs.push(Input::Stop(Outcome::Interrupted));
        }
        inputs
    }

    fn decode(&mut self, bytes: &[u8]) -> Vec<Input> {
        if !self.lines {
            return self.decoder.feed(bytes).into_iter().map(Input::Key).collect();
        }
        self.partial_line.extend_from_slice(bytes);
        let mut inputs = Vec::new();
        while let Some(end) = self.partial_line.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial_line.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..end]).trim_end_matches('\r').to_string();
            inputs.push(Input::Line(text));
        }
        inputs
    }
}

impl Terminal for Tty {
    fn read_input(&mut self, timeout: Duration) -> Result<Vec<Input>> {
        let mut inputs = self.signalled();
        if !inputs.is_empty() {
            return Ok(inputs);
        }
        let waiting_escape = self.decoder.has_pending();
        let wait = if waiting_escape { timeout.min(ESC_WAIT) } else { timeout };
        let stdin = std::io::stdin();
        let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
        let ready = match Timespec::try_from(wait) {
            Ok(ts) => rustix::event::poll(&mut fds, Some(&ts)),
            Err(_) => rustix::event::poll(&mut fds, None),
        };
        let ready = match ready {
            Ok(n) => n > 0,
            // A signal arrived while waiting; its flag is read below.
            Err(rustix::io::Errno::INTR) => false,
            Err(e) => return Err(std::io::Error::from(e)).context("waiting for terminal input"),
        };
        if ready {
            let mut buf = [0u8; 1024];
            match rustix::io::read(&stdin, &mut buf) {
                // End of input (Ctrl+D on a line, or the line hung up).
                Ok(0) => inputs.push(Input::Stop(Outcome::Quit)),
                Ok(n) => inputs.extend(self.decode(&buf[..n])),
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                // EIO: the terminal went away (the session ended or the cable was pulled).
                Err(_) => inputs.push(Input::Stop(Outcome::Interrupted)),
            }
        } else if waiting_escape {
            inputs.extend(self.decoder.flush().into_iter().map(Input::Key));
        }
        inputs.extend(self.signalled());
        Ok(inputs)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        out.write_all(bytes).and_then(|()| out.flush()).context("writing to the terminal")
    }

    fn size(&self) -> Size {
        let measured =
            termios::window_size(std::io::stdin()).or_else(|| termios::window_size(std::io::stdout()));
        // A serial line reports no size: `COLUMNS`/`LINES` when the operator set them, else 80x24.
        let (cols, rows) = measured.unwrap_or_else(|| (env_number("COLUMNS", 80), env_number("LINES", 24)));
        Size { cols: cols.into(), rows: rows.into() }
    }
}

impl Drop for Tty {
    fn drop(&mut self) {
        self.restore.apply();
        *RESTORE.lock().unwrap_or_else(|p| p.into_inner()) = None;
        for id in self.signal_ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// A positive number from the environment variable `name`, else `default`.
fn env_number(name: &str, default: u16) -> u16 {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).filter(|&n| n > 0).unwrap_or(default)
}

/// Points stderr at `/dev/null` when it is a terminal, so log lines from library code cannot
/// scribble over the screen; returns the real stderr to put back. A stderr redirected to a
/// file or the journal is left alone (`bty-tui 2>/tmp/tui.log` keeps the log).
fn mute_stderr() -> Result<Option<Arc<OwnedFd>>> {
    let stderr = std::io::stderr();
    if !termios::isatty(&stderr) {
        return Ok(None);
    }
    let saved = rustix::io::dup(&stderr).map_err(std::io::Error::from).context("saving stderr")?;
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null").context("opening /dev/null")?;
    rustix::stdio::dup2_stderr(&null).map_err(std::io::Error::from).context("muting stderr")?;
    Ok(Some(Arc::new(saved)))
}

/// Chains a panic hook that puts the terminal back before the panic message is printed, so
/// the message is readable and the shell behind it usable. Only a panic on the thread that
/// owns the terminal does so; a worker's panic is reported by the driver instead.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let saved = RESTORE.lock().map(|g| g.clone()).unwrap_or_else(|p| p.into_inner().clone());
            if let Some(restore) = saved.filter(|r| r.owner == std::thread::current().id()) {
                restore.apply();
                let _ = std::io::stdout().write_all(restore.reset);
                let _ = std::io::stdout().flush();
            }
            previous(info);
        }));
    });
}
