//! `bty-tftp`: the read-only TFTP server for boot loaders. Arguments and process life only;
//! the protocol is `bty::tftp`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use argh::FromArgs;
use bty::config::{Config, LoadOptions};
use bty::tftp::{Server, ServerConfig};
use bty::{Context, Error};

/// Serve boot loaders (and anything else in the root) over TFTP, read-only.
///
/// Settings come from bty.toml's [tftp] root and listen (defaults < /etc/bty/bty.toml <
/// /etc/bty/conf.d/*.toml < --config < BTY_TFTP_ROOT/BTY_TFTP_LISTEN < these flags); an empty
/// root means [paths] boot_dir (/var/lib/bty/boot). Set BTY_CONFIG_DIR to read another
/// directory than /etc/bty.
#[derive(FromArgs)]
struct Args {
    /// a bty.toml read after the system files
    #[argh(option)]
    config: Option<PathBuf>,
    /// directory files are served from (default /var/lib/bty/boot)
    #[argh(option)]
    root: Option<PathBuf>,
    /// address and port to listen on (default 0.0.0.0:69; port 0 picks one)
    #[argh(option)]
    listen: Option<SocketAddr>,
    /// transfers served at once; more get a "server busy" error (default 64)
    #[argh(option)]
    max_transfers: Option<usize>,
}

/// Runs the server until SIGINT or SIGTERM, then exits 0.
pub fn main(shown_as: &str, args: &[String]) -> bty::Result<i32> {
    let args: Args = match crate::args::parse(shown_as, args) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let mut opts = LoadOptions::from_process_env();
    opts.config_file = args.config;
    let file = Config::load(&opts)?;
    let from_file_root =
        if file.tftp.root.is_empty() { file.paths.boot_dir.clone() } else { PathBuf::from(&file.tftp.root) };
    let from_file_listen = file.tftp.listen.parse::<SocketAddr>().map_err(|_| {
        Error::invalid(format!("tftp.listen {:?} is not ADDR:PORT (e.g. 0.0.0.0:69)", file.tftp.listen))
    })?;
    let defaults = ServerConfig::default();
    let config = ServerConfig {
        root: args.root.unwrap_or(from_file_root),
        listen: args.listen.unwrap_or(from_file_listen),
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
