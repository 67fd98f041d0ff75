//! `GET /ui/images`: the catalog this server offers — images in its store and remote entries —
//! with fetch jobs in progress; upload (by `bty.js`, streamed with a progress bar to
//! `PUT /images/{name}`), add by URL or `oras://` ref (`POST /ui/images/fetch`: a background
//! fetch into the store, or a remote entry served from where it lives), and delete after a confirmation (`POST /ui/images/{ref}/delete`).
//!
//! Uploading a multi-gigabyte file through a url-encoded form is not offered: without
//! JavaScript the page says how to upload with curl instead.

use super::view::{self, Page};
use crate::db::ImageKind;
use crate::web::context::{event, AppContext};
use crate::web::handlers::images::{delete as delete_image, insert_remote, start_fetch, RemoteEntry};
use crate::web::handlers::SMALL_JSON;
use crate::web::jobs::JobStatus;
use crate::web::request::Request;
use crate::web::response::{HttpError, Reply, Response};
use std::collections::HashMap;

fn render(
    ctx: &AppContext,
    req: &Request<'_>,
    status: u16,
    fetch_error: Option<String>,
    src: &str,
    name: &str,
) -> Reply {
    let mut bound: HashMap<String, usize> = HashMap::new();
    for rec in ctx.db.machines()? {
        if let Some(r) = rec.machine.bty_image_ref {
            *bound.entry(r).or_default() += 1;
        }
    }
    let images: Vec<serde_json::Value> = ctx
        .db
        .images()?
        .into_iter()
        .map(|i| {
            serde_json::json!({
                "ref": i.image_ref, "name": i.name, "stored": i.kind == ImageKind::Stored, "src": i.src,
                "sha256": i.sha256, "format": i.format, "size_bytes": i.size_bytes, "virtual_size": i.virtual_size,
                "arch": i.arch, "created_at": i.created_at, "machines": bound.get(&i.image_ref).copied().unwrap_or(0),
                "delete_q": delete_question(&i, bound.get(&i.image_ref).copied().unwrap_or(0)),
                "delta_ready": i.kind == ImageKind::Stored && crate::web::delta::ready(&ctx.config.paths.images_dir, &i.name),
            })
        })
        .collect();
    let jobs: Vec<serde_json::Value> = ctx
        .jobs
        .list()
        .into_iter()
        .rev()
        .filter(|j| j.status != JobStatus::Done)
        .take(10)
        .map(|j| {
            let pct = super::lifecycle::percent(j.bytes_done, j.bytes_total);
            serde_json::json!({"job": j, "percent": pct})
        })
        .collect();
    let active = ctx.jobs.list().iter().any(|j| matches!(j.status, JobStatus::Queued | JobStatus::Running));
    let page = Page {
        title: "Images",
        nav: "images",
        intro: "The images machines can be flashed with: uploaded into this server's store, fetched from a URL, or served from where they live.",
    };
    let data = serde_json::json!({ "images": images, "jobs": jobs, "active": active, "fetch_error": fetch_error, "src": src, "name": name, "base": ctx.base_url(req), "max_upload": ctx.config.tuning.max_upload_bytes });
    view::render(ctx, req, status, "images.html", page, data)
}

/// `GET /ui/images`.
pub fn page(ctx: &AppContext, req: &Request<'_>) -> Reply {
    render(ctx, req, 200, None, "", "")
}

/// `POST /ui/images/fetch` (form `src`, optional `name`, `remote`): queues a fetch job, or with
/// `remote=1` adds an entry served from where it lives.
pub fn fetch(ctx: &AppContext, req: &Request<'_>) -> Reply {
    let form = req.form(SMALL_JSON)?;
    let (src, name) = (super::field(&form, "src"), super::field(&form, "name"));
    let wanted = Some(name.to_string()).filter(|n| !n.is_empty());
    let result = if super::field(&form, "remote").is_empty() {
        start_fetch(ctx, req, src, wanted).map(|_| "/ui/images?done=fetch")
    } else {
        let entry = RemoteEntry {
            name: wanted.unwrap_or_else(|| src.rsplit('/').next().unwrap_or(src).to_string()),
            src: src.to_string(),
            ..RemoteEntry::default()
        };
        insert_remote(ctx, req, entry).map(|_| "/ui/images?done=remote")
    };
    match result {
        Ok(to) => Ok(Response::see_other(to)),
        Err(e) if matches!(e.status, 400 | 409 | 422) => {
            let msg = e.detail.as_str().map(str::to_string).unwrap_or_else(|| e.detail.to_string());
            render(ctx, req, e.status, Some(msg), src, name)
        }
        Err(e) => Err(e),
    }
}

/// `POST /ui/images/jobs/{id}/retry` (`retry`) or `/dismiss`: a failed fetch job is queued
/// again under the same name, or removed from the list; both audited.
pub fn job(ctx: &AppContext, req: &Request<'_>, id: &str, retry: bool) -> Reply {
    let job = id.parse().ok().and_then(|id| ctx.jobs.failed(id)).ok_or_else(|| {
        HttpError::not_found("No failed fetch job with that id; the Images page lists the jobs: /ui/images")
    })?;
    if retry {
        // Queued first: a retry refused (the name is taken meanwhile) keeps the failed job shown.
        start_fetch(ctx, req, &job.src, Some(job.name.clone()))?;
    } else {
        let e = event(
            "image.fetch.dismissed",
            ("image", &job.name),
            "operator",
            format!("failed fetch of {} dismissed", job.src),
        );
        ctx.audit(Some(req), e);
    }
    ctx.jobs.dismiss(job.id);
    Ok(Response::see_other(if retry { "/ui/images?done=fetch" } else { "/ui/images?done=dismissed" }))
}

/// The confirmation for deleting `image` with `bound` machines bound to it: what the machines
/// then do and how many bytes it frees, said the same by the page and by `bty.js`'s dialog.
fn delete_question(image: &crate::db::ImageRow, bound: usize) -> String {
    let machines = match bound {
        0 => "No machine is bound to it.".to_string(),
        1 => "1 machine is bound to it: it boots its local disk until you assign another image.".to_string(),
        n => format!(
            "{n} machines are bound to it: they boot their local disks until you assign another image."
        ),
    };
    let freed = match (image.kind, image.size_bytes) {
        (ImageKind::Stored, Some(n)) => format!("Frees {} in the store.", crate::disk::human_size(n)),
        (ImageKind::Stored, None) => "Its bytes in the store are removed.".to_string(),
        _ => "A remote entry: nothing is stored here, no space is freed.".to_string(),
    };
    format!("Delete image {:?}? {machines} {freed}", image.name)
}

/// `POST /ui/images/{ref}/delete`: asks first; with `confirm=yes` deletes (bytes included).
pub fn delete(ctx: &AppContext, req: &Request<'_>, image_ref: &str) -> Reply {
    let row = ctx.db.image(image_ref)?.ok_or_else(|| {
        HttpError::not_found("No such image; the Images page lists them and adds new ones: /ui/images")
    })?;
    let form = req.form(SMALL_JSON)?;
    if super::field(&form, "confirm") != "yes" {
        let bound = ctx
            .db
            .machines()?
            .iter()
            .filter(|m| m.machine.bty_image_ref.as_deref() == Some(image_ref))
            .count();
        let q = delete_question(&row, bound);
        return view::confirm(
            ctx,
            req,
            "images",
            &q,
            &format!("/ui/images/{image_ref}/delete"),
            "/ui/images",
        );
    }
    delete_image(ctx, req, image_ref)?;
    Ok(Response::see_other("/ui/images?done=deleted"))
}
