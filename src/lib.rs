//! bty: writes pre-built OS images onto disks, offline from a USB stick or unattended over PXE.
//!
//! This library is the single source of truth for every format, protocol and decision; the
//! binary in `applets/` only parses arguments, owns sockets and terminals, and turns errors
//! into exit codes. See `ARCHITECTURE.md` for the map of modules and their invariants.

pub mod agent;
pub mod catalog;
pub mod config;
pub mod db;
pub mod disk;
pub mod error;
pub mod flash;
pub mod image;
pub mod index;
pub mod log;
pub mod plan;
pub mod source;
pub mod sys;
pub mod tftp;
pub mod tui;
pub mod web;
pub mod wire;

pub use error::{Context, Error, ErrorKind, Result};

/// The version printed by `bty --version` and served at `/version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
