//! bty-tftp inside bty-web: with `[tftp] enabled = true`, the TFTP server (`crate::tftp`) runs
//! on a thread of this process on `[tftp] listen`, serving `[tftp] root` (default: the boot
//! dir), so one service answers both halves of a PXE boot.
//!
//! Every failed or refused transfer is counted as a `netboot.tftp.failed` audit event (a
//! `*failed` kind, so it trips the dashboard) and written with its repeats as one summary row
//! by the housekeeping thread (`tally.rs`): the hook runs on the receive loop for refusals and
//! must not wait for the database, and a UDP flood must not become a row per datagram.
//! Successful transfers are only logged, as a boot fetches several files and the events would
//! drown everything else. The protocol is not here.

use super::context::AppContext;
use crate::db::NewEvent;
use crate::error::{Error, Result};
use crate::tftp::{Server, ServerConfig, TransferReport};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Binds the TFTP socket when enabled (so a taken port fails the start) and serves it on a
/// thread until shutdown. `None` when `[tftp] enabled` is false.
pub fn start(ctx: &Arc<AppContext>) -> Result<Option<std::thread::JoinHandle<()>>> {
    let t = &ctx.config.tftp;
    if !t.enabled {
        return Ok(None);
    }
    let listen: SocketAddr = t.listen.parse().map_err(|_| {
        Error::invalid(format!("tftp.listen {:?} is not ADDR:PORT (e.g. 0.0.0.0:69)", t.listen))
    })?;
    let root = if t.root.is_empty() { ctx.config.paths.boot_dir.clone() } else { PathBuf::from(&t.root) };
    let config = ServerConfig { root, listen, ..ServerConfig::default() };
    let hook_ctx = ctx.clone();
    let server = Server::bind(config)?.on_transfer(move |r| record(&hook_ctx, r));
    let ctx = ctx.clone();
    let thread = std::thread::Builder::new()
        .name("bty-tftp".into())
        .spawn(move || {
            if let Err(e) = server.run(&ctx.shutdown) {
                crate::log_error!("tftp: {e}");
            }
        })
        .map_err(|e| Error::failed(format!("starting the TFTP thread: {e}")))?;
    Ok(Some(thread))
}

/// Counts a failed transfer towards its summary event.
fn record(ctx: &AppContext, r: &TransferReport) {
    let Err(why) = &r.result else { return };
    ctx.audit_repeated(
        None,
        NewEvent {
            kind: "netboot.tftp.failed".into(),
            subject_kind: Some("netboot".into()),
            subject_id: Some(r.file.clone()),
            actor: Some("pxe-client".into()),
            source_ip: Some(r.client.ip().to_string()),
            summary: format!("TFTP {} of {:?} failed: {why}", r.kind, r.file),
            details: Some(
                serde_json::json!({ "file": r.file, "error": why, "bytes": r.bytes, "options": r.options }),
            ),
        },
    );
}
