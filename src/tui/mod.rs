//! The tui wizard: pick an image and a disk, confirm, flash, reboot — on a Linux VT, a serial
//! console at 9600 baud, or an SSH session.
//!
//! The wizard is a pure state machine (`state.rs`: key → state + effects) drawn by `view.rs`
//! into frames that `display.rs` sends as VT100 bytes, rewriting only changed lines (or plain
//! lines on a dumb terminal). `driver.rs` runs the loop and carries effects out through a
//! [`Backend`] on worker threads; `term.rs` owns the real tty. The terminal is a parameter, so
//! everything above `term.rs` is tested without one. This module does not parse command lines
//! (the `tui` applet does) and decides nothing about images or disks (the backend's modules do).

mod backend;
mod caps;
mod display;
mod driver;
mod frame;
mod key;
mod state;
mod table;
mod term;
mod view;

pub use backend::{
    Backend, DiskRow, DiskScan, FlashFailure, FlashJob, FlashResult, SourceChoice, SystemBackend,
};
pub use caps::Caps;
pub use driver::drive;
pub use key::{Key, KeyDecoder};
pub use state::{Effect, Event, Outcome, Screen, Setup, Wizard};
pub use term::{Input, Terminal, Tty};
pub use view::Size;

use crate::error::Result;
use std::path::PathBuf;
use std::sync::Arc;

/// The public catalog offered as "default" on the source screen (the one upstream bty offers).
pub const DEFAULT_CATALOG: &str = "https://github.com/safl/nosi/releases/latest/download/catalog.toml";

/// The local image root: `BTY_IMAGE_ROOT`, or `/var/lib/bty/images`.
// Replaced by `catalog::image_root()` once the catalog module provides it.
pub fn default_image_root() -> PathBuf {
    std::env::var_os("BTY_IMAGE_ROOT")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/bty/images"))
}

/// How the wizard is started: by `bty-tui`, `bty --catalog`, or the plan agent's
/// `interactive` mode.
#[derive(Debug, Clone)]
pub struct Options {
    /// A catalog to load first (`--catalog`, or the plan's catalog URL).
    pub catalog: Option<String>,
    /// The local image root.
    pub image_root: PathBuf,
    /// When non-empty, only these disks are offered (`--disk`); loop devices may be named.
    pub only_disks: Vec<PathBuf>,
    /// Offer loop devices as well (`--all-disks`).
    pub all_disks: bool,
    /// Never offer these disks (`--hide-disk`: the USB stick the system runs from).
    pub hide_disks: Vec<PathBuf>,
    /// Start with read-back verification switched on (`--verify`).
    pub verify: bool,
    /// A line for the header, e.g. why the plan agent fell back to the wizard.
    pub banner: Option<String>,
    /// What the terminal can show.
    pub caps: Caps,
}

/// Runs the wizard on `term` against this machine's images and disks; returns how it ended.
/// An [`Outcome::Reboot`] means the reboot was requested and accepted.
pub fn run(term: &mut dyn Terminal, options: Options) -> Result<Outcome> {
    let setup = Setup {
        catalog: options.catalog,
        image_root: options.image_root.display().to_string(),
        default_catalog: DEFAULT_CATALOG.to_string(),
        verify: options.verify,
        banner: options.banner,
    };
    let backend = SystemBackend {
        image_root: options.image_root,
        only_disks: options.only_disks,
        all_disks: options.all_disks,
        hide_disks: options.hide_disks,
    };
    drive(term, Arc::new(backend), setup, options.caps)
}
