//! `GET /ui/backups`: the database backups (name, size, time) from the backup library
//! (`web::backups`), with "Back up now" (`POST /ui/backups`), download
//! (`GET /ui/backups/{name}/download`) and delete after a confirmation
//! (`POST /ui/backups/{name}/delete`), and the schedule from the configuration. The copy runs in
//! the library (SQLite's online backup), which serialises concurrent runs.

use super::view::{self, Page};
use crate::web::backups;
use crate::web::context::AppContext;
use crate::web::files;
use crate::web::handlers::SMALL_JSON;
use crate::web::request::Request;
use crate::web::response::{Reply, Response};

/// `GET /ui/backups`.
pub fn page(ctx: &AppContext, req: &Request<'_>) -> Reply {
    let list: Vec<serde_json::Value> = backups::list(ctx)?
        .into_iter()
        .map(|b| serde_json::json!({"name": b.name, "size_bytes": b.size_bytes, "created_at": b.created_at}))
        .collect();
    let page = Page {
        title: "Backups",
        nav: "backups",
        intro: "Copies of the state database (machines, bindings, labels, events) taken while bty-web runs.",
    };
    let b = &ctx.config.backup;
    let data = serde_json::json!({
        "backups": list, "dir": ctx.config.paths.backup_dir.display().to_string(),
        "interval_hours": b.interval_hours, "keep": b.keep,
    });
    view::render(ctx, req, 200, "backups.html", page, data)
}

/// `POST /ui/backups`: backs up now.
pub fn create(ctx: &AppContext, _req: &Request<'_>) -> Reply {
    backups::create(ctx)?;
    Ok(Response::see_other("/ui/backups?done=backup"))
}

/// `POST /ui/backups/{name}/delete`: asks first; with `confirm=yes` deletes.
pub fn delete(ctx: &AppContext, req: &Request<'_>, name: &str) -> Reply {
    let name = files::valid_basename(name)?;
    let form = req.form(SMALL_JSON)?;
    if super::field(&form, "confirm") != "yes" {
        let q = format!("Delete backup {name:?}?");
        return view::confirm(
            ctx,
            req,
            "backups",
            &q,
            &format!("/ui/backups/{}/delete", view::encode_component(name)),
            "/ui/backups",
        );
    }
    backups::delete(ctx, name)?;
    Ok(Response::see_other("/ui/backups?done=deleted"))
}

/// `GET /ui/backups/{name}/download`: the backup file as an attachment.
pub fn download(ctx: &AppContext, req: &Request<'_>, name: &str) -> Reply {
    crate::web::handlers::backups::download(ctx, req, name)
}
