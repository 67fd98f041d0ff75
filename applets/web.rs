//! `bty-web`: the PXE control plane and machine API. Arguments, signals and process life only;
//! the server is `bty::web`.

use argh::FromArgs;
use bty::config::{Config, LoadOptions};
use bty::web::{export, server, AppContext};
use bty::Context;
use std::path::PathBuf;
use std::sync::Arc;

/// Serve the PXE control plane, machine API, image store and audit log over HTTP.
///
/// `export DEST [--full]` and `import SRC` move machines between instances (reference
/// bty_export_version 3; --full adds bindings and labels) and do not start the server.
/// `health [URL]` asks a running server's /healthz (exit 0 when it answers 200): the container
/// image's HEALTHCHECK.
///
/// Configuration layers: defaults < /etc/bty/bty.toml < /etc/bty/conf.d/*.toml < --config <
/// BTY_<SECTION>_<KEY> < these flags. Set BTY_CONFIG_DIR to read another directory than
/// /etc/bty (an empty one to read none).
#[derive(FromArgs)]
struct Args {
    /// a bty.toml read after the system files
    #[argh(option)]
    config: Option<PathBuf>,
    /// address and port to listen on (default 0.0.0.0:8080; port 0 picks one)
    #[argh(option)]
    listen: Option<String>,
    /// state directory, created if missing (default /var/lib/bty)
    #[argh(option)]
    state_dir: Option<PathBuf>,
    #[argh(subcommand)]
    command: Option<Command>,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Export(Export),
    Import(Import),
    Health(Health),
}

/// The subcommands that work on the state database.
enum Bundle {
    Export(Export),
    Import(Import),
}

/// Write DEST/inventory.json (bty_export_version 3: machines' hardware identity).
#[derive(FromArgs)]
#[argh(subcommand, name = "export")]
struct Export {
    /// bundle directory, created if missing
    #[argh(positional)]
    dest: PathBuf,
    /// also export bindings and labels (image, boot mode, drive, disk serial)
    #[argh(switch)]
    full: bool,
}

/// Import a bundle (a directory with inventory.json, or the file): all of it or nothing.
#[derive(FromArgs)]
#[argh(subcommand, name = "import")]
struct Import {
    /// bundle directory or inventory.json
    #[argh(positional)]
    src: PathBuf,
}

/// Ask a running bty-web's /healthz; exit 0 when it answers 200 (a container HEALTHCHECK).
#[derive(FromArgs)]
#[argh(subcommand, name = "health")]
struct Health {
    /// the URL to GET (default: /healthz on the configured listen address, a wildcard address
    /// asked on loopback)
    #[argh(positional)]
    url: Option<String>,
}

/// Runs the server until SIGINT or SIGTERM, then shuts down cleanly (exit 0).
pub fn main(shown_as: &str, args: &[String]) -> bty::Result<i32> {
    let args: Args = match crate::args::parse(shown_as, args) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let mut opts = LoadOptions::from_process_env();
    opts.config_file = args.config;
    opts.listen = args.listen;
    opts.state_dir = args.state_dir;
    let config = Config::load(&opts)?;
    match args.command {
        Some(Command::Health(h)) => return health(&config, h),
        Some(Command::Export(e)) => return bundle(&config, Bundle::Export(e)),
        Some(Command::Import(i)) => return bundle(&config, Bundle::Import(i)),
        None => {}
    }
    let ctx = Arc::new(AppContext::open(config)?);
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, ctx.shutdown.clone()).context("installing signal handlers")?;
    }
    let listener = server::bind(&ctx.config.server.listen)?;
    // One line tests and operators can parse for the real port.
    eprintln!("bty-web: listening on http://{}", listener.addr);
    bty::web::run(ctx, listener)?;
    eprintln!("bty-web: stopped");
    Ok(0)
}

/// `health`: one GET of /healthz; the exit code is the verdict.
fn health(config: &Config, h: Health) -> bty::Result<i32> {
    let url = match h.url {
        Some(url) => url,
        None => bty::web::probe::healthz_url(&config.server.listen)?,
    };
    bty::web::probe::check(&url)?;
    Ok(0)
}

/// `export` / `import`: on the state database, with or without a running server.
fn bundle(config: &Config, command: Bundle) -> bty::Result<i32> {
    let dir = &config.paths.state_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let db = bty::db::Db::open(&dir.join("state.db"))?;
    match command {
        Bundle::Export(e) => {
            let bundle = export::bundle(&db, e.full)?;
            export::write(&bundle, &e.dest)?;
            println!("bty-web export -> {}: {} machines", e.dest.display(), bundle.machines.len());
        }
        Bundle::Import(i) => {
            let plan = export::read(&i.src)?;
            export::apply(&db, &plan)?;
            println!(
                "bty-web import: {} machines (as bty-inventory), {} bindings",
                plan.machines(),
                plan.bindings()
            );
        }
    }
    db.close();
    Ok(0)
}
