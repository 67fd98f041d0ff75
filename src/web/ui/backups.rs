//! `GET /ui/backups`: the database backups in the backup directory (name, size, time) with a
//! download link (`GET /ui/backups/{name}/download`), and the schedule from the configuration.
//!
//! Creating and deleting backups belongs to the backup library (`web::backups`), which this
//! page calls once it is part of the build; until then the page lists what is on disk and says
//! so. It never runs a backup on a request thread.

use super::view::{self, Page};
use crate::web::context::AppContext;
use crate::web::files;
use crate::web::request::Request;
use crate::web::response::Reply;

/// `GET /ui/backups`.
pub fn page(ctx: &AppContext, req: &Request<'_>) -> Reply {
    let dir = &ctx.config.paths.backup_dir;
    let mut backups: Vec<serde_json::Value> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(meta) = e.metadata() else { continue };
            if name.starts_with('.') || !meta.is_file() {
                continue;
            }
            let created = meta.modified().ok().map(|t| crate::db::format_ts(t.into()));
            backups.push(serde_json::json!({"name": name, "size_bytes": meta.len(), "created_at": created}));
        }
    }
    backups.sort_by(|a, b| b["created_at"].as_str().cmp(&a["created_at"].as_str()));
    let page = Page {
        title: "Backups",
        nav: "backups",
        intro: "Copies of the state database (machines, bindings, labels, events) taken while bty-web runs.",
    };
    let b = &ctx.config.backup;
    let data = serde_json::json!({ "backups": backups, "dir": dir.display().to_string(), "interval_hours": b.interval_hours, "keep": b.keep });
    view::render(ctx, req, 200, "backups.html", page, data)
}

/// `GET /ui/backups/{name}/download`: the backup file as an attachment.
pub fn download(ctx: &AppContext, req: &Request<'_>, name: &str) -> Reply {
    let name = files::valid_basename(name)?;
    let path = ctx.config.paths.backup_dir.join(name);
    let disposition = vec![("Content-Disposition".to_string(), format!("attachment; filename=\"{name}\""))];
    files::serve(req, &path, None, disposition)
}
