//! bty-web: the PXE control plane, the machine API, the image store and the audit log.
//!
//! `edge/` and `server.rs` are the HTTP/1.1 edge (connections, heads, bodies, responses); `templates.rs` (iPXE scripts) and
//! `ui/view.rs` (HTML pages) the only ones that know minijinja. Requests become our own [`Request`]; `router.rs` maps `(method, path)` to plain
//! handler functions in `handlers/` and does authentication and CSRF around them; errors become
//! responses in `response.rs`. Decisions about what a machine boots live in `plan/`, SQL in
//! `db/`. Browser pages (`ui/`, `templates/ui/`, `static/`) build on this router.

pub mod artifacts;
pub mod auth;
pub mod backups;
pub mod boot_stick;
pub mod context;
pub mod csrf;
pub mod delta;
pub mod edge;
pub mod export;
pub mod files;
pub mod handlers;
mod housekeeping;
pub mod jobs;
pub mod probe;
pub mod progress;
pub mod proxy_dhcp;
pub mod request;
pub mod response;
pub mod router;
pub mod server;
pub mod settings;
pub mod sse;
pub mod tally;
pub mod templates;
pub mod tftp;
pub mod ui;

pub use context::AppContext;
pub use request::Request;
pub use response::{Body, HttpError, Reply, Response};

use crate::error::Result;
use std::sync::Arc;

/// Runs bty-web on a bound listener until `ctx.shutdown` is set; then finishes in-flight
/// requests, stops background work and closes the database cleanly.
pub fn run(ctx: Arc<AppContext>, listener: server::Listener) -> Result<()> {
    *ctx.fallback_host.lock().unwrap_or_else(|p| p.into_inner()) = listener.addr.to_string();
    let tftp = tftp::start(&ctx)?;
    let keeper = housekeeping::start(ctx.clone());
    let runner = jobs::start(ctx.clone());
    let indexer = delta::start(ctx.clone());
    let backups = backups::start(ctx.clone());
    server::serve(ctx.clone(), listener);
    let _ = keeper.join();
    // Summaries counted since the last flush are still worth writing.
    housekeeping::flush_tally(&ctx);
    for t in [runner, indexer, backups, tftp].into_iter().flatten() {
        let _ = t.join();
    }
    // An upload abandoned at shutdown leaves its hidden temporary file; never keep one.
    files::remove_partials(&ctx.config.paths.boot_dir);
    files::remove_partials(&ctx.config.paths.images_dir);
    ctx.db.close();
    Ok(())
}
