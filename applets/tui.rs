//! `bty-tui` (also `bty` with no arguments on a terminal, and `bty --catalog SRC`): the wizard.
//!
//! Parses the few options, takes over the terminal, runs the library's wizard, and turns how it
//! ended into an exit code: 0 after quit or an accepted reboot, 130 after SIGTERM/SIGHUP.

use crate::args;
use argh::FromArgs;
use bty::tui::{self, Caps, Options, Outcome, Tty};
use std::path::PathBuf;

/// The interactive wizard: pick an image and a disk, confirm, flash, reboot. Works on a Linux
/// VT, a serial console (type a number and Enter) and over SSH; TERM=dumb gives plain lines,
/// NO_COLOR turns colour off. The image root is BTY_IMAGE_ROOT (default /var/lib/bty/images).
#[derive(FromArgs)]
struct TuiArgs {
    /// catalog to load first: a path, http(s)://, oras://, or a bty-web /catalog.toml
    #[argh(option)]
    catalog: Option<String>,
    /// local image root (overrides BTY_IMAGE_ROOT)
    #[argh(option)]
    image_root: Option<PathBuf>,
    /// offer only this disk (repeatable), e.g. --disk /dev/sdb; may name a loop device
    #[argh(option)]
    disk: Vec<PathBuf>,
    /// never offer this disk (repeatable), e.g. the USB stick the system runs from
    #[argh(option)]
    hide_disk: Vec<PathBuf>,
    /// offer loop devices as well (as `bty disks --all` lists them)
    #[argh(switch)]
    all_disks: bool,
    /// read the disk back after writing and compare (v on the confirm screen toggles it)
    #[argh(switch)]
    verify: bool,
}

/// Entry point from the applet table.
pub fn main(shown_as: &str, args: &[String]) -> bty::Result<i32> {
    let a: TuiArgs = match args::parse(shown_as, args) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let caps = Caps::from_env();
    let options = Options {
        catalog: a.catalog,
        image_root: a.image_root.unwrap_or_else(bty::catalog::image_root),
        only_disks: a.disk,
        all_disks: a.all_disks,
        hide_disks: a
            .hide_disk
            .iter()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
            .collect(),
        verify: a.verify,
        banner: None,
        caps,
    };
    let mut tty = Tty::open(caps)?;
    let outcome = tui::run(&mut tty, options);
    // Put the terminal back before anything is printed about how it ended.
    drop(tty);
    match outcome? {
        Outcome::Quit | Outcome::Reboot => Ok(0),
        Outcome::Interrupted => Err(bty::Error::new(bty::ErrorKind::Cancelled, "stopped by a signal")),
    }
}
