//! `bty-tftp`: the read-only TFTP server for boot loaders. Arguments and process life only;
//! the protocol is `bty::tftp`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use argh::FromArgs;
use bty::tftp::{Server, ServerConfig};
use bty::Context;

/// Serve boot loaders (and anything else in DIR) over TFTP, read-only.
#[derive(FromArgs)]
struct Args {
    /// directory files are served from (default /var/lib/bty/boot)
    #[argh(option)]
    root: Option<PathBuf>,
    /// address and port to listen on (default 0.0.0.0:69)
    #[argh(option)]
    listen: Option<SocketAddr>,
    /// transfers served at once; more get a "server busy" error (default 64)
    #[argh(option)]
    max_transfers: Option<usize>,
}

/// Runs the server until SIGINT or SIGTERM.
pub fn main(shown_as: &str, args: &[String]) -> bty::Result<i32> {
    let args: Args = match crate::args::parse(shown_as, args) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let defaults = ServerConfig::default();
    let config = ServerConfig {
        root: args.root.unwrap_or(defaults.root.clone()),
        listen: args.listen.unwrap_or(defaults.listen),
        max_transfers: args.max_transfers.unwrap_or(defaults.max_transfers).max(1),
        ..defaults
    };
    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&shutdown)).context("installing signal handlers")?;
    }
    Server::bind(config)?.run(&shutdown)?;
    Ok(0)
}
