//! `GET /ui/settings`: the effective configuration, one row per key with the layer it came from
//! (default, a TOML file, an environment variable or a flag), as `config.rs` recorded it.
//!
//! The keys registered in [`crate::web::settings::EDITABLE`] (backup schedule and retention,
//! the low-disk threshold, PXE discovery limits, the stall threshold, the display time zone)
//! are also a form here: a value saved in the
//! browser overrides bty.toml, is shown with the source `ui`, and is audited; an emptied field
//! returns to bty.toml. Everything else is read-only: the page says which file or variable to
//! change. Secrets are shown only as set or unset.

use super::view::{self, Page};
use crate::config::Source;
use crate::web::context::AppContext;
use crate::web::request::Request;
use crate::web::response::{Reply, Response};
use crate::web::settings::{self, EDITABLE};
use std::collections::BTreeMap;

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
    render(ctx, req, 200, &BTreeMap::new(), &BTreeMap::new())
}

/// `POST /ui/settings`: one field per editable key (`section.key`); each is validated, the
/// valid ones saved; messages appear beside the others with what was typed kept.
pub fn save(ctx: &AppContext, req: &Request<'_>) -> Reply {
    let form = req.form(crate::web::handlers::SMALL_JSON)?;
    let (mut errors, mut typed, mut changed) = (BTreeMap::new(), BTreeMap::new(), 0);
    for e in EDITABLE {
        let name = format!("{}.{}", e.section, e.key);
        if !form.iter().any(|(k, _)| *k == name) {
            continue;
        }
        let raw = super::field(&form, &name);
        match settings::set(ctx, req, e.section, e.key, raw) {
            Ok(c) => changed += usize::from(c),
            Err(err) => {
                errors.insert(name.clone(), err.detail_text());
                typed.insert(name, raw.to_string());
            }
        }
    }
    if !errors.is_empty() {
        return render(ctx, req, 422, &errors, &typed);
    }
    let done = if changed == 0 { "unchanged" } else { "settings" };
    Ok(Response::see_other(&format!("/ui/settings?done={done}")))
}

fn render(
    ctx: &AppContext,
    req: &Request<'_>,
    status: u16,
    errors: &BTreeMap<String, String>,
    typed: &BTreeMap<String, String>,
) -> Reply {
    let editable: Vec<serde_json::Value> = EDITABLE
        .iter()
        .map(|e| {
            let name = format!("{}.{}", e.section, e.key);
            let eff = settings::effective(ctx, e);
            let shown = typed.get(&name).cloned().unwrap_or_else(|| eff.value.to_string());
            serde_json::json!({ "name": name, "e": e, "eff": eff, "shown": shown, "error": errors.get(&name) })
        })
        .collect();
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
            let mut row = serde_json::json!({
                "section": s.section, "key": s.key, "value": s.value, "source": s.source.to_string(), "kind": kind,
                "effective": effective(ctx, s.section, s.key, &s.value),
            });
            if let Some(e) = EDITABLE.iter().find(|e| e.section == s.section && e.key == s.key) {
                let eff = settings::effective(ctx, e);
                if eff.source == "ui" {
                    row["value"] = eff.value.to_string().into();
                    row["source"] = format!("settings page (bty.toml: {})", eff.configured).into();
                    row["kind"] = "ui".into();
                }
            }
            row
        })
        .collect();
    let page = Page {
        title: "Settings",
        nav: "settings",
        intro: "The effective configuration and where each value comes from. Change the values in the first panel here; the rest in bty.toml or the environment, then restart bty-web.",
    };
    let data = serde_json::json!({ "proxy_dhcp": crate::web::proxy_dhcp::state(ctx)?, "editable": editable, "errors": errors, "rows": rows, "state_db": ctx.db.path().display().to_string(), "env_example": "BTY_<SECTION>_<KEY>" });
    view::render(ctx, req, status, "settings.html", page, data)
}
