//! TFTP: packet codec, option negotiation, per-transfer state machine, the UDP server loop.
//!
//! bty-tftp is read-only and serves boot loaders (iPXE, shim, GRUB) from one root directory.
//! Each room has one job: `packet` (wire codec), `options` (RFC 2347/2348/2349/7440
//! negotiation), `path` (names confined to the root), `netascii` (text mode), `transfer` (the
//! per-transfer state machine, no sockets) and `server` (sockets, threads, the cap).
//! Embedders (bty-web) use [`Server`] or [`serve`].

pub mod netascii;
pub mod options;
pub mod packet;
pub mod path;
pub mod server;
pub mod transfer;

pub use server::{serve, Server, ServerConfig, TransferHook, TransferReport};
