//! The image store and catalog: upload, list, `catalog.toml`, download with Range/ETag, delete.
//!
//! Stored images live flat in `images_dir` under their name (the layout the local tui scans) and
//! are identified by their content sha256; remote entries only name a URL. Long work (fetching
//! a URL into the store) runs on a job thread (`web/jobs.rs`), never on a request thread.

use crate::db::{ImageKind, ImageRow};
use crate::web::context::{event, AppContext};
use crate::web::request::Request;
use crate::web::response::{HttpError, Reply, Response};
use crate::web::{delta, files};
use crate::wire::ImageEntry;
use std::path::Path;

/// Where an agent or a tui fetches an entry's bytes.
pub fn fetch_url(base: &str, row: &ImageRow) -> String {
    match (row.kind, &row.src) {
        (ImageKind::Remote, Some(src)) => src.clone(),
        _ => format!("{base}/images/{}/{}", row.image_ref, encode_segment(&row.name)),
    }
}

/// What a path segment percent-encodes: everything but RFC 3986 unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes a path segment (everything but unreserved characters).
fn encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, SEGMENT).to_string()
}

/// The catalog format id (`img.zst`, `qcow2`) of a detected format.
pub fn format_id(f: crate::image::Format) -> String {
    match f {
        crate::image::Format::Raw => "img".to_string(),
        crate::image::Format::Qcow2 => "qcow2".to_string(),
        other => format!("img.{}", other.name()),
    }
}

/// Format (by content) and virtual size of an upload received at `path` as `name`; `Err` says
/// why it is not a flashable image (tarballs included), naming the upload, never its temporary
/// path (the state directory is nobody's business on the wire).
pub fn probe(path: &Path, name: &str) -> Result<(crate::image::Format, Option<u64>), String> {
    let probed = crate::source::FileSource::open(path).and_then(|src| {
        let format = crate::image::detect(&src)?;
        Ok((format, crate::image::virtual_size(&src, format)?))
    });
    probed.map_err(|e| e.to_string().replace(&path.display().to_string(), name))
}

fn entry(base: &str, row: &ImageRow) -> ImageEntry {
    ImageEntry {
        name: row.name.clone(),
        format: row.format.clone().unwrap_or_default(),
        size_bytes: row.size_bytes.unwrap_or(0),
        url: fetch_url(base, row),
        image_ref: row.image_ref.clone(),
        sha_short: row.sha256.as_ref().map(|s| s.chars().take(12).collect()),
        arch: row.arch.clone(),
        sha256: row.sha256.clone(),
        virtual_size: row.virtual_size,
        stored: row.kind == ImageKind::Stored,
        delta_ready: false,
    }
}

/// `GET /images`: every entry as the reference's `ImageEntry`.
pub fn list(ctx: &AppContext, req: &Request<'_>) -> Reply {
    let base = ctx.base_url(req);
    let dir = &ctx.config.paths.images_dir;
    let entries: Vec<ImageEntry> = ctx
        .db
        .images()?
        .iter()
        .map(|r| ImageEntry {
            delta_ready: r.kind == ImageKind::Stored && delta::ready(dir, &r.name),
            ..entry(&base, r)
        })
        .collect();
    Ok(Response::json(200, &entries))
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// `GET /catalog.toml`: catalog v1; stored images point at this server; no `ref` key.
pub fn catalog(ctx: &AppContext, req: &Request<'_>) -> Reply {
    let base = ctx.base_url(req);
    let mut out = String::from("version = 1\n");
    for row in ctx.db.images()? {
        out.push_str("\n[[images]]\n");
        out.push_str(&format!("name = {}\n", toml_str(&row.name)));
        out.push_str(&format!("src = {}\n", toml_str(&fetch_url(&base, &row))));
        if let Some(sha) = &row.sha256 {
            out.push_str(&format!("sha256 = {}\n", toml_str(sha)));
        }
        if let Some(f) = &row.format {
            out.push_str(&format!("format = {}\n", toml_str(f)));
        }
        if let Some(n) = row.size_bytes {
            out.push_str(&format!("size_bytes = {n}\n"));
        }
        if let Some(d) = &row.description {
            out.push_str(&format!("description = {}\n", toml_str(d)));
        }
        if let Some(a) = &row.arch {
            out.push_str(&format!("arch = {}\n", toml_str(a)));
        }
    }
    Ok(Response::text(200, "application/toml", out))
}

/// `GET|HEAD /images/{ref}/{name}`: the stored bytes, with Range, ETag (the sha256) and length.
/// `NAME.index` (its chunk index) and `NAME.seekable.zst` (its seekable copy, for images
/// stored in a format that cannot be read at random) are served beside it once written.
pub fn download(ctx: &AppContext, req: &Request<'_>, image_ref: &str, name: &str) -> Reply {
    let row = ctx.db.image(image_ref)?.filter(|r| r.kind == ImageKind::Stored);
    let row = row.ok_or_else(|| HttpError::not_found("image not found"))?;
    let dir = &ctx.config.paths.images_dir;
    let base = files::valid_basename(&row.name)?;
    let sha = row.sha256.as_deref().unwrap_or_default();
    let (path, etag) = if name == row.name {
        (files::inside(dir, base)?, format!("\"{sha}\""))
    } else if let Some(suffix) =
        [delta::INDEX, delta::SEEKABLE].into_iter().find(|s| name == format!("{base}{s}"))
    {
        // Written once from the original and never changed: the original's digest and the
        // suffix make a strong validator for Range resumes.
        let sidecar = delta::sidecar(dir, base, suffix);
        let in_dir = sidecar.parent().unwrap_or(dir);
        (files::inside(in_dir, &format!("{base}{suffix}"))?, format!("\"{sha}{suffix}\""))
    } else {
        return Err(HttpError::not_found("image not found"));
    };
    files::serve(req, &path, Some(etag).filter(|_| !sha.is_empty()), Vec::new())
}

/// `PUT /images/{name}`: streams an image into the store, hashing and probing it; 201 with
/// its `ImageEntry`. The name and the content must both be new (409 otherwise).
pub fn upload(ctx: &AppContext, req: &Request<'_>, name: &str) -> Reply {
    let result = store_upload(ctx, req, name);
    if let Err(err) = &result {
        let mut e =
            event("image.upload.failed", ("image", name), "operator", format!("upload of {name} failed"));
        e.details = Some(serde_json::json!({ "status": err.status, "detail": err.detail }));
        ctx.audit(Some(req), e);
    }
    result
}

fn store_upload(ctx: &AppContext, req: &Request<'_>, name: &str) -> Reply {
    let name = files::valid_basename(name)?;
    let conflict = |what: String| HttpError::new(409, what);
    let name_taken = || conflict(format!("an image named {name:?} exists; delete it first"));
    if ctx.db.image_by_name(name)?.is_some() {
        return Err(name_taken());
    }
    let dir = &ctx.config.paths.images_dir;
    let partial = files::receive(req, dir, name, ctx.config.tuning.max_upload_bytes, &ctx.shutdown)?;
    let (format, vsize) = probe(partial.path(), name)
        .map_err(|e| HttpError::new(422, format!("{name}: not a supported image: {e}")))?;
    let row = ImageRow {
        image_ref: partial.sha256.clone(),
        name: name.to_string(),
        kind: ImageKind::Stored,
        src: None,
        sha256: Some(partial.sha256.clone()),
        format: Some(format_id(format)),
        size_bytes: Some(partial.size),
        virtual_size: vsize,
        arch: crate::catalog::arch_hint(name).map(str::to_string),
        description: None,
        created_at: crate::db::now(),
    };
    let dest = dir.join(name);
    if !partial.commit_new(&dest)? {
        // Another upload of this name won the race, or a file was left behind.
        if ctx.db.image_by_name(name)?.is_some() {
            return Err(name_taken());
        }
        // The operator finds the path in the log; the answer names only the image.
        crate::log_warn!("{} exists in the image store but not in the catalog", dest.display());
        return Err(conflict(format!(
            "{name:?} exists in the image store directory but not in the catalog; remove the file \
             (its path is in the server log)"
        )));
    }
    // The file is this upload's own; a refused row (the same bytes are stored already, by an
    // upload or a fetch: `insert_image` checks in its transaction) takes it away again.
    if let Err(e) = ctx.db.insert_image(&row) {
        let _ = std::fs::remove_file(&dest);
        return Err(e.into());
    }
    let mut e = event("image.uploaded", ("image", &row.image_ref), "operator", format!("{name} stored"));
    e.details = Some(serde_json::json!({ "name": name, "size_bytes": row.size_bytes, "format": row.format }));
    ctx.audit(Some(req), e);
    Ok(Response::json(201, &entry(&ctx.base_url(req), &row)))
}

/// `DELETE /images/{ref}`: removes the entry (and its bytes when stored). Machines bound to it
/// keep the ref and boot their disk until reassigned.
pub fn delete(ctx: &AppContext, req: &Request<'_>, image_ref: &str) -> Reply {
    let row = ctx.db.image(image_ref)?.ok_or_else(|| HttpError::not_found("image not found"))?;
    if row.kind == ImageKind::Stored {
        let path = ctx.config.paths.images_dir.join(files::valid_basename(&row.name)?);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                let mut ev = event(
                    "image.delete.failed",
                    ("image", image_ref),
                    "operator",
                    format!("deleting {}", row.name),
                );
                ev.details = Some(serde_json::json!({ "error": e.to_string() }));
                ctx.audit(Some(req), ev);
                return Err(HttpError::internal(format!("removing {}: {e}", path.display())));
            }
        }
    }
    ctx.db.delete_image(image_ref)?;
    ctx.audit(
        Some(req),
        event("image.deleted", ("image", image_ref), "operator", format!("{} deleted", row.name)),
    );
    Ok(Response::no_content())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchRequest {
    src: String,
    #[serde(default)]
    name: Option<String>,
}

/// Only remote sources: the API must not read the server's own files.
fn check_remote_src(src: &str) -> Result<(), HttpError> {
    let lower = src.get(..8).unwrap_or(src).to_ascii_lowercase();
    if ["http://", "https://", "oras://"].iter().any(|p| lower.starts_with(p)) {
        return Ok(());
    }
    Err(HttpError::new(422, format!("src must be an http://, https:// or oras:// URL, not {src:?}")))
}

/// The last path segment of a URL (before any query), percent-decoded.
fn url_basename(src: &str) -> String {
    let path = src.split(['?', '#']).next().unwrap_or(src);
    let last = path.rsplit(['/', ':', '@']).next().unwrap_or("");
    crate::web::request::percent_decode(last)
}

/// `POST /images {"src": URL[, "name"]}`: queues a fetch into the store; 202 with the job.
pub fn fetch(ctx: &AppContext, req: &Request<'_>) -> Reply {
    let body: FetchRequest = req.json(super::SMALL_JSON)?;
    let job = start_fetch(ctx, req, &body.src, body.name)?;
    Ok(Response::json(202, &job))
}

/// Checks a fetch request (remote src, free name, not yet in the catalog), queues the job and
/// records the event; shared by the API and the UI's "add by URL" form.
pub fn start_fetch(
    ctx: &AppContext,
    req: &Request<'_>,
    src: &str,
    name: Option<String>,
) -> Result<crate::web::jobs::Job, HttpError> {
    check_remote_src(src)?;
    let image_ref = crate::catalog::image_ref(src).map_err(|e| HttpError::new(422, e.to_string()))?;
    let name = name.unwrap_or_else(|| url_basename(src));
    let name = files::valid_basename(&name)?.to_string();
    if ctx.db.image(&image_ref)?.is_some() {
        return Err(HttpError::new(409, format!("{src} is already in the catalog")));
    }
    if ctx.db.image_by_name(&name)?.is_some() || ctx.jobs.pending_name(&name) {
        return Err(HttpError::new(409, format!("an image named {name:?} exists or is being fetched")));
    }
    let job = ctx.jobs.enqueue(src, &name);
    let mut e =
        event("image.fetch.requested", ("image", &name), "operator", format!("fetch of {src} requested"));
    e.details = Some(serde_json::json!({ "src": src, "job": job.id }));
    ctx.audit(Some(req), e);
    Ok(job)
}

/// `GET /images/jobs`: fetch jobs with their progress.
pub fn jobs(ctx: &AppContext, _req: &Request<'_>) -> Reply {
    Ok(Response::json(200, &serde_json::json!({ "jobs": ctx.jobs.list() })))
}

/// A remote catalog entry as `POST /catalog/entries` takes it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteEntry {
    /// Catalog name.
    pub name: String,
    /// `http(s)://` or `oras://` source.
    pub src: String,
    /// Content sha256, when known.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Catalog format id; guessed from the name when absent.
    #[serde(default)]
    pub format: Option<String>,
    /// Size of the bytes at `src`.
    #[serde(default)]
    pub size_bytes: Option<u64>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Architecture; guessed from the name when absent.
    #[serde(default)]
    pub arch: Option<String>,
}

/// `POST /catalog/entries`: a remote-only entry (a URL or `oras://` ref, no local bytes);
/// `ref = sha256(canonical src)`. 201 with its `ImageEntry`.
pub fn add_remote(ctx: &AppContext, req: &Request<'_>) -> Reply {
    let e: RemoteEntry = req.json(super::SMALL_JSON)?;
    let row = insert_remote(ctx, req, e)?;
    Ok(Response::json(201, &entry(&ctx.base_url(req), &row)))
}

/// Checks and stores a remote entry and records the event; shared by the API and the UI.
pub fn insert_remote(ctx: &AppContext, req: &Request<'_>, e: RemoteEntry) -> Result<ImageRow, HttpError> {
    check_remote_src(&e.src)?;
    let image_ref = crate::catalog::image_ref(&e.src).map_err(|err| HttpError::new(422, err.to_string()))?;
    let sha256 = e.sha256.map(|s| s.to_ascii_lowercase());
    if sha256.as_deref().is_some_and(|s| !crate::wire::is_hex64(s)) {
        return Err(HttpError::new(422, "sha256 must be 64 hex digits"));
    }
    let name = e.name.trim().to_string();
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(HttpError::new(422, "name must be 1-255 printable characters"));
    }
    if ctx.db.image(&image_ref)?.is_some() || ctx.db.image_by_name(&name)?.is_some() {
        return Err(HttpError::new(409, format!("{name:?} or its src is already in the catalog")));
    }
    let row = ImageRow {
        image_ref: image_ref.clone(),
        format: e.format.or_else(|| crate::catalog::format_id(&name).map(str::to_string)),
        arch: e.arch.or_else(|| crate::catalog::arch_hint(&name).map(str::to_string)),
        name,
        kind: ImageKind::Remote,
        src: Some(e.src),
        sha256,
        size_bytes: e.size_bytes,
        virtual_size: None,
        description: e.description,
        created_at: crate::db::now(),
    };
    ctx.db.insert_image(&row)?;
    let mut ev =
        event("image.remote.added", ("image", &image_ref), "operator", format!("{} added", row.name));
    ev.details = Some(serde_json::json!({ "src": row.src }));
    ctx.audit(Some(req), ev);
    Ok(row)
}
