//! `GET /ui/settings`: the effective configuration, one row per key with the layer it came from
//! (default, a TOML file, an environment variable or a flag), as `config.rs` recorded it.
//!
//! Read-only by design: the configuration file is the source of truth and the page says which
//! file or variable to change. Secrets are shown only as set or unset.

use super::view::{self, Page};
use crate::config::Source;
use crate::web::context::AppContext;
use crate::web::request::Request;
use crate::web::response::Reply;

/// What an empty path setting resolves to (a directory under the state directory).
fn effective(ctx: &AppContext, section: &str, key: &str, value: &str) -> Option<String> {
    if !value.is_empty() {
        return None;
    }
    let p = &ctx.config.paths;
    let dir = match (section, key) {
        ("paths", "backup_dir") => &p.backup_dir,
        ("paths", "boot_dir") | ("tftp", "root") => &p.boot_dir,
        ("paths", "images_dir") => &p.images_dir,
        _ => return None,
    };
    Some(dir.display().to_string())
}

/// `GET /ui/settings`.
pub fn page(ctx: &AppContext, req: &Request<'_>) -> Reply {
    let rows: Vec<serde_json::Value> = ctx
        .config
        .provenance()
        .iter()
        .map(|s| {
            let kind = match &s.source {
                Source::Default => "default",
                Source::File(_) => "file",
                Source::Env(_) => "env",
                Source::Flag(_) => "flag",
            };
            serde_json::json!({
                "section": s.section, "key": s.key, "value": s.value, "source": s.source.to_string(), "kind": kind,
                "effective": effective(ctx, s.section, s.key, &s.value),
            })
        })
        .collect();
    let page = Page {
        title: "Settings",
        nav: "settings",
        intro: "The effective configuration and where each value comes from. Change it in bty.toml or the environment, then restart bty-web.",
    };
    let data = serde_json::json!({ "proxy_dhcp": crate::web::proxy_dhcp::state(ctx)?, "rows": rows, "state_db": ctx.db.path().display().to_string(), "env_example": "BTY_<SECTION>_<KEY>" });
    view::render(ctx, req, 200, "settings.html", page, data)
}
