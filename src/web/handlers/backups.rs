//! `GET|POST /backups`, `GET|DELETE /backups/{name}`: the database backups over the API. The
//! work is `web::backups`; this file parses, audits operator deletions and replies.

use crate::web::backups;
use crate::web::context::{event, AppContext};
use crate::web::files;
use crate::web::request::Request;
use crate::web::response::{Reply, Response};

/// `GET /backups`: newest first.
pub fn list(ctx: &AppContext, _req: &Request<'_>) -> Reply {
    Ok(Response::json(200, &backups::list(ctx)?))
}

/// `POST /backups`: takes one now; 201 with its [`backups::BackupInfo`].
pub fn create(ctx: &AppContext, _req: &Request<'_>) -> Reply {
    Ok(Response::json(201, &backups::create(ctx)?))
}

/// `GET /backups/{name}`: the file, as an attachment.
pub fn download(ctx: &AppContext, req: &Request<'_>, name: &str) -> Reply {
    let path = backups::path_of(ctx, name)?;
    let path =
        files::inside(&ctx.config.paths.backup_dir, &path.file_name().unwrap_or_default().to_string_lossy())?;
    files::serve(req, &path, None, vec![files::attachment(name)])
}

/// `DELETE /backups/{name}`: 204.
pub fn delete(ctx: &AppContext, req: &Request<'_>, name: &str) -> Reply {
    backups::delete(ctx, name)?;
    ctx.audit(
        Some(req),
        event("backup.deleted", ("backup", name), "operator", format!("backup {name} deleted")),
    );
    Ok(Response::no_content())
}
