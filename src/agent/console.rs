//! Console markers: the stable lines tests and operators grep for on a serial console.
//!
//! Compatible with the Python bty: `bty: auto-flash starting`, `bty: flash complete;
//! rebooting`, and percentage milestones `bty: write NN%`. A marker goes to stderr (the
//! console when the agent is PID 1) and to the kernel log (`/dev/kmsg`, level info) so it also
//! survives in `dmesg`; both best effort, a console that cannot be written must not stop a
//! flash.
//!
//! As PID 1 the agent's whole output is mirrored into the kernel log ([`mirror_to_kmsg`]):
//! `/dev/console` is only one of the kernel's consoles, and not always the serial port an
//! operator (or a test) watches — with `console=ttyS1 console=ttyS0` Debian's kernel binds its
//! one serial console to ttyS1 while `/dev/console` may end up on the screen.

use crate::error::{Context, Result};
use rustix::fd::OwnedFd;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout/stderr go through the kmsg mirror, so markers are not logged twice.
static MIRRORED: AtomicBool = AtomicBool::new(false);

/// The marker printed when a server-driven flash begins.
pub const FLASH_STARTING: &str = "bty: auto-flash starting";
/// The marker printed after `done` was posted, just before the reboot.
pub const FLASH_COMPLETE: &str = "bty: flash complete; rebooting";

/// Writes one marker line to stderr and to the kernel log.
pub fn marker(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
    if !MIRRORED.load(Ordering::Relaxed) {
        write_kmsg(line);
    }
}

fn write_kmsg(line: &str) {
    if let Ok(mut kmsg) = std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
        let _ = kmsg.write_all(format!("<6>{line}\n").as_bytes());
    }
}

/// Routes this process's stdout and stderr through a thread that copies every line to the
/// console they pointed at and to `/dev/kmsg` (PID 1 only: needs /dev mounted). Returns the
/// original console, for children that need a real terminal (the wizard, a shell).
pub fn mirror_to_kmsg() -> Result<OwnedFd> {
    let console =
        rustix::io::dup(rustix::stdio::stderr()).map_err(std::io::Error::from).context("dup(stderr)")?;
    let (read, write) =
        rustix::pipe::pipe().map_err(std::io::Error::from).context("creating the console pipe")?;
    let mut out = std::fs::File::from(console.try_clone().context("dup(console)")?);
    std::thread::spawn(move || {
        let lines = std::io::BufReader::new(std::fs::File::from(read)).split(b'\n');
        for line in lines.map_while(|l| l.ok()) {
            let _ = out.write_all(&line).and_then(|()| out.write_all(b"\n"));
            write_kmsg(&String::from_utf8_lossy(&line));
        }
    });
    rustix::stdio::dup2_stdout(&write).map_err(std::io::Error::from).context("redirecting stdout")?;
    rustix::stdio::dup2_stderr(&write).map_err(std::io::Error::from).context("redirecting stderr")?;
    MIRRORED.store(true, Ordering::Relaxed);
    Ok(console)
}

/// Fires each of the 25/50/75/100 % milestones once, when the total is known.
#[derive(Debug, Default)]
pub struct Milestones {
    next: u8,
}

impl Milestones {
    /// The milestone crossed by `done` of `total`, if a new one was (at most one per call:
    /// the highest crossed, so a jump from 10 % to 80 % prints 75 %).
    pub fn crossed(&mut self, done: u64, total: Option<u64>) -> Option<u8> {
        let total = total.filter(|&t| t > 0)?;
        let pct = (done.min(total) * 100 / total) as u8;
        let reached = (pct / 25) * 25;
        if reached >= 25 && reached > self.next {
            self.next = reached;
            return Some(reached);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milestones_fire_once_each_and_only_with_a_total() {
        let mut m = Milestones::default();
        assert_eq!(m.crossed(10, None), None);
        assert_eq!(m.crossed(10, Some(100)), None);
        assert_eq!(m.crossed(26, Some(100)), Some(25));
        assert_eq!(m.crossed(30, Some(100)), None);
        assert_eq!(m.crossed(80, Some(100)), Some(75));
        assert_eq!(m.crossed(99, Some(100)), None);
        assert_eq!(m.crossed(100, Some(100)), Some(100));
        assert_eq!(m.crossed(100, Some(100)), None);
    }
}
